"""How often a prediction is empty where the target is absent: the wrong-prompt behaviour, as a MONAI metric."""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["EmptyPredictionRate"]


class EmptyPredictionRate(CumulativeIterationMetric):
    """Share of examples with an empty label whose (binarised) prediction is empty too.

    Examples whose label holds the target count as NaN and are left out of the mean, so the
    figure is about the negatives only (a prompt naming an absent target): 1.0 means every such
    example was left empty. Use it beside ``DiceMetric(ignore_empty=True)``, which scores the
    positives. As a MONAI cumulative metric it is gathered across DDP processes, and
    ``monai.handlers.IgniteMetricHandler(metric_fn=EmptyPredictionRate())`` makes it an ignite metric.

    Args:
        reduction: MONAI reduction of the per-example values (default: mean over the negatives).
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN) -> None:
        super().__init__()
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Per example ``(B, 1)``: 1 if the prediction is empty, 0 if not; NaN where the label is not empty.

        Args:
            y_pred: binarised predictions ``(B, C, ...)``.
            y: labels ``(B, C, ...)``.
        """
        if y_pred.shape[0] != y.shape[0]:
            raise ValueError(f"y_pred and y differ in batch size: {tuple(y_pred.shape)} vs {tuple(y.shape)}")
        empty_pred = ~y_pred.flatten(1).bool().any(1)
        empty_label = ~y.flatten(1).bool().any(1)
        values = empty_pred.to(torch.float32)
        values[~empty_label] = float("nan")
        return values[:, None]

    def aggregate(self, reduction: MetricReduction | str | None = None) -> Any:
        """The reduced rate (NaN when there was no negative example)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        # MONAI's mean of nothing is 0; no negative example means nothing was measured
        return torch.where(not_nans > 0, f, torch.full_like(f, float("nan")))
