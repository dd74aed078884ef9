"""
Input/output of sequence sources (docs/DESIGN.md, sections 1 and 3).

Readers turn volumes (NIfTI, NRRD, MHA/MHD), DICOM series (or one series of a study folder) and cine
files, videos, frame folders or lists and single images into one channel-first
:py:class:`monai.data.MetaTensor` with three spatial axes, checked before any model work
(:py:func:`check_source`); writers save a mask back in the source's own geometry and kind, and as
DICOM SEG for a DICOM series (:py:func:`write_dicom_seg`).
Optional packages (PyAV, OpenCV, highdicom) are imported only when used.
"""

from __future__ import annotations

from .checks import check_source
from .dicom import SeriesInfo, is_dicom_file, list_dicom_series, read_dicom_cine, read_dicom_series, write_dicom_series
from .dicom_seg import seg_output_path, segmented_property_codes, write_dicom_seg
from .errors import SequenceReadError
from .frames import list_frame_files, natural_sort_key, read_frames, read_image, read_image_array
from .load import LoadSequence, LoadSequenced, PathOrPaths, detect_source_kind, load_source
from .meta import (
    DICOM_SUFFIXES,
    FRAME_KINDS,
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
    VOLUME_KINDS,
    VOLUME_SUFFIXES,
    SourceKind,
    frame_index_names,
    make_source,
    path_stem,
    path_suffix,
)
from .overlay import (
    iter_overlay_frames,
    make_mosaic,
    overlay_frame,
    overlay_output_paths,
    to_display_uint8,
    write_mosaic,
    write_overlay_frames,
)
from .video import (
    MaskVideoWriter,
    OverlayVideoWriter,
    VideoInfo,
    iter_mask_video,
    iter_video_chunks,
    iter_video_frames,
    mask_video_codec,
    probe_video,
    read_video,
    video_frame_names,
)
from .volume import LPS_TO_RAS, read_nifti, read_sitk_volume, read_volume, sitk_image_affine
from .write import (
    FORMATS,
    SavePredictiond,
    SaveSequenceMask,
    SaveSequenceMaskd,
    atomic_write,
    frames_with_target,
    mask_output_paths,
    output_formats,
    write_mask,
    write_mask_video,
    write_overlays,
)

__all__ = [
    "write_mask_video",
    "write_overlays",
    "iter_overlay_frames",
    "make_mosaic",
    "overlay_frame",
    "overlay_output_paths",
    "to_display_uint8",
    "write_mosaic",
    "write_overlay_frames",
    "MaskVideoWriter",
    "OverlayVideoWriter",
    "VideoInfo",
    "iter_mask_video",
    "iter_video_chunks",
    "iter_video_frames",
    "mask_video_codec",
    "probe_video",
    "video_frame_names",
    "FORMATS",
    "output_formats",
    "DICOM_SUFFIXES",
    "FRAME_KINDS",
    "FRAME_SUFFIXES",
    "LPS_TO_RAS",
    "LoadSequence",
    "LoadSequenced",
    "PathOrPaths",
    "SavePredictiond",
    "SaveSequenceMask",
    "SaveSequenceMaskd",
    "SequenceReadError",
    "SeriesInfo",
    "SourceKind",
    "VIDEO_SUFFIXES",
    "VOLUME_KINDS",
    "VOLUME_SUFFIXES",
    "atomic_write",
    "check_source",
    "detect_source_kind",
    "frame_index_names",
    "frames_with_target",
    "is_dicom_file",
    "list_dicom_series",
    "list_frame_files",
    "load_source",
    "make_source",
    "mask_output_paths",
    "natural_sort_key",
    "path_stem",
    "path_suffix",
    "read_dicom_cine",
    "read_dicom_series",
    "read_frames",
    "read_image",
    "read_image_array",
    "read_nifti",
    "read_sitk_volume",
    "read_video",
    "read_volume",
    "seg_output_path",
    "segmented_property_codes",
    "sitk_image_affine",
    "write_dicom_seg",
    "write_dicom_series",
    "write_mask",
]
