"""Sentences around a target's name: templates for training draws, and held-out paraphrases to test with.

A user types "where is the spleen?" or "show me the spleen", not "spleen". Training draws the prompt's
lead from :data:`TRAINING_TEMPLATES` filled with the target's name or a synonym (``ReferringPrompts``'
``templates`` style), so that a sentence lands where its name lands. :data:`HELD_OUT_PARAPHRASES` are
never drawn in training: ``tools/prompt_sensitivity.py --paraphrases`` scores a bundle with each of
them against the canonical name.
"""

from __future__ import annotations

from collections.abc import Sequence

from .library import PromptLibrary, default_library, normalize_modality

__all__ = ["HELD_OUT_PARAPHRASES", "TRAINING_TEMPLATES", "fill_template", "template_leads"]

#: sentence templates a training draw may put the target in: ``{x}`` its name or a synonym, ``{modality}``
#: and ``{view}`` words for the input (``CT`` / ``scan``, ``ultrasound`` / ``image``, ...)
TRAINING_TEMPLATES = (
    "segment the {x}",
    "where is the {x}?",
    "the {x} on this {modality} {view}",
    "find the {x}",
    "outline the {x}",
    "mark the {x} in the {view}",
    "{x} region",
)
#: paraphrases no training draw uses: the test of whether free text reaches the target
HELD_OUT_PARAPHRASES = (
    "show me the {x}",
    "please delineate the {x}",
    "can you highlight the {x}?",
    "I need a mask of the {x} in this {modality} {view}",
    "label the {x} for me",
)
_MODALITY_WORDS = {"ct": ("CT", "scan"), "mr": ("MRI", "scan"), "ultrasound": ("ultrasound", "image"), "endoscopy": ("endoscopy", "frame")}


def fill_template(template: str, name: str, modality: str | None = None) -> str:
    """``template`` with ``{x}`` = ``name`` and the modality's words (``image`` where the modality is unknown)."""
    word, view = _MODALITY_WORDS.get(normalize_modality(modality), ("", "image")) if modality else ("", "image")
    return " ".join(template.format(x=name, modality=word, view=view).split())


def template_leads(
    target: str, modality: str | None, templates: Sequence[str] = TRAINING_TEMPLATES, library: PromptLibrary | None = None
) -> list[str]:
    """Every template filled with the target's canonical name and each readable synonym (no ``_`` codes).

    Raises:
        UnknownPromptError: ``target`` is not in the library.
    """
    entry = (library or default_library()).lookup(target)
    names = [entry.name] + [s for s in entry.synonyms if "_" not in s and s.lower() != entry.name.lower()]
    return list(dict.fromkeys(fill_template(t, n, modality) for n in names for t in templates))
