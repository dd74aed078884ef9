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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DESCRIPTION_KEYS",
    "MODALITIES",
    "ModalityNotDescribedError",
    "PromptEntry",
    "PromptLibrary",
    "UnknownPromptError",
    "build_prompt",
    "canonical_target_name",
    "default_library",
    "normalize_modality",
    "normalize_text",
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
    ("segment the left kidney in this CT" -> ``left kidney``).
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
        if text is None or not str(text).strip():
            raise ValueError("empty prompt")
        norm = normalize_text(text)
        if norm in self._index:
            return self._entries[self._index[norm]]
        words = norm.split()
        best = None  # (n_words, is_lesion, n_chars, -position)
        best_name = None
        for n in range(min(self._max_words, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                key = " ".join(words[i : i + n])
                name = self._index.get(key)
                if name is None:
                    continue
                score = (n, self._entries[name].category == "lesion", len(key), -i)
                if best is None or score > best:
                    best, best_name = score, name
            if best is not None:
                break  # longer matches (more words) always win
        if best_name is not None:
            return self._entries[best_name]
        raise UnknownPromptError(str(text), self.suggest(str(text)))

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
) -> str:
    """The text a model gets for ``target`` on ``modality``.

    ``style="name"``: the canonical class name only (``"left kidney"``);
    ``style="description"``: name + the three descriptions of that modality
    (``"left kidney. The left kidney is ... It is ... On CT ..."``).
    ``report`` (a case's free text, or a mapping of fields such as BUS-BRA histology /
    BI-RADS) is appended when given. With ``strict=False`` an unknown target is used verbatim
    (name style, or description style without descriptions) instead of raising.
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
    parts = [name]
    if style == "description" and entry is not None:
        if modality is None:
            raise ValueError("build_prompt(style='description') needs a modality")
        parts = [name + "."] + entry.prompts(modality, fallback=fallback)
    rep = _report_text(report)
    if rep:
        if not parts[-1].endswith((".", "!", "?")):
            parts[-1] += "."
        parts.append(rep)
    return " ".join(parts)
