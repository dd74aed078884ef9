"""Dataset converters: public dataset layouts -> the datalist of DESIGN.md section 4.

``CONVERTERS`` maps a FORMAT name (the ``tools/prepare_dataset.py`` argument) to a function
``convert(src, **options) -> ConversionResult``. :func:`prepare_dataset` runs one, assigns the
splits by ``sequence_id``, validates everything and only then writes ``datalist.json``
atomically; broken input raises :class:`ConversionError` naming the file and writes nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from . import (
    acdc,
    brats,
    btcv,
    busbra,
    carotid_us,
    chaos_mr,
    cvc_clinicdb,
    decathlon,
    frames,
    kvasir_seg,
    nifti_pairs,
    totalsegmentator,
    ultrasound_stills,
)
from ...atomic import atomic_write_json
from ._common import SAMPLE_KEYS, ConversionError, ConversionResult, totalseg_target_name
from ._split import SPLITS, parse_ratios, split_sequence_ids

__all__ = [
    "CONVERTERS",
    "REQUIRED_OPTIONS",
    "SCHEMA_VERSION",
    "ConversionError",
    "ConversionResult",
    "assign_splits",
    "build_datalist",
    "format_summary",
    "prepare_dataset",
    "split_sequence_ids",
    "totalseg_target_name",
    "validate_datalist",
    "write_datalist",
]

SCHEMA_VERSION = 1

_MODULES = (
    cvc_clinicdb,
    kvasir_seg,
    totalsegmentator,
    acdc,
    carotid_us,
    busbra,
    brats,
    btcv,
    chaos_mr,
    ultrasound_stills,
    decathlon,
    nifti_pairs,
    frames,
)
CONVERTERS: dict[str, Callable[..., ConversionResult]] = {m.FORMAT: m.convert for m in _MODULES}
REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {m.FORMAT: tuple(getattr(m, "REQUIRES", ())) for m in _MODULES}


def assign_splits(samples: list[dict[str, Any]], ratios: Sequence[float] | str, seed: int) -> None:
    """Set ``sample["split"]`` in place; all samples of one ``sequence_id`` get the same split.

    Uses the project's :func:`monai_ext.data.split_by_sequence`; the package-local
    :func:`split_sequence_ids` (same rules, Python ``random``) is only a fallback for when it is absent.
    """
    ratios = parse_ratios(ratios)
    try:
        from ..splits import split_by_sequence
    except ImportError:
        split_by_sequence = None
    if split_by_sequence is not None:
        parts = split_by_sequence(samples, dict(zip(SPLITS, ratios)), seed=seed, key="sequence_id")
        mapping = {str(s["sequence_id"]): name for name, items in parts.items() for s in items}
    else:
        mapping = split_sequence_ids([str(s["sequence_id"]) for s in samples], ratios, seed)
    for s in samples:
        s["split"] = mapping[str(s["sequence_id"])]


def build_datalist(
    fmt: str,
    src: str | os.PathLike,
    *,
    seed: int = 0,
    split: Sequence[float] | str = (0.7, 0.15, 0.15),
    **options: Any,
) -> tuple[dict[str, Any], list[str]]:
    """Run the converter for ``fmt`` and return ``(datalist, notes)``; nothing is written."""
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(sorted(CONVERTERS))}")
    missing = [o for o in REQUIRED_OPTIONS[fmt] if not options.get(o)]
    if missing:
        raise ConversionError(f"{fmt}: option(s) {', '.join('--' + m for m in missing)} required")
    ratios = parse_ratios(split)
    src_path = Path(src)
    if not src_path.is_dir():
        raise ConversionError(f"{src_path}: source folder not found")
    result = CONVERTERS[fmt](src_path, **options)
    if not result.samples:
        raise ConversionError(f"{src_path}: no samples found for format {fmt}")
    assign_splits(result.samples, ratios, seed)
    datalist: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "format": fmt,
        "source": os.path.abspath(src_path),
        "seed": seed,
        "split_ratios": list(ratios),
    }
    for name in SPLITS:
        datalist[name] = [s for s in result.samples if s["split"] == name]
    validate_datalist(datalist)
    return datalist, list(result.notes)


def validate_datalist(datalist: dict[str, Any], check_files: bool = True) -> None:
    """Schema checks of DESIGN.md section 4: keys, unique ids, absolute existing paths, split purity."""
    ids: set[str] = set()
    seq_split: dict[str, str] = {}
    for name in SPLITS:
        for s in datalist.get(name, []):
            missing = [k for k in SAMPLE_KEYS if k not in s]
            if missing:
                raise ConversionError(f"sample {s.get('id')!r}: missing key(s) {missing}")
            if s["split"] != name:
                raise ConversionError(f"sample {s['id']!r}: split {s['split']!r} listed under {name!r}")
            if s["id"] in ids:
                raise ConversionError(f"sample id {s['id']!r} is not unique")
            ids.add(s["id"])
            if seq_split.setdefault(s["sequence_id"], name) != name:
                raise ConversionError(f"sequence {s['sequence_id']!r} is in two splits")
            for key in ("image", "label"):
                value = s[key]
                if value is None and key == "label":
                    continue
                paths = [value] if isinstance(value, str) else value
                if not paths:
                    raise ConversionError(f"sample {s['id']!r}: empty {key}")
                for p in paths:
                    if not os.path.isabs(p):
                        raise ConversionError(f"sample {s['id']!r}: {key} path {p} is not absolute")
                    if check_files and not os.path.isfile(p):
                        raise ConversionError(f"{p}: file not found (sample {s['id']!r})")
            if isinstance(s["image"], list) and s["label"] is not None and len(s["label"]) != len(s["image"]):
                raise ConversionError(f"sample {s['id']!r}: {len(s['image'])} frames but {len(s['label'])} masks")
            if not s["target"]:
                raise ConversionError(f"sample {s['id']!r}: empty target")


def write_datalist(datalist: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/datalist.json`` atomically (temporary file + rename)."""
    return atomic_write_json(Path(out_dir) / "datalist.json", datalist, indent=1)


def format_summary(datalist: dict[str, Any], notes: Sequence[str] = ()) -> str:
    lines = [f"format {datalist['format']}: {datalist['source']}"]
    total = 0
    for name in SPLITS:
        samples = datalist[name]
        total += len(samples)
        seqs = len({s["sequence_id"] for s in samples})
        lines.append(f"  {name:<10} {len(samples):5d} samples  {seqs:4d} sequences")
    lines.append(f"  {'total':<10} {total:5d} samples")
    targets = Counter(s["target"] for n in SPLITS for s in datalist[n])
    if len(targets) <= 8:
        lines.append("  targets: " + ", ".join(f"{t} ({c})" for t, c in sorted(targets.items())))
    else:
        lines.append(f"  targets: {len(targets)} distinct")
    for note in notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def prepare_dataset(
    fmt: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    split: Sequence[float] | str = (0.7, 0.15, 0.15),
    **options: Any,
) -> tuple[Path, str]:
    """Convert, validate, then write ``out/datalist.json``; returns ``(path, summary)``."""
    datalist, notes = build_datalist(fmt, src, seed=seed, split=split, **options)
    path = write_datalist(datalist, out)
    return path, format_summary(datalist, notes)
