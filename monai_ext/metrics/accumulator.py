"""Collect per-case metrics and write the ``metrics.json`` of a bundle's evaluate run.

Format (docs/BUNDLES.md)::

    {"dice": mean, "iou": mean, "hd95": mean, "n_cases": N,
     "per_case": [{"id", "target", "dataset", "dice", "iou", "hd95"}, ...],
     "per_dataset": {name: {"dice", "iou", "hd95", "n_cases"}, ...}}

Per case, Dice/IoU are computed over all frames of the sequence/volume together
(:func:`monai_ext.metrics.sequence_metrics`); the top-level and per-dataset figures are the
unweighted means over cases. A case with several targets (e.g. ACDC structures) is one
entry per (id, target).
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..atomic import atomic_write_json
from .segmentation import sequence_metrics

__all__ = ["MetricsAccumulator", "METRIC_KEYS"]

METRIC_KEYS = ("dice", "iou", "hd95")


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


class MetricsAccumulator:
    """Per-case Dice / IoU / HD95 collector writing the bundle ``metrics.json`` format.

    Example::

        acc = MetricsAccumulator()
        acc.add_prediction("cvc_seq01", pred, gt, target="polyp", dataset="cvc_clinicdb")
        acc.write("out/metrics.json")
    """

    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.cases)

    def reset(self) -> None:
        self.cases.clear()

    def add(
        self,
        case_id: str,
        metrics: Mapping[str, float],
        target: str | None = None,
        dataset: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Record already computed metrics (keys ``dice``, ``iou``, ``hd95``) of one case."""
        missing = [k for k in METRIC_KEYS if k not in metrics]
        if missing:
            raise KeyError(f"metrics of case {case_id!r} lack {missing}")
        entry: dict[str, Any] = {"id": str(case_id), "target": target, "dataset": dataset}
        entry.update({k: float(metrics[k]) for k in METRIC_KEYS})
        entry.update(extra)
        self.cases.append(entry)
        return entry

    def add_prediction(
        self,
        case_id: str,
        pred: np.ndarray | torch.Tensor,
        gt: np.ndarray | torch.Tensor,
        target: str | None = None,
        dataset: str | None = None,
        spacing: float | Sequence[float] | None = None,
        volume: bool | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Compute :func:`sequence_metrics` of ``pred`` vs ``gt`` ``(T, H, W)`` and record them."""
        m = sequence_metrics(pred, gt, spacing=spacing, volume=volume)
        return self.add(case_id, m, target=target, dataset=dataset, **extra)

    def aggregate(self) -> dict[str, Any]:
        """The ``metrics.json`` content: means over cases, per case list, per dataset means."""
        out: dict[str, Any] = {k: _mean([c[k] for c in self.cases]) for k in METRIC_KEYS}
        out["n_cases"] = len(self.cases)
        out["per_case"] = [dict(c) for c in self.cases]
        per_dataset: dict[str, Any] = {}
        for name in sorted({str(c["dataset"]) for c in self.cases}):
            sub = [c for c in self.cases if str(c["dataset"]) == name]
            per_dataset[name] = {k: _mean([c[k] for c in sub]) for k in METRIC_KEYS}
            per_dataset[name]["n_cases"] = len(sub)
        out["per_dataset"] = per_dataset
        return out

    def write(self, path: str | os.PathLike) -> dict[str, Any]:
        """Write :meth:`aggregate` as JSON to ``path`` (atomically: temp file + rename)."""
        result = self.aggregate()
        atomic_write_json(path, result)
        return result
