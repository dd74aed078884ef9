"""BraTS: ``<case>/flair.nii.gz`` + ``<case>/labels.nii.gz`` (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing).

One sample per (case, target present): the four tumour parts (``label_values [id]``) and
``brain tumour`` (``label_values [1, 2, 3, 4]``, any part present). Image = the FLAIR volume
(``flair``, else ``t2``, ``t1c``, ``t1``, ``image``); modality mr; ``sequence_id`` = case.
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    check_same_shape,
    make_sample,
    present_label_ids,
    require_dir,
    slug,
)

FORMAT = "brats"
DATASET = "brats"
PARTS = {1: "necrosis", 2: "oedema", 3: "non-enhancing tumour", 4: "enhancing tumour"}
WHOLE = "brain tumour"
IMAGE_NAMES = ("flair", "t2", "t1c", "t1", "image")
LABEL_NAMES = ("labels", "label", "seg")


def _first(case: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        for ext in (".nii.gz", ".nii"):
            if (case / (n + ext)).is_file():
                return case / (n + ext)
    return None


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "BraTS folder")
    if _first(src, LABEL_NAMES) or _first(src, IMAGE_NAMES):
        cases = [src]
    else:
        cases = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise ConversionError(f"{src}: no case folders")
    samples = []
    for case in cases:
        case_id = case.name if case.name.lower().startswith("brats") else f"brats_{case.name}"
        image = _first(case, IMAGE_NAMES)
        label = _first(case, LABEL_NAMES)
        if image is None:
            raise ConversionError(f"{case / 'flair.nii.gz'}: image not found")
        if label is None:
            raise ConversionError(f"{image}: image without mask (expected {case / 'labels.nii.gz'})")
        check_same_shape(image, label)
        present = present_label_ids(label)
        unknown = [v for v in present if v not in PARTS]
        if unknown:
            raise ConversionError(f"{label}: unexpected label id(s) {unknown} (BraTS uses 1-4)")
        targets = [(PARTS[v], [v]) for v in present]
        if present:
            targets.append((WHOLE, sorted(PARTS)))
        for target, values in targets:
            samples.append(
                make_sample(
                    id=f"{case_id}_{slug(target)}",
                    image=image,
                    label=label,
                    label_values=values,
                    target=target,
                    modality="mr",
                    dataset=DATASET,
                    sequence_id=case_id,
                )
            )
    return ConversionResult(samples, [])
