"""SAM-2 image encoder: the Hiera trunk, its FPN neck and the sine position encoding.

The module and parameter names follow the official SAM-2 release (``facebookresearch/sam2``) so that the
``image_encoder.*`` part of an official ``sam2*.pt`` / ``sam2.1*.pt`` checkpoint loads with strict key
matching (see :func:`monai_ext.networks.pretrained.load_sam2_image_encoder`). The defaults are those of
the SAM-2.1 *hiera-small* configuration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from torch import nn

__all__ = [
    "FpnNeck",
    "Hiera",
    "HieraImageEncoder",
    "HieraMlp",
    "MultiScaleAttention",
    "MultiScaleBlock",
    "PatchEmbed",
    "PositionEmbeddingSine",
    "window_partition",
    "window_unpartition",
]


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """
    Cut a channels-last map into non-overlapping square windows, zero-padding the bottom/right edges.

    Args:
        x: tokens ``(B, H, W, C)``.
        window_size: side of a window.

    Returns:
        the windows ``(B * num_windows, window_size, window_size, C)`` and the padded size ``(Hp, Wp)``.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """
    Inverse of :func:`window_partition`: stitch windows back together and crop the padding.

    Args:
        windows: ``(B * num_windows, window_size, window_size, C)``.
        window_size: side of a window.
        padded_hw: padded size ``(Hp, Wp)`` the windows tile.
        hw: size ``(H, W)`` to crop to.

    Returns:
        tokens ``(B, H, W, C)``.
    """
    hp, wp = padded_hw
    h, w = hw
    nh, nw = hp // window_size, wp // window_size
    b = windows.shape[0] // (nh * nw)
    x = windows.reshape(b, nh, nw, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def _max_pool_channels_last(x: torch.Tensor, stride: tuple[int, int] | None) -> torch.Tensor:
    """Max-pool a ``(B, H, W, C)`` map with kernel = stride (no-op when ``stride`` is ``None``)."""
    if stride is None:
        return x
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """
    Overlapping patch embedding: one strided convolution, output channels-last.

    Args:
        in_channels: image channels.
        embed_dim: output channels.
        kernel_size: convolution kernel size.
        stride: convolution stride (the patch stride of the trunk).
        padding: convolution padding.
    """

    def __init__(
        self, in_channels: int = 3, embed_dim: int = 96, kernel_size: int = 7, stride: int = 4, padding: int = 3
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: images ``(B, C_in, H, W)``.

        Returns:
            tokens ``(B, H / stride, W / stride, embed_dim)``.
        """
        return self.proj(x).permute(0, 2, 3, 1)


class HieraMlp(nn.Module):
    """
    Two-layer perceptron; the linears live in ``layers`` to match the official ``mlp.layers.{0,1}`` keys.

    Args:
        dim: input and output width.
        hidden_dim: hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(..., dim)``.

        Returns:
            ``(..., dim)``.
        """
        return self.layers[1](self.act(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """
    Multi-head self-attention over a channels-last map, with optional max-pooling of the queries.

    Pooling only the queries is how Hiera downsamples between stages: the output has the pooled
    resolution while every key/value of the full-resolution input is still attended to.

    Args:
        dim: input channels.
        dim_out: output channels (also the attention width).
        num_heads: number of heads; must divide ``dim_out``.
        q_stride: query pooling stride, or ``None`` for no pooling.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"dim_out={dim_out} is not divisible by num_heads={num_heads}")
        self.dim, self.dim_out, self.num_heads = dim, dim_out, num_heads
        self.q_stride = None if q_stride is None else tuple(q_stride)
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, H, W, dim)`` (``B`` counts windows when windowed).

        Returns:
            ``(B, H', W', dim_out)`` with ``(H', W') = (H, W) / q_stride`` when pooling, else ``(H, W)``.
        """
        b, h, w, _ = x.shape
        # (B, HW, 3, heads, head_dim) -> three (B, HW, heads, head_dim)
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).unbind(2)
        if self.q_stride is not None:
            q = _max_pool_channels_last(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """
    Hiera transformer block: (windowed) attention with optional query pooling, then an MLP, pre-norm.

    When the width changes (first block of a stage) the shortcut goes through a linear ``proj`` on the
    normed input and the same max pooling as the queries, so both branches agree in shape.

    Args:
        dim: input channels.
        dim_out: output channels.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width relative to ``dim_out``.
        drop_path: stochastic depth rate (0 at inference).
        q_stride: query pooling stride, or ``None``.
        window_size: side of the attention windows at the input resolution; 0 for global attention.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        q_stride: tuple[int, int] | None = None,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = None if q_stride is None else tuple(q_stride)
        if self.q_stride is not None and window_size > 0 and any(window_size % s for s in self.q_stride):
            raise ValueError(f"window_size={window_size} must be divisible by the query stride {self.q_stride}")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_stride=self.q_stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = HieraMlp(dim_out, int(dim_out * mlp_ratio))
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, H, W, dim)``.

        Returns:
            tokens ``(B, H', W', dim_out)`` (``H', W'`` pooled by ``q_stride`` when set).
        """
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = _max_pool_channels_last(self.proj(x), self.q_stride)

        window_size = self.window_size
        if window_size > 0:
            x, (hp, wp) = window_partition(x, window_size)
        x = self.attn(x)
        if window_size > 0:
            if self.q_stride is not None:
                # every window shrank by the stride, so the padded canvas shrank by it too
                window_size //= self.q_stride[0]
                hp, wp = hp // self.q_stride[0], wp // self.q_stride[1]
            x = window_unpartition(x, window_size, (hp, wp), tuple(shortcut.shape[1:3]))

        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """
    Hiera trunk as used by SAM-2 ("HieraDet"): a 4-stage hierarchical vision transformer.

    Each stage after the first starts with a query-pooling block that halves the resolution and
    doubles width and heads. Blocks use windowed attention except those in ``global_att_blocks``; the
    first block of a stage still uses the window of the previous stage (at the input resolution). The
    absolute position embedding is a bicubically resized background embedding plus a tiled per-window
    embedding, so any input whose size is a multiple of :attr:`size_divisor` is accepted.

    Based on:

        Ryali et al. "Hiera: A Hierarchical Vision Transformer without the Bells-and-Whistles", ICML 2023;
        Bolya et al. "Window Attention is Bugged: How not to Interpolate Position Embeddings", ICLR 2024;
        Ravi et al. "SAM 2: Segment Anything in Images and Videos", 2024.

    Args:
        embed_dim: width of the first stage.
        num_heads: heads of the first stage.
        stages: number of blocks per stage.
        global_att_blocks: indices (over all blocks) of the blocks with global attention.
        window_spec: attention window side per stage.
        window_pos_embed_bkg_spatial_size: size of the learned background position embedding.
        q_pool: number of stage transitions that pool the queries (downsample).
        q_stride: pooling stride at those transitions.
        dim_mul: width multiplier at each stage transition.
        head_mul: heads multiplier at each stage transition.
        mlp_ratio: MLP hidden width relative to the block width.
        drop_path_rate: stochastic depth rate of the last block (linearly increasing from 0).
        in_channels: image channels.
        patch_kernel_size: kernel of the patch embedding convolution.
        patch_stride: stride of the patch embedding convolution.
        patch_padding: padding of the patch embedding convolution.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        stages: Sequence[int] = (1, 2, 11, 2),
        global_att_blocks: Sequence[int] = (7, 10, 13),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: Sequence[int] = (7, 7),
        q_pool: int = 3,
        q_stride: Sequence[int] = (2, 2),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
        patch_kernel_size: int = 7,
        patch_stride: int = 4,
        patch_padding: int = 3,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError(f"stages {tuple(stages)} and window_spec {tuple(window_spec)} differ in length")
        if not 0 <= q_pool < len(stages):
            raise ValueError(f"q_pool={q_pool} must be in [0, {len(stages) - 1}]")
        self.window_spec = tuple(window_spec)
        self.q_stride = (int(q_stride[0]), int(q_stride[1]))
        self.global_att_blocks = tuple(global_att_blocks)
        # last block index of every stage, and the first blocks of the stages that pool
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        self.q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_stride = patch_stride

        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_kernel_size, patch_stride, patch_padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, self.window_spec[0], self.window_spec[0]))
        # official weights overwrite these; a small random init helps training from scratch
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_window, std=0.02)

        depth = sum(stages)
        drop_rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList()
        dim, stage = embed_dim, 0
        for i in range(depth):
            # the window size lags one block: a stage's first block works at the previous resolution
            window_size = 0 if i in self.global_att_blocks else self.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            self.blocks.append(
                MultiScaleBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    drop_path=drop_rates[i],
                    q_stride=self.q_stride if i in self.q_pool_blocks else None,
                    window_size=window_size,
                )
            )
            dim = dim_out

        # official convention (what FpnNeck.backbone_channel_list must equal): lowest resolution first
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]
        # output strides, highest resolution first
        self.strides = [patch_stride * self.q_stride[0] ** min(i, q_pool) for i in range(len(stages))]
        # the window embedding is tiled over the patch grid and the grid is pooled q_pool times
        self.size_divisor = patch_stride * math.lcm(self.window_spec[0], self.q_stride[0] ** q_pool)

    def _get_pos_embed(self, hw: tuple[int, int]) -> torch.Tensor:
        """Position embedding ``(1, H, W, C)`` for a patch grid of size ``hw``."""
        h, w = hw
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            x: images ``(B, C_in, H, W)``, ``H`` and ``W`` multiples of :attr:`size_divisor` (32 by default).

        Returns:
            one feature map ``(B, C_i, H / s_i, W / s_i)`` per stage, highest resolution first
            (strides :attr:`strides`, channels ``channel_list[::-1]``).
        """
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f"input size {(h, w)} must be a multiple of {self.size_divisor} for this Hiera")
        x = self.patch_embed(x)
        x = x + self._get_pos_embed(tuple(x.shape[1:3]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class PositionEmbeddingSine(nn.Module):
    """
    Fixed 2D sine/cosine position encoding of a feature map (DETR style), as used by the SAM-2 neck.

    Half of the channels encode the row and half the column; within each half, channel pairs
    ``(2k, 2k + 1)`` hold ``sin`` and ``cos`` of the same frequency ``temperature ** (-2k / half)``.

    Args:
        num_pos_feats: number of output channels (even).
        temperature: base of the frequency progression.
        normalize: scale the 1-based coordinates to ``(0, scale]`` before encoding.
        scale: coordinate range when normalizing; ``2 * pi`` when ``None``.
    """

    def __init__(
        self, num_pos_feats: int = 256, temperature: int = 10000, normalize: bool = True, scale: float | None = None
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        # the encoding depends only on the grid size, so it is computed once per size and device
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _encode_axis(self, length: int, device: torch.device) -> torch.Tensor:
        half = self.num_pos_feats // 2
        coord = torch.arange(1, length + 1, dtype=torch.float32, device=device)
        if self.normalize:
            coord = coord / (coord[-1] + 1e-6) * self.scale
        idx = torch.arange(half, dtype=torch.float32, device=device)
        freq = self.temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / half)
        angles = coord[:, None] / freq
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)  # (length, half)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: feature map ``(B, C, H, W)``; only its shape and device are used.

        Returns:
            encoding ``(B, num_pos_feats, H, W)`` in float32 (rows first, then columns).
        """
        b, _, h, w = x.shape
        key = (h, w, str(x.device))
        if key not in self._cache:
            pos_y = self._encode_axis(h, x.device)[:, None, :].expand(h, w, -1)
            pos_x = self._encode_axis(w, x.device)[None, :, :].expand(h, w, -1)
            self._cache[key] = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).contiguous()
        return self._cache[key][None].repeat(b, 1, 1, 1)


class FpnNeck(nn.Module):
    """
    SAM-2 feature pyramid neck: a 1x1 lateral convolution per level and top-down fusion on some levels.

    There is no output convolution. Only levels listed in ``fpn_top_down_levels`` add the upsampled
    fused map from the level below; the others keep their lateral features.

    Args:
        d_model: output channels of every level.
        backbone_channel_list: trunk channels, lowest resolution first (``Hiera.channel_list``);
            ``convs.{i}`` maps ``backbone_channel_list[i]``.
        kernel_size: lateral convolution kernel size.
        stride: lateral convolution stride.
        padding: lateral convolution padding.
        fpn_interp_model: ``F.interpolate`` mode of the 2x top-down upsampling.
        fuse_type: ``"sum"`` or ``"avg"`` of lateral and top-down maps.
        fpn_top_down_levels: level indices (0 = highest resolution) receiving top-down features;
            ``None`` for all.
        position_encoding: encoding of the outputs; ``PositionEmbeddingSine(d_model)`` when ``None``.
    """

    def __init__(
        self,
        d_model: int = 256,
        backbone_channel_list: Sequence[int] = (768, 384, 192, 96),
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "nearest",
        fuse_type: str = "sum",
        fpn_top_down_levels: Sequence[int] | None = (2, 3),
        position_encoding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.position_encoding = position_encoding if position_encoding is not None else PositionEmbeddingSine(d_model)
        self.convs = nn.ModuleList()
        for channels in self.backbone_channel_list:
            # a Sequential holding "conv" keeps the official "convs.{i}.conv.*" key names
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(channels, d_model, kernel_size, stride=stride, padding=padding))
            self.convs.append(lateral)
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        n = len(self.convs)
        self.fpn_top_down_levels = list(range(n) if fpn_top_down_levels is None else fpn_top_down_levels)

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """
        Args:
            xs: trunk features, highest resolution first, channels ``backbone_channel_list[::-1]``.

        Returns:
            fused maps ``(B, d_model, H_i, W_i)``, highest resolution first.
        """
        if len(xs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} feature maps, got {len(xs)}")
        n = len(self.convs) - 1
        out: list[torch.Tensor] = [xs[0]] * len(xs)
        prev: torch.Tensor | None = None
        # from the coarsest level up, so each level can take the already fused map below it
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.fpn_top_down_levels and prev is not None:
                align = None if self.fpn_interp_model == "nearest" else False
                top_down = F.interpolate(
                    prev.float(), scale_factor=2.0, mode=self.fpn_interp_model, align_corners=align, antialias=False
                ).to(lateral.dtype)
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[i] = prev
        return out

    def forward_with_pos(self, xs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            xs: trunk features, highest resolution first.

        Returns:
            the fused maps (as :meth:`forward`) and their position encodings, in the maps' dtype.
        """
        feats = self.forward(xs)
        return feats, [self.position_encoding(f).to(f.dtype) for f in feats]


class HieraImageEncoder(nn.Module):
    """
    SAM-2 image encoder: Hiera trunk + FPN neck, dropping the ``scalp`` coarsest levels.

    With the defaults (SAM-2.1 hiera-small) an image ``(B, 3, H, W)`` gives three 256-channel maps at
    strides 4, 8 and 16; the last (stride 16) is SAM-2's "vision feature" and the two finer ones are its
    high-resolution features for the mask decoder. The module names (``trunk``, ``neck``) match the
    ``image_encoder.*`` keys of official SAM-2 checkpoints. Inputs are expected normalized with the
    ImageNet mean/std, as in SAM-2 (not done here).

    Args:
        embed_dim: trunk width of the first stage.
        num_heads: trunk heads of the first stage.
        stages: trunk blocks per stage.
        global_att_blocks: trunk blocks with global attention.
        window_spec: trunk attention window per stage.
        window_pos_embed_bkg_spatial_size: size of the trunk background position embedding.
        q_pool: number of pooling stage transitions.
        q_stride: pooling stride.
        mlp_ratio: trunk MLP ratio.
        drop_path_rate: trunk stochastic depth rate.
        d_model: neck output channels.
        fpn_top_down_levels: neck levels with top-down fusion.
        fpn_interp_model: neck upsampling mode.
        fuse_type: neck fusion (``"sum"`` or ``"avg"``).
        scalp: number of coarsest levels dropped from the output.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        stages: Sequence[int] = (1, 2, 11, 2),
        global_att_blocks: Sequence[int] = (7, 10, 13),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: Sequence[int] = (7, 7),
        q_pool: int = 3,
        q_stride: Sequence[int] = (2, 2),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        d_model: int = 256,
        fpn_top_down_levels: Sequence[int] | None = (2, 3),
        fpn_interp_model: str = "nearest",
        fuse_type: str = "sum",
        scalp: int = 1,
    ) -> None:
        super().__init__()
        if not 0 <= scalp < len(stages):
            raise ValueError(f"scalp={scalp} must leave at least one of the {len(stages)} levels")
        self.trunk = Hiera(
            embed_dim=embed_dim,
            num_heads=num_heads,
            stages=stages,
            global_att_blocks=global_att_blocks,
            window_spec=window_spec,
            window_pos_embed_bkg_spatial_size=window_pos_embed_bkg_spatial_size,
            q_pool=q_pool,
            q_stride=q_stride,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate,
        )
        self.neck = FpnNeck(
            d_model=d_model,
            backbone_channel_list=self.trunk.channel_list,
            fpn_interp_model=fpn_interp_model,
            fuse_type=fuse_type,
            fpn_top_down_levels=fpn_top_down_levels,
        )
        self.scalp = scalp
        self.out_channels = d_model
        n_kept = len(stages) - scalp
        self.strides = self.trunk.strides[:n_kept]
        self.stride = self.strides[-1]
        self.size_divisor = self.trunk.size_divisor

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            images: ``(B, 3, H, W)``, ``H`` and ``W`` multiples of :attr:`size_divisor` (32 by default).

        Returns:
            ``len(stages) - scalp`` maps ``(B, out_channels, H / s, W / s)`` for ``s`` in :attr:`strides`,
            highest resolution first; the last one is the vision feature.
        """
        feats = self.neck(self.trunk(images))
        return feats[: len(feats) - self.scalp]

    def forward_with_pos(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            images: ``(B, 3, H, W)``.

        Returns:
            the maps of :meth:`forward` and their sine position encodings (same shapes).
        """
        feats = self.forward(images)
        return feats, [self.neck.position_encoding(f).to(f.dtype) for f in feats]
