"""Read the datalists ``tools/prepare_dataset.py`` writes (docs/DESIGN.md section 4)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SPLITS", "read_datalist"]

SPLITS = ("training", "validation", "test")


def read_datalist(
    path: str | os.PathLike | None, split: str | Sequence[str] | None = None, labelled: bool = False
) -> list[dict[str, Any]]:
    """Samples of a ``tools/prepare_dataset.py`` datalist, of ``split`` (None: all splits).

    Args:
        path: the ``datalist.json``.
        split: one split name, several, or None for all (in the order of :data:`SPLITS`).
        labelled: keep only samples with a ``label`` (what evaluation scores).

    Raises:
        FileNotFoundError / ValueError: missing file, no path, or an unknown split name.
    """
    if path is None:
        raise ValueError("no datalist given: pass --datalist FILE (written by tools/prepare_dataset.py)")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist not found: {path} (make one with tools/prepare_dataset.py)")
    with open(path) as f:
        data = json.load(f)
    splits = SPLITS if split is None else ([split] if isinstance(split, str) else list(split))
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {SPLITS}")
    samples = [sample for s in splits for sample in data.get(s, [])]
    return [s for s in samples if s.get("label") is not None] if labelled else samples
