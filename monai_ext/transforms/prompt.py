"""Dictionary transforms from a user's prompt to the text features a network takes.

A bundle's ``preprocessing`` resolves the typed prompt to a prompt-library target first
(:class:`LookupTargetd`, so an empty or unknown prompt fails before the input is read), builds
the model's text for the input's modality (:class:`BuildPromptd`) and encodes it once per input
(:class:`EncodeTextd`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_ext.prompts import PromptLibrary, TextEncoder, build_prompt, default_library

__all__ = ["BuildPromptd", "EncodeTextd", "LookupTargetd"]


class LookupTargetd(MapTransform):
    """Resolve free text (``data[key]``) to the prompt library's target name, written to ``data[target_key]``.

    Args:
        keys: key of the typed prompt.
        target_key: where the canonical target name goes.
        library: the prompt library (default: the shipped one).
        allow_missing_keys: don't raise when a key is missing.

    Raises:
        monai_ext.prompts.UnknownPromptError: empty text, or text the library does not know (the
            message lists the nearest targets).
    """

    def __init__(
        self, keys: KeysCollection = "prompt", target_key: str = "target", library: PromptLibrary | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.target_key = target_key
        self.library = library or default_library()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.target_key] = self.library.lookup(d[key]).name
        return d


class BuildPromptd(MapTransform):
    """The text the model gets for a target on a modality (see :func:`monai_ext.prompts.build_prompt`).

    Args:
        keys: key of the target name.
        modality_key: key of the input's modality.
        report_key: key of an optional report (free text or fields) appended to the prompt.
        output_key: where the text goes.
        style: ``"description"`` (name + the modality's descriptions) or ``"name"``.
        library: the prompt library (default: the shipped one).
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
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modality_key, self.report_key, self.output_key = modality_key, report_key, output_key
        self.style = style
        self.library = library or default_library()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = build_prompt(
                d[key], d[self.modality_key], report=d.get(self.report_key), style=self.style, library=self.library, fallback=True
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
