"""Frame-wise inference of a 2D text-conditioned network over a whole sequence."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

from monai_ext.engines.streaming import progress_bar

__all__ = ["FramewiseSequenceInferer"]


class FramewiseSequenceInferer(Inferer):
    """Run a 2D ``network(image, text_tokens, text_mask)`` over the frames of a sequence in batches.

    The text is encoded once per sequence by the caller; its features are broadcast to each
    batch of frames, so a sequence of any length costs ``ceil(T / batch_size)`` forward passes.

    A 2D network has no object score: ``last_scores`` is always None (the interface of
    :class:`StreamingSequenceInferer`), and :class:`monai_ext.transforms.FrameScoresd` then takes each
    frame's maximum probability as its score.

    Args:
        batch_size: frames per forward pass.
        progress: show a progress bar over the frames (tqdm, on stderr).
    """

    def __init__(self, batch_size: int = 8, progress: bool = False) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.progress = bool(progress)
        self.last_scores: torch.Tensor | None = None

    def __call__(  # type: ignore[override]
        self, frames: torch.Tensor, network: Any, text_tokens: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the logits ``(T, out_channels, H, W)`` of ``frames`` ``(T, C, H, W)``.

        Args:
            frames: the sequence, frames first.
            network: a module taking ``(image (B,C,H,W), text_tokens (B,L,D), text_mask (B,L))``.
            text_tokens: ``(1, L, D)`` or ``(L, D)`` token features of the one prompt.
            text_mask: ``(1, L)`` / ``(L,)`` boolean mask of real tokens, or None.
        """
        if frames.ndim != 4:
            raise ValueError(f"frames must be (T, C, H, W), got shape {tuple(frames.shape)}")
        if text_tokens.ndim == 2:
            text_tokens = text_tokens[None]
        if text_mask is not None and text_mask.ndim == 1:
            text_mask = text_mask[None]
        outputs = []
        bar = progress_bar(None, total=frames.shape[0]) if self.progress else None
        try:
            for start in range(0, frames.shape[0], self.batch_size):
                batch = torch.as_tensor(frames[start : start + self.batch_size])
                n = batch.shape[0]
                tokens = text_tokens.expand(n, -1, -1)
                mask = None if text_mask is None else text_mask.expand(n, -1)
                outputs.append(network(batch, tokens, mask))
                if bar is not None:
                    bar.update(n)
        finally:
            if bar is not None:
                bar.close()
        return torch.cat(outputs, 0)
