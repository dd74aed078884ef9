"""Text-Conditioned Visual Perception (TGSAM-2 eq. 4)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks.blocks.sam_transformer import Attention

__all__ = ["TextConditionedVisualPerception"]


class TextConditionedVisualPerception(nn.Module):
    """Condition the last-level visual features on the text, then derive higher-resolution levels.

    ``f_N := MHCA(T, f_N)``; ``f_{N-1} := GELU(DeConv(f_N))``; ``f_{N-2} := DeConv(f_{N-1})``.
    The cross attention keeps the visual map's shape: each visual position attends to the text
    tokens and the result is added back with layer normalisation (the paper names the text as
    query, which would return one vector per word instead of a feature map for the
    transposed convolutions that follow; see the bundle docs). The two derived levels are the
    high-resolution features of SAM-2's mask decoder (2x and 4x the embedding size, with
    ``high_res_channels`` channels); backbone features of those levels, when a backbone has
    them (Hiera), are added to them.

    Args:
        dim: visual channels of ``f_N``.
        text_dim: channels of the projected text tokens.
        num_heads: attention heads.
        high_res_channels: channels of ``(f_{N-2}, f_{N-1})``, i.e. the 4x and 2x levels.
    """

    def __init__(self, dim: int = 256, text_dim: int = 256, num_heads: int = 8, high_res_channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        self.cross_attn = Attention(dim, num_heads, kv_in_dim=text_dim)
        self.norm = nn.LayerNorm(dim)
        c0, c1 = high_res_channels
        self.deconv_n1 = nn.ConvTranspose2d(dim, c1, 2, 2)
        self.deconv_n2 = nn.ConvTranspose2d(c1, c0, 2, 2)

    def forward(
        self,
        features: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        backbone_high_res: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(f_N (B, C, h, w), [f_{N-2} (B, c0, 4h, 4w), f_{N-1} (B, c1, 2h, 2w)])``.

        Args:
            features: ``f_N`` (B, C, h, w).
            text: (B, L, text_dim) projected text tokens.
            text_mask: (B, L) True for real tokens.
            backbone_high_res: optional backbone features at 4x and 2x (same channels as the outputs).
        """
        b, c, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2)
        tokens = self.norm(tokens + self.cross_attn(tokens, text, text, text_mask))
        f_n = tokens.transpose(1, 2).reshape(b, c, h, w)
        f_n1 = F.gelu(self.deconv_n1(f_n))
        f_n2 = self.deconv_n2(f_n1)
        if backbone_high_res is not None:
            f_n2 = f_n2 + backbone_high_res[0]
            f_n1 = f_n1 + backbone_high_res[1]
        return f_n, [f_n2, f_n1]
