"""Which text a referring training example is prompted with: the target's own prompts and the negatives.

A referring example pairs frames with a prompt. The prompt names either the example's own target
(present in the frames: a positive; absent from them: an *absent* negative) or a target of another
dataset (a *foreign* negative, whose mask is empty), so that "not in this image" is learnt rather
than hoped for. :class:`ReferringPrompts` holds every prompt text a dataset may use, builds the
texts from the prompt library (name, synonyms, descriptions, report), chooses the foreign targets
and encodes all texts once with the frozen text encoder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable

from monai_ext.prompts import PromptLibrary, TextEncoder, build_prompt, default_library, template_leads

__all__ = ["PROMPT_STYLES", "ReferringPrompts", "encode_padded"]

#: how a target is put into words: ``name`` (the library's canonical name), ``synonyms`` (each of its
#: synonyms), ``description`` (name + the modality's three descriptions, + the report when the case has one),
#: ``templates`` (a sentence of :data:`monai_ext.prompts.TRAINING_TEMPLATES` around the name or a synonym -
#: "where is the spleen?" - leading the descriptions and report, as a typed sentence does at inference).
PROMPT_STYLES = ("description", "name", "synonyms", "templates")


def encode_padded(text_encoder: TextEncoder, prompts: Sequence[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features ``(N, L, D)`` and masks ``(N, L)`` of ``prompts``, zero-padded to the longest.

    Raises:
        ValueError: no prompts.
    """
    if not prompts:
        raise ValueError("no prompts to encode")
    tokens, masks = [], []
    for start in range(0, len(prompts), batch_size):
        features = text_encoder.encode(list(prompts[start : start + batch_size]))
        tokens.extend(features.tokens.cpu().unbind(0))
        masks.extend(features.mask.cpu().unbind(0))
    length = max(t.shape[0] for t in tokens)
    padded = torch.zeros(len(tokens), length, tokens[0].shape[-1])
    padded_mask = torch.zeros(len(tokens), length, dtype=torch.bool)
    for i, (t, m) in enumerate(zip(tokens, masks)):
        padded[i, : t.shape[0]] = t
        padded_mask[i, : m.shape[0]] = m
    return padded, padded_mask


class ReferringPrompts(Randomizable):
    """The prompt texts of a referring dataset, indexed, and the draws that pick them.

    Each target is registered with :meth:`add_target` (dataset, target, modality, report) and gets a
    *prompt set*: the texts of ``styles`` for it (a single text with the default ``("description",)``).
    A training draw of an example takes one text of its set (:meth:`draw`); validation takes the first
    (:meth:`first`). Foreign negatives name a target of another dataset, chosen when the examples are
    built (:meth:`choose_foreign`, another dataset first and then one of its targets, so a dataset
    with many targets, e.g. 44 CT organs, does not crowd out the others); with ``resample_foreign`` a
    foreign example's target is drawn again at every training draw, so every frame meets every other
    dataset's targets over training.

    Args:
        styles: the ways of putting a target into words that draws choose among (:data:`PROMPT_STYLES`).
            A foreign target is named without its case's report.
        foreign_negatives: probability that a frame window also gets a foreign negative.
        resample_foreign: draw a foreign example's target anew at each training draw.
        seed: seed of the build-time foreign choices (:meth:`foreign_rng`).
        library: the prompt library (default: the shipped one).

    Raises:
        ValueError: an unknown style, no style, or ``foreign_negatives`` outside [0, 1].
    """

    def __init__(
        self,
        styles: Sequence[str] = ("description",),
        foreign_negatives: float = 0.5,
        resample_foreign: bool = False,
        seed: int = 0,
        library: PromptLibrary | None = None,
    ) -> None:
        styles = [styles] if isinstance(styles, str) else list(styles)
        unknown = [s for s in styles if s not in PROMPT_STYLES]
        if not styles or unknown:
            raise ValueError(f"prompt styles must be some of {PROMPT_STYLES}, got {styles}")
        if not 0.0 <= float(foreign_negatives) <= 1.0:
            raise ValueError(f"foreign_negatives must lie in [0, 1], got {foreign_negatives}")
        self.styles = styles
        self.foreign_negatives = float(foreign_negatives)
        self.resample_foreign = bool(resample_foreign)
        self.seed = int(seed)
        self.library = library or default_library()
        self.texts: list[str] = []
        self._text_index: dict[str, int] = {}
        self._sets: list[tuple[int, ...]] = []
        self._set_index: dict[tuple[int, ...], int] = {}
        # per dataset: its (target, modality) pairs, for foreign choices
        self.targets_by_dataset: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.text_features: tuple[torch.Tensor, torch.Tensor] | None = None
        self.set_random_state(seed)

    # -- building ---------------------------------------------------------------------------
    def _texts_for(self, target: str, modality: str, report: Any) -> list[str]:
        texts: list[str] = []
        for style in self.styles:
            if style == "synonyms":
                entry = self.library.get(target)
                texts.extend(entry.synonyms if entry is not None else ())
            elif style == "templates":
                if self.library.get(target) is not None:
                    texts.extend(
                        build_prompt(target, modality, report=report, library=self.library, fallback=True, typed=lead)
                        for lead in template_leads(target, modality, library=self.library)
                    )
            else:
                texts.append(build_prompt(target, modality, report=report, style=style, library=self.library, fallback=True))
        return list(dict.fromkeys(texts)) or [build_prompt(target, modality, style="name", library=self.library)]

    def _add_set(self, texts: Sequence[str]) -> int:
        indices = []
        for text in texts:
            if text not in self._text_index:
                self._text_index[text] = len(self.texts)
                self.texts.append(text)
                self.text_features = None  # a new text needs encoding
            indices.append(self._text_index[text])
        key = tuple(indices)
        if key not in self._set_index:
            self._set_index[key] = len(self._sets)
            self._sets.append(key)
        return self._set_index[key]

    def add_target(self, dataset: str, target: str, modality: str, report: Any = None) -> int:
        """Register a sample's target; return the index of its prompt set."""
        self.targets_by_dataset[dataset].add((target, modality))
        return self._add_set(self._texts_for(target, modality, report))

    def foreign_rng(self) -> np.random.RandomState:
        """The generator of the build-time foreign choices (the same choices for the same seed)."""
        return np.random.RandomState(self.seed)

    def choose_foreign(self, dataset: str, rng: np.random.RandomState) -> int | None:
        """A prompt set naming a target of another dataset than ``dataset`` (None when there is none).

        ``rng`` is :meth:`foreign_rng`'s generator at build time, or this object's ``R`` for a draw.
        """
        others = sorted(d for d in self.targets_by_dataset if d != dataset)
        if not others:
            return None
        candidates = sorted(self.targets_by_dataset[others[rng.randint(len(others))]])
        target, modality = candidates[rng.randint(len(candidates))]
        return self._add_set(self._texts_for(target, modality, None))

    def wants_foreign(self, rng: np.random.RandomState) -> bool:
        """Whether a frame window gets a foreign negative (probability ``foreign_negatives``)."""
        return len(self.targets_by_dataset) > 1 and rng.random_sample() < self.foreign_negatives

    # -- use --------------------------------------------------------------------------------
    def randomize(self, data: Any = None) -> None:
        """Nothing to pre-draw: :meth:`draw` draws per call."""

    def draw(self, prompt_set: int, dataset: str, foreign: bool) -> int:
        """The text index a training draw of an example uses (random among its set's texts)."""
        if foreign and self.resample_foreign:
            drawn = self.choose_foreign(dataset, self.R)
            prompt_set = prompt_set if drawn is None else drawn
        texts = self._sets[prompt_set]
        return texts[self.R.randint(len(texts))] if len(texts) > 1 else texts[0]

    def first(self, prompt_set: int) -> int:
        """The text index of a set's first text (fixed choice: validation)."""
        return self._sets[prompt_set][0]

    def encode(self, text_encoder: TextEncoder, batch_size: int = 64) -> None:
        """Encode every registered text once with the (frozen) ``text_encoder``; pads to the longest.

        Every text a draw may pick is registered when the examples are built, foreign resampling
        included (:meth:`register_all_foreign`), so one encoding covers all draws.
        """
        self.text_features = encode_padded(text_encoder, self.texts, batch_size)

    def register_all_foreign(self) -> None:
        """Register the prompts of every target (for ``resample_foreign``: any may be drawn later)."""
        for pairs in list(self.targets_by_dataset.values()):
            for target, modality in sorted(pairs):
                self._add_set(self._texts_for(target, modality, None))

    def features(self, text: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features ``(L, D)`` and mask ``(L,)`` of text ``text``.

        Raises:
            RuntimeError: the texts were not encoded (:meth:`encode`) since the last one was added.
        """
        if self.text_features is None:
            raise RuntimeError("prompts are not encoded: call encode(text_encoder) after adding the targets")
        return self.text_features[0][text], self.text_features[1][text]

    def describe(self) -> Mapping[str, Any]:
        """Counts for logs: texts, sets, datasets."""
        return {"texts": len(self.texts), "prompt_sets": len(self._sets), "datasets": sorted(self.targets_by_dataset)}
