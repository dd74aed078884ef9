"""Dictionary transforms from a user's prompt to the text features a network takes.

A bundle's ``preprocessing`` grounds the typed prompt in the prompt library first
(:class:`LookupTargetd`, so an empty, unknown, negated or two-target prompt fails before the
input is read), builds the model's text for the input's modality from the typed prompt and the
target's descriptions (:class:`BuildPromptd`) and encodes it once per input (:class:`EncodeTextd`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_ext.prompts import PromptLibrary, TextEncoder, build_prompt, default_library

__all__ = ["BuildPromptd", "EncodeTextd", "LookupTargetd"]


class LookupTargetd(MapTransform):
    """Ground free text (``data[key]``) in the prompt library (:meth:`PromptLibrary.ground`).

    Writes the canonical target name to ``data[target_key]``, the prompt as typed (whitespace
    collapsed) to ``data[typed_key]`` and the similarity of the typed text to the target's name
    (lexical, in [0, 1]; 1.0 for a name or synonym typed alone) to ``data[similarity_key]``.

    Args:
        keys: key of the typed prompt.
        target_key: where the canonical target name goes.
        library: the prompt library (default: the shipped one).
        typed_key: where the typed prompt goes (:class:`BuildPromptd` reads it); None: not written.
        similarity_key: where the similarity goes; None: not written.
        matched_key: where the library name or synonym found in the text goes; None (default): not written.
        allow_missing_keys: don't raise when a key is missing.

    Raises:
        ValueError: empty text ("empty prompt").
        monai_ext.prompts.NegatedPromptError: (a ``ValueError``) a negation ("not the liver").
        monai_ext.prompts.CompoundPromptError: (a ``ValueError``) two targets ("the left kidney and the spleen").
        monai_ext.prompts.UnknownPromptError: text the library does not know (the message lists the nearest targets).
    """

    def __init__(
        self,
        keys: KeysCollection = "prompt",
        target_key: str = "target",
        library: PromptLibrary | None = None,
        typed_key: str | None = "typed_prompt",
        similarity_key: str | None = "target_similarity",
        matched_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.target_key = target_key
        self.library = library or default_library()
        self.typed_key, self.similarity_key, self.matched_key = typed_key, similarity_key, matched_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            grounding = self.library.ground(d[key])
            d[self.target_key] = grounding.name
            if self.typed_key is not None:
                d[self.typed_key] = grounding.text
            if self.similarity_key is not None:
                d[self.similarity_key] = grounding.similarity
            if self.matched_key is not None:
                d[self.matched_key] = grounding.matched
        return d


class BuildPromptd(MapTransform):
    """The text the model gets for a target on a modality (see :func:`monai_ext.prompts.build_prompt`).

    The typed prompt (``data[typed_key]``, written by :class:`LookupTargetd`) leads the text, then
    the target's descriptions for the modality (``style="description"``), then the report: "the
    dark round lesion in the breast. A breast lesion is ...". A prompt that is the canonical name
    up to case, punctuation, articles, spelling and word order ("Polyp", "the polyp") leads with the
    canonical name instead, so it gives the very text the models were trained and validated with
    (:func:`monai_ext.prompts.prompt_lead`). Without a typed prompt in the data the target's name leads.

    Args:
        keys: key of the target name.
        modality_key: key of the input's modality.
        report_key: key of an optional report (free text or fields) appended to the prompt.
        output_key: where the text goes.
        style: ``"description"`` (the typed prompt + the modality's descriptions) or ``"name"`` (the
            typed prompt alone, the canonical name for a canonically typed one).
        library: the prompt library (default: the shipped one).
        typed_key: key of the typed prompt; absent or None in the data: the target's name leads.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "target",
        modality_key: str = "modality",
        report_key: str = "report",
        output_key: str = "prompt_text",
        style: str = "description",
        library: PromptLibrary | None = None,
        typed_key: str | None = "typed_prompt",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modality_key, self.report_key, self.output_key = modality_key, report_key, output_key
        self.style = style
        self.library = library or default_library()
        self.typed_key = typed_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        typed = d.get(self.typed_key) if self.typed_key is not None else None
        for key in self.key_iterator(d):
            d[self.output_key] = build_prompt(
                d[key], d[self.modality_key], report=d.get(self.report_key), style=self.style, library=self.library,
                fallback=True, typed=typed,
            )
        return d


class EncodeTextd(MapTransform):
    """Encode ``data[key]`` (one text) with ``encoder``: token features ``(L, D)`` and mask ``(L,)``.

    Args:
        keys: key of the text.
        encoder: the :class:`monai_ext.prompts.TextEncoder` the network was trained with.
        tokens_key: where the token features go.
        mask_key: where the mask of real tokens goes.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        encoder: TextEncoder,
        tokens_key: str = "text_tokens",
        mask_key: str = "text_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.encoder = encoder
        self.tokens_key, self.mask_key = tokens_key, mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            features = self.encoder.encode([d[key]])
            d[self.tokens_key], d[self.mask_key] = features.tokens[0], features.mask[0]
        return d
