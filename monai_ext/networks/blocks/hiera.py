"""SAM-2's Hiera image encoder as a TGSAM-2 image encoder, built on ``transformers``' SAM-2 port.

The trunk (Hiera) and FPN neck are ``transformers.models.sam2.modeling_sam2.Sam2VisionModel``
(held as ``vision_encoder``, the name transformers' own ``Sam2Model`` uses). Around it this module
adds what SAM-2 does outside its image encoder: the ImageNet normalisation of the input and the two
1x1 projections (``conv_s0`` / ``conv_s1``, in SAM-2's mask decoder) that reduce the stride-4 and
stride-8 levels for the decoder. An official SAM-2 / SAM-2.1 checkpoint loads with
:func:`monai_ext.networks.pretrained.load_sam2_image_encoder` (``pretrained=True``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["HIERA_VARIANTS", "HieraImageEncoder"]

# Trunk settings of the SAM-2 / SAM-2.1 releases (facebookresearch/sam2 configs); the neck is the same
# for all of them (256 channels, top-down fusion into the two coarsest kept levels, scalp 1).
HIERA_VARIANTS: dict[str, dict] = {
    "tiny": {"embed_dim": 96, "num_heads": 1, "stages": (1, 2, 7, 2), "global_att_blocks": (5, 7, 9),
             "window_spec": (8, 4, 14, 7), "window_pos_embed_bkg_spatial_size": (7, 7)},
    "small": {"embed_dim": 96, "num_heads": 1, "stages": (1, 2, 11, 2), "global_att_blocks": (7, 10, 13),
              "window_spec": (8, 4, 14, 7), "window_pos_embed_bkg_spatial_size": (7, 7)},
    "base_plus": {"embed_dim": 112, "num_heads": 2, "stages": (2, 3, 16, 3), "global_att_blocks": (12, 16, 20),
                  "window_spec": (8, 4, 14, 7), "window_pos_embed_bkg_spatial_size": (14, 14)},
    "large": {"embed_dim": 144, "num_heads": 2, "stages": (2, 6, 36, 4), "global_att_blocks": (23, 33, 43),
              "window_spec": (8, 4, 16, 8), "window_pos_embed_bkg_spatial_size": (7, 7)},
}


class HieraImageEncoder(nn.Module):
    """SAM-2 image encoder: ``encode(images in [0, 1])`` -> stride-16 features and two high-resolution levels.

    Args:
        variant: a key of :data:`HIERA_VARIANTS` (``"tiny"``, ``"small"``, ``"base_plus"``, ``"large"``);
            ``"small"`` is TGSAM-2's (sam2.1_hiera_small, 46 M parameters with the rest of SAM-2).
        out_channels: channels of the neck's levels (SAM-2: 256, the decoder width).
        pretrained: load ``checkpoint`` (an official SAM-2 / SAM-2.1 checkpoint of this variant).
        checkpoint: path of that checkpoint; required with ``pretrained``, as nothing is downloaded.
        **trunk: overrides of the variant's trunk settings (``embed_dim``, ``num_heads``, ``stages``,
            ``global_att_blocks``, ``window_spec``, ``window_pos_embed_bkg_spatial_size``), e.g. for a
            miniature in tests.

    Raises:
        ValueError: an unknown variant or trunk setting.
        FileNotFoundError: ``pretrained`` without an existing ``checkpoint``.
    """

    stride = 16
    size_divisor = 32  # the patch embedding (4) and three pooling stages (2 each)

    def __init__(
        self,
        variant: str = "small",
        out_channels: int = 256,
        pretrained: bool = False,
        checkpoint: str | os.PathLike | None = None,
        **trunk: Sequence[int] | int,
    ) -> None:
        super().__init__()
        from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig
        from transformers.models.sam2.modeling_sam2 import Sam2VisionModel

        if variant not in HIERA_VARIANTS:
            raise ValueError(f"unknown Hiera variant {variant!r}; known: {sorted(HIERA_VARIANTS)}")
        unknown = sorted(set(trunk) - set(HIERA_VARIANTS[variant]))
        if unknown:
            raise ValueError(f"unknown Hiera trunk settings {unknown}; known: {sorted(HIERA_VARIANTS[variant])}")
        cfg = {**HIERA_VARIANTS[variant], **trunk}
        n_stages = len(cfg["stages"])
        if len(cfg["window_spec"]) != n_stages:
            raise ValueError(f"stages {cfg['stages']} and window_spec {cfg['window_spec']} differ in length")
        if n_stages != 4:  # patch embedding + three pooling stages: the strides 4, 8, 16 (and 32) of SAM-2
            raise ValueError(f"SAM-2's Hiera has 4 stages, got stages {cfg['stages']}")
        dims = [int(cfg["embed_dim"]) * 2**i for i in range(n_stages)]
        backbone = Sam2HieraDetConfig(
            hidden_size=dims[0],
            num_attention_heads=int(cfg["num_heads"]),
            blocks_per_stage=list(cfg["stages"]),
            embed_dim_per_stage=dims,
            num_attention_heads_per_stage=[int(cfg["num_heads"]) * 2**i for i in range(n_stages)],
            window_size_per_stage=list(cfg["window_spec"]),
            global_attention_blocks=list(cfg["global_att_blocks"]),
            window_positional_embedding_background_size=list(cfg["window_pos_embed_bkg_spatial_size"]),
        )
        # three output levels (strides 4, 8, 16): SAM-2 drops the coarsest ("scalp": 1)
        config = Sam2VisionConfig(
            backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=out_channels, num_feature_levels=3
        )
        self.vision_encoder = Sam2VisionModel(config)
        self.out_channels = out_channels
        self.high_res_channels = (out_channels // 8, out_channels // 4)
        self.conv_s0 = nn.Conv2d(out_channels, out_channels // 8, 1)
        self.conv_s1 = nn.Conv2d(out_channels, out_channels // 4, 1)
        # SAM-2 was trained on ImageNet-normalised images (LiteMedSAM's TinyViT on [0, 1])
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            from monai_ext.networks.pretrained import SAM2_HELP, load_sam2_image_encoder

            if checkpoint is None:
                raise FileNotFoundError(f"HieraImageEncoder(pretrained=True) needs checkpoint=PATH: {SAM2_HELP}.")
            load_sam2_image_encoder(self, checkpoint)

    @property
    def trunk(self) -> nn.Module:
        """The Hiera trunk (``Sam2HieraDetModel``)."""
        return self.vision_encoder.backbone

    @property
    def neck(self) -> nn.Module:
        """The FPN neck (``Sam2VisionNeck``)."""
        return self.vision_encoder.neck

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The neck's levels at strides 4, 8 and 16 ``(B, out_channels, H / s, W / s)`` of normalised images.

        Args:
            images: ``(B, 3, H, W)``, already ImageNet-normalised, ``H`` and ``W`` multiples of 32.
        """
        if images.ndim != 4 or images.shape[-1] % self.size_divisor or images.shape[-2] % self.size_divisor:
            raise ValueError(
                f"Hiera expects (B, 3, H, W) with H and W multiples of {self.size_divisor}, got {tuple(images.shape)}"
            )
        return list(self.vision_encoder(pixel_values=images).fpn_hidden_states)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features for TGSAM-2.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].

        Returns:
            ``(stride-16 features (B, C, H/16, W/16), [stride-4 (B, C/8, H/4, W/4), stride-8 (B, C/4, H/8, W/8)])``.
        """
        s4, s8, s16 = self.pyramid((images - self.pixel_mean) / self.pixel_std)
        return s16, [self.conv_s0(s4), self.conv_s1(s8)]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.encode(images)
