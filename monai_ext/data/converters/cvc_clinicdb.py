"""CVC-ClinicDB: ``Original/N.png`` + ``Ground Truth/N.png`` + ``sequences.json`` (contiguous blocks).

One sample per block: ``image`` / ``label`` are the block's frames in frame-number order.
Frames that fall in no block are skipped (their video of origin is unknown, so keeping them
could leak a sequence across splits); the summary says how many.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    check_same_size,
    image_files,
    make_sample,
    require_dir,
    require_file,
)

FORMAT = "cvc-clinicdb"
DATASET = "cvc_clinicdb"
IMAGE_DIRS = ("Original",)
MASK_DIRS = ("Ground Truth", "GroundTruth", "Ground_Truth")


def _frames_by_number(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in image_files(folder):
        if p.stem.isdigit():
            n = int(p.stem)
            if n in out:
                raise ConversionError(f"{p}: frame {n} exists twice ({out[n].name})")
            out[n] = p
    return out


def _read_blocks(path: Path) -> list[dict]:
    require_file(path, "sequences.json (frame ranges of the video blocks)")
    try:
        data = json.loads(path.read_text())
        blocks = data["sequences"] if isinstance(data, dict) else data
        parsed = [{"id": str(b["id"]), "first": int(b["first"]), "last": int(b["last"])} for b in blocks]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(
            f"{path}: expected {{\"sequences\": [{{\"id\", \"first\", \"last\"}}, ...]}} ({type(exc).__name__}: {exc})"
        ) from exc
    seen: dict[int, str] = {}
    ids = set()
    for b in parsed:
        if b["id"] in ids:
            raise ConversionError(f"{path}: block id {b['id']!r} appears twice")
        ids.add(b["id"])
        if b["last"] < b["first"]:
            raise ConversionError(f"{path}: block {b['id']!r} has last < first")
        for n in range(b["first"], b["last"] + 1):
            if n in seen:
                raise ConversionError(f"{path}: frame {n} is in blocks {seen[n]!r} and {b['id']!r}")
            seen[n] = b["id"]
    return parsed


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "CVC-ClinicDB folder")
    image_dir = require_dir(src / IMAGE_DIRS[0], "image folder 'Original'")
    mask_dir = next((src / d for d in MASK_DIRS if (src / d).is_dir()), None)
    if mask_dir is None:
        raise ConversionError(f"{src / MASK_DIRS[0]}: mask folder 'Ground Truth' not found")
    blocks = _read_blocks(src / "sequences.json")
    images = _frames_by_number(image_dir)
    masks = _frames_by_number(mask_dir)
    if not images:
        raise ConversionError(f"{image_dir}: no numbered frames (N.png)")
    for n, p in images.items():
        if n not in masks:
            raise ConversionError(f"{p}: image without mask (expected {mask_dir / p.name})")
    for n, p in masks.items():
        if n not in images:
            raise ConversionError(f"{p}: mask without image in {image_dir}")

    samples, used = [], set()
    for b in blocks:
        frames = list(range(b["first"], b["last"] + 1))
        missing = [n for n in frames if n not in images]
        if missing:
            raise ConversionError(
                f"{image_dir / (str(missing[0]) + '.png')}: frame {missing[0]} of block {b['id']!r} not found"
            )
        for n in frames:
            check_same_size(images[n], masks[n])
        used.update(frames)
        samples.append(
            make_sample(
                id=b["id"],
                image=[images[n] for n in frames],
                label=[masks[n] for n in frames],
                label_values=[255],
                target="polyp",
                modality="endoscopy",
                dataset=DATASET,
                sequence_id=b["id"],
            )
        )
    notes = []
    unused = sorted(set(images) - used)
    if unused:
        notes.append(f"{len(unused)} frame(s) in no sequences.json block skipped (first: {unused[0]})")
    return ConversionResult(samples, notes)
