"""Pixel-level attention module (PLAM) used on the skip connections of RecLMIS / LViT."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution

__all__ = ["PixelLevelAttention"]


class PixelLevelAttention(nn.Module):
    """
    Pixel-level attention (PLAM): a per-pixel gate computed from channel statistics.

    Two 1x1 convolution + ReLU branches are reduced over the channels, one by the mean
    and one by the max; a per-pixel MLP (implemented as 1x1 convolutions) maps
    ``[avg, max, avg + max]`` (3 values) through ``3 * hidden_ratio`` hidden units to one
    value, whose sigmoid multiplies the input.

    Based on the PLAM of:

        Li et al. "LViT: Language meets Vision Transformer in Medical Image Segmentation",
        IEEE TMI 2023, used on the skip connections of RecLMIS (Huang et al., IEEE TMI 2024).

    Args:
        spatial_dims: number of spatial dimensions of the input.
        channels: number of input (and output) channels.
        hidden_ratio: width of the per-pixel MLP hidden layer relative to its 3 inputs.
        sigmoid: whether to squash the gate with a sigmoid; without it the raw MLP output
            multiplies the input.
    """

    def __init__(self, spatial_dims: int, channels: int, hidden_ratio: int = 2, sigmoid: bool = True) -> None:
        super().__init__()
        self.avg_branch = Convolution(spatial_dims, channels, channels, kernel_size=1, act="RELU", norm=None)
        self.max_branch = Convolution(spatial_dims, channels, channels, kernel_size=1, act="RELU", norm=None)
        hidden = 3 * hidden_ratio
        self.gate = nn.Sequential(
            Convolution(spatial_dims, 3, hidden, kernel_size=1, act="RELU", norm=None),
            Convolution(spatial_dims, hidden, 1, kernel_size=1, act=None, norm=None, conv_only=True),
        )
        self.sigmoid = sigmoid

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input features ``(B, C, *spatial)``.

        Returns:
            the gate ``(B, 1, *spatial)``.
        """
        avg = self.avg_branch(x).mean(dim=1, keepdim=True)
        mx = self.max_branch(x).amax(dim=1, keepdim=True)
        gate = self.gate(torch.cat([avg, mx, avg + mx], dim=1))
        return torch.sigmoid(gate) if self.sigmoid else gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input features ``(B, C, *spatial)``.

        Returns:
            ``x`` multiplied by its pixel-level attention map, same shape as ``x``.
        """
        return x * self.attention_map(x)
