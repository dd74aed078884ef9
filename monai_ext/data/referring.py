"""One referring dataset for every model: windows of ``clip_length`` frames, each with a prompt and its masks.

A datalist sample (docs/DESIGN.md section 4) names one target in one image (volume, video, frame
folder, 2D image). :class:`ReferringDataset` reads each image once, turns it into frames at the
network's size (or into frozen-encoder features, cached on disk by content), and cuts every
(sequence, prompt) pair into windows of ``clip_length`` frames: a frame model takes windows of
one frame, a sequence model clips of ``T``. Each window is an example:

* ``positive``: the prompt's target is in some frame of the window;
* ``absent``: the sample's own target, in no frame of the window (empty masks);
* ``foreign``: a target of another dataset named on the window (empty masks), added per window
  with probability ``foreign_negatives`` (see :mod:`monai_ext.data.prompt_sampling`).

Examples are drawn with :meth:`ReferringDataset.sampling_weights` (each dataset its share, 75 %
positives within it) by a ``torch.utils.data.WeightedRandomSampler`` (or MONAI's
``DistributedWeightedRandomSampler`` under DDP); the augmentation is the ``transform`` given
(MONAI random transforms, as a bundle's ``train.json`` lists them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import Dataset, PersistentDataset
from monai.transforms import Randomizable, Transform, apply_transform
from monai.utils import convert_to_tensor

from monai_ext.data.prompt_sampling import ReferringPrompts
from monai_ext.io import load_source
from monai_ext.prompts import TextEncoder
from monai_ext.transforms import ToSequence, frame_preprocessing, target_mask

__all__ = [
    "ReferringDataset",
    "ReferringExample",
    "ReferringSequenceLoader",
    "balanced_weights",
    "image_key",
    "module_fingerprint",
    "record_content_hash",
]

logger = logging.getLogger(__name__)

KINDS = ("positive", "absent", "foreign")


@dataclass(frozen=True)
class ReferringExample:
    """One window: frames ``start, start + stride, ...`` of sequence ``sequence`` with prompt set ``prompt_set``.

    ``masks`` indexes the dataset's per-sample masks (-1: every mask empty).
    """

    sequence: int
    start: int
    masks: int
    prompt_set: int
    dataset: str
    sample_id: str
    kind: str  # one of KINDS


def image_key(image: Any) -> str:
    """One string per datalist image (a path, or a list of frame paths), for reading each image once."""
    return "|".join(map(str, image)) if isinstance(image, (list, tuple)) else str(image)


def module_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 of a module's whole state (names, dtypes, shapes and every byte), for cache keys."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _file_paths(value: Any) -> list[Path]:
    """Files behind a datalist image or label: a file, a list of files, or a folder's files."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [Path(v) for v in value]
    path = Path(value)
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def record_content_hash(record: Mapping[str, Any]) -> bytes:
    """Cache key of a sequence record: SHA-256 of its settings and of every byte of its image and label files.

    Used as :class:`monai.data.PersistentDataset`'s ``hash_func``: a changed file, size, modality,
    encoder (``feature_tag``, a :func:`module_fingerprint`) or augmented copy gives another key.
    """
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode())
    for path in _file_paths(record["image"]) + [p for spec in record["labels"] for p in _file_paths(spec["label"])]:
        digest.update(str(path.name).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest().encode()


class ReferringSequenceLoader(Transform):
    """Read a sequence record into model frames (or frozen-encoder features) and per-sample masks.

    A record is ``{"image", "modality", "labels": [{"label", "label_values"}, ...], "copy", "copy_seed"}``
    (one per datalist image; ``copy`` > 0 for an augmented copy). The output is ``{"frames": (T, C, h, w),
    "masks": (K, T, S, S) bool}``: frames as uint8 in [0, 255] at ``spatial_size`` (the modality's
    intensity preset, :func:`monai_ext.engines.frame_preprocessing`), or the ``feature_encoder``'s
    features as float16. Deterministic (an augmented copy is moved by ``copy_transform`` seeded with
    the record's ``copy_seed``), so :class:`monai.data.PersistentDataset` can cache its output.

    Args:
        spatial_size: frame size ``(S, S)``.
        copy_transform: MONAI random dictionary transform over ``image`` (frames stacked as channels,
            ``(T * 3, S, S)``) and ``label`` (masks stacked, ``(K * T, S, S)``), so one draw moves all
            frames and masks of a copy together; None: records with ``copy`` > 0 are refused.
        feature_encoder: ``frames (B, 3, S, S) -> features`` (a frozen image encoder), or None.
        encode_batch_size: frames per encoder call.
    """

    def __init__(
        self,
        spatial_size: Sequence[int],
        copy_transform: Callable | None = None,
        feature_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        encode_batch_size: int = 8,
    ) -> None:
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.copy_transform = copy_transform
        self.feature_encoder = feature_encoder
        self.encode_batch_size = int(encode_batch_size)

    def _masks(self, record: Mapping[str, Any], num_frames: int) -> torch.Tensor:
        labels: dict[str, Any] = {}
        to_frames = ToSequence(spatial_size=self.spatial_size, mode="nearest")
        masks = []
        for spec in record["labels"]:
            key = image_key(spec["label"])
            if key not in labels:
                labels[key] = load_source(spec["label"])
            label = labels[key]
            binary = type(label)(target_mask(label[:1], spec.get("label_values")).to(torch.uint8), meta=dict(label.meta))
            frames = convert_to_tensor(to_frames(binary), track_meta=False)[:, 0] > 0
            if frames.shape[0] != num_frames:
                raise ValueError(f"sample {spec.get('id')}: label has {frames.shape[0]} frames, image {num_frames}")
            masks.append(frames)
        return torch.stack(masks) if masks else torch.zeros((0, num_frames, *self.spatial_size), dtype=torch.bool)

    def _moved(self, record: Mapping[str, Any], frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.copy_transform is None:
            raise ValueError("a record with copy > 0 needs copy_transform")
        if isinstance(self.copy_transform, Randomizable):
            self.copy_transform.set_random_state(int(record["copy_seed"]))  # the copy's own draw
        moved = self.copy_transform(
            {"image": frames.reshape(-1, *self.spatial_size), "label": masks.reshape(-1, *self.spatial_size).float()}
        )
        image = convert_to_tensor(moved["image"], track_meta=False).reshape(frames.shape).clamp(0, 1)
        label = convert_to_tensor(moved["label"], track_meta=False).reshape(masks.shape) > 0.5
        return image, label

    @torch.no_grad()
    def __call__(self, record: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        frames = frame_preprocessing(record["modality"], self.spatial_size)(load_source(record["image"]))
        frames = frames.as_tensor().clamp(0, 1)
        masks = self._masks(record, frames.shape[0])
        if int(record.get("copy", 0)) > 0:
            frames, masks = self._moved(record, frames, masks)
        if self.feature_encoder is None:
            return {"frames": (frames * 255).round().to(torch.uint8), "masks": masks}
        features = [
            self.feature_encoder(frames[i : i + self.encode_batch_size]).to(torch.float16).cpu()
            for i in range(0, frames.shape[0], self.encode_batch_size)
        ]
        return {"frames": torch.cat(features, 0), "masks": masks}


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
        raise ValueError(f"dataset_weights names datasets not in the data: {unknown} (it has {datasets})")
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


class ReferringDataset(Dataset, Randomizable):
    """Referring examples (windows of frames, a prompt, their masks) of datalist samples, for training and validation.

    Every image is read once (samples naming several targets of one image share its frames) with
    :class:`ReferringSequenceLoader`, through :class:`monai.data.PersistentDataset` when
    ``cache_dir`` is given (keyed by :func:`record_content_hash`), so frozen-encoder features are
    computed once across runs. ``augmented_copies`` adds fixed augmented copies of every sequence
    (moved once by ``copy_transform``, the same move for all frames and masks of a copy, features
    cached like the originals'), which is how training from cached features gets spatial
    augmentation; a positive window whose target left the frame becomes ``absent``.

    An example reads as ``{"image": (T, C, h, w) float, "label": (T, 1, S, S) float, "text_tokens": (L, D),
    "text_mask": (L,), "positive": bool, "dataset": str, "id": str}`` before ``transform``.
    Training draws pick the prompt with :meth:`ReferringPrompts.draw` (random among a target's
    texts; a resampled foreign target); with ``fixed_prompts`` (validation) every read is the same.

    Args:
        samples: datalist samples (``image``, ``label``, ``label_values``, ``target``, ``modality``,
            ``dataset``, ``id``, optional ``report``); samples without a label are skipped.
        spatial_size: frame size ``(S, S)`` (masks are kept at this size).
        text_encoder: encodes every prompt text once (frozen).
        clip_length: T frames per example (1: a frame model's examples).
        clip_stride: step between the frames of a window.
        prompts: the prompt texts and draws (default: description style, foreign negatives on half
            of the windows, seed 0).
        dataset_weights: relative sampling share per dataset name (others weigh 1).
        positive_share: share of positive examples within each dataset's draws.
        transform: applied to each example read (augmentation, squeezing a frame model's T = 1).
        fixed_prompts: read every example with its set's first text (validation).
        max_examples: keep at most this many examples, evenly spaced and fixed (validation); None for all.
        feature_encoder: frozen image encoder whose features replace the frames, e.g.
            ``TGSAM2.encode_frozen``; None keeps frames.
        feature_tag: identifies the encoder's weights in cache keys (a :func:`module_fingerprint`).
        cache_dir: where sequence records are cached (None: computed in memory each build).
        augmented_copies: augmented copies of every training sequence (0: none).
        copy_transform: the MONAI random dictionary transform that moves a copy (see
            :class:`ReferringSequenceLoader`); needed when ``augmented_copies`` > 0.
        seed: seed of the copies' draws (with the copy number and the image).

    Raises:
        ValueError: no labelled sample, ``clip_length`` / ``clip_stride`` < 1, ``augmented_copies``
            < 0 or copies without ``copy_transform``.
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]],
        spatial_size: Sequence[int],
        text_encoder: TextEncoder,
        clip_length: int = 1,
        clip_stride: int = 1,
        prompts: ReferringPrompts | None = None,
        dataset_weights: Mapping[str, float] | None = None,
        positive_share: float = 0.75,
        transform: Callable | None = None,
        fixed_prompts: bool = False,
        max_examples: int | None = None,
        feature_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        feature_tag: str = "",
        cache_dir: str | os.PathLike | None = None,
        augmented_copies: int = 0,
        copy_transform: Callable | None = None,
        seed: int = 0,
    ) -> None:
        if int(clip_length) < 1 or int(clip_stride) < 1:
            raise ValueError(f"clip_length and clip_stride must be >= 1, got {clip_length}, {clip_stride}")
        if int(augmented_copies) < 0:
            raise ValueError(f"augmented_copies must be >= 0, got {augmented_copies}")
        if int(augmented_copies) and copy_transform is None:
            raise ValueError("augmented_copies needs a copy_transform (the MONAI random transform that moves a copy)")
        labelled = [s for s in samples if s.get("label") is not None]
        if not labelled:
            raise ValueError("no labelled samples: a referring dataset needs samples with a 'label' (an empty split?)")
        super().__init__(data=[], transform=transform)
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.clip_length, self.clip_stride = int(clip_length), int(clip_stride)
        self.prompts = prompts if prompts is not None else ReferringPrompts()
        self.dataset_weights = dict(dataset_weights) if dataset_weights else None
        self.positive_share = float(positive_share)
        self.fixed_prompts = bool(fixed_prompts)
        self.sequences: list[torch.Tensor] = []  # per record: uint8 frames (T, 3, S, S) or float16 features (T, C, h, w)
        self.masks: list[torch.Tensor] = []  # per (record, labelled sample) with the target somewhere: bool (T, S, S)
        records = self._records(labelled, int(augmented_copies), seed, feature_tag)
        sample_masks: dict[int, list[int]] = {}  # per record: the index in self.masks of each of its samples' masks
        loader = ReferringSequenceLoader(self.spatial_size, copy_transform, feature_encoder)
        store = PersistentDataset(records, loader, cache_dir, hash_func=record_content_hash) if cache_dir else Dataset(records, loader)
        for i in range(len(store)):
            try:
                loaded = store[i]
            except RuntimeError as e:  # MONAI wraps a transform's error: give the reader the one that names the problem
                if isinstance(e.__cause__, (ValueError, OSError)):
                    raise e.__cause__ from None
                raise
            self.sequences.append(loaded["frames"])
            sample_masks[i] = [self._add_masks(m) for m in loaded["masks"]]
            if (i + 1) % 50 == 0:
                logger.info("referring dataset: %d/%d sequences read", i + 1, len(store))
        self.data = self._examples(labelled, records, sample_masks, max_examples)
        self.prompts.encode(text_encoder)
        self.set_random_state(seed)
        counts = {k: sum(e.kind == k for e in self.data) for k in KINDS}
        logger.info("referring dataset: %d sequences, %d examples %s, %s", len(self.sequences), len(self.data), counts, dict(self.prompts.describe()))

    # -- building ---------------------------------------------------------------------------
    def _records(self, samples: Sequence[Mapping[str, Any]], copies: int, seed: int, feature_tag: str) -> list[dict[str, Any]]:
        """One record per image and copy, listing the image's samples in order (their masks come in that order)."""
        by_image: dict[str, list[Mapping[str, Any]]] = {}
        for sample in samples:
            by_image.setdefault(image_key(sample["image"]), []).append(sample)
        records = []
        for copy in range(copies + 1):
            for key, group in by_image.items():
                records.append(
                    {
                        "image": group[0]["image"],
                        "modality": group[0]["modality"],
                        "labels": [{"label": s["label"], "label_values": s.get("label_values"), "id": s["id"]} for s in group],
                        "spatial_size": list(self.spatial_size),
                        "feature_tag": feature_tag,
                        "copy": copy,
                        "copy_seed": int(hashlib.sha1(f"{seed}|{copy}|{key}".encode()).hexdigest()[:8], 16) if copy else 0,
                    }
                )
        return records

    def _add_masks(self, masks: torch.Tensor) -> int:
        """Keep masks ``(T, S, S)`` holding the target somewhere: their index; -1 (nothing kept) if all empty."""
        if not bool(masks.any()):
            return -1
        self.masks.append(masks.clone())
        return len(self.masks) - 1

    def _window(self, start: int, length: int) -> np.ndarray:
        return np.minimum(start + np.arange(self.clip_length) * self.clip_stride, length - 1)

    def _starts(self, length: int) -> range:
        """Window starts of a sequence of ``length`` frames: those whose window fits (one padded window if none)."""
        return range(max(length - (self.clip_length - 1) * self.clip_stride, 1))

    def _examples(
        self,
        samples: Sequence[Mapping[str, Any]],
        records: Sequence[Mapping[str, Any]],
        sample_masks: Mapping[int, list[int]],
        max_examples: int | None,
    ) -> list[ReferringExample]:
        by_id = {s["id"]: s for s in samples}
        examples: list[ReferringExample] = []
        first_sample: dict[int, Mapping[str, Any]] = {}
        for index, record in enumerate(records):
            length = int(self.sequences[index].shape[0])
            for spec, masks in zip(record["labels"], sample_masks[index]):
                sample = by_id[spec["id"]]
                first_sample.setdefault(index, sample)
                prompt_set = self.prompts.add_target(sample["dataset"], sample["target"], sample["modality"], sample.get("report"))
                for start in self._starts(length):
                    present = masks >= 0 and bool(self.masks[masks][self._window(start, length)].any())
                    kind = "positive" if present else "absent"
                    examples.append(ReferringExample(index, start, masks, prompt_set, sample["dataset"], sample["id"], kind))
        rng = self.prompts.foreign_rng()
        for index, sample in first_sample.items():
            for start in self._starts(int(self.sequences[index].shape[0])):
                if self.prompts.wants_foreign(rng):
                    foreign = self.prompts.choose_foreign(sample["dataset"], rng)
                    examples.append(ReferringExample(index, start, -1, foreign, sample["dataset"], sample["id"], "foreign"))
        if self.prompts.resample_foreign:
            self.prompts.register_all_foreign()
        if max_examples is not None and len(examples) > max_examples:
            step = len(examples) / max_examples
            examples = [examples[int(i * step)] for i in range(max_examples)]
        return examples

    # -- use --------------------------------------------------------------------------------
    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "ReferringDataset":
        """Seed the prompt draws and the transform's random draws (e.g. per epoch, for resumable runs)."""
        super().set_random_state(seed, state)
        self.prompts.set_random_state(seed, state)
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to pre-draw: prompts and transforms draw per example."""

    def sampling_weights(self) -> torch.Tensor:
        """Per-example weights: each dataset its share (``dataset_weights``), ``positive_share`` positives within it."""
        return balanced_weights([(e.dataset, e.kind == "positive") for e in self.data], self.positive_share, self.dataset_weights)

    def example(self, index: int) -> dict[str, Any]:
        """Example ``index`` before ``transform`` (see the class docstring)."""
        ex = self.data[index]
        sequence = self.sequences[ex.sequence]
        frames = torch.as_tensor(self._window(ex.start, int(sequence.shape[0])), dtype=torch.long)
        data = sequence[frames]
        image = data.float() / 255.0 if data.dtype == torch.uint8 else data.float()
        if ex.masks < 0:
            label = torch.zeros(len(frames), 1, *self.spatial_size)
        else:
            label = self.masks[ex.masks][frames][:, None].float()
        if self.fixed_prompts:
            text = self.prompts.first(ex.prompt_set)
        else:
            text = self.prompts.draw(ex.prompt_set, ex.dataset, ex.kind == "foreign")
        tokens, mask = self.prompts.features(text)
        return {
            "image": image,
            "label": label,
            "text_tokens": tokens,
            "text_mask": mask,
            "positive": ex.kind == "positive",
            "dataset": ex.dataset,
            "id": ex.sample_id,
        }

    def _transform(self, index: int) -> Any:
        data = self.example(index)
        return apply_transform(self.transform, data) if self.transform is not None else data
