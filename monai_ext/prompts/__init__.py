"""Prompts for text-prompted segmentation: the prompt library and the text encoder.

``PromptLibrary`` / ``build_prompt`` need only the standard library; ``TextEncoder`` (torch,
transformers) is imported lazily on first use, so ``import monai_ext.prompts`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from .library import (
    DESCRIPTION_KEYS,
    MODALITIES,
    CompoundPromptError,
    Grounding,
    ModalityNotDescribedError,
    NegatedPromptError,
    PromptEntry,
    PromptLibrary,
    UnknownPromptError,
    build_prompt,
    canonical_target_name,
    default_library,
    names_canonically,
    normalize_modality,
    normalize_text,
    prompt_lead,
)
from .paraphrase import HELD_OUT_PARAPHRASES, TRAINING_TEMPLATES, fill_template, template_leads

_LAZY = {
    "TextEncoder": "encoder",
    "TextFeatures": "encoder",
    "TextEncoderUnavailableError": "encoder",
    "default_text_model_path": "encoder",
    "unpack_text": "encoder",
    "DEFAULT_TEXT_MODEL": "encoder",
}

__all__ = [
    "DESCRIPTION_KEYS",
    "HELD_OUT_PARAPHRASES",
    "MODALITIES",
    "TRAINING_TEMPLATES",
    "CompoundPromptError",
    "Grounding",
    "ModalityNotDescribedError",
    "NegatedPromptError",
    "PromptEntry",
    "PromptLibrary",
    "UnknownPromptError",
    "build_prompt",
    "canonical_target_name",
    "default_library",
    "fill_template",
    "names_canonically",
    "normalize_modality",
    "normalize_text",
    "prompt_lead",
    "template_leads",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
