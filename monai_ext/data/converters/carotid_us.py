"""Carotid artery ultrasound (Momot 2022): ``US images/<acq>VAS_slice_<n>.png`` + ``Expert mask images/``.

One sample per acquisition (the file-name prefix before ``VAS_slice_``), frames ordered by the
integer ``n``; target ``common carotid artery``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    check_same_size,
    image_files,
    make_sample,
    require_dir,
)

FORMAT = "carotid-us"
DATASET = "carotid_us"
NAME = re.compile(r"^(?P<acq>.+?)VAS_slice_(?P<n>\d+)$")


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "carotid ultrasound folder")
    image_dir = require_dir(src / "US images", "image folder 'US images'")
    mask_dir = require_dir(src / "Expert mask images", "mask folder 'Expert mask images'")
    groups: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    notes = []
    skipped = 0
    for p in image_files(image_dir):
        m = NAME.match(p.stem)
        if not m:
            skipped += 1
            continue
        groups[m["acq"]].append((int(m["n"]), p))
    if not groups:
        raise ConversionError(f"{image_dir}: no '<acquisition>VAS_slice_<n>' images")
    mask_names = {p.name: p for p in image_files(mask_dir)}
    image_names = {p.name for fr in groups.values() for _, p in fr}
    for name, p in mask_names.items():
        if NAME.match(p.stem) and name not in image_names:
            raise ConversionError(f"{p}: mask without image in {image_dir}")
    samples = []
    for acq in sorted(groups):
        frames = sorted(groups[acq])
        images, masks = [], []
        for _, img in frames:
            mask = mask_names.get(img.name)
            if mask is None:
                raise ConversionError(f"{img}: image without mask (expected {mask_dir / img.name})")
            check_same_size(img, mask)
            images.append(img)
            masks.append(mask)
        samples.append(
            make_sample(
                id=f"carotid_{acq}",
                image=images,
                label=masks,
                label_values=[255],
                target="common carotid artery",
                modality="ultrasound",
                dataset=DATASET,
                sequence_id=f"carotid_{acq}",
            )
        )
    if skipped:
        notes.append(f"{skipped} image(s) in {image_dir} not named '<acq>VAS_slice_<n>' skipped")
    return ConversionResult(samples, notes)
