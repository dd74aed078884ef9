"""Losses of the monai_ext networks."""

from __future__ import annotations

from .reclmis import ConditionedContrastiveLoss, RecLMISLoss, WeightedReconstructionLoss, conditioned_similarity

__all__ = ["ConditionedContrastiveLoss", "RecLMISLoss", "WeightedReconstructionLoss", "conditioned_similarity"]
