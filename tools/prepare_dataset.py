#!/usr/bin/env python
"""Convert a public dataset layout into ``OUT/datalist.json`` (schema: docs/DESIGN.md section 4).

    python tools/prepare_dataset.py FORMAT --src DIR --out DIR [--seed 0] [--split 0.7,0.15,0.15]
        [--target NAME --modality MOD [--masks DIR] [--label-values 1,2]]   # generic formats

Formats and layouts: tools/README.md. Broken input exits with status 2 and a message naming
the file; nothing is written unless the whole dataset validates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from monai_ext.data.converters import CONVERTERS, REQUIRED_OPTIONS, ConversionError, prepare_dataset
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from monai_ext.data.converters import CONVERTERS, REQUIRED_OPTIONS, ConversionError, prepare_dataset


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prepare_dataset.py",
        description="Write DIR/datalist.json (absolute paths, training/validation/test split by sequence).",
    )
    p.add_argument("format", choices=sorted(CONVERTERS), metavar="FORMAT", help="one of: %(choices)s")
    p.add_argument("--src", required=True, help="dataset folder in its publisher's layout")
    p.add_argument("--out", required=True, help="output folder for datalist.json")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--split", default="0.7,0.15,0.15", help="training,validation,test ratios (default 0.7,0.15,0.15)")
    p.add_argument("--target", help="target name (nifti-pairs, frames)")
    p.add_argument("--modality", choices=("endoscopy", "ct", "mr", "ultrasound"), help="modality (nifti-pairs, frames; decathlon: overrides dataset.json)")
    p.add_argument("--masks", help="folder of mask folders parallel to --src (frames)")
    p.add_argument("--label-values", type=_int_list, help="label ids of the target, e.g. 1 or 1,2 (nifti-pairs, frames)")
    p.add_argument("--dataset", help="dataset name written to the samples (nifti-pairs, frames, decathlon: default the --src name; btcv, chaos-mr: default btcv, chaos_mr_t2)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = [o for o in REQUIRED_OPTIONS[args.format] if not getattr(args, o)]
    if missing:
        parser.error(f"{args.format} requires {' and '.join('--' + m for m in missing)}")
    options = {
        k: getattr(args, k)
        for k in ("target", "modality", "masks", "label_values", "dataset")
        if getattr(args, k) is not None
    }
    try:
        path, summary = prepare_dataset(args.format, args.src, args.out, seed=args.seed, split=args.split, **options)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing written", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad --split
        parser.error(str(exc))
    print(summary)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
