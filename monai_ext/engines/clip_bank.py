"""Referring clips (T consecutive frames, one prompt, T masks) of a datalist, for sequence-model training."""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import RandAffine
from monai.utils import convert_to_tensor

from monai_ext.atomic import atomic_write
from monai_ext.data.clips import ClipSampler
from monai_ext.engines.frame_bank import (
    ForeignPromptSampler,
    PromptRegistry,
    balanced_weights,
    encode_padded,
    image_key,
    photometric_augment,
)
from monai_ext.engines.preprocessing import frame_preprocessing
from monai_ext.io import load_source
from monai_ext.prompts import TextEncoder
from monai_ext.transforms import ToSequence, target_mask

__all__ = ["ClipSource", "ReferringClipBank", "encoder_fingerprint", "sequence_augment_transform"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSource:
    """A (sequence, prompt) pair clips are drawn from; ``masks`` = -1 for a prompt whose target is absent throughout."""

    image: int
    masks: int
    prompt: int
    dataset: str
    sample_id: str
    kind: str  # "positive" (target in some frame), "absent" (sample's target in no frame), "foreign"


def encoder_fingerprint(module: torch.nn.Module) -> str:
    """Short hash of a module's weights, so cached features are recomputed when the encoder changes."""
    h = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes()[:4096])
    return h.hexdigest()[:12]


def sequence_augment_transform(arguments: Mapping[str, Any]) -> RandAffine:
    """MONAI ``RandAffine`` that moves every draw (``prob`` 1) and pads with zeros, with ``arguments``.

    Used on a whole sequence at once (frames stacked as channels), so all its frames move together.

    Raises:
        ValueError: ``arguments`` set ``prob``, ``mode`` or ``padding_mode`` (fixed here), or ``RandAffine``
            does not take them.
    """
    reserved = sorted({"prob", "mode", "padding_mode"} & set(arguments))
    if reserved:
        raise ValueError(f"copy_augment sets {reserved}; those are fixed (every copy moved, zero padding)")
    try:
        return RandAffine(prob=1.0, padding_mode="zeros", **dict(arguments))
    except TypeError as e:
        raise ValueError(f"copy_augment: {e} (arguments of monai.transforms.RandAffine expected)") from e


class ReferringClipBank:
    """Sequences of datalist samples with per-target masks, drawn as clips of ``clip_length`` frames.

    Each image (volume, video, frame folder or 2D image) is read once and turned into
    ``(T, 3, S, S)`` frames with its modality's preset. With ``feature_encoder`` (a frozen image
    encoder, e.g. ``TGSAM2.encode_image``) the frames are replaced by their features, stored as
    float16 and cached on disk under ``cache_dir`` (keyed by image, size and encoder weights),
    so training runs without the image encoder. Sources are ``positive`` (the sample's target
    in some frame; clips are drawn to contain it), ``absent`` (the target in no frame) and
    ``foreign`` (another dataset's target named on a sequence: every mask empty), as in
    :class:`monai_ext.engines.ReferringFrameBank`. With ``resample_foreign_prompts`` a foreign
    source's target is drawn again each time :meth:`batches` takes it
    (:class:`monai_ext.engines.ForeignPromptSampler`), so every sequence meets every other
    dataset's targets over training; validation clips (:meth:`get`) keep the build-time prompt.

    Cached features rule out augmenting clips as they are drawn. ``augmented_copies`` instead adds
    fixed augmented copies of every sequence, made once at build time (and their features cached
    like the originals'): each copy of a sequence is moved by one draw of
    :func:`sequence_augment_transform` with ``copy_augment`` (the same move for all its frames and
    masks, so the motion between frames is the sequence's own) after one draw of
    :func:`monai_ext.engines.photometric_augment` over the whole sequence. Every source gets a
    twin on each copy; a positive twin whose target left the frame becomes ``absent``. The draws
    follow from ``seed``, the copy number and the image, so rebuilding gives the same copies.

    Args:
        samples: datalist samples.
        spatial_size: frame size ``(S, S)`` (masks are kept at this size).
        clip_length: T frames per clip (shorter sequences repeat their last frame).
        stride: step between clip frames.
        prompt_style: ``"description"`` or ``"name"``.
        foreign_negatives: probability that a sequence also gets a foreign-target source.
        feature_encoder: ``frames (B, 3, S, S) -> features`` or None to keep frames.
        feature_tag: identifies the encoder in cache keys (e.g. :func:`encoder_fingerprint`).
        cache_dir: where features are cached (None: no disk cache).
        encode_batch_size: frames per encoder call.
        val_clips_per_source: fixed clips per source returned by :meth:`get` (validation).
        seed: seed of the negative choice and the fixed clips.
        dataset_weights: relative sampling share per dataset name (others weigh 1); None for equal shares.
        resample_foreign_prompts: draw a foreign source's prompt anew (another dataset, then one of
            its targets) each time a training batch takes it; False keeps the prompt drawn at build time.
        augmented_copies: augmented copies of every sequence added for training (0: none). Fixed
            validation clips (:meth:`get`) are drawn from the original sources only.
        copy_augment: arguments of MONAI ``RandAffine`` for the copies (``prob``, ``mode`` and
            ``padding_mode`` are fixed), e.g. ``{"rotate_range": 0.26, "scale_range": 0.15,
            "translate_range": 12}``; None moves nothing (copies differ only photometrically).
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]],
        spatial_size: Sequence[int],
        clip_length: int = 4,
        stride: int = 1,
        prompt_style: str = "description",
        foreign_negatives: float = 0.5,
        feature_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        feature_tag: str = "",
        cache_dir: str | os.PathLike | None = None,
        encode_batch_size: int = 8,
        val_clips_per_source: int = 2,
        seed: int = 0,
        dataset_weights: Mapping[str, float] | None = None,
        resample_foreign_prompts: bool = False,
        augmented_copies: int = 0,
        copy_augment: Mapping[str, Any] | None = None,
    ) -> None:
        if int(augmented_copies) < 0:
            raise ValueError(f"augmented_copies must be >= 0, got {augmented_copies}")
        copy_transform = sequence_augment_transform(copy_augment or {}) if augmented_copies else None
        self.resample_foreign_prompts = bool(resample_foreign_prompts)
        self.foreign_prompt_sampler: ForeignPromptSampler | None = None
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.dataset_weights = dict(dataset_weights) if dataset_weights else None
        self.clip_length, self.stride = int(clip_length), int(stride)
        self.prompt_style = prompt_style
        self.feature_encoder = feature_encoder
        self.feature_tag = feature_tag
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.encode_batch_size = encode_batch_size
        self.sequences: list[torch.Tensor] = []  # per image: frames uint8 (T,3,S,S) or features float16 (T,C,h,w)
        self.masks: list[torch.Tensor] = []  # per positive source: bool (T, S, S)
        self._presence_of_mask: list[np.ndarray] = []  # per positive source: frames holding the target (T,)
        self._prompt_registry = PromptRegistry(prompt_style)
        self.prompts = self._prompt_registry.texts
        self.sources: list[ClipSource] = []
        self._image_index: dict[str, int] = {}
        self._sample_of_image: list[Mapping[str, Any]] = []  # per sequence read from a datalist image: a sample that reads it
        self.text_features: tuple[torch.Tensor, torch.Tensor] | None = None
        targets_by_dataset: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for sample in samples:
            self._add_sample(sample)
            targets_by_dataset[sample["dataset"]].add((sample["target"], sample["modality"]))
        self._add_foreign(targets_by_dataset, foreign_negatives, seed)
        self.val_clips = self._fixed_clips(val_clips_per_source, seed)
        if copy_transform is not None:
            self._add_augmented_copies(int(augmented_copies), copy_transform, repr(sorted((copy_augment or {}).items())), seed)
        logger.info("clip bank: %d sequences, %d sources, %d prompts", len(self.sequences), len(self.sources), len(self.prompts))

    # -- building ---------------------------------------------------------------------------
    def _cache_file(self, key: str, modality: str) -> Path | None:
        if self.cache_dir is None or self.feature_encoder is None:
            return None
        digest = hashlib.sha1(f"{key}|{modality}|{self.spatial_size}|{self.feature_tag}".encode()).hexdigest()[:20]
        return self.cache_dir / f"{digest}.pt"

    @torch.no_grad()
    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        out = [self.feature_encoder(frames[i : i + self.encode_batch_size]).to(torch.float16).cpu()  # type: ignore[misc]
               for i in range(0, frames.shape[0], self.encode_batch_size)]
        return torch.cat(out, 0)

    def _frames(self, sample: Mapping[str, Any]) -> torch.Tensor:
        frames = frame_preprocessing(sample["modality"], self.spatial_size)(load_source(sample["image"]))
        return frames.as_tensor().clamp(0, 1)

    def _stored(self, cache_key: str, modality: str, make_frames: Callable[[], torch.Tensor]) -> torch.Tensor:
        """What the bank keeps of a sequence: uint8 frames, or (cached) features of ``make_frames()``."""
        cache = self._cache_file(cache_key, modality)
        if cache is not None and cache.is_file():
            return torch.load(cache, map_location="cpu", weights_only=True)
        frames = make_frames()
        if self.feature_encoder is None:
            return (frames * 255).round().to(torch.uint8)
        data = self._encode(frames)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda tmp: torch.save(data, tmp))
        return data

    def _image(self, sample: Mapping[str, Any]) -> int:
        key = image_key(sample["image"])
        if key in self._image_index:
            return self._image_index[key]
        data = self._stored(key, sample["modality"], lambda: self._frames(sample))
        self._image_index[key] = len(self.sequences)
        self._sample_of_image.append(sample)
        self.sequences.append(data)
        return self._image_index[key]

    def _add_augmented_copies(self, copies: int, transform: RandAffine, arguments: str, seed: int) -> None:
        """Twin every source on ``copies`` moved copies of its sequence (the n-th twin follows the n-th source)."""
        originals = list(self.sources)
        for copy in range(1, copies + 1):
            copy_of: dict[int, int] = {}
            for source in originals:
                sample = self._sample_of_image[source.image]
                key = image_key(sample["image"])
                draw = int(hashlib.sha1(f"{seed}|{copy}|{key}".encode()).hexdigest()[:8], 16)
                transform.set_random_state(draw)  # the image's own move, whatever was drawn before
                transform.randomize()
                if source.image not in copy_of:

                    def moved_frames() -> torch.Tensor:
                        frames = self._frames(sample)
                        flat = frames.reshape(1, -1, *self.spatial_size)  # one photometric draw per sequence
                        flat = photometric_augment(flat, torch.Generator().manual_seed(draw))[0]
                        moved = convert_to_tensor(transform(flat, mode="bilinear", randomize=False), track_meta=False)
                        return moved.reshape(frames.shape).clamp(0, 1)

                    copy_of[source.image] = len(self.sequences)
                    cache_key = f"{key}|copy {copy}|seed {seed}|{arguments}"
                    self.sequences.append(self._stored(cache_key, sample["modality"], moved_frames))
                masks, kind = -1, source.kind
                if source.masks >= 0:
                    moved = transform(self.masks[source.masks].float(), mode="nearest", randomize=False)
                    masks = self._add_masks(convert_to_tensor(moved, track_meta=False) > 0.5)
                    if masks < 0:
                        kind = "absent"  # moved out of the frame
                self.sources.append(ClipSource(copy_of[source.image], masks, source.prompt, source.dataset, source.sample_id, kind))

    def _add_sample(self, sample: Mapping[str, Any]) -> None:
        image = self._image(sample)
        prompt = self._prompt_registry.add(sample["target"], sample["modality"], sample.get("report"))
        if sample.get("label") is None:
            return
        label = load_source(sample["label"])
        binary = type(label)(target_mask(label[:1], sample.get("label_values")).to(torch.uint8), meta=dict(label.meta))
        masks = torch.as_tensor(ToSequence(spatial_size=self.spatial_size, mode="nearest")(binary))[:, 0] > 0
        if masks.shape[0] != self.sequences[image].shape[0]:
            raise ValueError(f"sample {sample['id']}: label has {masks.shape[0]} frames, image {self.sequences[image].shape[0]}")
        index = self._add_masks(masks)
        self.sources.append(ClipSource(image, index, prompt, sample["dataset"], sample["id"], "positive" if index >= 0 else "absent"))

    def _add_masks(self, masks: torch.Tensor) -> int:
        """Keep per-frame ``masks`` (T, S, S) bool holding the target somewhere: their index; -1 (nothing kept) if all empty."""
        presence = masks.flatten(1).any(1)
        if not presence.any():
            return -1
        self.masks.append(masks)
        self._presence_of_mask.append(presence.numpy())
        return len(self.masks) - 1

    def _add_foreign(self, targets_by_dataset: Mapping[str, set], fraction: float, seed: int) -> None:
        if fraction <= 0 or len(targets_by_dataset) < 2:
            return
        rng = random.Random(seed)
        first: dict[int, ClipSource] = {}
        for source in self.sources:
            first.setdefault(source.image, source)
        for image, source in sorted(first.items()):
            if rng.random() >= fraction:
                continue
            other = rng.choice(sorted(d for d in targets_by_dataset if d != source.dataset))
            target, modality = rng.choice(sorted(targets_by_dataset[other]))
            self.sources.append(ClipSource(image, -1, self._prompt_registry.add(target, modality, None), source.dataset, source.sample_id, "foreign"))
        if self.resample_foreign_prompts:
            self.foreign_prompt_sampler = ForeignPromptSampler(self._prompt_registry, targets_by_dataset)

    def _presence(self, source: ClipSource) -> np.ndarray | int:
        if source.masks < 0:
            return int(self.sequences[source.image].shape[0])
        return self._presence_of_mask[source.masks]

    def _fixed_clips(self, per_source: int, seed: int) -> list[tuple[int, np.ndarray]]:
        sampler = ClipSampler(self.clip_length, self.stride, seed=seed)
        return [(i, sampler(self._presence(s))) for i, s in enumerate(self.sources) for _ in range(per_source)]

    # -- use --------------------------------------------------------------------------------
    def encode_prompts(self, text_encoder: TextEncoder, batch_size: int = 64) -> None:
        """Encode every prompt once with ``text_encoder`` (frozen) and keep padded token features."""
        self.text_features = encode_padded(text_encoder, self.prompts, batch_size)

    def clip(self, source_index: int, frames: Sequence[int], prompt: int | None = None) -> dict[str, Any]:
        """Clip of source ``source_index`` at ``frames``: image (T, ...) float, label (T, 1, S, S), text, positive.

        ``prompt`` replaces the source's prompt index (used for resampled foreign prompts).
        """
        if self.text_features is None:
            raise RuntimeError("call encode_prompts(text_encoder) before reading clips")
        source = self.sources[source_index]
        prompt = source.prompt if prompt is None else prompt
        idx = torch.as_tensor(np.asarray(frames), dtype=torch.long)
        data = self.sequences[source.image][idx]
        image = data.float() / 255.0 if data.dtype == torch.uint8 else data.float()
        if source.masks < 0:
            label = torch.zeros(len(idx), 1, *self.spatial_size)
        else:
            label = self.masks[source.masks][idx][:, None].float()
        return {
            "image": image,
            "label": label,
            "text_tokens": self.text_features[0][prompt],
            "text_mask": self.text_features[1][prompt],
            "positive": bool(label.any()),
        }

    def __len__(self) -> int:
        """Number of fixed validation clips (see :meth:`get`)."""
        return len(self.val_clips)

    def get(self, index: int) -> dict[str, Any]:
        """Fixed clip ``index`` (the same clips every call: validation)."""
        source_index, frames = self.val_clips[index]
        return self.clip(source_index, frames)

    def draw_prompt(self, source_index: int, generator: torch.Generator) -> int:
        """Prompt index of source ``source_index`` for one training draw: a fresh foreign target when
        resampling (:class:`monai_ext.engines.ForeignPromptSampler`); otherwise the source's own,
        leaving ``generator`` untouched."""
        source = self.sources[source_index]
        if source.kind != "foreign" or self.foreign_prompt_sampler is None:
            return source.prompt
        drawn = self.foreign_prompt_sampler.draw(source.dataset, generator)
        return source.prompt if drawn is None else drawn

    def sampling_weights(self, positive_share: float = 0.75) -> torch.Tensor:
        """Per-source weights giving every dataset its share (``dataset_weights``) and ``positive_share`` of positives within it."""
        return balanced_weights([(s.dataset, s.kind == "positive") for s in self.sources], positive_share, self.dataset_weights)

    def batches(self, batch_size: int, num_batches: int, generator: torch.Generator, augment: bool = False) -> Iterator[dict[str, torch.Tensor]]:
        """Yield ``num_batches`` random batches of clips: image (B, T, ...), label (B, T, 1, S, S), text tokens/mask."""
        weights = self.sampling_weights()
        sampler = ClipSampler(self.clip_length, self.stride, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        for _ in range(num_batches):
            idx = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
            items = [
                self.clip(int(i), sampler(self._presence(self.sources[int(i)])), self.draw_prompt(int(i), generator))
                for i in idx
            ]
            yield {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}
