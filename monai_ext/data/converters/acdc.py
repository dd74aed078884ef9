"""ACDC: ``patientNNN/patientNNN_frameNN.nii.gz`` + ``patientNNN_frameNN_gt.nii.gz``.

One sample per (patient, frame, structure present): 1 right ventricle, 2 myocardium,
3 left ventricle (``label_values [id]``). ``sequence_id`` = patient. ``patientNNN_4d.nii.gz`` is
ignored. When ``Info.cfg`` is present its ED/ES frame numbers and group go to ``report``.
"""

from __future__ import annotations

import re
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

FORMAT = "acdc"
DATASET = "acdc"
STRUCTURES = {1: "right ventricle", 2: "myocardium", 3: "left ventricle"}
FRAME = re.compile(r"^(?P<patient>patient\d+)_frame(?P<frame>\d+)\.nii(\.gz)?$")
GROUPS = {
    "NOR": "normal",
    "MINF": "previous myocardial infarction",
    "DCM": "dilated cardiomyopathy",
    "HCM": "hypertrophic cardiomyopathy",
    "RV": "abnormal right ventricle",
}


def _info(folder: Path) -> dict[str, str]:
    p = folder / "Info.cfg"
    out: dict[str, str] = {}
    if p.is_file():
        for line in p.read_text(errors="replace").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip()
    return out


def _report(info: dict[str, str], frame: int) -> str | None:
    parts = []
    for key, phase in (("ED", "end-diastolic"), ("ES", "end-systolic")):
        if info.get(key, "").isdigit() and int(info[key]) == frame:
            parts.append(f"{phase} frame")
    group = info.get("Group")
    if group:
        parts.append(GROUPS.get(group, group))
    return ", ".join(parts) or None


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "ACDC folder")
    patients = sorted(p for p in src.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not patients and src.name.startswith("patient"):
        patients = [src]
    if not patients:
        raise ConversionError(f"{src}: no patientNNN folders")
    samples, notes = [], []
    no_frames = []
    for folder in patients:
        frames = []
        for p in folder.iterdir():
            m = FRAME.match(p.name)
            if m:
                frames.append((int(m["frame"]), p, m["patient"]))
        if not frames:
            no_frames.append(folder.name)
            continue
        info = _info(folder)
        for frame, image, patient in sorted(frames):
            suffix = ".nii.gz" if image.name.endswith(".gz") else ".nii"
            gt = folder / f"{patient}_frame{frame:02d}_gt{suffix}"
            if not gt.is_file():
                alt = folder / image.name.replace(".nii", "_gt.nii", 1)
                if not alt.is_file():
                    raise ConversionError(f"{image}: image without mask (expected {gt})")
                gt = alt
            check_same_shape(image, gt)
            for lid in present_label_ids(gt):
                if lid not in STRUCTURES:
                    raise ConversionError(f"{gt}: unexpected label id {lid} (ACDC uses 1, 2, 3)")
                samples.append(
                    make_sample(
                        id=f"acdc_{patient}_frame{frame:02d}_{slug(STRUCTURES[lid])}",
                        image=image,
                        label=gt,
                        label_values=[lid],
                        target=STRUCTURES[lid],
                        modality="mr",
                        dataset=DATASET,
                        sequence_id=f"acdc_{folder.name}",
                        report=_report(info, frame),
                    )
                )
    if no_frames:
        notes.append(f"{len(no_frames)} patient folder(s) without patientNNN_frameNN.nii.gz skipped")
    return ConversionResult(samples, notes)
