"""
Modality intensity presets (docs/DESIGN.md, section 2): a non-geometric mapping of raw intensities
to float32 in [0, 1], optionally repeating grey to 3 channels for RGB-pretrained encoders.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms.transform import MapTransform, Transform
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ext.transforms.sequence import SEQUENCE_META_KEY

__all__ = [
    "CT_WINDOWS",
    "INTENSITY_PRESETS",
    "IntensityPreset",
    "IntensityPresetd",
    "IntensityPresetD",
    "IntensityPresetDict",
]

#: named CT windows, ``name: (level, width)`` in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (40.0, 400.0),
    "soft_tissue": (50.0, 350.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
#: the presets :py:class:`IntensityPreset` knows.
INTENSITY_PRESETS = ("ct", "mr", "ultrasound", "rgb")
_PERCENTILE_PRESETS = ("mr", "ultrasound")


def _channel_dim(img: torch.Tensor, channel_dim: int | None) -> int:
    if channel_dim is not None:
        return channel_dim
    return 1 if isinstance(img, MetaTensor) and img.meta.get(SEQUENCE_META_KEY, False) else 0


class IntensityPreset(Transform):
    """
    Map raw intensities to float32 in [0, 1] with a modality preset.

    - ``"ct"``: HU window ``window=(level, width)`` or a named window of :py:data:`CT_WINDOWS`
      (``abdomen`` (40, 400, the default), ``soft_tissue`` (50, 350), ``lung`` (-600, 1500),
      ``bone`` (400, 1800), ``brain`` (40, 80)): ``level - width / 2`` -> 0, ``level + width / 2`` -> 1, clipped.
    - ``"mr"``, ``"ultrasound"``: the ``lower`` / ``upper`` percentiles (0.5 / 99.5) -> 0 / 1, clipped,
      computed over the whole volume/sequence (``per_frame=False``, the default) or per frame.
    - ``"rgb"``: 0..255 -> 0..1, clipped.

    Works on a source ``(C, X, Y, Z)`` / ``(C, H, W, T)`` or on a sequence ``(T, C, S1, S2)`` made by
    :py:class:`~monai_ext.transforms.ToSequence` (recognised by ``meta["is_sequence"]``). Not invertible and
    not geometric: it keeps the metadata and ``applied_operations``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        preset: str,
        window: str | tuple[float, float] | None = None,
        lower: float = 0.5,
        upper: float = 99.5,
        per_frame: bool = False,
        num_channels: int | None = None,
        channel_dim: int | None = None,
    ) -> None:
        """
        Args:
            preset: one of :py:data:`INTENSITY_PRESETS` (case-insensitive).
            window: for ``"ct"``: a named window or ``(level, width)`` in HU; default ``"abdomen"``.
            lower: lower percentile of ``"mr"`` / ``"ultrasound"``.
            upper: upper percentile of ``"mr"`` / ``"ultrasound"``.
            per_frame: compute the percentiles per frame (frame axis: 0 for a sequence, the last axis for
                a source) instead of over the whole volume/sequence.
            num_channels: if set, the output has this many channels: grey (1 channel) is repeated,
                e.g. ``3`` for RGB-pretrained encoders; a matching channel count is left as is.
            channel_dim: the channel axis; None: 1 for a ``ToSequence`` sequence, else 0.

        Raises:
            ValueError: unknown preset or window, bad window width or percentiles.
        """
        name = str(preset).lower()
        if name not in INTENSITY_PRESETS:
            raise ValueError(f"unknown intensity preset {preset!r}; available presets: {', '.join(INTENSITY_PRESETS)}.")
        self.preset = name
        self.window: tuple[float, float] | None = None
        if name == "ct":
            self.window = self.resolve_window("abdomen" if window is None else window)
        elif window is not None:
            raise ValueError(f"window is only used by the 'ct' preset, got window={window!r} for {name!r}.")
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        if num_channels is not None and num_channels < 1:
            raise ValueError(f"num_channels must be positive, got {num_channels}.")
        self.lower = float(lower)
        self.upper = float(upper)
        self.per_frame = per_frame
        self.num_channels = num_channels
        self.channel_dim = channel_dim

    @staticmethod
    def resolve_window(window: str | Sequence[float]) -> tuple[float, float]:
        """
        Args:
            window: a name of :py:data:`CT_WINDOWS` or ``(level, width)``.

        Returns:
            ``(level, width)`` in HU.
        """
        if isinstance(window, str):
            key = window.lower().replace(" ", "_").replace("-", "_")
            if key not in CT_WINDOWS:
                raise ValueError(f"unknown CT window {window!r}; available windows: {', '.join(CT_WINDOWS)}.")
            return CT_WINDOWS[key]
        if len(window) != 2:
            raise ValueError(f"a CT window is (level, width), got {window!r}.")
        level, width = float(window[0]), float(window[1])
        if width <= 0:
            raise ValueError(f"CT window width must be positive, got {width}.")
        return level, width

    def _percentile_scale(self, x: torch.Tensor, frame_dim: int) -> torch.Tensor:
        if not self.per_frame:
            lo, hi = (float(v) for v in percentile(x.flatten(), [self.lower, self.upper]))
            if hi <= lo:
                return torch.zeros_like(x)
            return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)
        xf = x.movedim(frame_dim, 0)
        flat = xf.reshape(xf.shape[0], -1)
        q = torch.as_tensor(percentile(flat, [self.lower, self.upper], dim=1), dtype=x.dtype)  # (2, frames)
        lo, hi = q[0], q[1]
        span = hi - lo
        ok = span > 0
        scaled = (flat - lo[:, None]) / torch.where(ok, span, torch.ones_like(span))[:, None]
        scaled = torch.where(ok[:, None], scaled, torch.zeros_like(scaled)).clamp_(0.0, 1.0)
        return scaled.reshape(xf.shape).movedim(0, frame_dim)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """
        Args:
            img: channel-first source or ``(T, C, S1, S2)`` sequence (any numeric dtype).

        Returns:
            float32 tensor in [0, 1] of the same type (MetaTensor metadata kept), channels repeated to
            ``num_channels`` if set.
        """
        if img.ndim < 2:
            raise ValueError(f"IntensityPreset expects a channel-first array, got shape {tuple(img.shape)}.")
        cdim = _channel_dim(img, self.channel_dim)
        x = convert_to_tensor(img, track_meta=False).to(torch.float32)
        if self.preset == "ct":
            level, width = self.window  # type: ignore[misc]
            x = ((x - (level - width / 2.0)) / width).clamp_(0.0, 1.0)
        elif self.preset == "rgb":
            x = (x / 255.0).clamp_(0.0, 1.0)
        else:
            frame_dim = 0 if cdim == 1 else x.ndim - 1
            x = self._percentile_scale(x, frame_dim)
        if self.num_channels is not None and x.shape[cdim] != self.num_channels:
            if x.shape[cdim] != 1:
                raise ValueError(
                    f"cannot make {self.num_channels} channels from {x.shape[cdim]} (only grey, 1 channel, is "
                    f"repeated); input shape {tuple(img.shape)}, channel_dim={cdim}."
                )
            reps = [1] * x.ndim
            reps[cdim] = self.num_channels
            x = x.repeat(*reps)
        out, *_ = convert_to_dst_type(x, img, dtype=torch.float32)
        return out


class IntensityPresetd(MapTransform):
    """Dictionary-based :py:class:`IntensityPreset` (apply it to images only, never to labels)."""

    backend = IntensityPreset.backend

    def __init__(
        self,
        keys: KeysCollection,
        preset: str,
        window: str | tuple[float, float] | None = None,
        lower: float = 0.5,
        upper: float = 99.5,
        per_frame: bool = False,
        num_channels: int | None = None,
        channel_dim: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        """
        Args:
            keys: keys of the images to transform.
            preset: see :py:class:`IntensityPreset`.
            window: see :py:class:`IntensityPreset`.
            lower: see :py:class:`IntensityPreset`.
            upper: see :py:class:`IntensityPreset`.
            per_frame: see :py:class:`IntensityPreset`.
            num_channels: see :py:class:`IntensityPreset`.
            channel_dim: see :py:class:`IntensityPreset`.
            allow_missing_keys: don't raise an exception if a key is missing.
        """
        super().__init__(keys, allow_missing_keys)
        self.preset = IntensityPreset(
            preset=preset,
            window=window,
            lower=lower,
            upper=upper,
            per_frame=per_frame,
            num_channels=num_channels,
            channel_dim=channel_dim,
        )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Args:
            data: dict with images at ``keys``.

        Returns:
            dict with float32 [0, 1] images at ``keys``.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.preset(d[key])
        return d


IntensityPresetD = IntensityPresetDict = IntensityPresetd
