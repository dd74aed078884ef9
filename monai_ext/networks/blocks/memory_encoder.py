"""Text-Tracking Memory Encoder (TGSAM-2 eq. 5-6): memory of one frame from its features, mask and the text."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks.blocks.position_encoding import sinusoidal_encoding_2d
from monai_ext.networks.blocks.sam_transformer import LayerNorm2d

__all__ = ["MaskDownSampler", "TextFuserBlock", "TextTrackingMemoryEncoder"]


class MaskDownSampler(nn.Module):
    """``num_layers`` repeats of Act(LN(Conv)) (eq. 5), then a 1x1 conv to ``embed_dim`` channels.

    The first ``log2(total_stride)`` layers have stride 2 and the rest stride 1, so the mask
    lands on the memory grid whatever the ratio of mask to feature size; channels grow by 4
    per stride-2 layer as in SAM-2.

    Args:
        embed_dim: output channels.
        num_layers: p (4 in the paper).
        total_stride: mask size / memory grid size (a power of 2 up to ``2 ** num_layers``).
    """

    def __init__(self, embed_dim: int = 256, num_layers: int = 4, total_stride: int = 16) -> None:
        super().__init__()
        n_down = int(round(math.log2(total_stride)))
        if 2**n_down != total_stride or n_down > num_layers:
            raise ValueError(f"total_stride must be a power of 2 up to 2**{num_layers}, got {total_stride}")
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(num_layers):
            stride = 2 if i < n_down else 1
            c_out = min(c_in * stride * stride, embed_dim) if stride == 2 else c_in
            c_out = max(c_out, 4)
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), LayerNorm2d(c_out), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, embed_dim, 1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class TextFuserBlock(nn.Module):
    """ConvNeXt-style block with the text added by summation (eq. 6).

    ``x + gamma * PwConv2(Act(PwConv1(LN(DwConv(x))) + W T))``.

    Args:
        dim: channels.
        text_dim: channels of the pooled text (0: no text, a plain SAM-2 fuser block).
        kernel_size: depthwise kernel.
        expansion: width of the point-wise hidden layer.
    """

    def __init__(self, dim: int = 256, text_dim: int = 256, kernel_size: int = 7, expansion: int = 4, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, expansion * dim, 1)
        self.text_proj = nn.Linear(text_dim, expansion * dim) if text_dim > 0 else None
        self.pwconv2 = nn.Conv2d(expansion * dim, dim, 1)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        y = self.pwconv1(self.norm(self.dwconv(x)))
        if self.text_proj is not None and text is not None:
            y = y + self.text_proj(text)[:, :, None, None]
        return x + self.gamma * self.pwconv2(F.gelu(y))


class TextTrackingMemoryEncoder(nn.Module):
    """Memory features of one frame: mask (downsampled, eq. 5) added to its features, fused with the text (eq. 6).

    Args:
        dim: channels of the frame features.
        memory_dim: channels of the stored memory (SAM-2: 64).
        text_dim: channels of the pooled text; 0 for SAM-2's memory encoder without text (ablation).
        num_downsample: p.
        num_fuser: q.
        mask_stride: mask size / memory grid size.
    """

    def __init__(
        self, dim: int = 256, memory_dim: int = 64, text_dim: int = 256, num_downsample: int = 4, num_fuser: int = 2, mask_stride: int = 16
    ) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(dim, num_downsample, mask_stride)
        self.pix_feat_proj = nn.Conv2d(dim, dim, 1)
        self.fuser = nn.ModuleList(TextFuserBlock(dim, text_dim) for _ in range(num_fuser))
        self.out_proj = nn.Conv2d(dim, memory_dim, 1)
        self.dim, self.memory_dim, self.mask_stride = dim, memory_dim, mask_stride
        self.uses_text = text_dim > 0

    def forward(self, features: torch.Tensor, mask_logits: torch.Tensor, text: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(memory (B, memory_dim, h, w), its positional encoding (1, memory_dim, h, w))``.

        Args:
            features: (B, dim, h, w) frame features on the memory grid.
            mask_logits: (B, 1, H, W) predicted mask logits, ``H / h`` = ``mask_stride``.
            text: (B, text_dim) pooled text.
        """
        mask = torch.sigmoid(mask_logits)
        x = self.pix_feat_proj(features) + self.mask_downsampler(mask)
        for block in self.fuser:
            x = block(x, text)
        memory = self.out_proj(x)
        h, w = memory.shape[-2:]
        return memory, sinusoidal_encoding_2d(h, w, self.memory_dim, memory.device)[None]
