"""Decathlon / nnU-Net layout: ``imagesTr/`` + ``labelsTr/`` + ``dataset.json`` (also read by ``btcv`` and ``chaos-mr``).

``dataset.json`` names the labels and the modality, in Medical Segmentation Decathlon style
(``"labels": {"1": "spleen"}``, ``"modality": {"0": "CT"}``) or nnU-Net v2 style
(``"labels": {"spleen": 1}``, a region as a list ``{"kidney": [2, 3]}``, ``"channel_names": {"0": "T2"}``).
Pairs: the ``"training"`` (and ``"validation"``) lists of ``{"image", "label"}`` when the json has
them (MONAI's BTCV ``dataset_0.json`` pairs ``img0001`` with ``label0001``), otherwise
``imagesTr/X.nii.gz`` (or nnU-Net's ``X_0000.nii.gz``; channels ``_0001``... are not used) with
``labelsTr/X.nii.gz``. ``imagesTs/`` (no labels) is not used.

One referring sample per (volume, label present in it): ``label_values [id]`` (a region: its ids),
``target`` = the label name's canonical prompt-library name (rule R, then the library's names and
synonyms: ``kidney_right`` / ``Right Kidney`` -> ``right kidney``), ``modality`` from ``dataset.json``
(``--modality`` overrides), ``sequence_id`` = the case, so all organs of a volume share a split.
A label id in a volume that ``dataset.json`` does not name is an error; volumes whose label is
empty are skipped (summary note). Here a name the prompt library lacks is kept (rule-R form) and
listed in the summary; the named formats (``btcv``, ``chaos-mr``) make it an error.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ._common import (
    NIFTI_SUFFIXES,
    ConversionError,
    ConversionResult,
    check_same_shape,
    library_target_name,
    make_sample,
    nifti_stem,
    present_label_ids,
    require_dir,
    slug,
)

FORMAT = "decathlon"
IMAGE_DIR, LABEL_DIR, JSON_NAME = "imagesTr", "labelsTr", "dataset.json"
CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
CT_WORDS = frozenset({"ct", "cta", "cect", "nect", "ncct"})
MR_WORDS = frozenset(
    {"mr", "mri", "t1", "t1w", "t2", "t2w", "t1gd", "t1c", "t1ce", "flair", "adc", "dwi", "pd", "spir",
     "bold", "cine", "dixon", "hbv", "inphase", "outphase"}
)
US_WORDS = frozenset({"us", "ultrasound"})


# --------------------------------------------------------------------------- dataset.json
def read_dataset_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConversionError(f"{path}: dataset.json not found (it names the labels and the modality)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConversionError(f"{path}: unreadable or invalid json ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a json object with 'labels'")
    return data


def json_modality(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(modality, as written)`` from ``modality`` (MSD) or ``channel_names`` (nnU-Net v2), channel 0.

    ``CT`` -> ct; ``MRI``, ``T2``, ``T2-SPIR``, ``FLAIR``, ``ADC`` ... -> mr; ``US`` -> ultrasound;
    ``(None, text)`` when the text names no modality (nnU-Net's ``noNorm``, ``zscore``), ``(None, None)``
    when the json has none.
    """
    raw = data.get("modality", data.get("channel_names"))
    if raw is None:
        return None, None
    if isinstance(raw, Mapping):
        if not raw:
            return None, None
        raw = raw.get("0", next(iter(raw.values())))
    text = str(raw).strip()
    words = set(re.split(r"[^a-z0-9]+", text.lower())) - {""}
    if words & CT_WORDS:
        return "ct", text
    if words & MR_WORDS:
        return "mr", text
    if words & US_WORDS:
        return "ultrasound", text
    if words & {"endoscopy", "colonoscopy"}:
        return "endoscopy", text
    return None, text


def parse_labels(data: Mapping[str, Any], path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """Foreground labels as ``(name, ids)``.

    MSD ``{"1": "spleen"}`` or nnU-Net v2 ``{"spleen": 1}`` / regions ``{"x": [1, 2]}``; id 0 is dropped.
    """
    raw = data.get("labels")
    if not isinstance(raw, Mapping) or not raw:
        raise ConversionError(f"{path}: no 'labels' object (e.g. {{\"0\": \"background\", \"1\": \"spleen\"}})")
    items: list[tuple[str, tuple[int, ...]]] = []
    if all(re.fullmatch(r"\s*\d+\s*", str(k)) for k in raw):  # MSD: id -> name
        for k, v in raw.items():
            if not isinstance(v, str) or not v.strip():
                raise ConversionError(f"{path}: label {k} has no name ({v!r})")
            items.append((v.strip(), (int(k),)))
    else:  # nnU-Net v2: name -> id or region [ids]
        for k, v in raw.items():
            values = v if isinstance(v, (list, tuple)) else [v]
            if not values or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in values):
                raise ConversionError(f"{path}: label {k!r} -> {v!r}: expected a label id or a list of ids")
            items.append((str(k).strip(), tuple(int(x) for x in values)))
    labels = [(n, ids) for n, ids in items if ids != (0,)]
    named: dict[int, str] = {}
    for name, ids in labels:
        if not name:
            raise ConversionError(f"{path}: label {list(ids)} has an empty name")
        if len(ids) == 1:
            if ids[0] in named:
                raise ConversionError(f"{path}: label id {ids[0]} is named twice ({named[ids[0]]!r}, {name!r})")
            named[ids[0]] = name
    if not labels:
        raise ConversionError(f"{path}: 'labels' names no foreground label (only background)")
    return labels


# --------------------------------------------------------------------------- pairs
def _niftis(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(NIFTI_SUFFIXES)
    )


def _listed_pairs(src: Path, data: Mapping[str, Any], json_path: Path) -> list[tuple[str, Path, Path]] | None:
    """Pairs from the json's ``training`` / ``validation`` lists of ``{"image", "label"}``, or None."""
    listed = [
        (key, i, item)
        for key in ("training", "validation")
        for i, item in enumerate(data.get(key) if isinstance(data.get(key), list) else [])
    ]
    if not listed:
        return None
    out, seen = [], {}
    for key, i, item in listed:
        if not (isinstance(item, Mapping) and isinstance(item.get("image"), str) and isinstance(item.get("label"), str)):
            raise ConversionError(f"{json_path}: {key} entry {i} is not {{\"image\": path, \"label\": path}} ({item!r})")
        image = Path(os.path.normpath(src / item["image"]))
        label = Path(os.path.normpath(src / item["label"]))
        if not image.is_file():
            raise ConversionError(f"{image}: image listed in {json_path} not found")
        if not label.is_file():
            raise ConversionError(f"{image}: image without label (expected {label}, listed in {json_path})")
        case = nifti_stem(image)
        if case in seen:
            raise ConversionError(f"{json_path}: case {case!r} listed twice ({seen[case]} and {image})")
        seen[case] = image
        out.append((case, image, label))
    return out


def _folder_pairs(src: Path, ending: str) -> list[tuple[str, Path, Path]]:
    img_dir = require_dir(src / IMAGE_DIR, f"image folder '{IMAGE_DIR}'")
    lab_dir = require_dir(src / LABEL_DIR, f"label folder '{LABEL_DIR}'")
    labels = {nifti_stem(p): p for p in _niftis(lab_dir)}
    images = _niftis(img_dir)
    if not images:
        raise ConversionError(f"{img_dir}: no NIfTI volumes")
    out: list[tuple[str, Path, Path]] = []
    used: dict[str, Path] = {}
    for p in images:
        stem = nifti_stem(p)
        m = CHANNEL.match(stem)
        if stem in labels:
            case = stem
        elif m and m["case"] in labels:
            if m["channel"] != "0000":
                continue  # further channels of a multi-channel nnU-Net case
            case = m["case"]
        else:
            expected = m["case"] if m and m["channel"] == "0000" else stem
            raise ConversionError(f"{p}: image without label (expected {lab_dir / (expected + ending)})")
        if case in used:
            raise ConversionError(f"{p}: case {case!r} has two images ({used[case].name}, {p.name})")
        used[case] = p
        out.append((case, p, labels[case]))
    for stem, p in labels.items():
        if stem not in used:
            raise ConversionError(f"{p}: label without image in {img_dir}")
    return out


# --------------------------------------------------------------------------- conversion
def read_layout(
    src: Path,
    *,
    fmt: str,
    dataset: str,
    modality: str | None = None,
    expect_modality: str | None = None,
    aliases: Mapping[str, str] | None = None,
    strict: bool = False,
    case_prefix: str | None = None,
    what: str = "dataset folder",
) -> ConversionResult:
    """Convert a Decathlon-style folder (see the module docstring).

    ``expect_modality``: the named formats' modality; a ``dataset.json`` naming another is an error.
    ``aliases``: lower-case label name -> library name (e.g. BTCV's ``rkid``). ``strict``: a label
    name the prompt library lacks (or lacks for the modality) is an error instead of a note.
    ``case_prefix``: prefix of ``sequence_id`` unless the file name already starts with it.
    """
    src = require_dir(Path(src), what)
    json_path = src / JSON_NAME
    data = read_dataset_json(json_path)
    labels = parse_labels(data, json_path)
    notes: list[str] = []

    found, written = json_modality(data)
    if expect_modality is not None:
        if written is not None and found != expect_modality:
            raise ConversionError(
                f"{json_path}: modality {written!r} is not {expect_modality} (format {fmt} expects {expect_modality})"
            )
        mod = expect_modality
    elif modality:
        from ...prompts.library import normalize_modality

        try:
            mod = normalize_modality(modality)
        except ValueError as exc:
            raise ConversionError(f"--modality {modality!r}: {exc}") from exc
        if found is not None and found != mod:
            notes.append(f"--modality {mod} used; {json_path.name} says {written!r}")
    elif found is not None:
        mod = found
    else:
        raise ConversionError(
            f"{json_path}: modality {written!r} names no known modality; pass --modality"
            if written is not None
            else f"{json_path}: no 'modality' / 'channel_names'; pass --modality"
        )

    resolved: list[tuple[str, tuple[int, ...], str]] = []
    unknown: list[str] = []
    by_target: dict[str, str] = {}
    for name, ids in labels:
        key = (aliases or {}).get(name.lower(), name)
        target, problem = library_target_name(key, mod)
        if problem:
            if strict:
                raise ConversionError(f"{json_path}: label {list(ids)} {name!r}: {problem}")
            unknown.append(f"{name!r} ({problem})")
        if target in by_target:
            raise ConversionError(f"{json_path}: labels {by_target[target]!r} and {name!r} are both {target!r}")
        by_target[target] = name
        resolved.append((name, ids, target))
    if unknown:
        notes.append("label name(s) kept as written, not in the prompt library: " + "; ".join(unknown))
    known_ids = {i for _, ids, _ in resolved for i in ids}

    ending = str(data.get("file_ending", ".nii.gz"))
    if ending.lower() not in NIFTI_SUFFIXES:
        raise ConversionError(f"{json_path}: file_ending {ending!r} not supported (NIfTI .nii.gz / .nii only)")
    pairs = _listed_pairs(src, data, json_path)
    if pairs is None:
        pairs = _folder_pairs(src, ending)

    prefix = case_prefix or dataset
    samples, empty = [], []
    for case, image, label in pairs:
        check_same_shape(image, label)
        present = set(present_label_ids(label))
        stray = sorted(present - known_ids)
        if stray:
            raise ConversionError(f"{label}: label id(s) {stray} not named in {json_path}")
        if not present:
            empty.append(case)
            continue
        seq = case if case.lower().startswith(prefix.lower()) else f"{prefix}_{case}"
        seq = slug(seq) or seq
        for _, ids, target in resolved:
            if not present & set(ids):
                continue
            samples.append(
                make_sample(
                    id=f"{seq}_{slug(target)}",
                    image=image,
                    label=label,
                    label_values=sorted(ids),
                    target=target,
                    modality=mod,
                    dataset=dataset,
                    sequence_id=seq,
                )
            )
    if empty:
        notes.append(f"{len(empty)} volume(s) with an empty label skipped: {', '.join(empty)}")
    if (src / "imagesTs").is_dir():
        notes.append("imagesTs/ (no labels) not used")
    return ConversionResult(samples, notes)


def convert(src: Path, modality: str | None = None, dataset: str | None = None, **_: object) -> ConversionResult:
    src = Path(src)
    return read_layout(
        src,
        fmt=FORMAT,
        dataset=dataset or slug(src.name) or "decathlon",
        modality=modality,
        what="Decathlon-style folder",
    )
