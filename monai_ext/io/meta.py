"""Source kinds and the metadata common to every loaded source (see docs/DESIGN.md, section 1)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai.data import MetaTensor
from monai.utils import SpaceKeys, convert_to_numpy

__all__ = [
    "SourceKind",
    "VOLUME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FRAME_SUFFIXES",
    "DICOM_SUFFIXES",
    "FRAME_KINDS",
    "VOLUME_KINDS",
    "path_suffix",
    "path_stem",
    "source_stem",
    "frame_index_names",
    "make_source",
    "mask_array",
]


class SourceKind:
    """The values of ``meta["source_kind"]``."""

    VOLUME = "volume"
    DICOM_SERIES = "dicom_series"
    DICOM_CINE = "dicom_cine"
    VIDEO = "video"
    FRAMES = "frames"
    IMAGE = "image"


VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom")

#: kinds whose spatial axes are (row, column, time); masks are written as one PNG per frame.
FRAME_KINDS = (SourceKind.FRAMES, SourceKind.VIDEO, SourceKind.IMAGE, SourceKind.DICOM_CINE)
#: kinds whose spatial axes are (X, Y, Z) with a world affine; masks are written as NIfTI.
VOLUME_KINDS = (SourceKind.VOLUME, SourceKind.DICOM_SERIES)


def path_suffix(path: str | os.PathLike) -> str:
    """
    Lower-case suffix of a file name, double suffix for ``.nii.gz``.

    Args:
        path: a file name.

    Returns:
        e.g. ``".nii.gz"``, ``".png"`` or ``""``.
    """
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def path_stem(path: str | os.PathLike) -> str:
    """
    File name without its (double) suffix, or the folder name for a folder.

    Args:
        path: a file or folder.

    Returns:
        e.g. ``"ct"`` for ``/data/ct.nii.gz``.
    """
    p = Path(path)
    if p.is_dir():
        return p.name
    suffix = path_suffix(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def source_stem(meta: Mapping[str, Any]) -> str:
    """The base name of a loaded source's outputs: ``meta["stem"]``, else its file (a frame list: its folder).

    Raises:
        ValueError: the metadata has neither.
    """
    if meta.get("stem"):
        return str(meta["stem"])
    name = meta.get("filename_or_obj")
    if isinstance(name, (list, tuple)):
        return Path(str(name[0])).parent.name or path_stem(str(name[0]))
    if name:
        return path_stem(str(name))
    raise ValueError("the source's metadata has neither 'stem' nor 'filename_or_obj': cannot name the outputs.")


def mask_array(mask: Any, spatial_shape: Sequence[int], shape_of: str, detail: str = ".") -> np.ndarray:
    """``mask`` as a numpy array of ``spatial_shape``, a leading channel of one dropped (``(1, ...)`` or ``(...)``).

    Args:
        mask: the mask, channel first or without a channel.
        spatial_shape: the shape it must have.
        shape_of: what that shape is, for the message (e.g. ``"the source spatial shape"``).
        detail: the message's end (e.g. ``" of FILE; nothing written."``).

    Raises:
        ValueError: more than one channel, or another shape.
    """
    array = convert_to_numpy(mask)
    expected = tuple(int(s) for s in spatial_shape)
    if array.ndim == len(expected) + 1:
        if array.shape[0] != 1:
            raise ValueError(f"the mask must have one channel, got shape {array.shape}.")
        array = array[0]
    if tuple(array.shape) != expected:
        raise ValueError(f"mask shape {tuple(np.shape(mask))} does not match {shape_of} {expected}{detail}")
    return array


def frame_index_names(num_frames: int, prefix: str = "frame_") -> list[str]:
    """
    Zero padded frame names (``frame_0000``, ``frame_0001``, ...) for sources without per-frame files.

    Args:
        num_frames: number of frames.
        prefix: text before the index.

    Returns:
        one name per frame, all of the same width (at least 4 digits).
    """
    width = max(4, len(str(max(num_frames - 1, 0))))
    return [f"{prefix}{t:0{width}d}" for t in range(num_frames)]


def make_source(
    array: np.ndarray,
    kind: str,
    filename: str | os.PathLike | Sequence[str | os.PathLike],
    affine: np.ndarray | None = None,
    stem: str | None = None,
    extra: dict[str, Any] | None = None,
    dtype: np.dtype | type | str | None = np.float32,
) -> MetaTensor:
    """
    Wrap a channel-first array with 3 spatial axes into a :py:class:`monai.data.MetaTensor`
    carrying the metadata every source has.

    Args:
        array: ``(C, S1, S2, S3)`` array.
        kind: one of :py:class:`SourceKind`.
        filename: the path (or list of paths) as given by the user, stored as ``filename_or_obj``.
        affine: 4x4 RAS affine of the spatial axes; identity when ``None``.
        stem: base name used to name written masks; derived from ``filename`` when ``None``.
        extra: more metadata (``frame_names``, ``fps``, ...).
        dtype: convert the data to this type; ``None`` keeps the array's type.

    Returns:
        the MetaTensor; ``meta`` holds ``source_kind``, ``filename_or_obj``, ``stem``, ``spatial_shape``,
        ``affine``, ``original_affine``, ``space`` and ``original_channel_dim`` plus ``extra``.
    """
    if array.ndim != 4:
        raise ValueError(f"expected a (C, S1, S2, S3) array, got shape {array.shape}.")
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    aff = np.eye(4, dtype=np.float64) if affine is None else np.asarray(affine, dtype=np.float64)
    if isinstance(filename, (str, os.PathLike)):
        given: str | list[str] = str(filename)
        default_stem = path_stem(filename)
    else:
        given = [str(f) for f in filename]
        default_stem = Path(given[0]).parent.name or path_stem(given[0])
    meta: dict[str, Any] = {
        "source_kind": kind,
        "filename_or_obj": given,
        "stem": stem or default_stem,
        "spatial_shape": np.asarray(array.shape[1:], dtype=np.int64),
        "affine": torch.as_tensor(aff, dtype=torch.float64),
        "original_affine": aff.copy(),
        "space": SpaceKeys.RAS,
        "original_channel_dim": 0,
    }
    meta.update(extra or {})
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # e.g. np.asarray(PIL image)
        array = array.copy()
    return MetaTensor(torch.as_tensor(array), meta=meta)
