"""
Deterministic training/validation/test splits that keep each sequence (patient, case) in one split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_FRACTIONS", "split_by_sequence"]

#: default split fractions.
DEFAULT_FRACTIONS: dict[str, float] = {"training": 0.7, "validation": 0.15, "test": 0.15}


def _group_counts(num_groups: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Groups per split: largest remainder, then every split with a positive fraction gets >= 1 if possible."""
    names = list(fractions)
    raw = np.array([fractions[k] * num_groups for k in names], dtype=np.float64)
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    for i in order[: num_groups - int(counts.sum())]:
        counts[i] += 1
    positive = [i for i, k in enumerate(names) if fractions[k] > 0]
    if num_groups >= len(positive):
        for i in positive:
            if counts[i] == 0:
                donor = int(np.argmax(counts))  # the largest split gives one group
                counts[donor] -= 1
                counts[i] += 1
    return {k: int(c) for k, c in zip(names, counts)}


def split_by_sequence(
    samples: Sequence[Mapping[str, Any]],
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    key: str = "sequence_id",
) -> dict[str, list[dict[str, Any]]]:
    """
    Split samples into named splits so that all samples of one sequence land in the same split.

    The sequences (distinct values of ``sample[key]``) are sorted, shuffled with ``numpy``'s
    ``RandomState(seed)`` and cut by ``fractions`` (counted in sequences, largest-remainder rounding; every
    split with a positive fraction gets at least one sequence when there are enough sequences). The result
    depends only on the set of sequence ids, ``fractions`` and ``seed`` (not on the sample order or
    ``PYTHONHASHSEED``); inside a split the samples keep their input order.

    Args:
        samples: datalist samples (dicts) holding ``key``.
        fractions: ``{split_name: fraction}``, non-negative, summing to 1; default
            ``{"training": 0.7, "validation": 0.15, "test": 0.15}``.
        seed: shuffling seed.
        key: the sample field naming the sequence (patient, case).

    Returns:
        ``{split_name: [sample, ...]}`` for every split name, each sample a shallow copy with
        ``sample["split"]`` set to its split.

    Raises:
        ValueError: bad fractions.
        KeyError: a sample without ``key``.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fractions:
        raise ValueError("fractions must name at least one split.")
    if any((not isinstance(v, (int, float))) or v < 0 or math.isnan(v) for v in fractions.values()):
        raise ValueError(f"fractions must be non-negative numbers, got {fractions}.")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions.values())}).")
    for i, sample in enumerate(samples):
        if key not in sample or sample[key] is None:
            raise KeyError(f"sample {i} ({sample.get('id', '?')}) has no {key!r} to split by.")
    groups = sorted({str(s[key]) for s in samples})
    order = np.random.RandomState(seed).permutation(len(groups))
    shuffled = [groups[i] for i in order]
    counts = _group_counts(len(groups), fractions)
    split_of: dict[str, str] = {}
    start = 0
    for name, count in counts.items():
        for g in shuffled[start : start + count]:
            split_of[g] = name
        start += count
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in fractions}
    for sample in samples:
        name = split_of[str(sample[key])]
        item = dict(sample)
        item["split"] = name
        out[name].append(item)
    return out
