"""Load any supported input as a channel-first MetaTensor with 3 spatial axes (docs/DESIGN.md, section 1)."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai.config import DtypeLike, KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from .dicom import is_dicom_file, read_dicom_cine, read_dicom_series
from .errors import SequenceReadError
from .frames import list_frame_files, read_frames, read_image
from .meta import DICOM_SUFFIXES, FRAME_SUFFIXES, VIDEO_SUFFIXES, VOLUME_SUFFIXES, SourceKind, path_suffix
from .video import read_video
from .volume import read_volume

__all__ = ["PathOrPaths", "detect_source_kind", "load_source", "LoadSequence", "LoadSequenced"]

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]


def detect_source_kind(source: PathOrPaths) -> str:
    """
    The source kind an input will be read as, from its type, suffix and (for folders) content.

    Args:
        source: a file, a folder or a list of frame files.

    Returns:
        one of :py:class:`~monai_ext.io.meta.SourceKind`.

    Raises:
        SequenceReadError: missing path, empty folder or unsupported file type.
    """
    if not isinstance(source, (str, os.PathLike)):
        if len(source) == 0:
            raise SequenceReadError(None, "empty list of frame paths")
        return SourceKind.FRAMES
    path = Path(source)
    if path.is_dir():
        if list_frame_files(path):
            return SourceKind.FRAMES
        if not any(p.is_file() and not p.name.startswith(".") for p in path.iterdir()):
            raise SequenceReadError(path, "empty folder: no frame image or DICOM file")
        return SourceKind.DICOM_SERIES
    if not path.is_file():
        raise SequenceReadError(path, "file or folder not found")
    suffix = path_suffix(path)
    if suffix in VOLUME_SUFFIXES:
        return SourceKind.VOLUME
    if suffix in VIDEO_SUFFIXES:
        return SourceKind.VIDEO
    if suffix in FRAME_SUFFIXES:
        return SourceKind.IMAGE
    if suffix in DICOM_SUFFIXES or (suffix == "" and is_dicom_file(path)):
        return SourceKind.DICOM_CINE
    supported = VOLUME_SUFFIXES + VIDEO_SUFFIXES + FRAME_SUFFIXES + DICOM_SUFFIXES
    raise SequenceReadError(
        path, f"unsupported file type {suffix or '(no extension)'!r}; supported: {', '.join(supported)}, folders"
    )


def load_source(source: PathOrPaths, dtype: DtypeLike | None = np.float32) -> MetaTensor:
    """
    Read a volume, DICOM series/cine, video, frame folder, list of frames or single image.

    Args:
        source: the input path (file or folder) or an ordered list of frame paths.
        dtype: output data type (default float32 as ``LoadImage``); ``None`` keeps the stored type.

    Returns:
        ``(C, S1, S2, S3)`` MetaTensor; ``meta`` holds ``source_kind``, ``filename_or_obj`` (as given,
        a list of str for a list), ``stem``, ``spatial_shape``, ``affine``, ``original_affine`` and the
        kind-specific keys (``frame_names``, ``fps``, ``sop_instance_uids``...).

    Raises:
        SequenceReadError: bad input (the message names the file and the problem).
    """
    kind = detect_source_kind(source)
    if kind == SourceKind.FRAMES:
        return read_frames(source, dtype=dtype)
    if kind == SourceKind.VOLUME:
        return read_volume(source, dtype=dtype)
    if kind == SourceKind.DICOM_SERIES:
        return read_dicom_series(source, dtype=dtype)
    if kind == SourceKind.DICOM_CINE:
        return read_dicom_cine(source, dtype=dtype)
    if kind == SourceKind.VIDEO:
        return read_video(source, dtype=dtype)
    return read_image(source, dtype=dtype)


class LoadSequence(Transform):
    """
    Load any supported source as a channel-first MetaTensor with 3 spatial axes, see :py:func:`load_source`.

    Args:
        dtype: output data type, default float32; ``None`` keeps the stored type.

    """

    def __init__(self, dtype: DtypeLike | None = np.float32) -> None:
        self.dtype = dtype

    def __call__(self, source: PathOrPaths) -> MetaTensor:
        """
        Args:
            source: a file, a folder or an ordered list of frame files.

        Returns:
            the loaded MetaTensor.
        """
        return load_source(source, dtype=self.dtype)


class LoadSequenced(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`LoadSequence`: replaces each key's path (or list of paths)
    by the loaded MetaTensor. ``None`` values (e.g. a datalist ``"label": null``) are left as they are.

    Args:
        keys: keys of the inputs to load.
        dtype: output data type, default float32; ``None`` keeps the stored type.
        allow_missing_keys: don't raise when a key is missing.

    """

    def __init__(
        self, keys: KeysCollection, dtype: DtypeLike | None = np.float32, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadSequence(dtype=dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key] is not None:
                d[key] = self.loader(d[key])
        return d
