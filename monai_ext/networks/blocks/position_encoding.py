"""Fixed sine/cosine position encodings, written once for every network of the package.

* :func:`sinusoidal_encoding_1d`: token positions ``0 .. L-1`` (Vaswani et al. 2017), channels
  interleaved ``sin, cos, sin, cos, ...``; used for the text tokens of TGSAM-2's sparse prompt
  (eq. 3) and of RecLMIS's text reconstructor.
* :func:`sinusoidal_encoding_2d`: pixel centres normalised to ``(0, 2 pi)`` (SAM-2's memory
  attention and memory encoder), channels ``[sin_y, cos_y, sin_x, cos_x]``, each a quarter.

MONAI's encodings are not used, as none computes the same values:

* ``monai.networks.blocks.pos_embed_utils.build_sincos_position_embedding`` (2D/3D only): its grid
  is the integer cell index (no ``+ 0.5``, no normalisation) and its channel order
  ``[sin_x, cos_x, sin_y, cos_y]``; even with the channels reordered it differs from
  :func:`sinusoidal_encoding_2d` by up to 1.04 (8 x 8 x 64 grid) and 1.94 (16 x 16 x 64).
* MONAI's only 1D sinusoid, the diffusion UNet's timestep embedding
  (``monai.networks.nets.diffusion_model_unet.get_timestep_embedding``, not exported), puts the
  cosines before the sines and computes the frequencies as ``exp(-k ln(T) / (dim / 2))``; with the
  channels interleaved it equals :func:`sinusoidal_encoding_1d` for some widths (256, 512) but not
  in general (500 of the even widths up to 1024 differ; max abs difference 1.9e-6 for 64 x 384),
  and it pads odd widths with zeros.

The 2D encoding is not built from the 1D one either, for the same reason: the 1D frequencies
``exp(-2k ln(T) / dim)`` and the 2D ones ``T ** (-k / (dim / 4))`` are the same numbers
mathematically but round differently in float32 (up to 6e-8), and the shipped weights were
trained with each as written here.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sinusoidal_encoding_1d", "sinusoidal_encoding_2d"]


def sinusoidal_encoding_1d(
    length: int, dim: int, device: torch.device | str | None = None, temperature: float = 10000.0
) -> torch.Tensor:
    """
    Sine/cosine encoding of the positions ``0 .. length - 1``.

    Channel ``2k`` holds ``sin(p * f_k)`` and channel ``2k + 1`` holds ``cos(p * f_k)`` with
    ``f_k = exp(-2k ln(temperature) / dim)``; an odd ``dim`` ends with a sine channel.

    Args:
        length: number of positions ``L``.
        dim: channels ``D``.
        device: device of the result.
        temperature: base of the frequency progression.

    Returns:
        float32 tensor ``(L, D)``.
    """
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(temperature) / dim))
    angles = position * freq
    enc = torch.zeros(length, dim, device=device)
    enc[:, 0::2] = torch.sin(angles)
    enc[:, 1::2] = torch.cos(angles)[:, : dim // 2]
    return enc


def sinusoidal_encoding_2d(
    height: int, width: int, dim: int, device: torch.device | str | None = None, temperature: float = 10000.0
) -> torch.Tensor:
    """
    Sine/cosine encoding of an ``height x width`` grid, coordinates of the pixel centres scaled to ``(0, 2 pi)``.

    Channels ``[0, dim/4)`` hold ``sin(y f_k)``, then ``cos(y f_k)``, ``sin(x f_k)``, ``cos(x f_k)``,
    with ``f_k = temperature ** (-k / (dim / 4))``.

    Args:
        height: rows ``h``.
        width: columns ``w``.
        dim: channels, a multiple of 4.
        device: device of the result.
        temperature: base of the frequency progression.

    Returns:
        float32 tensor ``(dim, h, w)``.

    Raises:
        ValueError: ``dim`` is not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    freq = temperature ** (-torch.arange(quarter, device=device, dtype=torch.float32) / quarter)

    def _axis(n: int) -> torch.Tensor:
        coord = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * 2 * math.pi
        angles = coord[:, None] * freq  # (n, dim / 4)
        return torch.cat([angles.sin(), angles.cos()], 1)

    pos_y = _axis(height)[:, None, :].expand(height, width, 2 * quarter)
    pos_x = _axis(width)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([pos_y, pos_x], -1).permute(2, 0, 1)
