"""Clip sampling and dataset split helpers."""

from __future__ import annotations

from .clips import CLIP_META_KEY, ClipSampler, SampleClipD, SampleClipd, SampleClipDict
from .splits import DEFAULT_FRACTIONS, split_by_sequence

__all__ = [
    "CLIP_META_KEY",
    "ClipSampler",
    "DEFAULT_FRACTIONS",
    "SampleClipD",
    "SampleClipDict",
    "SampleClipd",
    "split_by_sequence",
]
