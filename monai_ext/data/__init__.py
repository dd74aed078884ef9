"""Datalists, the referring dataset and its prompt sampling, clip sampling and dataset splits."""

from __future__ import annotations

from .clips import CLIP_META_KEY, ClipSampler, SampleClipD, SampleClipd, SampleClipDict
from .datalist import SPLITS, read_datalist
from .prompt_sampling import PROMPT_STYLES, ReferringPrompts, encode_padded
from .referring import (
    ReferringDataset,
    ReferringExample,
    ReferringSequenceLoader,
    balanced_weights,
    image_key,
    module_fingerprint,
    record_content_hash,
)
from .splits import DEFAULT_FRACTIONS, split_by_sequence

__all__ = [
    "CLIP_META_KEY",
    "ClipSampler",
    "DEFAULT_FRACTIONS",
    "PROMPT_STYLES",
    "ReferringDataset",
    "ReferringExample",
    "ReferringPrompts",
    "ReferringSequenceLoader",
    "SPLITS",
    "SampleClipD",
    "SampleClipDict",
    "SampleClipd",
    "balanced_weights",
    "encode_padded",
    "image_key",
    "module_fingerprint",
    "read_datalist",
    "record_content_hash",
    "split_by_sequence",
]
