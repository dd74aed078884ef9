"""Test-time augmentation of a sequence inferer by a fixed set of small affine moves."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from monai.inferers import Inferer
from monai.transforms import Affine
from monai.transforms.utils import create_rotate, create_scale, create_translate
from monai.utils import convert_to_tensor

__all__ = ["AffineTTAInferer", "affine_tta_matrix"]

_KEYS = frozenset({"rotate", "scale", "translate"})


def affine_tta_matrix(move: Mapping[str, Any]) -> torch.Tensor:
    """The 3x3 matrix of one move, composed as MONAI's ``AffineGrid`` does (rotate, translate, scale).

    Args:
        move: ``rotate`` (radians, in-plane), ``scale`` (factor, or one per axis), ``translate``
            (pixels, one per axis); each optional, absent = identity. The matrix is MONAI's
            output-to-input map about the frame centre, so ``Affine(affine=matrix)`` applies it.

    Raises:
        ValueError: an unknown key, a non-positive scale or a wrong number of values.
    """
    unknown = sorted(set(move) - _KEYS)
    if unknown:
        raise ValueError(f"test-time augmentation move {dict(move)}: unknown key(s) {unknown}; use {sorted(_KEYS)}")
    rotate = float(move.get("rotate", 0.0))
    scale = move.get("scale", 1.0)
    scale = [float(scale)] * 2 if isinstance(scale, (int, float)) else [float(s) for s in scale]
    translate = move.get("translate", (0.0, 0.0))
    translate = [float(translate)] * 2 if isinstance(translate, (int, float)) else [float(t) for t in translate]
    if len(scale) != 2 or len(translate) != 2:
        raise ValueError(f"test-time augmentation move {dict(move)}: scale and translate take 1 or 2 values (2D frames)")
    if min(scale) <= 0:
        raise ValueError(f"test-time augmentation move {dict(move)}: scale must be positive")
    matrix = torch.eye(3, dtype=torch.float64)
    matrix = matrix @ torch.as_tensor(create_rotate(2, rotate), dtype=torch.float64)
    matrix = matrix @ torch.as_tensor(create_translate(2, translate), dtype=torch.float64)
    matrix = matrix @ torch.as_tensor(create_scale(2, scale), dtype=torch.float64)
    return matrix


def _apply(matrix: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``frames`` (T, C, H, W) moved by ``matrix`` (bilinear, zeros outside), one grid for all frames."""
    t, c, h, w = frames.shape
    moved = Affine(affine=matrix, padding_mode="zeros", mode="bilinear", image_only=True)(frames.reshape(t * c, h, w))
    return convert_to_tensor(moved, track_meta=False).reshape(t, c, h, w).to(frames.dtype)


class AffineTTAInferer(Inferer):
    """Average a sequence inferer's probabilities over the frames and a few moved copies of them.

    Each move (rotation, scale, translation about the frame centre; MONAI's ``Affine``) is
    applied to every frame of the sequence alike, the wrapped inferer segments the moved
    sequence (so a tracking model tracks it as a whole), and the probabilities are moved back
    with the inverse matrix. Each pixel averages the unmoved prediction with the moved ones
    that cover it (a moved copy has no prediction where its frame was moved out of view).
    Moves that the network met in training (the bundles train with small affine moves, never
    flips: prompts name sides) keep the target where the prompt says it is.

    Per-frame target scores pass through: when the wrapped inferer has ``last_scores`` (object-score
    logits ``(T,)``, :class:`StreamingSequenceInferer`), ``last_scores`` here is their average over the
    unmoved and the moved copies, taken as the masks are (the mean of the sigmoids, back to a logit;
    a move keeps every frame, so frame ``t`` of each copy is frame ``t``); without moves it is the
    wrapped inferer's own tensor. None when the wrapped inferer has none (:class:`FramewiseSequenceInferer`).

    Args:
        inferer: ``inferer(frames, network, text_tokens, text_mask)`` returning logits
            ``(T, K, H, W)`` (e.g. :class:`FramewiseSequenceInferer`, :class:`StreamingSequenceInferer`).
        moves: the moved copies, each a mapping for :func:`affine_tta_matrix`; empty: the
            wrapped inferer's logits are returned unchanged.
        eps: probabilities are clipped to ``[eps, 1 - eps]`` before they are turned back into logits.
    """

    def __init__(self, inferer: Any, moves: Sequence[Mapping[str, Any]] = (), eps: float = 1e-6) -> None:
        super().__init__()
        self.inferer = inferer
        self.moves = [dict(m) for m in moves]
        # (move, its inverse) per copy: fixed by the moves, so inverted once here rather than per sequence
        self.matrices = [(m, torch.linalg.inv(m)) for m in map(affine_tta_matrix, self.moves)]
        self.eps = eps
        self.last_scores: torch.Tensor | None = None

    def _scores(self) -> torch.Tensor | None:
        return getattr(self.inferer, "last_scores", None)

    def __call__(  # type: ignore[override]
        self, frames: torch.Tensor, network: Any, text_tokens: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return logits ``(T, K, H, W)`` whose sigmoid is the averaged probability.

        Raises:
            ValueError: ``frames`` is not a ``(T, C, H, W)`` tensor while moves are set.
        """
        self.last_scores = None
        logits = self.inferer(frames, network, text_tokens, text_mask)
        scores = self._scores()
        if not self.matrices:
            self.last_scores = scores
            return logits
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
            raise ValueError("test-time augmentation needs the frames as one (T, C, H, W) tensor")
        total = torch.sigmoid(logits.float())
        weight = torch.ones_like(total[:1, :1])
        ones = torch.ones_like(weight)
        score_total = None if scores is None else torch.sigmoid(scores.float())
        for matrix, inverse in self.matrices:
            moved = _apply(matrix, frames)
            probabilities = torch.sigmoid(self.inferer(moved, network, text_tokens, text_mask).float())
            back = _apply(inverse, probabilities.to(total.device))
            cover = _apply(inverse, _apply(matrix, ones))  # 1 where the moved copy saw this pixel
            cover = (cover > 0.999).to(total.dtype)
            total += back * cover
            weight += cover
            moved_scores = self._scores()
            score_total = None if score_total is None or moved_scores is None else score_total + torch.sigmoid(moved_scores.float())
        if score_total is not None:
            self.last_scores = torch.logit(score_total / (1 + len(self.matrices)), eps=self.eps)
        return torch.logit(total / weight, eps=self.eps).to(logits.dtype)
