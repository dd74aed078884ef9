"""Generic frame sequences: ``--src`` holds one folder of frames per sequence.

Optional ``--masks DIR`` holds parallel folders (same folder names) with one mask per frame,
matched by stem (``<frame>.<ext>`` or ``<frame>_mask.<ext>``). Without ``--masks`` the label is
null. Frames are in natural order; ``--target`` and ``--modality`` are required. Image files lying
directly in ``--src`` (no sub-folders) make one sequence named after ``--src``.
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    binary_label_values,
    check_same_size,
    image_files,
    make_sample,
    require_dir,
    slug,
)

FORMAT = "frames"
REQUIRES = ("target", "modality")


def convert(
    src: Path,
    target: str | None = None,
    modality: str | None = None,
    masks: str | Path | None = None,
    label_values: list[int] | None = None,
    dataset: str | None = None,
    **_: object,
) -> ConversionResult:
    if not target or not modality:
        raise ConversionError("frames: --target and --modality are required")
    src = require_dir(Path(src), "frames folder")
    mask_root = require_dir(Path(masks), "masks folder (--masks)") if masks else None
    dataset = dataset or slug(src.name) or "frames"
    folders = sorted((p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    seqs = [(f.name, f) for f in folders if image_files(f)]
    if not seqs and image_files(src):
        seqs = [(src.name, src)]
    if not seqs:
        raise ConversionError(f"{src}: no frame folders (sub-folders holding .png/.jpg/.tif/.bmp frames)")
    notes = []
    empty = [f.name for f in folders if not image_files(f)]
    if empty and len(seqs) > 1:
        notes.append(f"{len(empty)} sub-folder(s) without frames skipped")
    samples = []
    for name, folder in seqs:
        frames = image_files(folder)
        labels = None
        values = None
        if mask_root is not None:
            mfolder = mask_root / name
            if not mfolder.is_dir():
                if folder == src and image_files(mask_root):  # a single sequence: masks lie in --masks itself
                    mfolder = mask_root
                else:
                    raise ConversionError(f"{mfolder}: mask folder for sequence {name!r} not found")
            by_stem = {}
            for p in image_files(mfolder):
                by_stem.setdefault(p.stem, p)
                if p.stem.endswith("_mask"):
                    by_stem.setdefault(p.stem[: -len("_mask")], p)
            labels = []
            for fr in frames:
                m = by_stem.get(fr.stem)
                if m is None:
                    raise ConversionError(f"{fr}: frame without mask (expected {mfolder / fr.name})")
                check_same_size(fr, m)
                labels.append(m)
            values = label_values or binary_label_values(labels[0])
        seq_id = f"{dataset}_{slug(name) or name}"
        samples.append(
            make_sample(
                id=seq_id,
                image=frames,
                label=labels,
                label_values=values,
                target=target,
                modality=modality,
                dataset=dataset,
                sequence_id=seq_id,
            )
        )
    return ConversionResult(samples, notes)
