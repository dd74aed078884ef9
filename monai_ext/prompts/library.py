"""Prompt library: canonical target names, synonyms and per-modality descriptions.

The data lives in ``monai_ext/prompts/prompt_library.json`` (package data, built by
``tools/build_prompt_library.py``); a user can pass their own json with the same schema.
Only the standard library is imported here, so ``import monai_ext.prompts`` stays light.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DESCRIPTION_KEYS",
    "MODALITIES",
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
    "names_canonically",
    "normalize_modality",
    "normalize_text",
    "prompt_lead",
]

DESCRIPTION_KEYS = ("profile", "shape", "appearance")
MODALITIES = ("ct", "mr", "ultrasound", "endoscopy")
_MODALITY_ALIASES = {
    "ct": "ct", "cta": "ct", "computed tomography": "ct", "ct scan": "ct",
    "mr": "mr", "mri": "mr", "magnetic resonance": "mr", "magnetic resonance imaging": "mr", "cmr": "mr",
    "ultrasound": "ultrasound", "us": "ultrasound", "ultrasonography": "ultrasound", "sonography": "ultrasound",
    "echo": "ultrasound", "echocardiography": "ultrasound", "ultrasound image": "ultrasound",
    "endoscopy": "endoscopy", "colonoscopy": "endoscopy", "endoscopic": "endoscopy", "video endoscopy": "endoscopy",
}
_SIDES = ("left", "right")
_ARTICLES = frozenset({"the", "a", "an"})
# spelling variants mapped to one internal form (applied to library keys and queries alike)
_SPELLING = {
    "tumor": "tumour", "tumors": "tumours", "tumoral": "tumoural", "peritumoral": "peritumoural",
    "edema": "oedema", "edematous": "oedematous",
    "oesophagus": "esophagus", "oesophageal": "esophageal",
    "foetal": "fetal", "foetus": "fetus",
    "haemorrhage": "hemorrhage", "haemorrhagic": "hemorrhagic",
    "caecum": "cecum", "centre": "center", "grey": "gray", "colour": "color", "hypodense": "hypodense",
    "disk": "disc", "disks": "discs", "nonenhancing": "non enhancing",
    "characterize": "characterise", "ischaemic": "ischemic", "anaemia": "anemia",
}
_PUNCT = re.compile(r"[^\w\s]|_")


def normalize_text(text: str) -> str:
    """Lower case, punctuation/underscores to spaces, articles dropped, spelling unified."""
    words = _PUNCT.sub(" ", str(text).lower()).split()
    out = []
    for w in words:
        if w in _ARTICLES:
            continue
        out.extend(_SPELLING.get(w, w).split())
    return " ".join(out)


def normalize_modality(modality: str) -> str:
    """``"MRI"`` -> ``"mr"``, ``"US"`` -> ``"ultrasound"`` ...; unknown names raise ``ValueError``."""
    key = " ".join(_PUNCT.sub(" ", str(modality).lower()).split())
    if key not in _MODALITY_ALIASES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)} (or an alias)")
    return _MODALITY_ALIASES[key]


def canonical_target_name(label: str) -> str:
    """Rule R (docs/DESIGN.md section 8) for a TotalSegmentator-style label name.

    Underscores become spaces and a trailing side word moves to the front:
    ``kidney_left`` -> ``left kidney``, ``urinary_bladder`` -> ``urinary bladder``.
    """
    words = str(label).replace("_", " ").split()
    if len(words) > 1 and words[-1].lower() in _SIDES:
        words = [words[-1]] + words[:-1]
    return " ".join(words)


class UnknownPromptError(KeyError):
    """No library entry matches a prompt; the message lists close matches."""

    def __init__(self, text: str, suggestions: Sequence[str] = ()):
        self.text = text
        self.suggestions = list(suggestions)
        msg = f"unknown prompt {text!r}: no prompt-library entry matches"
        if self.suggestions:
            msg += "; close matches: " + ", ".join(repr(s) for s in self.suggestions)
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:
        return self.message


class ModalityNotDescribedError(KeyError):
    """An entry has no descriptions for the requested modality."""

    def __init__(self, name: str, modality: str, available: Sequence[str]):
        self.name, self.modality, self.available = name, modality, list(available)
        self.message = (
            f"prompt-library entry {name!r} has no descriptions for modality {modality!r} "
            f"(described: {', '.join(self.available) or 'none'}); pass fallback=True to use another modality's "
            "descriptions, or add them to your prompt-library json"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class CompoundPromptError(ValueError):
    """A prompt names two or more library targets ("the left kidney and the spleen"): one target per prompt."""

    def __init__(self, text: str, targets: Sequence[str]):
        self.text, self.targets = text, list(targets)
        named = ", ".join(self.targets[:-1]) + " and " + self.targets[-1] if len(self.targets) > 1 else "".join(self.targets)
        self.message = f"one target per prompt: {text!r} names {named}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class NegatedPromptError(ValueError):
    """A prompt negates or excludes ("not the liver", "without the spleen"): name the one target to segment."""

    def __init__(self, text: str, negation: str):
        self.text, self.negation = text, negation
        self.message = f"one target per prompt, without negation: {text!r} negates with {negation!r}; type the one target to segment"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PromptEntry:
    """One target: canonical ``name``, ``synonyms`` and ``descriptions[modality][key]``."""

    name: str
    synonyms: tuple[str, ...] = ()
    descriptions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    category: str = ""
    sources: tuple[str, ...] = ()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.descriptions)

    def describes(self, modality: str) -> bool:
        return normalize_modality(modality) in self.descriptions

    def resolve_modality(self, modality: str, fallback: bool | str = False) -> str:
        """The modality whose descriptions are used (``fallback``: True = first described one, or a name)."""
        mod = normalize_modality(modality)
        if mod in self.descriptions:
            return mod
        if fallback is False or fallback is None or not self.descriptions:
            raise ModalityNotDescribedError(self.name, mod, self.modalities)
        if fallback is True:
            return self.modalities[0]
        fb = normalize_modality(fallback)
        if fb not in self.descriptions:
            raise ModalityNotDescribedError(self.name, fb, self.modalities)
        return fb

    def prompts(self, modality: str, fallback: bool | str = False) -> list[str]:
        """The three descriptions ``[profile, shape, appearance]`` for ``modality``.

        Raises ``ModalityNotDescribedError`` if the modality is not described, unless
        ``fallback`` is True (first described modality) or names a described modality.
        """
        d = self.descriptions[self.resolve_modality(modality, fallback)]
        return [d[k] for k in DESCRIPTION_KEYS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "synonyms": list(self.synonyms),
            "category": self.category,
            "modalities": list(self.modalities),
            "descriptions": {m: dict(d) for m, d in self.descriptions.items()},
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class Grounding:
    """A typed prompt grounded in the library (:meth:`PromptLibrary.ground`).

    Attributes:
        text: the prompt as typed, whitespace collapsed.
        entry: the library target it names.
        similarity: in [0, 1], the word overlap of ``text`` with the target's closest name or
            synonym, rounded to 4 decimals (1.0: typed exactly as a name or synonym; see
            :meth:`PromptLibrary.ground`).
        matched: the library name or synonym found in the text (the library's spelling).
    """

    text: str
    entry: PromptEntry
    similarity: float
    matched: str

    @property
    def name(self) -> str:
        """The canonical target name."""
        return self.entry.name

    @property
    def canonical(self) -> bool:
        """Whether the text is the canonical name (see :func:`names_canonically`)."""
        return names_canonically(self.text, self.entry)


def names_canonically(text: str, entry: PromptEntry) -> bool:
    """Whether ``text`` is ``entry``'s canonical name up to case, punctuation, underscores, articles,
    British/American spelling and word order ("Polyp.", "the polyp", "kidney_left" for left kidney)."""
    return Counter(normalize_text(text).split()) == Counter(normalize_text(entry.name).split())


def prompt_lead(text: str, entry: PromptEntry | None) -> str:
    """The first words of the model's text for a typed prompt: the canonical name when the prompt
    :func:`names_canonically` (so a canonical name gives the text the models were trained with), else
    the prompt as typed (whitespace collapsed, a trailing ``,;:`` dropped)."""
    typed = " ".join(str(text).split()).rstrip(",;: ")
    if entry is not None and names_canonically(typed, entry):
        return entry.name
    return typed


# -- refusal rules of PromptLibrary.ground --------------------------------------------------------
_LIST_MARK = ","  # a list mark (, ; / & + |) kept as a token by _tokens
_LIST_MARKS = re.compile(r"[,;/&+|]")
_LIST_WORDS = frozenset({"and", "or", "plus", "nor", "also", "versus", "vs", "with", "including"})
_LIST_PHRASES = (("as", "well", "as"), ("together", "with"), ("along", "with"))
# words that may stand between a place word or list word and a mention ("in this patient's colon")
_FILLERS = frozenset({
    "this", "that", "these", "those", "its", "their", "his", "her", "my", "our", "your", "s",
    "patient", "patients", "whole", "entire", "both", "either", "then", "also", "segment", "outline",
})
# words after which a target names where the segmented target is, not a second target
_PLACE_WORDS = frozenset({
    "in", "of", "inside", "within", "on", "at", "near", "from", "around", "behind", "above", "below",
    "beside", "into", "along", "across", "over", "under", "between", "next", "adjacent", "to", "through",
    "throughout", "beneath", "underneath", "alongside", "surrounding", "by",
})
_NEGATION_WORDS = frozenset({
    "not", "no", "without", "except", "excluding", "exclude", "excludes", "excluded", "nor", "never",
    "neither", "none", "minus", "dont", "doesnt", "isnt", "arent", "cannot",
})
_NEGATION_PHRASES = (
    ("other", "than"), ("apart", "from"), ("rather", "than"), ("instead", "of"), ("all", "but"),
    ("everything", "but"), ("anything", "but"), ("but", "not"),
)


def _tokens(text: str) -> list[str]:
    """:func:`normalize_text`'s words, with a ``_LIST_MARK`` token where a list mark (, ; / & + |) stood."""
    out: list[str] = []
    for i, chunk in enumerate(_LIST_MARKS.split(str(text))):
        if i:
            out.append(_LIST_MARK)
        out.extend(normalize_text(chunk).split())
    return out


def _has_phrase(words: Sequence[str], phrases: Sequence[tuple[str, ...]]) -> str | None:
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if tuple(words[i : i + n]) == phrase:
                return " ".join(phrase)
    return None


def _has_list_word(gap: Sequence[str]) -> bool:
    return any(t == _LIST_MARK or t in _LIST_WORDS for t in gap) or _has_phrase(gap, _LIST_PHRASES) is not None


def _is_list_gap(gap: Sequence[str]) -> bool:
    """Whether the words between two mentions only list them ("and", ", the", "as well as")."""
    list_words = {w for p in _LIST_PHRASES for w in p} | _LIST_WORDS | _FILLERS | {_LIST_MARK}
    return bool(gap) and _has_list_word(gap) and all(t in list_words for t in gap)


def _after_place_word(tokens: Sequence[str], start: int) -> bool:
    i = start - 1
    while i >= 0 and tokens[i] in _FILLERS:
        i -= 1
    return i >= 0 and tokens[i] in _PLACE_WORDS


def _negation(tokens: Sequence[str], mentions: Sequence[tuple[int, int, str]]) -> str | None:
    """The negating word or phrase outside the mentions, or None."""
    inside = set()
    for start, end, _ in mentions:
        inside.update(range(start, end))
    words = [t for i, t in enumerate(tokens) if i not in inside]
    for i, w in enumerate(words):
        if w in _NEGATION_WORDS:
            return w
        if w == "t" and i > 0 and words[i - 1].endswith("n"):  # don't, isn't, can't, won't
            return f"{words[i - 1]}'t"
    return _has_phrase(words, _NEGATION_PHRASES)


def _word_dice(a: Sequence[str], b: Sequence[str]) -> float:
    if not a and not b:
        return 1.0
    common = sum((Counter(a) & Counter(b)).values())
    return 2.0 * common / (len(a) + len(b))


def _parse_entry(raw: Mapping[str, Any], where: str) -> PromptEntry:
    if not isinstance(raw, Mapping) or not str(raw.get("name", "")).strip():
        raise ValueError(f"{where}: every entry needs a non-empty 'name'")
    name = str(raw["name"]).strip()
    descs_raw = raw.get("descriptions") or {}
    if not isinstance(descs_raw, Mapping):
        raise ValueError(f"{where}: entry {name!r}: 'descriptions' must map modality -> {{profile, shape, appearance}}")
    descs: dict[str, dict[str, str]] = {}
    for mod, d in descs_raw.items():
        m = normalize_modality(mod)
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: entry {name!r}/{mod}: descriptions must be an object")
        missing = [k for k in DESCRIPTION_KEYS if not str(d.get(k, "")).strip()]
        if missing:
            raise ValueError(f"{where}: entry {name!r}/{mod}: missing or empty {', '.join(missing)}")
        descs[m] = {k: str(d[k]).strip() for k in DESCRIPTION_KEYS}
    listed = [normalize_modality(m) for m in raw.get("modalities", descs)]
    undescribed = [m for m in listed if m not in descs]
    if undescribed:
        raise ValueError(f"{where}: entry {name!r}: modalities {undescribed} listed without descriptions")
    synonyms = tuple(str(s).strip() for s in raw.get("synonyms", ()) if str(s).strip())
    return PromptEntry(
        name=name,
        synonyms=synonyms,
        descriptions=descs,
        category=str(raw.get("category", "")),
        sources=tuple(str(s) for s in raw.get("sources", ())),
    )


def _read_json(path: str | Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        text = resources.files("monai_ext.prompts").joinpath("prompt_library.json").read_text(encoding="utf-8")
        return json.loads(text), "monai_ext/prompts/prompt_library.json"
    p = Path(path).expanduser()
    try:
        return json.loads(p.read_text(encoding="utf-8")), str(p)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"prompt library file not found: {p}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"prompt library {p} is not valid json: {e}") from e


class PromptLibrary:
    """Look up free text to a ``PromptEntry``.

    Args:
        path: a json file with the package schema (``{"version", "source", "entries": [...]}``).
            ``None`` (default) loads the package data ``prompt_library.json``.
        include_default: with ``path``, add the user's entries to the default library
            (an entry with an existing name replaces it) instead of using them alone.

    ``lookup`` normalises case, punctuation, underscores, articles and British/American
    spellings; whole-text synonyms win, otherwise the longest synonym found inside the text
    ("segment the left kidney in this CT" -> ``left kidney``). ``ground`` is what a pipeline uses
    for a typed prompt: ``lookup``'s target, refusing negated prompts and prompts that name two
    targets, with a similarity of the typed text to the target's name (:class:`Grounding`).
    """

    def __init__(self, path: str | Path | None = None, include_default: bool = False):
        data, where = _read_json(path)
        entries = self._parse(data, where)
        if path is not None and include_default:
            base = {e.name: e for e in default_library().entries}
            base.update({e.name: e for e in entries})
            entries = list(base.values())
            where = f"default library + {where}"
        self.version = str(data.get("version", "")) if isinstance(data, Mapping) else ""
        self.source = str(data.get("source", "")) if isinstance(data, Mapping) else ""
        self.path = where
        self._entries: dict[str, PromptEntry] = {}
        self._index: dict[str, str] = {}  # normalised key -> entry name
        self._spelling: dict[str, str] = {}  # normalised key -> the library's spelling (name first, then synonyms)
        for e in entries:
            if e.name in self._entries:
                raise ValueError(f"{where}: duplicate entry name {e.name!r}")
            self._entries[e.name] = e
        for e in entries:
            for key in (e.name, *e.synonyms):
                k = normalize_text(key)
                if not k:
                    continue
                other = self._index.get(k)
                if other is not None and other != e.name:
                    raise ValueError(f"{where}: {key!r} is a synonym of both {other!r} and {e.name!r}")
                self._index[k] = e.name
                self._spelling.setdefault(k, key)
        self._max_words = max((len(k.split()) for k in self._index), default=0)

    @staticmethod
    def _parse(data: Any, where: str) -> list[PromptEntry]:
        if isinstance(data, Mapping):
            raw_entries = data.get("entries")
        else:
            raw_entries = data
        if not isinstance(raw_entries, list):
            raise ValueError(f"{where}: expected an object with an 'entries' list")
        return [_parse_entry(r, f"{where} entry {i}") for i, r in enumerate(raw_entries)]

    # -- container protocol ---------------------------------------------------------------
    @property
    def entries(self) -> list[PromptEntry]:
        return list(self._entries.values())

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries.values())

    def __contains__(self, text: object) -> bool:
        try:
            self.lookup(str(text))
        except (KeyError, ValueError):
            return False
        return True

    def __getitem__(self, text: str) -> PromptEntry:
        return self.lookup(text)

    def __repr__(self) -> str:
        return f"PromptLibrary({len(self)} entries, version={self.version!r}, path={self.path!r})"

    # -- lookup ---------------------------------------------------------------------------
    def get(self, text: str, default: Any = None) -> PromptEntry | Any:
        try:
            return self.lookup(text)
        except (KeyError, ValueError):
            return default

    def lookup(self, text: str) -> PromptEntry:
        """The entry named by ``text`` (a name, a synonym, a raw label or a sentence containing one).

        Raises ``ValueError("empty prompt")`` for empty text and ``UnknownPromptError``
        (a ``KeyError``) with close matches when nothing matches.
        """
        return self._entries[self._match(text)[0]]

    def _match(self, text: str) -> tuple[str, str]:
        """``(entry name, normalised key)`` of :meth:`lookup`'s match; the same errors."""
        if text is None or not str(text).strip():
            raise ValueError("empty prompt")
        norm = normalize_text(text)
        if norm in self._index:
            return self._index[norm], norm
        words = norm.split()
        best = None  # (n_words, is_lesion, n_chars, -position)
        best_match = None
        for n in range(min(self._max_words, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                key = " ".join(words[i : i + n])
                name = self._index.get(key)
                if name is None:
                    continue
                score = (n, self._entries[name].category == "lesion", len(key), -i)
                if best is None or score > best:
                    best, best_match = score, (name, key)
            if best is not None:
                break  # longer matches (more words) always win
        if best_match is not None:
            return best_match
        raise UnknownPromptError(str(text), self.suggest(str(text)))

    # -- grounding of a typed prompt --------------------------------------------------------
    def ground(self, text: str) -> Grounding:
        """The one target a typed prompt names, how closely it names it, or a refusal.

        The target is :meth:`lookup`'s (a name, a synonym, a raw label or a sentence containing
        one). Before that, prompts that do not name exactly one target are refused:

        * a negation or exclusion outside the target's own words ("not the liver", "no liver",
          "without the spleen", "everything except the spleen", "don't segment the liver") raises
          :class:`NegatedPromptError`;
        * two different library targets joined by a list word or mark ("and", "or", "plus",
          "nor", "with", "including", "as well as", ",", ";", "/", "&", "+") raise
          :class:`CompoundPromptError` ("the left kidney and the spleen", "liver, spleen",
          "brain tumour with oedema"). A target named after a place word ("in", "of",
          "inside", "near", ... : "the polyp in the colon"), or listed with one, is where the
          target is, not a second target. Mentions are the library's names and synonyms, longest
          first, so one target whose own name holds "and" ("portal vein and splenic vein") is one
          mention, and a text that is exactly a library name or synonym is never refused.

        ``similarity`` (in [0, 1]) is lexical: the Dice overlap of the words of the typed text
        and of the target's closest name or synonym, both normalised as :func:`normalize_text`
        does (case, punctuation, articles, spelling), word order ignored:
        ``2 |typed & key| / (|typed| + |key|)`` over word multisets, the largest over the
        entry's name and synonyms. A name or synonym typed alone scores 1.0; every extra word
        lowers it ("the dark round lesion in the breast" -> breast lesion via "lesion in
        breast": 0.75). It measures how much of the typed text is the target's name, not a
        learned semantic similarity, so it needs no model.

        Raises:
            ValueError: empty text ("empty prompt").
            NegatedPromptError, CompoundPromptError: (``ValueError``) as above.
            UnknownPromptError: (``KeyError``) nothing in the text is a library target; the message
                lists the closest targets.
        """
        if text is None or not str(text).strip():
            raise ValueError("empty prompt")
        typed = " ".join(str(text).split())
        norm = normalize_text(typed)
        if norm not in self._index:  # exactly a name or synonym: never refused
            tokens = _tokens(typed)
            negation = _negation(tokens, self._mentions(tokens))
            if negation is not None:
                raise NegatedPromptError(typed, negation)
            named = self._coordinated_targets(tokens)
            if len(named) > 1:
                raise CompoundPromptError(typed, named)
        name, key = self._match(typed)
        entry = self._entries[name]
        words = norm.split()
        keys = [k for k in (normalize_text(n) for n in (entry.name, *entry.synonyms)) if k]
        similarity = max(_word_dice(words, k.split()) for k in keys)
        return Grounding(text=typed, entry=entry, similarity=round(similarity, 4), matched=self._spelling.get(key, key))

    def _mentions(self, tokens: Sequence[str]) -> list[tuple[int, int, str]]:
        """Library names/synonyms in ``tokens`` (:func:`_tokens`): ``(first token, end token, entry name)``, in order.

        Longest first and non-overlapping (a mention may span a list mark, as lookup ignores
        punctuation: "left+heart+atrium").
        """
        where = [i for i, t in enumerate(tokens) if t != _LIST_MARK]
        words = [tokens[i] for i in where]
        found = []
        for n in range(min(self._max_words, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                name = self._index.get(" ".join(words[i : i + n]))
                if name is not None:
                    found.append((i, n, name))
        taken = [False] * len(words)
        kept = []
        for i, n, name in found:  # already longest first, then leftmost
            if not any(taken[i : i + n]):
                taken[i : i + n] = [True] * n
                kept.append((where[i], where[i + n - 1] + 1, name))
        return sorted(kept)

    def _coordinated_targets(self, tokens: Sequence[str]) -> list[str]:
        """The distinct targets named side by side in a list (empty or one: a single target)."""
        mentions = self._mentions(tokens)
        targets: list[tuple[int, int, str]] = []
        previous: tuple[int, int, str] | None = None
        previous_place = False
        for mention in mentions:
            start = mention[0]
            gap = list(tokens[previous[1] : start]) if previous is not None else []
            listed = previous is not None and _is_list_gap(gap)
            place = _after_place_word(tokens, start) or (listed and previous_place)
            if not place:
                targets.append(mention)
            previous, previous_place = mention, place
        named: list[str] = []
        for a, b in zip(targets, targets[1:]):
            if a[2] != b[2] and _has_list_word(tokens[a[1] : b[0]]):
                for name in (a[2], b[2]):
                    if name not in named:
                        named.append(name)
        return named

    def suggest(self, text: str, n: int = 5) -> list[str]:
        """Canonical names close to ``text`` (difflib on names and synonyms, then word overlap)."""
        norm = normalize_text(text)
        out: list[str] = []
        for key in difflib.get_close_matches(norm, list(self._index), n=3 * n, cutoff=0.6):
            name = self._index[key]
            if name not in out:
                out.append(name)
        words = set(norm.split())
        if words and len(out) < n:
            for name in self._entries:
                if words & set(normalize_text(name).split()) and name not in out:
                    out.append(name)
                if len(out) >= n:
                    break
        return out[:n]

    def prompts(self, text: str, modality: str, fallback: bool | str = False) -> list[str]:
        """Shortcut: ``lookup(text).prompts(modality, fallback)``."""
        return self.lookup(text).prompts(modality, fallback=fallback)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "source": self.source, "entries": [e.to_dict() for e in self]}


@functools.lru_cache(maxsize=1)
def default_library() -> PromptLibrary:
    """The package's prompt library, loaded once."""
    return PromptLibrary()


def _report_text(report: Any) -> str:
    if report is None:
        return ""
    if isinstance(report, Mapping):
        parts = [f"{k}: {v}" for k, v in report.items() if v is not None and str(v).strip()]
        text = "; ".join(parts)
    elif isinstance(report, (list, tuple)):
        text = " ".join(str(r).strip() for r in report if r is not None and str(r).strip())
    else:
        text = str(report)
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def build_prompt(
    target: str,
    modality: str | None = None,
    report: Any = None,
    style: str = "description",
    library: PromptLibrary | None = None,
    fallback: bool | str = False,
    strict: bool = True,
    typed: str | None = None,
) -> str:
    """The text a model gets for ``target`` on ``modality``.

    ``style="name"``: the canonical class name only (``"left kidney"``);
    ``style="description"``: name + the three descriptions of that modality
    (``"left kidney. The left kidney is ... It is ... On CT ..."``).
    ``report`` (a case's free text, or a mapping of fields such as BUS-BRA histology /
    BI-RADS) is appended when given. With ``strict=False`` an unknown target is used verbatim
    (name style, or description style without descriptions) instead of raising.

    ``typed``: the prompt the user typed, which then leads the text instead of the name
    (:func:`prompt_lead`): the typed text as typed ("the dark round lesion in the breast. A
    breast lesion is ..."; a synonym too: "LV. The left ventricle is ..."), except that a prompt
    that is the canonical name up to case, punctuation, articles, spelling and word order
    ("Polyp", "the polyp", "kidney_left") gives the canonical name, so the text is exactly the one
    without ``typed``. The descriptions are always ``target``'s. A sentence already ending in
    ``.``, ``!`` or ``?`` gets no second full stop.
    """
    if style not in ("description", "name"):
        raise ValueError(f"style must be 'description' or 'name', got {style!r}")
    lib = library if library is not None else default_library()
    try:
        entry: PromptEntry | None = lib.lookup(target)
    except UnknownPromptError:
        if strict:
            raise
        entry = None
    name = entry.name if entry is not None else " ".join(str(target).split())
    if typed is not None and str(typed).strip():
        name = prompt_lead(typed, entry)
    parts = [name]
    if style == "description" and entry is not None:
        if modality is None:
            raise ValueError("build_prompt(style='description') needs a modality")
        lead = name if name.endswith((".", "!", "?")) else name + "."
        parts = [lead] + entry.prompts(modality, fallback=fallback)
    rep = _report_text(report)
    if rep:
        if not parts[-1].endswith((".", "!", "?")):
            parts[-1] += "."
        parts.append(rep)
    return " ".join(parts)
