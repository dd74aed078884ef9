#!/usr/bin/env python
"""Merge several ``datalist.json`` files (from tools/prepare_dataset.py) into one, keeping each sample's split.

    python tools/merge_datalists.py --out DIR A/datalist.json B/datalist.json ...

Sample ids must be unique across the inputs (they are, per dataset, by construction);
a clash is an error naming both files. Writes ``DIR/datalist.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monai_ext.data.converters import SCHEMA_VERSION, ConversionError, validate_datalist, write_datalist
from monai_ext.data.converters._split import SPLITS


def merge_datalists(paths: list[str | Path]) -> dict:
    """Return one datalist holding every split of every input datalist."""
    merged: dict = {"schema_version": SCHEMA_VERSION, "format": "merged", "source": [str(p) for p in paths]}
    merged.update({s: [] for s in SPLITS})
    seen: dict[str, str] = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for split in SPLITS:
            for sample in data.get(split, []):
                if sample["id"] in seen:
                    raise ConversionError(f"{path}: sample id {sample['id']!r} also in {seen[sample['id']]}")
                seen[sample["id"]] = str(path)
                merged[split].append(sample)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("datalists", nargs="+")
    args = parser.parse_args(argv)
    try:
        merged = merge_datalists(args.datalists)
        validate_datalist(merged, check_files=True)
    except (ConversionError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}\nnothing written", file=sys.stderr)
        return 2
    path = write_datalist(merged, args.out)
    print(", ".join(f"{s}: {len(merged[s])}" for s in SPLITS))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
