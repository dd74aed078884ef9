"""Building blocks of the monai_ext networks."""

from __future__ import annotations

from .cross_modal import (
    ConditionedAttention,
    ConditionedReconstructionLayer,
    ConditionedReconstructor,
    CrossModalAttention,
    InterestHead,
    masked_softmax,
    sample_interest_mask,
    sinusoidal_position_encoding,
)
from .plam import PixelLevelAttention

__all__ = [
    "ConditionedAttention",
    "ConditionedReconstructionLayer",
    "ConditionedReconstructor",
    "CrossModalAttention",
    "InterestHead",
    "PixelLevelAttention",
    "masked_softmax",
    "sample_interest_mask",
    "sinusoidal_position_encoding",
]
