"""Segmentation metrics of mask sequences: Dice, IoU, HD95 (docs/DESIGN.md section 7).

Conventions: both empty -> Dice 1, IoU 1, HD95 0; exactly one empty -> Dice 0, IoU 0,
HD95 = the image diagonal in the spacing's units. See :mod:`monai_ext.metrics.segmentation`.
"""

from .accumulator import METRIC_KEYS, MetricsAccumulator
from .empty_prediction import EmptyPredictionRate
from .segmentation import as_binary_sequence, frame_metrics, image_diagonal, mask_metrics, prediction_metrics, sequence_metrics, source_metrics

__all__ = [
    "EmptyPredictionRate",
    "METRIC_KEYS",
    "MetricsAccumulator",
    "as_binary_sequence",
    "frame_metrics",
    "image_diagonal",
    "mask_metrics",
    "prediction_metrics",
    "sequence_metrics",
    "source_metrics",
]
