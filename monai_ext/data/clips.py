"""
Clip sampling from frame sequences: which T frames of a sequence make one training clip.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import numpy as np
import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms.transform import MapTransform, Randomizable

from monai_ext.transforms.frames import frame_presence

__all__ = ["ClipSampler", "SampleClipd", "SampleClipD", "SampleClipDict", "CLIP_META_KEY"]

#: meta key holding the indices (in the input sequence) of the frames of a sampled clip.
CLIP_META_KEY = "clip_frame_indices"
_REQUIRE = ("any", "first")


class ClipSampler(Randomizable):
    """
    Choose the frame indices of a clip of ``num_frames`` frames from a sequence.

    - steps between frames are ``stride`` plus a random integer in ``[-jitter, jitter]``, at least 1
      (indices strictly increase while the sequence is long enough);
    - the clip start is uniform among the starts that fit; a sequence too short for the clip is padded by
      repeating its last frame (indices stay non-decreasing and in range);
    - with ``resample_if_absent`` and a per-frame presence, the start is drawn among the starts whose clip
      holds the target (``require="any"``: in any frame, ``"first"``: in its first frame); if no start
      works with the drawn steps, the steps are drawn again, up to ``max_tries`` times, after which the
      last draw is returned (e.g. a sequence without the target).

    Deterministic for a ``seed`` (or after :py:meth:`set_random_state`).
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        jitter: int = 0,
        resample_if_absent: bool = True,
        max_tries: int = 10,
        require: str = "any",
        seed: int | None = None,
    ) -> None:
        """
        Args:
            num_frames: clip length T.
            stride: nominal step between clip frames.
            jitter: each step is ``stride + U{-jitter..jitter}`` (clamped to >= 1).
            resample_if_absent: draw the clip start among the starts whose clip holds the target.
            max_tries: draws of the steps before giving up on finding the target.
            require: ``"any"`` (target in any clip frame) or ``"first"`` (in the first clip frame).
            seed: random seed; None: non-deterministic.
        """
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}.")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}.")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}.")
        if require not in _REQUIRE:
            raise ValueError(f"require must be one of {_REQUIRE}, got {require!r}.")
        self.num_frames = int(num_frames)
        self.stride = int(stride)
        self.jitter = int(jitter)
        self.resample_if_absent = resample_if_absent
        self.max_tries = int(max_tries)
        self.require = require
        self.set_random_state(seed=seed)

    def randomize(self, data: Any = None) -> None:
        """Nothing to pre-draw: the draws happen in :py:meth:`__call__` (they depend on the sequence)."""

    def _draw_offsets(self) -> np.ndarray:
        steps = np.full(self.num_frames - 1, self.stride, dtype=np.int64)
        if self.jitter > 0 and steps.size:
            steps = np.maximum(steps + self.R.randint(-self.jitter, self.jitter + 1, size=steps.size), 1)
        return np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)

    def _valid_starts(self, offsets: np.ndarray, presence: np.ndarray, max_start: int) -> np.ndarray:
        n = len(presence)
        starts = np.arange(max_start + 1)
        if self.require == "first":
            return starts[presence[starts]]
        idx = np.minimum(starts[:, None] + offsets[None, :], n - 1)
        return starts[presence[idx].any(axis=1)]

    def __call__(self, presence: Sequence[bool] | np.ndarray | int) -> np.ndarray:
        """
        Args:
            presence: bool per frame (target present), or just the number of frames (no resampling).

        Returns:
            int64 array of ``num_frames`` frame indices, non-decreasing, in ``[0, n)``.
        """
        if isinstance(presence, (int, np.integer)):
            n, pres = int(presence), None
        else:
            pres = np.asarray(presence, dtype=bool).reshape(-1)
            n = len(pres)
        if n < 1:
            raise ValueError("cannot sample a clip from an empty sequence.")
        use_presence = pres is not None and self.resample_if_absent and bool(pres.any())
        tries = self.max_tries if use_presence else 1
        clip = np.zeros(self.num_frames, dtype=np.int64)
        for _ in range(tries):
            offsets = self._draw_offsets()
            max_start = max(n - 1 - int(offsets[-1]), 0)
            if use_presence:
                starts = self._valid_starts(offsets, pres, max_start)  # type: ignore[arg-type]
                if len(starts):
                    start = int(starts[self.R.randint(len(starts))])
                    return np.minimum(start + offsets, n - 1)
            start = int(self.R.randint(max_start + 1))
            clip = np.minimum(start + offsets, n - 1)
        return clip


class SampleClipd(Randomizable, MapTransform):
    """
    Sample one clip of ``num_frames`` frames from frame-first sequences ``(T, C, S1, S2)`` (training).

    The presence of the target per frame comes from ``label_key`` (non-zero, or in ``label_values``); the same
    frames are taken from every key and their indices are written to ``meta["clip_frame_indices"]``.
    See :py:class:`ClipSampler` for the sampling rules.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_frames: int,
        label_key: str | None = "label",
        stride: int = 1,
        jitter: int = 0,
        resample_if_absent: bool = True,
        max_tries: int = 10,
        require: str = "any",
        label_values: Sequence[int] | None = None,
        seed: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        """
        Args:
            keys: keys of the sequences to sample (usually ``("image", "label")``).
            num_frames: clip length T.
            label_key: key of the label sequence giving the target presence; None: no presence.
            stride: see :py:class:`ClipSampler`.
            jitter: see :py:class:`ClipSampler`.
            resample_if_absent: see :py:class:`ClipSampler`.
            max_tries: see :py:class:`ClipSampler`.
            require: see :py:class:`ClipSampler`.
            label_values: label ids that make the target; None: any non-zero value.
            seed: random seed; None: non-deterministic (MONAI datasets re-seed with ``set_random_state``).
            allow_missing_keys: don't raise an exception if a key is missing.
        """
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.label_key = label_key
        self.label_values = label_values
        self.sampler = ClipSampler(
            num_frames=num_frames,
            stride=stride,
            jitter=jitter,
            resample_if_absent=resample_if_absent,
            max_tries=max_tries,
            require=require,
            seed=seed,
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> SampleClipd:
        """Seed this transform and its :py:class:`ClipSampler`."""
        super().set_random_state(seed, state)
        self.sampler.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """The draws happen in the sampler."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Args:
            data: dict with frame-first sequences at ``keys`` (and the label at ``label_key``).

        Returns:
            dict with ``(num_frames, C, S1, S2)`` clips at ``keys``.
        """
        d = dict(data)
        keys = list(self.key_iterator(d))
        if self.label_key is not None and self.label_key in d:
            presence: np.ndarray | int = frame_presence(d[self.label_key], self.label_values)
        elif keys:
            presence = int(d[keys[0]].shape[0])
        else:
            return d
        n = presence if isinstance(presence, int) else len(presence)
        clip = self.sampler(presence)
        index = torch.as_tensor(clip, dtype=torch.long)
        for key in keys:
            x = d[key]
            if x.shape[0] != n:
                raise ValueError(f"{key!r} has {x.shape[0]} frames, expected {n} (frame-first sequences).")
            out = torch.index_select(x, 0, index.to(x.device)) if isinstance(x, torch.Tensor) else x[clip]
            if isinstance(out, MetaTensor):
                out.meta = deepcopy(dict(out.meta))
                out.meta[CLIP_META_KEY] = clip.tolist()
            d[key] = out
        return d


SampleClipD = SampleClipDict = SampleClipd
