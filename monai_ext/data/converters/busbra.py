"""BUS-BRA: ``Images/bus_NNNN-x.png`` + ``Masks/mask_NNNN-x.png`` + ``bus_data.csv``.

One sample per image; target ``breast lesion``; ``sequence_id`` = the csv ``Case`` so all images
of a case share a split. ``report`` is built from Pathology, Histology, BI-RADS and Side, e.g.
``"benign hyperplasia, BI-RADS 4, left view"``. ``Side`` (left/right/single) tells which panel of a
dual-view screen capture the image was cut from, not the breast's laterality (bus_0007-l shows the
on-screen note "MAMA DIREITA", right breast), so it is reported as a view, never as "left breast".
"""

from __future__ import annotations

import csv
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

FORMAT = "busbra"
DATASET = "busbra"
REQUIRED_COLUMNS = ("ID", "Case", "Histology", "Pathology", "BIRADS", "Side")


def make_report(row: dict[str, str]) -> str:
    pathology = row["Pathology"].strip().lower()
    histology = row["Histology"].strip().lower()
    parts = []
    lesion = pathology if histology in ("", pathology) else f"{pathology} {histology}".strip()
    if lesion:
        parts.append(lesion)
    birads = row["BIRADS"].strip()
    if birads:
        parts.append(f"BI-RADS {birads}")
    side = row["Side"].strip().lower()
    if side:
        parts.append(f"{side} view")
    return ", ".join(parts)


def _read_csv(path: Path) -> list[dict[str, str]]:
    require_file(path, "bus_data.csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConversionError(f"{path}: unreadable csv ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ConversionError(f"{path}: csv is missing column(s) {', '.join(missing)} (has: {', '.join(columns)})")
    for i, r in enumerate(rows, start=2):
        if not r["ID"].strip() or not r["Case"].strip():
            raise ConversionError(f"{path}: line {i} has an empty ID or Case")
    return rows


def convert(src: Path, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "BUS-BRA folder")
    image_dir = require_dir(src / "Images", "image folder 'Images'")
    mask_dir = require_dir(src / "Masks", "mask folder 'Masks'")
    rows = _read_csv(src / "bus_data.csv")
    by_id = {}
    for r in rows:
        rid = r["ID"].strip()
        if rid in by_id:
            raise ConversionError(f"{src / 'bus_data.csv'}: ID {rid!r} appears twice")
        by_id[rid] = r
    images = {p.stem: p for p in image_files(image_dir)}
    masks = {p.stem: p for p in image_files(mask_dir)}
    for stem, p in images.items():
        if stem not in by_id:
            raise ConversionError(f"{p}: image has no row in {src / 'bus_data.csv'}")
    for stem, p in masks.items():
        if stem.startswith("mask_") and "bus_" + stem[len("mask_"):] not in images:
            raise ConversionError(f"{p}: mask without image in {image_dir}")
    samples = []
    for rid in sorted(by_id):
        row = by_id[rid]
        img = images.get(rid)
        if img is None:
            raise ConversionError(f"{image_dir / (rid + '.png')}: image listed in bus_data.csv not found")
        mstem = "mask_" + rid[len("bus_"):] if rid.startswith("bus_") else "mask_" + rid
        mask = masks.get(mstem)
        if mask is None:
            raise ConversionError(f"{img}: image without mask (expected {mask_dir / (mstem + '.png')})")
        check_same_size(img, mask)
        case = row["Case"].strip()
        samples.append(
            make_sample(
                id=f"busbra_{rid[len('bus_'):] if rid.startswith('bus_') else rid}",
                image=img,
                label=mask,
                label_values=[255],
                target="breast lesion",
                modality="ultrasound",
                dataset=DATASET,
                sequence_id=f"busbra_case{int(case):04d}" if case.isdigit() else f"busbra_case{case}",
                report=make_report(row),
            )
        )
    return ConversionResult(samples, [])
