"""Kvasir-SEG: ``images/<name>.jpg`` + ``masks/<name>.png`` (a mask matches its image by name).

Colonoscopy stills without video order, so each image is its own one-frame sequence: one sample
per image, ``image`` / ``label`` one file each (``monai_ext.io`` reads a 2D image as a one-frame
sequence), target ``polyp``, modality endoscopy, ``sequence_id`` = ``kvasir_<name>``.
Every image and mask is decoded once (about 1 s for 700): a truncated JPEG / PNG, a mask whose
size differs from its image, a colour or non-binary mask (the original download's JPEG masks:
threshold them at 127 and save as PNG first) are errors. ``label_values`` is the mask's
foreground value as ``monai_ext.io`` reads it ([255] for 0/255 masks, bilevel masks become 0/255).
Images whose mask is empty are skipped (summary note).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    ConversionError,
    ConversionResult,
    image_files,
    make_sample,
    require_dir,
)

FORMAT = "kvasir-seg"
DATASET = "kvasir_seg"
MASK_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def _by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in image_files(folder):
        if p.stem in out:
            first = out[p.stem]
            raise ConversionError(f"{p}: two files named {p.stem!r} in {folder} ({first.name}, {p.name})")
        out[p.stem] = p
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) after decoding the whole file (catches truncated JPEGs, which open lazily)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.size[1], im.size[0]
    except Exception as exc:  # PIL raises many types for broken files
        raise ConversionError(f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc})") from exc


def _mask_value(path: Path, image: Path, size: tuple[int, int]) -> int | None:
    """Foreground value of a binary mask read as ``monai_ext.io`` reads it; None for an empty mask."""
    from ...io.frames import read_image_array

    try:
        array = read_image_array(path)
    except ValueError as exc:  # SequenceReadError
        raise ConversionError(f"{path}: unreadable or truncated mask ({exc})") from exc
    if array.shape[0] != 1:
        raise ConversionError(f"{path}: colour mask ({array.shape[0]} channels); expected a grey 0/255 mask")
    if tuple(array.shape[1:]) != size:
        h, w = array.shape[1:]
        raise ConversionError(f"{path}: mask size {w}x{h} != image size {size[1]}x{size[0]} of {image}")
    values = np.unique(array)
    if len(values) > 2 or values[0] != 0 and len(values) == 2:
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise ConversionError(
            f"{path}: not a binary mask ({len(values)} values: {shown}); threshold it (> 127) and save as PNG"
        )
    top = int(values[-1])
    return top if top > 0 else None


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "Kvasir-SEG folder")
    image_dir = require_dir(src / "images", "image folder 'images'")
    mask_dir = require_dir(src / "masks", "mask folder 'masks'")
    images = _by_stem(image_dir)
    if not images:
        raise ConversionError(f"{image_dir}: no images (.jpg/.png)")
    masks: dict[str, Path] = {}
    for p in sorted(image_files(mask_dir), key=lambda p: MASK_PREFERENCE.index(p.suffix.lower())):
        masks.setdefault(p.stem, p)  # PNG first when a mask exists in two formats
    for stem, img in sorted(images.items()):
        if stem not in masks:
            raise ConversionError(f"{img}: image without mask (expected {mask_dir / (stem + '.png')})")
    for stem, p in sorted(masks.items()):
        if stem not in images:
            raise ConversionError(f"{p}: mask without image in {image_dir}")
    samples, empty = [], []
    for stem in sorted(images):
        img, mask = images[stem], masks[stem]
        value = _mask_value(mask, img, _image_size(img))
        if value is None:
            empty.append(stem)
            continue
        sid = f"kvasir_{stem}"
        samples.append(
            make_sample(
                id=sid,
                image=img,
                label=mask,
                label_values=[value],
                target="polyp",
                modality="endoscopy",
                dataset=DATASET,
                sequence_id=sid,
            )
        )
    notes = []
    if empty:
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        notes.append(f"{len(empty)} image(s) with an empty mask skipped: {shown}")
    return ConversionResult(samples, notes)
