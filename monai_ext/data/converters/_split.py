"""Deterministic split of sequence ids into training / validation / test."""

from __future__ import annotations

import random
from typing import Iterable, Sequence

SPLITS = ("training", "validation", "test")

__all__ = ["SPLITS", "parse_ratios", "split_sequence_ids"]


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` -> (0.7, 0.15, 0.15), normalised to sum 1."""
    if isinstance(text, str):
        try:
            parts = [float(x) for x in text.split(",")]
        except ValueError:
            raise ValueError(f"--split {text!r}: expected three numbers like 0.7,0.15,0.15") from None
    else:
        parts = [float(x) for x in text]
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ValueError(f"split ratios {text!r}: expected three non-negative numbers with a positive sum")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def split_sequence_ids(
    sequence_ids: Iterable[str], ratios: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, str]:
    """Map every distinct sequence id to exactly one split name.

    The ids are sorted, shuffled with ``random.Random(seed)`` and cut by the ratios
    (largest-remainder rounding). Every split with a positive ratio gets at least one
    sequence when there are enough sequences (>= 3 for the default ratios); the
    sequences for the missing splits are taken from the largest split.
    """
    ratios = parse_ratios(ratios)
    ids = sorted(set(sequence_ids))
    n = len(ids)
    random.Random(seed).shuffle(ids)
    raw = [r * n for r in ratios]
    counts = [int(x) for x in raw]
    order = sorted(range(3), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):  # at least one sequence per split with a positive ratio, if possible
        if ratios[i] > 0 and counts[i] == 0:
            donor = max(range(3), key=lambda j: (counts[j], -j))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    out: dict[str, str] = {}
    start = 0
    for name, c in zip(SPLITS, counts):
        for sid in ids[start : start + c]:
            out[sid] = name
        start += c
    return out
