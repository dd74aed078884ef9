"""Referring (frame, prompt, mask) pairs of a datalist, held in memory for 2D model training."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch
from monai.transforms import RandAffined
from monai.utils import convert_to_tensor

from monai_ext.engines.preprocessing import frame_preprocessing
from monai_ext.io import load_source
from monai_ext.prompts import TextEncoder, build_prompt
from monai_ext.transforms import ToSequence, target_mask

__all__ = [
    "ForeignPromptSampler",
    "PromptRegistry",
    "ReferringPair",
    "ReferringFrameBank",
    "balanced_weights",
    "encode_padded",
    "image_key",
    "photometric_augment",
    "spatial_augment",
    "spatial_augment_transform",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferringPair:
    """One training example: frame ``frame`` with prompt ``prompt`` and mask ``mask`` (-1 = empty)."""

    frame: int
    mask: int
    prompt: int
    dataset: str
    sample_id: str
    kind: str  # "positive", "absent" (target named but not in this frame) or "foreign" (another dataset's target)


def image_key(image: Any) -> str:
    """One string per datalist image (a path, or a list of frame paths), for reading each image once."""
    return "|".join(map(str, image)) if isinstance(image, (list, tuple)) else str(image)


class PromptRegistry:
    """The distinct prompt texts of a bank, each with a stable index (``texts[i]``)."""

    def __init__(self, style: str = "description") -> None:
        self.style = style
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, target: str, modality: str, report: str | None = None) -> int:
        """Index of the prompt built for ``target`` (added when new); see :func:`monai_ext.prompts.build_prompt`."""
        text = build_prompt(target, modality, report=report, style=self.style, fallback=True)
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]


class ForeignPromptSampler:
    """Prompts of other datasets' targets, drawn anew for each training draw of a foreign negative.

    A foreign negative names a target of another dataset on a frame or sequence (its mask is
    empty). Kept fixed, it shows each frame one wrong prompt in all of training; drawn again at
    every use, each frame meets every other dataset's targets. The other dataset is drawn
    first and then one of its targets, as when the negatives are built, so a dataset with many
    targets (e.g. 44 CT organs) does not crowd out the others.

    Args:
        registry: the bank's prompt registry; every prompt that may be drawn is registered here,
            so encoding the registry's texts covers them all.
        targets_by_dataset: per dataset name, its ``(target, modality)`` pairs.
    """

    def __init__(self, registry: PromptRegistry, targets_by_dataset: Mapping[str, set]) -> None:
        # per dataset, one list of prompt indices for each other dataset
        self.prompts_by_dataset: dict[str, list[list[int]]] = {
            dataset: [
                sorted({registry.add(t, m, None) for t, m in targets_by_dataset[other]})
                for other in sorted(d for d in targets_by_dataset if d != dataset)
            ]
            for dataset in targets_by_dataset
        }

    def draw(self, dataset: str, generator: torch.Generator) -> int | None:
        """A prompt index naming another dataset's target than ``dataset``'s, or None when there is none."""
        by_dataset = self.prompts_by_dataset.get(dataset)
        if not by_dataset:
            return None
        candidates = by_dataset[int(torch.randint(len(by_dataset), (1,), generator=generator))]
        return candidates[int(torch.randint(len(candidates), (1,), generator=generator))]


class ReferringFrameBank:
    """All frames of a set of datalist samples at one size, with one binary mask per (frame, target).

    Each datalist sample (docs/DESIGN.md section 4) is read once (samples sharing an image,
    e.g. the organs of one CT, share its frames), turned into ``(T, 3, S, S)`` frames with the
    modality's intensity preset, and its label into per-frame target masks. Pairs are:

    * ``positive``: the target is in the frame;
    * ``absent``: the sample's target is named but absent from this frame (empty mask);
    * ``foreign``: a target of another dataset named on this frame (empty mask), one per frame
      with probability ``foreign_negatives``. With ``resample_foreign_prompts`` the target is
      drawn again each time :meth:`batches` draws the pair, so every frame meets every foreign
      target over training instead of the one drawn when the bank was built.

    Frames are stored as uint8 and masks as bool to keep all datasets in memory.

    Args:
        samples: datalist samples.
        spatial_size: frame size ``(S1, S2)``.
        prompt_style: ``"description"`` or ``"name"`` (see :func:`monai_ext.prompts.build_prompt`).
        foreign_negatives: fraction of frames that also get a foreign-target negative pair.
        seed: seed of the negative-pair choice.
        dataset_weights: relative sampling share per dataset name (others weigh 1); None for equal shares.
        spatial_augment: arguments of MONAI's ``RandAffined`` (e.g. ``{"prob": 0.8, "rotate_range": 0.26,
            "scale_range": 0.15, "translate_range": 12}``) applied to image and mask of each training
            pair together; None for none. Never flips: prompts name sides ("left ventricle").
        resample_foreign_prompts: draw a foreign pair's prompt anew (another dataset, then one of
            its targets) each time a training batch takes it; False keeps the prompt drawn at build time.
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]],
        spatial_size: Sequence[int],
        prompt_style: str = "description",
        foreign_negatives: float = 0.5,
        seed: int = 0,
        dataset_weights: Mapping[str, float] | None = None,
        spatial_augment: Mapping[str, Any] | None = None,
        resample_foreign_prompts: bool = False,
    ) -> None:
        self.resample_foreign_prompts = bool(resample_foreign_prompts)
        self.foreign_prompt_sampler: ForeignPromptSampler | None = None
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.prompt_style = prompt_style
        self.dataset_weights = dict(dataset_weights) if dataset_weights else None
        self.spatial_transform = spatial_augment_transform(spatial_augment) if spatial_augment else None
        self.frames: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self._prompt_registry = PromptRegistry(prompt_style)
        self.prompts = self._prompt_registry.texts
        self.pairs: list[ReferringPair] = []
        self._frames_of_image: dict[str, tuple[int, int]] = {}
        self.text_features: tuple[torch.Tensor, torch.Tensor] | None = None
        targets_by_dataset: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for sample in samples:
            self._add_sample(sample)
            targets_by_dataset[sample["dataset"]].add((sample["target"], sample["modality"]))
        self._add_foreign_negatives(targets_by_dataset, foreign_negatives, seed)
        logger.info("frame bank: %d frames, %d pairs, %d prompts", len(self.frames), len(self.pairs), len(self.prompts))

    # -- building ---------------------------------------------------------------------------
    def _image_frames(self, sample: Mapping[str, Any]) -> tuple[int, int]:
        """Index of the sample image's first frame in :attr:`frames` and its frame count (read once per image)."""
        key = image_key(sample["image"])
        if key not in self._frames_of_image:
            preprocess = frame_preprocessing(sample["modality"], self.spatial_size)
            frames = preprocess(load_source(sample["image"]))
            first = len(self.frames)
            self.frames.extend((frames.as_tensor().clamp(0, 1) * 255).round().to(torch.uint8).unbind(0))
            self._frames_of_image[key] = (first, frames.shape[0])
        return self._frames_of_image[key]

    def _add_sample(self, sample: Mapping[str, Any]) -> None:
        first, count = self._image_frames(sample)
        prompt = self._prompt_registry.add(sample["target"], sample["modality"], sample.get("report"))
        if sample.get("label") is None:
            return
        label = load_source(sample["label"])
        binary = target_mask(label[:1], sample.get("label_values")).to(torch.uint8)
        binary = type(label)(binary, meta=dict(label.meta))
        label_seq = ToSequence(spatial_size=self.spatial_size, mode="nearest")(binary)
        label_seq = torch.as_tensor(label_seq)[:, 0] > 0
        if label_seq.shape[0] != count:
            raise ValueError(f"sample {sample['id']}: label has {label_seq.shape[0]} frames, image {count}")
        for t in range(count):
            if label_seq[t].any():
                self.masks.append(label_seq[t].clone())
                self.pairs.append(ReferringPair(first + t, len(self.masks) - 1, prompt, sample["dataset"], sample["id"], "positive"))
            else:
                self.pairs.append(ReferringPair(first + t, -1, prompt, sample["dataset"], sample["id"], "absent"))

    def _add_foreign_negatives(self, targets_by_dataset: Mapping[str, set], fraction: float, seed: int) -> None:
        if fraction <= 0 or len(targets_by_dataset) < 2:
            return
        rng = random.Random(seed)
        frame_dataset: dict[int, tuple[str, str]] = {}
        for pair in self.pairs:
            frame_dataset.setdefault(pair.frame, (pair.dataset, pair.sample_id))
        for frame, (dataset, sample_id) in sorted(frame_dataset.items()):
            if rng.random() >= fraction:
                continue
            other = rng.choice(sorted(d for d in targets_by_dataset if d != dataset))
            target, modality = rng.choice(sorted(targets_by_dataset[other]))
            self.pairs.append(ReferringPair(frame, -1, self._prompt_registry.add(target, modality, None), dataset, sample_id, "foreign"))
        if self.resample_foreign_prompts:
            self.foreign_prompt_sampler = ForeignPromptSampler(self._prompt_registry, targets_by_dataset)

    # -- use --------------------------------------------------------------------------------
    def encode_prompts(self, text_encoder: TextEncoder, batch_size: int = 64) -> None:
        """Encode every prompt once with ``text_encoder`` (frozen) and keep padded token features."""
        self.text_features = encode_padded(text_encoder, self.prompts, batch_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, index: int, prompt: int | None = None) -> dict[str, Any]:
        """Return pair ``index`` as tensors: image (3,S,S) float, label (1,S,S) float, text tokens, mask.

        ``prompt`` replaces the pair's prompt index (used for resampled foreign prompts).
        """
        if self.text_features is None:
            raise RuntimeError("call encode_prompts(text_encoder) before reading pairs")
        pair = self.pairs[index]
        prompt = pair.prompt if prompt is None else prompt
        image = self.frames[pair.frame].float() / 255.0
        label = torch.zeros(1, *self.spatial_size) if pair.mask < 0 else self.masks[pair.mask][None].float()
        return {
            "image": image,
            "label": label,
            "text_tokens": self.text_features[0][prompt],
            "text_mask": self.text_features[1][prompt],
            "positive": pair.kind == "positive",
        }

    def draw_prompt(self, index: int, generator: torch.Generator) -> int:
        """Prompt index of pair ``index`` for one training draw: a fresh foreign target when resampling
        (:class:`ForeignPromptSampler`); otherwise the pair's own, leaving ``generator`` untouched."""
        pair = self.pairs[index]
        if pair.kind != "foreign" or self.foreign_prompt_sampler is None:
            return pair.prompt
        drawn = self.foreign_prompt_sampler.draw(pair.dataset, generator)
        return pair.prompt if drawn is None else drawn

    def sampling_weights(self, positive_share: float = 0.75) -> torch.Tensor:
        """Per-pair weights giving every dataset its share (``dataset_weights``) and ``positive_share`` of positives within it."""
        return balanced_weights([(p.dataset, p.kind == "positive") for p in self.pairs], positive_share, self.dataset_weights)

    def batches(
        self, batch_size: int, num_batches: int, generator: torch.Generator, augment: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yield ``num_batches`` weighted random batches (with replacement)."""
        weights = self.sampling_weights()
        for _ in range(num_batches):
            idx = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
            items = [self.get(int(i), self.draw_prompt(int(i), generator)) for i in idx]
            batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}
            if augment:
                if self.spatial_transform is not None:
                    batch["image"], batch["label"] = spatial_augment(self.spatial_transform, batch["image"], batch["label"], generator)
                batch["image"] = photometric_augment(batch["image"], generator)
            yield batch


def encode_padded(text_encoder: TextEncoder, prompts: Sequence[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features ``(N, L, D)`` and masks ``(N, L)`` of ``prompts``, zero-padded to the longest."""
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


def balanced_weights(
    groups_of_items: Sequence[tuple[str, bool]],
    positive_share: float = 0.75,
    dataset_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Sampling weights giving every dataset its share and ``positive_share`` of positives within it.

    Args:
        groups_of_items: ``(dataset, is_positive)`` of each item.
        positive_share: share of positives within a dataset that has both kinds.
        dataset_weights: relative share of each dataset (unnamed datasets weigh 1); None gives
            every dataset the same share.

    Returns:
        float64 weights summing to 1.

    Raises:
        ValueError: a dataset weight is negative, names a dataset not present, or all are zero.
    """
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for i, key in enumerate(groups_of_items):
        groups[key].append(i)
    datasets = sorted({d for d, _ in groups})
    dataset_weights = dict(dataset_weights or {})
    unknown = sorted(set(dataset_weights) - set(datasets))
    if unknown:
        raise ValueError(f"dataset_weights names datasets not in the bank: {unknown} (bank has {datasets})")
    if any(float(w) < 0 for w in dataset_weights.values()):
        raise ValueError(f"dataset_weights must be >= 0, got {dataset_weights}")
    relative = {d: float(dataset_weights.get(d, 1.0)) for d in datasets}
    total = sum(relative.values())
    if total <= 0:
        raise ValueError(f"dataset_weights leave no dataset to sample: {dataset_weights}")
    weights = torch.zeros(len(groups_of_items), dtype=torch.float64)
    for (dataset, positive), members in groups.items():
        has_both = (dataset, not positive) in groups
        share = (positive_share if positive else 1 - positive_share) if has_both else 1.0
        weights[members] = share * relative[dataset] / total / len(members)
    return weights


def spatial_augment_transform(arguments: Mapping[str, Any]) -> RandAffined:
    """MONAI ``RandAffined`` over ``image`` (bilinear) and ``label`` (nearest) with ``arguments``.

    Raises:
        ValueError: ``arguments`` set ``keys`` or ``mode`` (fixed here), or ``RandAffined`` does not take them.
    """
    reserved = sorted({"keys", "mode"} & set(arguments))
    if reserved:
        raise ValueError(f"spatial_augment sets {reserved}; those are fixed (image bilinear, label nearest)")
    try:
        return RandAffined(keys=("image", "label"), mode=("bilinear", "nearest"), padding_mode="zeros", **dict(arguments))
    except TypeError as e:
        raise ValueError(f"spatial_augment: {e} (arguments of monai.transforms.RandAffined expected)") from e


def spatial_augment(
    transform: RandAffined, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to each (image, label) pair with one random draw per pair, seeded from ``generator``.

    Args:
        transform: from :func:`spatial_augment_transform`.
        images: ``(B, C, H, W)``; labels: ``(B, 1, H, W)``.

    Returns:
        the moved images and labels, same shapes, plain tensors.
    """
    transform.set_random_state(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    moved = [transform({"image": image, "label": label}) for image, label in zip(images, labels)]
    return (
        torch.stack([convert_to_tensor(m["image"], track_meta=False) for m in moved]),
        torch.stack([convert_to_tensor(m["label"], track_meta=False) for m in moved]),
    )


def photometric_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random contrast, brightness and gamma per image (geometry is :func:`spatial_augment`'s, which never flips).

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
    """
    b = images.shape[0]
    rand = lambda lo, hi: lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=generator)  # noqa: E731
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    out = (images - mean) * rand(0.75, 1.25) + mean + rand(-0.08, 0.08)
    out = out.clamp(0, 1) ** rand(0.8, 1.25)
    return out.clamp(0, 1)
