"""Sequence, intensity and frame-selection transforms (docs/DESIGN.md, section 2)."""

from __future__ import annotations

from .components import RemoveMinorComponents, RemoveMinorComponentsD, RemoveMinorComponentsd, RemoveMinorComponentsDict
from .frames import KEPT_FRAMES_META_KEY, DropEmptyFramesD, DropEmptyFramesd, DropEmptyFramesDict, frame_presence, target_mask
from .intensity import (
    CT_WINDOWS,
    INTENSITY_PRESETS,
    IntensityPreset,
    IntensityPresetD,
    IntensityPresetd,
    IntensityPresetDict,
)
from .sequence import (
    FRAME_KINDS,
    SEQUENCE_META_KEY,
    FromSequence,
    FromSequenceD,
    FromSequenced,
    FromSequenceDict,
    ToSequence,
    ToSequenceD,
    ToSequenced,
    ToSequenceDict,
    from_sequence,
    sequence_record,
)

__all__ = [
    "CT_WINDOWS",
    "DropEmptyFramesD",
    "DropEmptyFramesDict",
    "DropEmptyFramesd",
    "FRAME_KINDS",
    "FromSequence",
    "FromSequenceD",
    "FromSequenceDict",
    "FromSequenced",
    "INTENSITY_PRESETS",
    "IntensityPreset",
    "IntensityPresetD",
    "IntensityPresetDict",
    "IntensityPresetd",
    "KEPT_FRAMES_META_KEY",
    "RemoveMinorComponents",
    "RemoveMinorComponentsD",
    "RemoveMinorComponentsDict",
    "RemoveMinorComponentsd",
    "SEQUENCE_META_KEY",
    "ToSequence",
    "ToSequenceD",
    "ToSequenceDict",
    "ToSequenced",
    "frame_presence",
    "target_mask",
    "from_sequence",
    "sequence_record",
]
