"""Streaming inference of a memory-based sequence model (TGSAM-2) over sequences of any length."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import torch
from monai.inferers import Inferer

__all__ = ["StreamingSequenceInferer", "stream_frames"]


def _chunks(frames: Iterable[torch.Tensor] | torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    """Batches of ``size`` frames from a (T, C, H, W) tensor or any iterable of (C, H, W) frames."""
    if isinstance(frames, torch.Tensor):
        for start in range(0, frames.shape[0], size):
            yield frames[start : start + size]
        return
    batch: list[torch.Tensor] = []
    for frame in frames:
        batch.append(torch.as_tensor(frame))
        if len(batch) == size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def stream_frames(
    network: Any, frames: Iterable[torch.Tensor] | torch.Tensor, state: Any, batch_size: int = 8, device: torch.device | str | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(mask logits (1, 1, S, S), object logit (1, 1))`` per frame, in order.

    Frames go through ``network.encode_image`` ``batch_size`` at a time; tracking then runs
    frame by frame with ``network.track_step``, so what is kept between frames is the
    tracking ``state`` (prompt and memory bank) and at most one batch of features.
    """
    for batch in _chunks(frames, batch_size):
        batch = torch.as_tensor(batch).to(device) if device is not None else torch.as_tensor(batch)
        features, high_res = network.encode_image(batch)
        for i in range(batch.shape[0]):
            hr = None if high_res is None else [h[i : i + 1] for h in high_res]
            yield network.track_step(features[i : i + 1], state, hr)


class StreamingSequenceInferer(Inferer):
    """Run a memory-based sequence network (``encode_image`` / ``init_state`` / ``track_step``) over a sequence.

    The text is encoded once per sequence; frames are encoded in batches of ``batch_size``
    and tracked one after the other; the only state carried along is the network's memory
    bank (at most K past frames), so memory does not grow with the sequence length.

    With ``bidirectional``, a first pass finds the frame with the highest object score, and
    the sequence is segmented again from that frame forwards to the end and backwards to the
    start (each direction with a fresh memory bank), so a target that only appears late is
    tracked from its clearest view. It needs indexable frames (a tensor) and costs two passes.

    Args:
        batch_size: frames per image-encoder call.
        bidirectional: the two-pass mode above.
    """

    def __init__(self, batch_size: int = 8, bidirectional: bool = False) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.bidirectional = bidirectional

    def _device(self, network: Any) -> torch.device:
        try:
            return next(network.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        frames: torch.Tensor | Sequence[torch.Tensor] | Iterable[torch.Tensor],
        network: Any,
        text_tokens: Any,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return mask logits ``(T, 1, S, S)`` of every frame, on the CPU.

        Args:
            frames: (T, 3, S, S) tensor, or an iterable of (3, S, S) frames (read lazily).
            network: e.g. :class:`monai_ext.networks.nets.tgsam2.TGSAM2` in eval mode.
            text_tokens: (1, L, D) / (L, D) token features of the one prompt, or ``TextFeatures``.
            text_mask: (1, L) / (L,) mask of real tokens.
        """
        if isinstance(text_tokens, torch.Tensor) and text_tokens.ndim == 2:
            text_tokens = text_tokens[None]
        if text_mask is not None and text_mask.ndim == 1:
            text_mask = text_mask[None]
        if isinstance(frames, torch.Tensor) and frames.ndim != 4:
            raise ValueError(f"frames must be (T, C, H, W), got shape {tuple(frames.shape)}")
        device = self._device(network)
        if isinstance(text_tokens, torch.Tensor):
            text_tokens = text_tokens.to(device)
            text_mask = None if text_mask is None else text_mask.to(device)
        prompt = network.encode_text(text_tokens, text_mask)
        outputs: list[torch.Tensor] = []
        scores: list[float] = []
        for logits, obj in stream_frames(network, frames, network.init_state(prompt), self.batch_size, device):
            outputs.append(logits.cpu())
            scores.append(float(obj.max()))
        if not outputs:
            raise ValueError("empty sequence: no frames to segment")
        if not self.bidirectional or len(outputs) < 2:
            return torch.cat(outputs, 0)
        if not isinstance(frames, (torch.Tensor, Sequence)):
            raise ValueError("bidirectional inference needs indexable frames (a tensor or a sequence)")
        start = max(range(len(scores)), key=scores.__getitem__)
        n = len(outputs)
        frames_t = frames if isinstance(frames, torch.Tensor) else torch.stack([torch.as_tensor(f) for f in frames])
        forward = stream_frames(network, frames_t[start:], network.init_state(prompt), self.batch_size, device)
        for i, (logits, _) in enumerate(forward):
            outputs[start + i] = logits.cpu()
        backward = stream_frames(network, frames_t[: start + 1].flip(0), network.init_state(prompt), self.batch_size, device)
        for i, (logits, _) in enumerate(backward):
            if i > 0:  # the start frame keeps its forward result
                outputs[start - i] = logits.cpu()
        assert len(outputs) == n
        return torch.cat(outputs, 0)
