"""Generic NIfTI pairs: ``--src/images/X.nii.gz`` + ``--src/labels/X.nii.gz``, or ``X_img`` / ``X_seg`` files in ``--src``.

One sample per volume with the given ``--target`` / ``--modality``; ``label_values`` from
``--label-values`` (default ``[1]``). ``sequence_id`` = the volume name (``X``).
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    NIFTI_SUFFIXES,
    check_same_shape,
    make_sample,
    nifti_stem,
    require_dir,
    slug,
)

FORMAT = "nifti-pairs"
REQUIRES = ("target", "modality")
IMAGE_SUFFIXES = ("_img", "_image", "_0000")
LABEL_SUFFIXES = ("_seg", "_label", "_mask", "_gt")


def _niftis(folder: Path) -> dict[str, Path]:
    return {
        nifti_stem(p): p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.lower().endswith(NIFTI_SUFFIXES) and not p.name.startswith(".")
    }


def _pairs(src: Path) -> list[tuple[str, Path, Path]]:
    if (src / "images").is_dir() or (src / "labels").is_dir():
        img_dir = require_dir(src / "images", "images folder")
        lab_dir = require_dir(src / "labels", "labels folder")
        images, labels = _niftis(img_dir), _niftis(lab_dir)
        if not images:
            raise ConversionError(f"{img_dir}: no NIfTI volumes")
        for stem, p in labels.items():
            if stem not in images:
                raise ConversionError(f"{p}: label without image in {img_dir}")
        out = []
        for stem, p in images.items():
            if stem not in labels:
                raise ConversionError(f"{p}: image without label (expected {lab_dir / p.name})")
            out.append((stem, p, labels[stem]))
        return out
    files = _niftis(src)
    images, labels = {}, {}
    for stem, p in files.items():
        for s in LABEL_SUFFIXES:
            if stem.endswith(s):
                labels[stem[: -len(s)]] = p
                break
        else:
            for s in IMAGE_SUFFIXES:
                if stem.endswith(s):
                    images[stem[: -len(s)]] = p
                    break
    if not images:
        raise ConversionError(f"{src}: neither images/ + labels/ folders nor <name>_img / <name>_seg NIfTI pairs")
    for stem, p in labels.items():
        if stem not in images:
            raise ConversionError(f"{p}: label without image (expected {src / (stem + '_img.nii.gz')})")
    out = []
    for stem, p in sorted(images.items()):
        if stem not in labels:
            raise ConversionError(f"{p}: image without label (expected {src / (stem + '_seg.nii.gz')})")
        out.append((stem, p, labels[stem]))
    return out


def convert(
    src: Path,
    target: str | None = None,
    modality: str | None = None,
    label_values: list[int] | None = None,
    dataset: str | None = None,
    **_: object,
) -> ConversionResult:
    if not target or not modality:
        raise ConversionError("nifti-pairs: --target and --modality are required")
    src = require_dir(Path(src), "NIfTI pairs folder")
    dataset = dataset or slug(src.name) or "nifti"
    samples = []
    for stem, image, label in _pairs(src):
        check_same_shape(image, label)
        sid = f"{dataset}_{slug(stem) or stem}"
        samples.append(
            make_sample(
                id=sid,
                image=image,
                label=label,
                label_values=label_values or [1],
                target=target,
                modality=modality,
                dataset=dataset,
                sequence_id=sid,
            )
        )
    return ConversionResult(samples, [])
