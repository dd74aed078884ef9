"""
Frame-wise operations: target masks and their presence per frame, dropping the frames whose label is
empty (training only), and applying a 2D transform to every frame of a source at its own resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from copy import deepcopy

import numpy as np
import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.transform import MapTransform, Transform
from monai.utils import TraceKeys, TransformBackends

from monai_ext.transforms.sequence import ToSequence

__all__ = [
    "KEPT_FRAMES_META_KEY",
    "ApplyToFrames",
    "ApplyToFramesd",
    "TargetMaskd",
    "frame_presence",
    "DropEmptyFramesd",
    "DropEmptyFramesD",
    "DropEmptyFramesDict",
]

#: meta key holding the indices (in the input sequence) of the frames kept by :py:class:`DropEmptyFramesd`.
KEPT_FRAMES_META_KEY = "kept_frame_indices"


def target_mask(label: torch.Tensor | np.ndarray, label_values: Sequence[int] | None = None) -> torch.Tensor:
    """
    Boolean mask of the target's voxels in a label array (same shape as ``label``).

    Args:
        label: a label image, volume or sequence.
        label_values: label ids that make the target (datalist ``label_values``); None: any
            non-zero value. ``[255]`` (binary image masks) is read as "above 127" rather than
            "equal to 255", since anti-aliased mask PNGs (e.g. CVC-ClinicDB) hold a few
            in-between values at the edges.

    Returns:
        bool tensor shaped like ``label``.
    """
    lab = torch.as_tensor(label.as_tensor() if isinstance(label, MetaTensor) else label)
    if label_values is None:
        return lab != 0
    values = [int(v) for v in label_values]
    if values == [255]:
        return lab > 127
    ids = lab.round().long() if lab.is_floating_point() else lab.long()
    return torch.isin(ids, torch.as_tensor(values, device=lab.device))


class TargetMaskd(MapTransform):
    """Dictionary-based :func:`target_mask`: each label becomes the boolean mask of the sample's target.

    The label ids of the target come from ``data[values_key]`` (a datalist's ``label_values``: several
    samples may name different targets of one label file, e.g. ACDC's three structures).

    Args:
        keys: keys of the labels.
        values_key: key of the target's label ids (None there: any non-zero value).
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(self, keys: KeysCollection = "label", values_key: str = "label_values", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.values_key = values_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            mask = target_mask(label, d.get(self.values_key))
            d[key] = MetaTensor(mask, meta=dict(label.meta)) if isinstance(label, MetaTensor) else mask
        return d


def frame_presence(label: torch.Tensor | np.ndarray, label_values: Sequence[int] | None = None) -> np.ndarray:
    """
    Whether the target is present in each frame of a label sequence.

    Args:
        label: label sequence ``(T, ...)`` (frames first).
        label_values: label ids that make the target; None: any non-zero value (see :py:func:`target_mask`).

    Returns:
        bool array of length T.
    """
    lab = torch.as_tensor(label.as_tensor() if isinstance(label, MetaTensor) else label)
    if lab.ndim < 1:
        raise ValueError(f"a label sequence needs a frame axis, got shape {tuple(lab.shape)}.")
    hit = target_mask(lab.reshape(lab.shape[0], -1), label_values)
    return hit.any(dim=1).cpu().numpy().astype(bool)


class DropEmptyFramesd(MapTransform, InvertibleTransform):
    """
    Drop the frames whose label is empty from ``(T, C, S1, S2)`` sequences (training only).

    The same frames are dropped from every key. At least ``min_frames`` frames are kept: if fewer frames hold
    the target, empty frames are added back, the ones closest to a labelled frame first (ties: the earlier).
    The kept indices are written to ``meta["kept_frame_indices"]`` and to the ``applied_operations`` entry,
    so :py:meth:`inverse` (or MONAI's ``Invertd``) puts zero frames back at the dropped positions.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        min_frames: int = 1,
        label_values: Sequence[int] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        """
        Args:
            keys: keys of the sequences to select frames from (usually ``("image", "label")``).
            label_key: key of the label sequence that decides which frames are empty.
            min_frames: the least number of frames kept (capped by the sequence length).
            label_values: label ids that make the target; None: any non-zero value.
            allow_missing_keys: don't raise an exception if a key is missing.
        """
        super().__init__(keys, allow_missing_keys)
        if min_frames < 0:
            raise ValueError(f"min_frames must be >= 0, got {min_frames}.")
        self.label_key = label_key
        self.min_frames = int(min_frames)
        self.label_values = label_values

    def kept_indices(self, presence: np.ndarray) -> list[int]:
        """
        Args:
            presence: bool per frame.

        Returns:
            sorted indices of the frames to keep.
        """
        presence = np.asarray(presence, dtype=bool)
        kept = np.flatnonzero(presence).tolist()
        need = min(self.min_frames, len(presence)) - len(kept)
        if need > 0:
            empty = np.flatnonzero(~presence)
            if kept:
                dist = np.min(np.abs(empty[:, None] - np.asarray(kept)[None, :]), axis=1)
                order = np.lexsort((empty, dist))
            else:
                order = np.arange(len(empty))
            kept = sorted(kept + empty[order[:need]].tolist())
        return [int(i) for i in kept]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Args:
            data: dict with frame-first sequences at ``keys`` and ``label_key``.

        Returns:
            dict with the selected frames at ``keys``.
        """
        d = dict(data)
        if self.label_key not in d:
            raise KeyError(f"DropEmptyFramesd needs the label sequence at key {self.label_key!r}.")
        label = d[self.label_key]
        if label.ndim != 4:
            raise ValueError(f"expected a (T, C, S1, S2) label sequence, got shape {tuple(label.shape)}.")
        num_frames = int(label.shape[0])
        kept = self.kept_indices(frame_presence(label, self.label_values))
        index = torch.as_tensor(kept, dtype=torch.long)
        for key in self.key_iterator(d):
            x = d[key]
            if x.shape[0] != num_frames:
                raise ValueError(
                    f"{key!r} has {x.shape[0]} frames but {self.label_key!r} has {num_frames}; "
                    "sequences must be frame-first (T, C, S1, S2)."
                )
            out = torch.index_select(x, 0, index.to(x.device))
            if isinstance(out, MetaTensor):
                out.meta = deepcopy(dict(out.meta))
                out.meta[KEPT_FRAMES_META_KEY] = list(kept)
            self.push_transform(out, extra_info={"kept": list(kept), "num_frames": num_frames})
            d[key] = out
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Put zero frames back at the dropped positions.

        Args:
            data: dict with sequences of the kept frames at ``keys`` (any channel count).

        Returns:
            dict with full-length sequences at ``keys``.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            transform = self.pop_transform(d[key])
            info = transform[TraceKeys.EXTRA_INFO]
            kept = [int(i) for i in info["kept"]]
            x = d[key]
            if x.shape[0] != len(kept):
                raise ValueError(f"{key!r} has {x.shape[0]} frames, {len(kept)} were kept by DropEmptyFramesd.")
            plain = x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)
            full = torch.zeros((int(info["num_frames"]), *plain.shape[1:]), dtype=plain.dtype, device=plain.device)
            full[torch.as_tensor(kept, dtype=torch.long, device=plain.device)] = plain
            if isinstance(x, MetaTensor):
                out = MetaTensor(full)
                out.copy_meta_from(x, copy_attr=True)
                out.meta = deepcopy(dict(x.meta))
                out.meta.pop(KEPT_FRAMES_META_KEY, None)
                d[key] = out
            else:
                d[key] = full
        return d


DropEmptyFramesD = DropEmptyFramesDict = DropEmptyFramesd


class ApplyToFrames(Transform):
    """Apply a 2D transform to every frame of an image in its source geometry, at the source's own resolution.

    The image ``(C, X, Y, Z)`` / ``(C, H, W, T)`` (e.g. a mask mapped back to the input by ``Invertd``)
    is cut into frames ``(T, C, H, W)`` the way the bundles cut their inputs (:class:`ToSequence`
    with ``axcodes`` and ``slice_axis``, no resizing), ``transform`` runs on them, and the result is
    put back voxel-exactly (the inverse of an un-resized :class:`ToSequence`). Used for frame-wise
    post-processing, e.g. :class:`~monai_ext.transforms.RemoveMinorComponents` on the frames of a
    video or the slices of a volume.

    Args:
        transform: takes and returns frames ``(T, C, H, W)``.
        axcodes: orientation of volumes before cutting (as the bundles' ``ToSequenced``).
        slice_axis: the frame axis of the oriented source.

    Returns:
        MetaTensor of the input's shape, dtype and metadata.
    """

    def __init__(self, transform: Callable, axcodes: str | None = "RAS", slice_axis: int = -1) -> None:
        self.transform = transform
        self.to_frames = ToSequence(axcodes=axcodes, slice_axis=slice_axis, spatial_size=None)

    def frames(self, img: torch.Tensor) -> MetaTensor:
        """The frames ``(T, C, H, W)`` of ``img`` (carrying what maps them back)."""
        return self.to_frames(img)

    def __call__(self, img: torch.Tensor) -> MetaTensor:
        frames = self.frames(img)
        done = MetaTensor(
            torch.as_tensor(self.transform(frames)).to(img.dtype),
            meta=dict(frames.meta),
            applied_operations=list(frames.applied_operations),
        )
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        return MetaTensor(torch.as_tensor(self.to_frames.inverse(done)).to(img.dtype), meta=meta)


class ApplyToFramesd(MapTransform):
    """Dictionary-based :class:`ApplyToFrames`.

    Args:
        keys: keys of the images (e.g. ``"pred"``).
        transform: takes and returns frames ``(T, C, H, W)``.
        axcodes: see :class:`ApplyToFrames`.
        slice_axis: see :class:`ApplyToFrames`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self, keys: KeysCollection, transform: Callable, axcodes: str | None = "RAS", slice_axis: int = -1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.apply = ApplyToFrames(transform, axcodes=axcodes, slice_axis=slice_axis)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.apply(d[key])
        return d
