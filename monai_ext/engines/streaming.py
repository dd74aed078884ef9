"""Streaming inference of a memory-based sequence model (TGSAM-2) over sequences of any length."""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Sequence

import torch
from monai.inferers import Inferer
from monai.utils import optional_import

__all__ = ["StreamingSequenceInferer", "encode_frames", "progress_bar", "stream_frames", "track_frames"]


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


def progress_bar(items: Iterable | None, total: int | None = None, unit: str = "frame") -> Any:
    """``items`` with a tqdm progress bar on stderr (cleared once done), or, with ``items`` None, a bar to
    ``update(n)`` by hand; without tqdm installed, ``items`` as they are (None for a bar by hand)."""
    tqdm, has_tqdm = optional_import("tqdm", name="tqdm")
    return tqdm(items, total=total, unit=unit, leave=False, dynamic_ncols=True) if has_tqdm else items


def encode_frames(
    network: Any, frames: Iterable[torch.Tensor] | torch.Tensor, batch_size: int = 8, device: torch.device | str | None = None
) -> Iterator[tuple[torch.Tensor, list[torch.Tensor] | None]]:
    """Yield ``(features (1, ...), high-res features or None)`` per frame, in order.

    Frames go through ``network.encode_image`` ``batch_size`` at a time, read lazily from any
    iterable, so at most one batch of frames and features is held.
    """
    for batch in _chunks(frames, batch_size):
        batch = torch.as_tensor(batch).to(device) if device is not None else torch.as_tensor(batch)
        features, high_res = network.encode_image(batch)
        for i in range(batch.shape[0]):
            yield features[i : i + 1], None if high_res is None else [h[i : i + 1] for h in high_res]


def track_frames(
    network: Any, encoded: Iterable[tuple[torch.Tensor, list[torch.Tensor] | None]], state: Any
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(mask logits (1, 1, S, S), object logit (1, 1))`` per encoded frame, tracking with ``network.track_step``."""
    for features, high_res in encoded:
        yield network.track_step(features, state, high_res)


def stream_frames(
    network: Any, frames: Iterable[torch.Tensor] | torch.Tensor, state: Any, batch_size: int = 8, device: torch.device | str | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(mask logits (1, 1, S, S), object logit (1, 1))`` per frame, in order.

    Frames go through ``network.encode_image`` ``batch_size`` at a time; tracking then runs
    frame by frame with ``network.track_step``, so what is kept between frames is the
    tracking ``state`` (prompt and memory bank) and at most one batch of features.
    """
    return track_frames(network, encode_frames(network, frames, batch_size, device), state)


def _content_key(network: Any, frames: torch.Tensor) -> tuple:
    """Identifies a sequence for feature reuse: the network's mode and the frames' bytes (the network itself is held by weak reference)."""
    data = frames.detach().cpu().contiguous()
    digest = hashlib.sha1(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"").hexdigest()
    return bool(getattr(network, "training", False)), tuple(data.shape), str(data.dtype), digest


class StreamingSequenceInferer(Inferer):
    """Run a memory-based sequence network (``encode_image`` / ``init_state`` / ``track_step``) over a sequence.

    The text is encoded once per sequence; frames are encoded in batches of ``batch_size``
    and tracked one after the other; the only state carried along is the network's memory
    bank (at most K past frames), so memory does not grow with the sequence length.

    With ``bidirectional``, a first pass finds the frame with the highest object score, and
    the sequence is segmented again from that frame forwards to the end and backwards to the
    start (each direction with a fresh memory bank), so a target that only appears late is
    tracked from its clearest view. It needs indexable frames (a tensor or a sequence), keeps
    every frame's image features for the second pass (memory then grows with the length)
    and costs two tracking passes but one encoding.

    With ``reuse_features``, the image features of the last ``kept_sequences`` sequences are
    kept and reused when the very same frames come again through the same network (matched by
    content), as when an evaluation asks for several targets of one volume: the image encoder,
    most of the cost, then runs once per volume instead of once per target (with test-time
    augmentation, :class:`AffineTTAInferer`, each moved copy is a sequence of its own, so keep
    one more than the number of moves). The kept features grow with the sequence length, so it
    is meant for evaluation, not for streaming long videos; it applies to frames given as a
    tensor or a sequence.

    After each call, ``last_scores`` holds the object-score logits ``(T,)`` (CPU, float) that
    ``network.track_step`` gave each frame of that sequence, in frame order, for the pass whose mask
    logits were returned (with ``bidirectional``: the forward pass from the start frame and the
    backward pass before it, as for the masks); None before a call or after a failed one. The
    returned logits are unchanged; :class:`monai_ext.transforms.FrameScoresd` reads the scores.

    Args:
        batch_size: frames per image-encoder call.
        bidirectional: the two-pass mode above.
        reuse_features: keep and reuse the image features of the last sequences.
        kept_sequences: how many sequences' features ``reuse_features`` keeps (least recently used dropped first).
        keep_state: carry the tracking state (the prompt's memory bank) from one call to the next, so a long
            video can be segmented in consecutive chunks as if in one pass (:meth:`reset` starts afresh;
            not with ``bidirectional``).
        progress: show a progress bar over the frames (tqdm, on stderr).
    """

    def __init__(
        self,
        batch_size: int = 8,
        bidirectional: bool = False,
        reuse_features: bool = False,
        kept_sequences: int = 1,
        keep_state: bool = False,
        progress: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if kept_sequences < 1:
            raise ValueError(f"kept_sequences must be >= 1, got {kept_sequences}")
        if keep_state and bidirectional:
            raise ValueError("keep_state tracks chunks in order: it cannot be combined with bidirectional")
        self.batch_size = batch_size
        self.keep_state, self.progress = bool(keep_state), bool(progress)
        self._state: Any = None
        self.bidirectional = bidirectional
        self.reuse_features = reuse_features
        self.kept_sequences = int(kept_sequences)
        # content key -> (network, per-frame features), most recently used last; the network by weak
        # reference, so a new network that happens to reuse a freed one's address is never mistaken for it
        self._kept: OrderedDict[tuple, tuple[weakref.ref, list]] = OrderedDict()
        self.last_scores: torch.Tensor | None = None

    def _encoded(self, frames: Any, network: Any, device: torch.device) -> Iterable[tuple[torch.Tensor, list[torch.Tensor] | None]]:
        """Per-frame features: a lazy stream, or a list when they must be kept (bidirectional / reuse)."""
        indexable = isinstance(frames, (torch.Tensor, Sequence))
        if self.bidirectional and not indexable:
            raise ValueError("bidirectional inference needs indexable frames (a tensor or a sequence)")
        if not (self.bidirectional or (self.reuse_features and indexable)):
            return encode_frames(network, frames, self.batch_size, device)
        if not isinstance(frames, torch.Tensor) and len(frames) == 0:
            return []
        frames_t = frames if isinstance(frames, torch.Tensor) else torch.stack([torch.as_tensor(f) for f in frames])
        key = _content_key(network, frames_t) if self.reuse_features else None
        if key is not None and key in self._kept and self._kept[key][0]() is network:
            self._kept.move_to_end(key)
            return self._kept[key][1]
        encoded = list(encode_frames(network, frames_t, self.batch_size, device))
        if key is not None:
            self._kept[key] = (weakref.ref(network), encoded)
            self._kept.move_to_end(key)
            while len(self._kept) > self.kept_sequences:
                self._kept.popitem(last=False)
        return encoded

    def reset(self) -> None:
        """Forget the carried tracking state (``keep_state``): the next call starts a new sequence."""
        self._state = None

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
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return mask logits ``(T, 1, S, S)`` of every frame, on the CPU (object-score logits in ``last_scores``).

        Args:
            frames: (T, 3, S, S) tensor, or an iterable of (3, S, S) frames (read lazily).
            network: e.g. :class:`monai_ext.networks.nets.tgsam2.TGSAM2` in eval mode.
            text_tokens: (1, L, D) / (L, D) token features of the one prompt.
            text_mask: (1, L) / (L,) mask of real tokens.
        """
        self.last_scores = None
        if text_tokens.ndim == 2:
            text_tokens = text_tokens[None]
        if text_mask is not None and text_mask.ndim == 1:
            text_mask = text_mask[None]
        if isinstance(frames, torch.Tensor) and frames.ndim != 4:
            raise ValueError(f"frames must be (T, C, H, W), got shape {tuple(frames.shape)}")
        device = self._device(network)
        text_tokens = text_tokens.to(device)
        text_mask = None if text_mask is None else text_mask.to(device)
        prompt = network.encode_text(text_tokens, text_mask)
        encoded = self._encoded(frames, network, device)
        outputs: list[torch.Tensor] = []
        objects: list[torch.Tensor] = []  # (1,) object-score logit per frame, of the pass kept
        scores: list[float] = []
        state = self._state if self.keep_state and self._state is not None else network.init_state(prompt)
        if self.keep_state:
            self._state = state
        tracked = track_frames(network, encoded, state)
        if self.progress:
            total = len(frames) if isinstance(frames, (torch.Tensor, Sequence)) else None
            tracked = progress_bar(tracked, total=total, unit="frame")
        for logits, obj in tracked:
            outputs.append(logits.cpu())
            objects.append(obj.detach().reshape(-1)[:1].float().cpu())
            scores.append(float(obj.max()))
        if not outputs:
            raise ValueError("empty sequence: no frames to segment")
        if not self.bidirectional or len(outputs) < 2:
            self.last_scores = torch.cat(objects)
            return torch.cat(outputs, 0)
        assert isinstance(encoded, list)
        start = max(range(len(scores)), key=scores.__getitem__)
        for i, (logits, obj) in enumerate(track_frames(network, encoded[start:], network.init_state(prompt))):
            outputs[start + i] = logits.cpu()
            objects[start + i] = obj.detach().reshape(-1)[:1].float().cpu()
        backward = track_frames(network, encoded[start::-1], network.init_state(prompt))
        for i, (logits, obj) in enumerate(backward):
            if i > 0:  # the start frame keeps its forward result
                outputs[start - i] = logits.cpu()
                objects[start - i] = obj.detach().reshape(-1)[:1].float().cpu()
        self.last_scores = torch.cat(objects)
        return torch.cat(outputs, 0)
