"""Ignite handlers the bundles' MONAI engines attach besides MONAI's own (checkpoints, validation, LR schedule, stats)."""

from __future__ import annotations

from .epoch_seeding import EpochSeeding
from .gradient_clipping import GradientClipping
from .metrics_saver import SourceMetricsSaver
from .model_export import ModelExporter
from .training_log import TrainingLog
from .validation import LastEpochValidationHandler

__all__ = [
    "EpochSeeding",
    "GradientClipping",
    "LastEpochValidationHandler",
    "ModelExporter",
    "SourceMetricsSaver",
    "TrainingLog",
]
