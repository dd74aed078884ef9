"""Losses of the monai_ext networks."""

from __future__ import annotations

from .sequence import MaskObjectSequenceLoss
from .reclmis import ConditionedContrastiveLoss, RecLMISLoss, WeightedReconstructionLoss, conditioned_similarity

__all__ = ["MaskObjectSequenceLoss", "ConditionedContrastiveLoss", "RecLMISLoss", "WeightedReconstructionLoss", "conditioned_similarity"]
