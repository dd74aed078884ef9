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
)
from .plam import PixelLevelAttention
from .position_encoding import sinusoidal_encoding_1d, sinusoidal_encoding_2d

__all__ = [
    "ConditionedAttention",
    "ConditionedReconstructionLayer",
    "ConditionedReconstructor",
    "CrossModalAttention",
    "InterestHead",
    "PixelLevelAttention",
    "masked_softmax",
    "sample_interest_mask",
    "sinusoidal_encoding_1d",
    "sinusoidal_encoding_2d",
]
