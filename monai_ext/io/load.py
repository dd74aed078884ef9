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

from .checks import check_source
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

    A folder of frame images is ``frames``; any other non-empty folder (a DICOM series, or a study folder
    holding several series or one sub-folder per series) is ``dicom_series``.

    Raises:
        SequenceReadError: missing path, empty folder or unsupported file type.
    """
    if not isinstance(source, (str, os.PathLike)):
        if len(source) == 0:
            raise SequenceReadError(None, "empty list of frame paths; give at least one frame")
        return SourceKind.FRAMES
    path = Path(source)
    if path.is_dir():
        if list_frame_files(path):
            return SourceKind.FRAMES
        if not _holds_files(path):
            raise SequenceReadError(
                path, "empty folder: no frame image or DICOM file here or in its sub-folders; check the path"
            )
        return SourceKind.DICOM_SERIES
    if not path.is_file():
        raise SequenceReadError(path, "file or folder not found; check the path")
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
        path,
        f"unsupported file type {suffix or '(no extension)'!r}; supported: {', '.join(supported)}, folders: convert "
        "it to one of them",
    )


def _holds_files(folder: Path) -> bool:
    """Whether a folder or any of its (non-hidden) sub-folders holds a non-hidden file."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not n.startswith(".") for n in names):
            return True
    return False


def load_source(
    source: PathOrPaths,
    dtype: DtypeLike | None = np.float32,
    series: str | int | None = None,
    check: bool = True,
) -> MetaTensor:
    """
    Read a volume, DICOM series/cine, video, frame folder, list of frames or single image.

    Args:
        source: the input path (file or folder) or an ordered list of frame paths.
        dtype: output data type (default float32 as ``LoadImage``); ``None`` keeps the stored type.
        series: for a DICOM study folder, the series to read by ``SeriesInstanceUID`` or ``SeriesNumber``
            (the command line's ``--series``); ``None``: the folder's only series. Not allowed for other inputs.
        check: run :py:func:`~monai_ext.io.checks.check_source` on what was read (NaN/Inf values, 4D volumes,
            empty or one-pixel frames), so that a bad input fails before any model work.

    Returns:
        ``(C, S1, S2, S3)`` MetaTensor; ``meta`` holds ``source_kind``, ``filename_or_obj`` (as given,
        a list of str for a list), ``stem``, ``spatial_shape``, ``affine``, ``original_affine`` and the
        kind-specific keys (``frame_names``, ``fps``, ``sop_instance_uids``, ``dicom_files``, ``Modality``...).

    Raises:
        SequenceReadError: bad input (one line naming the file, the problem and what to do), including a
            study folder of several series without ``series`` (the message lists them).
    """
    kind = detect_source_kind(source)
    if series is not None and kind != SourceKind.DICOM_SERIES:
        raise SequenceReadError(
            source if isinstance(source, (str, os.PathLike)) else list(source),
            f"a series ({series!r}) was chosen but this input is read as {kind!r}, not a DICOM series or study "
            "folder; drop --series",
        )
    if kind == SourceKind.FRAMES:
        image = read_frames(source, dtype=dtype)
    elif kind == SourceKind.VOLUME:
        image = read_volume(source, dtype=dtype)
    elif kind == SourceKind.DICOM_SERIES:
        image = read_dicom_series(source, dtype=dtype, series=series)
    elif kind == SourceKind.DICOM_CINE:
        image = read_dicom_cine(source, dtype=dtype)
    elif kind == SourceKind.VIDEO:
        image = read_video(source, dtype=dtype)
    else:
        image = read_image(source, dtype=dtype)
    if check:
        check_source(image)
    return image


class LoadSequence(Transform):
    """
    Load any supported source as a channel-first MetaTensor with 3 spatial axes, see :py:func:`load_source`.

    Args:
        dtype: output data type, default float32; ``None`` keeps the stored type.
        series: for a DICOM study folder, the series to read (``SeriesInstanceUID`` or ``SeriesNumber``).
        check: check the input (NaN/Inf, 4D volumes, empty or one-pixel frames) after reading.

    """

    def __init__(
        self, dtype: DtypeLike | None = np.float32, series: str | int | None = None, check: bool = True
    ) -> None:
        self.dtype = dtype
        self.series = series
        self.check = check

    def __call__(self, source: PathOrPaths) -> MetaTensor:
        """
        Args:
            source: a file, a folder or an ordered list of frame files.

        Returns:
            the loaded MetaTensor.
        """
        return load_source(source, dtype=self.dtype, series=self.series, check=self.check)


class LoadSequenced(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`LoadSequence`: replaces each key's path (or list of paths)
    by the loaded MetaTensor. ``None`` values (e.g. a datalist ``"label": null``) are left as they are, and
    a MetaTensor already loaded (one chunk of a streamed video) is only checked.

    Args:
        keys: keys of the inputs to load.
        dtype: output data type, default float32; ``None`` keeps the stored type.
        series: for a DICOM study folder, the series to read (``SeriesInstanceUID`` or ``SeriesNumber``).
        check: check the inputs (NaN/Inf, 4D volumes, empty or one-pixel frames) after reading.
        allow_missing_keys: don't raise when a key is missing.

    """

    def __init__(
        self,
        keys: KeysCollection,
        dtype: DtypeLike | None = np.float32,
        series: str | int | None = None,
        check: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadSequence(dtype=dtype, series=series, check=check)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if isinstance(d[key], MetaTensor):  # already read, e.g. one chunk of a video streamed by the caller
                if self.loader.check:
                    check_source(d[key])
            elif d[key] is not None:
                d[key] = self.loader(d[key])
        return d
