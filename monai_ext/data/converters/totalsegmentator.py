"""TotalSegmentator: case folders with ``ct.nii.gz`` or ``mr.nii.gz`` and a multi-label ``seg.nii.gz``.

``--src`` is one case folder or a folder of case folders. Label names come from
``labels_total.json`` (CT) / ``labels_total_mr.json`` (MR), looked up in the case folder and then
its parents up to ``--src``'s parent. One referring sample per (volume, label id present in the
seg), ``label_values [id]``, target by rule R (``kidney_left`` -> ``left kidney``). Also accepted: the
official per-structure layout ``segmentations/<name>.nii.gz`` (one binary mask per structure,
``label_values [1]``). Volumes without any segmentation are skipped and counted in the summary.
``sequence_id`` = the case, so all targets of one volume share a split.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    check_same_shape,
    make_sample,
    nifti_shape,
    nifti_stem,
    present_label_ids,
    require_dir,
    slug,
    totalseg_target_name,
)

FORMAT = "totalsegmentator"
DATASET = "totalseg"
VOLUME_NAMES = {"ct": ("ct.nii.gz", "ct.nii"), "mr": ("mr.nii.gz", "mr.nii")}
LABEL_FILES = {"ct": ("labels_total.json",), "mr": ("labels_total_mr.json", "labels_total.json")}
SEG_NAMES = ("seg.nii.gz", "seg.nii", "segmentations.nii.gz", "segmentations.nii")


def _find_volume(case: Path) -> tuple[str, Path] | None:
    for modality, names in VOLUME_NAMES.items():
        for n in names:
            if (case / n).is_file():
                return modality, case / n
    return None


def _label_map(case: Path, modality: str, stop: Path) -> tuple[Path, dict[int, str]]:
    folder = case
    while True:
        for name in LABEL_FILES[modality]:
            p = folder / name
            if p.is_file():
                try:
                    raw = json.loads(p.read_text())
                    return p, {int(k): str(v) for k, v in raw.items()}
                except (ValueError, AttributeError) as exc:
                    raise ConversionError(f"{p}: expected a json object {{\"id\": \"name\"}} ({exc})") from exc
        if folder == stop or folder.parent == folder:
            break
        folder = folder.parent
    raise ConversionError(
        f"{case}: label map {LABEL_FILES[modality][0]} not found in the case folder or its parents up to {stop}"
    )


def _convert_case(case: Path, modality: str, volume: Path, stop: Path) -> list[dict] | None:
    seg = next((case / n for n in SEG_NAMES if (case / n).is_file()), None)
    seg_dir = case / "segmentations"
    case_id = f"{DATASET}_{case.name}"
    samples = []
    if seg is not None:
        check_same_shape(volume, seg)
        label_file, names = _label_map(case, modality, stop)
        for lid in present_label_ids(seg):
            if lid not in names:
                raise ConversionError(f"{seg}: label id {lid} is not in {label_file}")
            raw = names[lid]
            samples.append(
                make_sample(
                    id=f"{case_id}_{slug(raw)}",
                    image=volume,
                    label=seg,
                    label_values=[lid],
                    target=totalseg_target_name(raw),
                    modality=modality,
                    dataset=DATASET,
                    sequence_id=case_id,
                )
            )
        return samples
    if seg_dir.is_dir():
        files = sorted(p for p in seg_dir.iterdir() if p.name.endswith((".nii.gz", ".nii")))
        shape = nifti_shape(volume)
        for p in files:
            if nifti_shape(p)[:3] != shape[:3]:
                raise ConversionError(f"{p}: mask shape {nifti_shape(p)} != image shape {shape} of {volume}")
            if not present_label_ids(p):
                continue
            raw = nifti_stem(p)
            samples.append(
                make_sample(
                    id=f"{case_id}_{slug(raw)}",
                    image=volume,
                    label=p,
                    label_values=[1],
                    target=totalseg_target_name(raw),
                    modality=modality,
                    dataset=DATASET,
                    sequence_id=case_id,
                )
            )
        return samples
    nifti_shape(volume)  # still check that the volume is readable
    return None


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "TotalSegmentator folder")
    if _find_volume(src):
        cases = [src]
    else:
        cases = sorted((p for p in src.iterdir() if p.is_dir() and _find_volume(p)), key=lambda p: p.name)
    if not cases:
        raise ConversionError(f"{src}: no case folder with ct.nii.gz or mr.nii.gz")
    stop = src.parent if cases == [src] else src
    samples, unlabeled, empty = [], [], []
    for case in cases:
        modality, volume = _find_volume(case)  # type: ignore[misc]
        found = _convert_case(case, modality, volume, stop)
        if found is None:
            unlabeled.append(case.name)
        elif not found:
            empty.append(case.name)
        else:
            samples.extend(found)
    notes = []
    if unlabeled:
        notes.append(f"{len(unlabeled)} volume(s) without segmentation skipped: {', '.join(unlabeled)}")
    if empty:
        notes.append(f"{len(empty)} volume(s) with an empty segmentation skipped: {', '.join(empty)}")
    return ConversionResult(samples, notes)
