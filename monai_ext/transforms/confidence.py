"""Per-frame target scores and a sequence-level present/absent decision, for a prediction's summary.

Two dictionary transforms in a bundle's ``postprocessing``:

* :class:`FrameScoresd`, right after ``Activationsd`` (probabilities ``(T, K, S, S)`` at the
  network's size, frames in the network's order), writes ``frame_scores``: one score in [0, 1] per
  frame, the sigmoid of the network's object-score logit where the network has one (read from the
  inferer's ``last_scores``: :class:`monai_ext.engines.StreamingSequenceInferer`, also through
  :class:`monai_ext.engines.AffineTTAInferer`), else the frame's maximum probability
  (:class:`monai_ext.engines.FramewiseSequenceInferer`); and ``frame_score_kind``
  (``"object_score"`` / ``"max_probability"``).
* :class:`TargetPresenced`, after the last change to the mask (after ``ApplyToFramesd`` /
  ``BoxPromptRefined``, before ``SavePredictiond``), writes ``target_present``: True when at least
  ``min_frames`` frames (default 1; never more than the sequence has) both score at least ``threshold``
  and have foreground in the final mask (the mask that is written); False otherwise: the run worked
  and found no target, which a failed run (no summary) never reads as.

The frames are numbered as the network saw them, which is how ``SavePredictiond``'s
``frames_with_target`` numbers them too (the source cut by ``ToSequence`` with ``axcodes="RAS"`` and the
last axis as frame axis: time for videos and frame folders, RAS axial slices for volumes).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor

from .sequence import ToSequence

__all__ = ["FrameScoresd", "TargetPresenced", "frame_scores", "target_present"]

OBJECT_SCORE = "object_score"
MAX_PROBABILITY = "max_probability"


def frame_scores(probabilities: torch.Tensor, object_logits: torch.Tensor | None = None) -> tuple[list[float], str]:
    """``(one score per frame, its kind)`` for probabilities ``(T, K, ...)``.

    Args:
        probabilities: the sigmoid of the network's logits, frames first.
        object_logits: ``(T,)`` object-score logits of the same frames, or None.

    Returns:
        The sigmoid of ``object_logits`` (kind ``"object_score"``), or each frame's maximum
        probability (kind ``"max_probability"``) without them.

    Raises:
        ValueError: probabilities outside [0, 1] (logits: put the scores after ``Activationsd``) or a
            number of scores that is not the number of frames.
    """
    probs = convert_to_tensor(probabilities, track_meta=False).detach()
    if probs.ndim < 2:
        raise ValueError(f"expected a (T, K, ...) sequence of probabilities, got shape {tuple(probs.shape)}")
    n_frames = probs.shape[0]
    if object_logits is not None:
        logits = convert_to_tensor(object_logits, track_meta=False).detach().float().reshape(-1).cpu()
        if logits.numel() != n_frames:
            raise ValueError(
                f"{logits.numel()} object scores for {n_frames} frames: the scores' inferer did not segment these frames last"
            )
        return [float(s) for s in torch.sigmoid(logits)], OBJECT_SCORE
    if probs.numel() and (float(probs.min()) < 0.0 or float(probs.max()) > 1.0):
        raise ValueError("frame scores need probabilities in [0, 1]: place FrameScoresd after Activationsd (sigmoid)")
    if n_frames == 0:
        return [], MAX_PROBABILITY
    return [float(s) for s in probs.float().flatten(1).amax(1).cpu()], MAX_PROBABILITY


def target_present(
    scores: Sequence[float], frames_with_foreground: Sequence[bool], threshold: float = 0.5, min_frames: int = 1
) -> bool:
    """True when at least ``min(min_frames, number of frames)`` frames score at least ``threshold`` and
    have foreground in the mask (``min_frames=1``: any such frame)."""
    if len(scores) != len(frames_with_foreground):
        raise ValueError(f"{len(scores)} frame scores for a mask of {len(frames_with_foreground)} frames")
    if min_frames < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    hits = sum(float(s) >= threshold and bool(f) for s, f in zip(scores, frames_with_foreground))
    return len(scores) > 0 and hits >= min(min_frames, len(scores))


class FrameScoresd(MapTransform):
    """Write each frame's target score (``data[scores_key]``, a list of floats) and its kind.

    Place it after ``Activationsd``, while ``data[key]`` holds the probabilities ``(T, K, S, S)`` at the
    network's size, in the network's frame order.

    Args:
        keys: key of the probabilities (one key).
        scores_source: the inferer that made them, when its network has an object score: its
            ``last_scores`` (object-score logits ``(T,)`` of its last call) give the scores. None, or a
            source whose ``last_scores`` is None (a frame-wise inferer): each frame's maximum probability.
        scores_key: where the scores go.
        kind_key: where their kind goes (``"object_score"`` or ``"max_probability"``); None: not written.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        scores_source: Any = None,
        scores_key: str = "frame_scores",
        kind_key: str | None = "frame_score_kind",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scores_source = scores_source
        self.scores_key, self.kind_key = scores_key, kind_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        object_logits = getattr(self.scores_source, "last_scores", None) if self.scores_source is not None else None
        for key in self.key_iterator(d):
            scores, kind = frame_scores(d[key], object_logits)
            d[self.scores_key] = scores
            if self.kind_key is not None:
                d[self.kind_key] = kind
        return d


class TargetPresenced(MapTransform):
    """Write whether the target is present in the sequence (``data[present_key]``, a bool).

    Present: at least ``min_frames`` frames (1: any frame; capped at the number of frames) score at
    least ``threshold`` (``data[scores_key]``, from :class:`FrameScoresd`) and have foreground in the
    final mask ``data[key]``. Place it after the last
    transform that changes the mask (before ``SavePredictiond``), so the decision agrees with the
    mask that is written: absent whenever the written mask is empty.

    Args:
        keys: key of the final mask: in the source geometry ``(1, ...)`` (after ``Invertd``), cut into
            frames as the bundles cut their inputs (``axcodes``, ``slice_axis``), or already a
            frame-first sequence ``(T, ...)`` with ``sequence=True``.
        scores_key: key of the frame scores.
        threshold: the score a frame needs (the bundles pass their mask threshold).
        min_frames: how many such frames make the target present (1: any).
        present_key: where the decision goes.
        sequence: the mask is already frames first.
        axcodes: orientation used to cut a volume into frames (as ``ToSequenced`` and ``frames_with_target``).
        slice_axis: the frame axis of the (oriented) source.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        scores_key: str = "frame_scores",
        threshold: float = 0.5,
        min_frames: int = 1,
        present_key: str = "target_present",
        sequence: bool = False,
        axcodes: str | None = "RAS",
        slice_axis: int = -1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scores_key, self.present_key = scores_key, present_key
        self.threshold = float(threshold)
        if int(min_frames) < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        self.min_frames = int(min_frames)
        self.sequence = sequence
        self.axcodes, self.slice_axis = axcodes, slice_axis

    def frames_with_foreground(self, mask: Any) -> list[bool]:
        """Per frame, whether the mask has foreground there."""
        if self.sequence:
            frames = convert_to_tensor(mask, track_meta=False)
        else:
            frames = convert_to_tensor(ToSequence(axcodes=self.axcodes, slice_axis=self.slice_axis)(mask), track_meta=False)
        return [bool(f) for f in (frames.flatten(1) > 0).any(1)]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.present_key] = target_present(
                d[self.scores_key], self.frames_with_foreground(d[key]), self.threshold, self.min_frames
            )
        return d
