"""Readers of 2D images and of ordered frame sequences (a folder of images or a list of image paths)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai.data import MetaTensor

from .errors import SequenceReadError
from .meta import FRAME_SUFFIXES, SourceKind, make_source, path_stem

__all__ = ["natural_sort_key", "list_frame_files", "read_image_array", "read_image", "read_frames"]

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def natural_sort_key(path: str | os.PathLike) -> list:
    """
    Sort key that orders embedded numbers by value: ``2.png`` before ``10.png``.

    Args:
        path: a file name or path (only the name is used, case-insensitive).

    Returns:
        a list of alternating text and integer parts.
    """
    parts = re.split(r"(\d+)", Path(path).name.lower())
    return [int(p) if p.isdigit() else p for p in parts]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """
    The image files (``.png/.jpg/.jpeg/.tif/.tiff/.bmp``) of a folder in natural order.

    Args:
        folder: the folder (not recursive; hidden files ignored).

    Returns:
        the sorted frame paths (possibly empty).
    """
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES
    ]
    return sorted(files, key=natural_sort_key)


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """
    Read one 2D image with Pillow as a channel-first array: grey -> 1 channel, colour -> RGB (alpha dropped).

    Args:
        path: the image file.

    Returns:
        ``(C, H, W)`` array (rows, columns), ``C`` in {1, 3}, the stored dtype (uint8, uint16, int32, float32).

    Raises:
        SequenceReadError: unreadable or corrupt image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("1", "LA"):
                img = img.convert("L")
            elif mode in ("I;16B", "I;16L", "I;16N"):
                img = img.convert("I")
            elif mode not in _GREY_MODES and mode != "RGB":
                img = img.convert("RGB")  # RGBA, P, CMYK, YCbCr, LAB, ...
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise SequenceReadError(
            path, f"cannot read image ({type(e).__name__}: {e}); the file is not a readable image: replace or remove it"
        ) from e
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[-1] == 3:
        return np.moveaxis(array, -1, 0)
    raise SequenceReadError(path, f"unsupported image array of shape {array.shape}; save it as a grey or RGB image")


def read_image(path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32) -> MetaTensor:
    """
    Read a single 2D image as a one-frame sequence.

    Args:
        path: the image file.
        dtype: output data type, ``None`` keeps the stored type.

    Returns:
        ``(C, H, W, 1)`` MetaTensor, identity affine, meta ``frame_names = [<file stem>]``.
    """
    array = read_image_array(path)[..., None]
    return make_source(array, SourceKind.IMAGE, path, extra={"frame_names": [path_stem(path)]}, dtype=dtype)


def _unique_frame_names(paths: Sequence[Path]) -> list[str]:
    names = [path_stem(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    names = [f"{p.parent.name}_{path_stem(p)}" for p in paths]
    if len(set(names)) == len(names):
        return names
    width = len(str(len(paths) - 1))
    return [f"{t:0{width}d}_{n}" for t, n in enumerate(names)]


def read_frames(
    source: str | os.PathLike | Sequence[str | os.PathLike], dtype: np.dtype | type | str | None = np.float32
) -> MetaTensor:
    """
    Read an ordered frame sequence: a folder of images (natural sort) or an explicit list of image paths.

    Args:
        source: a folder, or the frame files in their sequence order.
        dtype: output data type, ``None`` keeps the stored type.

    Returns:
        ``(C, H, W, T)`` MetaTensor, identity affine, meta ``frame_names`` (file stems, made unique)
        and ``frame_paths``.

    Raises:
        SequenceReadError: empty folder/list, a missing or unreadable file, or frames of different
            size or channel count (the message names the first offending file).
    """
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_dir():
            raise SequenceReadError(source, "not a folder of frames; give a folder of frame images or a list of them")
        paths = list_frame_files(source)
        if not paths:
            raise SequenceReadError(
                source,
                f"empty folder: no frame image ({', '.join(FRAME_SUFFIXES)}); give the folder that holds the frames",
            )
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise SequenceReadError(None, "empty list of frame paths; give at least one frame")
        for p in paths:
            if not p.is_file():
                raise SequenceReadError(p, "frame file not found; check the path")
    first = read_image_array(paths[0])
    out = np.empty(first.shape + (len(paths),), dtype=first.dtype)
    out[..., 0] = first
    for t, p in enumerate(paths[1:], start=1):
        frame = read_image_array(p)
        if frame.shape != first.shape:
            raise SequenceReadError(
                p,
                f"frame has (channels, rows, columns) {frame.shape}, but the first frame {paths[0].name} has "
                f"{first.shape}: all frames must share size and channels",
            )
        out[..., t] = frame
    extra = {"frame_names": _unique_frame_names(paths), "frame_paths": [str(p) for p in paths]}
    return make_source(out, SourceKind.FRAMES, source, extra=extra, dtype=dtype)
