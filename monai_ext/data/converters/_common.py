"""Shared helpers for the dataset converters: errors, cheap header checks, sample building.

Every converter returns a :class:`ConversionResult` (samples without ``split`` + notes);
:func:`monai_ext.data.converters.build_datalist` assigns the splits, validates and writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "ConversionError",
    "ConversionResult",
    "IMAGE_EXTENSIONS",
    "NIFTI_SUFFIXES",
    "abspath",
    "check_same_size",
    "image_files",
    "library_target_name",
    "make_sample",
    "natural_key",
    "nifti_shape",
    "nifti_stem",
    "png_size",
    "present_label_ids",
    "require_dir",
    "require_file",
    "slug",
    "totalseg_target_name",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii.gz", ".nii")

SAMPLE_KEYS = (
    "id",
    "image",
    "label",
    "label_values",
    "target",
    "modality",
    "dataset",
    "sequence_id",
    "report",
    "split",
)
MODALITIES = ("endoscopy", "ct", "mr", "ultrasound")


class ConversionError(ValueError):
    """Broken or unsupported input; the message names the offending file or folder."""


@dataclass
class ConversionResult:
    """What a converter found: the samples (``split`` not yet set) and notes for the summary."""

    samples: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def abspath(path: str | os.PathLike) -> str:
    """Absolute path as a string, symlinks kept (the user's own path, not the link target)."""
    return os.path.abspath(os.fspath(path))


_NUM = re.compile(r"(\d+)")


def natural_key(name: str | os.PathLike) -> list:
    """Sort key ordering ``frame2`` before ``frame10``."""
    text = os.path.basename(os.fspath(name))
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in _NUM.split(text) if t != ""]


def slug(text: str) -> str:
    """``"right ventricle"`` -> ``"right_ventricle"`` (for sample ids)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()


def require_dir(path: Path, what: str = "folder") -> Path:
    if not path.is_dir():
        raise ConversionError(f"{path}: {what} not found")
    return path


def require_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise ConversionError(f"{path}: {what} not found")
    return path


def image_files(folder: Path) -> list[Path]:
    """Frame/image files of a folder (known extensions, hidden files ignored), natural order."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=natural_key)


def nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# --------------------------------------------------------------------------- cheap checks
def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (PIL opens lazily)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return tuple(im.size)  # type: ignore[return-value]
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise ConversionError(f"{path}: unreadable image ({exc})") from exc


def png_mode(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode
    except Exception as exc:
        raise ConversionError(f"{path}: unreadable image ({exc})") from exc


def binary_label_values(mask_path: Path) -> list[int]:
    """Foreground value of a binary PNG mask as ``monai_ext.io`` reads it (bilevel '1' masks become 0/255).

    Reads one mask: its maximum value (``[255]`` for 0/255 masks, ``[1]`` for 0/1 masks).
    """
    from PIL import Image

    try:
        with Image.open(mask_path) as im:
            if im.mode == "1":
                return [255]
            top = int(np.asarray(im.convert("L") if im.mode not in ("L", "I", "I;16") else im).max())
    except Exception as exc:
        raise ConversionError(f"{mask_path}: unreadable mask ({exc})") from exc
    return [top if top > 0 else 255]


def check_same_size(image: Path, mask: Path) -> None:
    isz, msz = png_size(image), png_size(mask)
    if isz != msz:
        raise ConversionError(f"{mask}: mask size {msz[0]}x{msz[1]} != image size {isz[0]}x{isz[1]} of {image}")


def _load_nifti(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise ConversionError(f"{path}: file not found")
    try:
        img = nib.load(os.fspath(path))
        _ = img.header.get_data_shape()
    except Exception as exc:  # nibabel: ImageFileError, EOFError, gzip.BadGzipFile, zlib.error, ...
        raise ConversionError(f"{path}: unreadable or truncated NIfTI header ({type(exc).__name__}: {exc})") from exc
    return img


def nifti_shape(path: Path) -> tuple[int, ...]:
    """Spatial shape from the header only; also catches an uncompressed file shorter than its data."""
    img = _load_nifti(path)
    shape = tuple(int(s) for s in img.header.get_data_shape())
    if len(shape) < 2:
        raise ConversionError(f"{path}: NIfTI has {len(shape)} dimension(s), expected an image/volume")
    hdr = img.header
    offset = int(getattr(img.dataobj, "offset", hdr.get_data_offset()))  # header copy may say 0
    expected = offset + int(np.prod(shape)) * hdr.get_data_dtype().itemsize
    if path.name.lower().endswith(".nii"):
        actual = path.stat().st_size
        if actual < expected:
            raise ConversionError(f"{path}: truncated NIfTI ({actual} bytes, header needs {expected})")
    elif path.name.lower().endswith(".gz"):
        _check_gzip_length(path, expected)
    return shape


def _check_gzip_length(path: Path, expected: int) -> None:
    """Cheap truncation check of a .nii.gz: the gzip trailer's ISIZE (uncompressed size mod 2**32).

    Only when the trailer disagrees with the header is the stream decompressed (without keeping
    it) to be sure, so well-formed files cost one 4-byte read.
    """
    import gzip
    import zlib

    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:
            raise ConversionError(f"{path}: truncated NIfTI (gzip file of {f.tell()} bytes)")
        f.seek(-4, os.SEEK_END)
        isize = int.from_bytes(f.read(4), "little")
    if isize == expected % 2**32:
        return
    total = 0
    try:
        with gzip.open(path, "rb") as g:
            while True:
                chunk = g.read(1 << 22)
                if not chunk:
                    break
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise ConversionError(f"{path}: truncated or corrupt NIfTI ({type(exc).__name__}: {exc})") from exc
    if total < expected:
        raise ConversionError(f"{path}: truncated NIfTI ({total} bytes of data, header needs {expected})")


def check_same_shape(image: Path, label: Path) -> tuple[int, ...]:
    ishape, lshape = nifti_shape(image), nifti_shape(label)
    if ishape[:3] != lshape[:3]:
        raise ConversionError(f"{label}: label shape {lshape} != image shape {ishape} of {image}")
    return ishape


def present_label_ids(path: Path) -> list[int]:
    """Non-zero integer ids present in a label volume (loads the data once)."""
    img = _load_nifti(path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise ConversionError(f"{path}: cannot read NIfTI data, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if data.dtype.kind == "f":
        data = np.rint(data)
    ids = np.unique(data)
    return [int(v) for v in ids if v != 0]


# --------------------------------------------------------------------------- samples
def make_sample(
    *,
    id: str,
    image: str | os.PathLike | Sequence[str | os.PathLike],
    label: str | os.PathLike | Sequence[str | os.PathLike] | None,
    label_values: Iterable[int] | None,
    target: str,
    modality: str,
    dataset: str,
    sequence_id: str,
    report: str | None = None,
) -> dict[str, Any]:
    """A SAMPLE of DESIGN.md section 4 (``split`` is filled in by ``build_datalist``)."""

    def _p(v):
        if v is None:
            return None
        if isinstance(v, (str, os.PathLike)):
            return abspath(v)
        return [abspath(x) for x in v]

    return {
        "id": id,
        "image": _p(image),
        "label": _p(label),
        "label_values": None if label_values is None else [int(v) for v in label_values],
        "target": target,
        "modality": modality,
        "dataset": dataset,
        "sequence_id": sequence_id,
        "report": report,
        "split": None,
    }


# --------------------------------------------------------------------------- names
SIDE_WORDS = ("left", "right")


def totalseg_target_name(raw: str) -> str:
    """Rule R of DESIGN.md section 8: ``kidney_left`` -> ``left kidney``, ``urinary_bladder`` -> ``urinary bladder``."""
    words = [w for w in raw.strip().split("_") if w]
    if len(words) > 1 and words[-1].lower() in SIDE_WORDS:
        words = [words[-1]] + words[:-1]
    return " ".join(words)


def library_target_name(raw: str, modality: str) -> tuple[str, str | None]:
    """Canonical prompt-library name of a label name, and what is wrong with it (``None`` if nothing).

    The name as written and its rule-R form (``kidney_right`` -> ``right kidney``) are tried in
    turn; only a whole-name match of an entry's name or synonym counts (``lookup`` would also find
    ``portal vein`` inside ``portal vein thrombus``, which must not rename a label). An entry found
    without descriptions for ``modality`` is returned with a problem. Not found: rule-R form + a problem.
    """
    from ...prompts.library import default_library, normalize_text

    lib = default_library()
    ruled = totalseg_target_name(raw)
    for candidate in dict.fromkeys((raw.strip(), ruled)):
        entry = lib.get(candidate)
        if entry is None:
            continue
        if normalize_text(candidate) not in {normalize_text(k) for k in (entry.name, *entry.synonyms)}:
            continue  # only part of the text matched an entry
        if modality in entry.modalities:
            return entry.name, None
        return entry.name, (
            f"prompt-library entry {entry.name!r} has no {modality} descriptions "
            f"(described: {', '.join(entry.modalities) or 'none'})"
        )
    close = lib.suggest(ruled, 3)
    hint = f" (close: {', '.join(close)})" if close else ""
    return ruled, f"{raw!r} is not a prompt-library name or synonym{hint}"
