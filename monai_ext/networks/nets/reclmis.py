"""RecLMIS: cross-modal conditioned reconstruction for language-guided medical image segmentation."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.networks.blocks import Convolution, UpSample
from monai.networks.nets.basic_unet import Down, TwoConv

from monai_ext.networks import register_network
from monai_ext.prompts.encoder import unpack_text
from monai_ext.networks.blocks import (
    ConditionedReconstructor,
    CrossModalAttention,
    InterestHead,
    PixelLevelAttention,
    sample_interest_mask,
    sinusoidal_encoding_1d,
)

__all__ = [
    "RecLMIS",
    "RecLMISSegmenter",
    "RecLMISOutput",
    "CrossModalTokens",
    "PLAMUpBlock",
    "resample_position_grid",
    "count_parameters",
    "text_groups",
]

_ACT = ("relu", {"inplace": True})
_NORM = "batch"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """
    Number of parameters of ``model`` (shared parameters counted once).

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        the number of scalar parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def text_groups(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    Group ids of identical texts in a batch (same token features on the valid positions).

    Args:
        tokens: ``(B, L, D)`` token features.
        mask: boolean ``(B, L)`` of valid tokens.

    Returns:
        long tensor ``(B,)``; equal ids mean identical texts.
    """
    flat = (tokens.detach() * mask[..., None]).flatten(1)
    flat = torch.cat([flat, mask.to(flat.dtype)], dim=1)
    return torch.unique(flat, dim=0, return_inverse=True)[1]


class RecLMISOutput(NamedTuple):
    """
    Training output of :class:`RecLMIS`: the logits and everything its losses need.

    ``N = h * w`` bottleneck patches, ``L`` words, ``D = embed_dim``.
    """

    logits: torch.Tensor  #: segmentation logits ``(B, out_channels, H, W)``.
    vision: torch.Tensor  #: patch features ``V`` before the interaction ``(B, N, D)``.
    text: torch.Tensor  #: word features ``E`` after the text projection ``(B, L, D)``.
    text_mask: torch.Tensor  #: boolean ``(B, L)``, ``True`` for valid words.
    w_poi: torch.Tensor  #: patches of interest ``(B, N)`` (uniform without the interaction).
    w_woi: torch.Tensor  #: words of interest ``(B, L)``, 0 on padding (uniform without the interaction).
    text_groups: torch.Tensor  #: ``(B,)`` ids; equal ids mark identical texts in the batch.
    vision_recon: torch.Tensor | None = None  #: CVR output ``V_hat`` ``(B, N, D)``.
    vision_target: torch.Tensor | None = None  #: CVR target, ``V`` detached.
    vision_masked: torch.Tensor | None = None  #: boolean ``(B, N)``, patches zeroed for CVR.
    text_recon: torch.Tensor | None = None  #: CLR output ``E_hat`` ``(B, L, D)``.
    text_target: torch.Tensor | None = None  #: CLR target, ``E`` detached.
    text_masked: torch.Tensor | None = None  #: boolean ``(B, L)``, words zeroed for CLR.


class PLAMUpBlock(nn.Module):
    """
    Decoder stage: nearest 2x upsampling, pixel-level attention (PLAM) on the skip
    connection, concatenation and two 3x3 convolutions.

    Args:
        spatial_dims: number of spatial dimensions.
        in_chns: channels of the features to upsample.
        skip_chns: channels of the encoder skip features.
        out_chns: output channels.
    """

    def __init__(self, spatial_dims: int, in_chns: int, skip_chns: int, out_chns: int) -> None:
        super().__init__()
        self.upsample = UpSample(
            spatial_dims, in_chns, in_chns, 2, mode="nontrainable", pre_conv=None, interp_mode="nearest",
            align_corners=None,
        )
        self.attention = PixelLevelAttention(spatial_dims, skip_chns)
        self.convs = TwoConv(spatial_dims, in_chns + skip_chns, out_chns, _ACT, _NORM, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: features ``(B, in_chns, *spatial)``.
            skip: encoder features ``(B, skip_chns, *2 x spatial)``.

        Returns:
            ``(B, out_chns, *2 x spatial)``.
        """
        return self.convs(torch.cat([self.attention(skip), self.upsample(x)], dim=1))


def resample_position_grid(pos_embed: torch.Tensor, grid_size: int, h: int, w: int) -> torch.Tensor:
    """
    Args:
        pos_embed: a learned position embedding ``(1, grid_size * grid_size, D)``.
        grid_size: the side of its square grid.
        h: height of the grid wanted.
        w: width of the grid wanted.

    Returns:
        the embedding bicubically interpolated to ``(1, h * w, D)``.
    """
    d = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, grid_size, grid_size, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


class CrossModalTokens(nn.Module):
    """
    Turns the bottleneck feature map and the text encoder's token features into the patch
    tokens ``V`` and word tokens ``E`` of a common ``embed_dim`` (RecLMIS Sec. III-A), and
    holds the learned position embedding of the patches.

    Args:
        bottleneck_channels: channels of the last encoder stage.
        text_dim: feature dimension of the input token features (384 MiniLM, 512 CLIP, 768 BERT).
        embed_dim: common feature dimension ``D``.
        grid_size: side of the bottleneck grid at the nominal image size (224 -> 14); the
            position embedding is interpolated for other grids, and a state dict saved with
            another grid size is resampled to this one when loaded.
        text_kernel_size: kernel of the ``Conv1d`` text projection.
    """

    def __init__(
        self, bottleneck_channels: int, text_dim: int, embed_dim: int, grid_size: int, text_kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.vision_proj: nn.Module = (
            nn.Identity()
            if bottleneck_channels == embed_dim
            else Convolution(2, bottleneck_channels, embed_dim, kernel_size=1, conv_only=True)
        )
        self.text_proj = nn.Conv1d(text_dim, embed_dim, text_kernel_size, padding=text_kernel_size // 2)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_size * grid_size, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def position(self, h: int, w: int) -> torch.Tensor:
        """
        Args:
            h: height of the bottleneck grid.
            w: width of the bottleneck grid.

        Returns:
            the position embedding ``(1, h * w, D)``, bicubically interpolated when the grid
            differs from ``grid_size x grid_size``.
        """
        if h == w == self.grid_size:
            return self.pos_embed
        return resample_position_grid(self.pos_embed, self.grid_size, h, w)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # weights trained at another nominal size hold another grid: resample it exactly as
        # position() would at run time, so those weights give the same output at this size
        key = prefix + "pos_embed"
        saved = state_dict.get(key)
        if isinstance(saved, torch.Tensor) and saved.shape != self.pos_embed.shape and saved.ndim == 3:
            side = round(saved.shape[1] ** 0.5)
            if side * side == saved.shape[1] and saved.shape[2] == self.pos_embed.shape[2]:
                state_dict[key] = resample_position_grid(saved.float(), side, self.grid_size, self.grid_size)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def vision(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """
        Args:
            bottleneck: ``(B, C, h, w)``.

        Returns:
            patch tokens ``V`` ``(B, h * w, D)`` (without the position embedding).
        """
        return self.vision_proj(bottleneck).flatten(2).transpose(1, 2)

    def text(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            tokens: ``(B, L, text_dim)``.
            mask: boolean ``(B, L)`` of valid words; padded words are zeroed before and after
                the projection.

        Returns:
            word tokens ``E`` ``(B, L, D)``.
        """
        m = mask[..., None].to(tokens.dtype)
        return self.text_proj((tokens * m).transpose(1, 2)).transpose(1, 2) * m


class RecLMISSegmenter(nn.Module):
    """
    The inference network of RecLMIS: U-Net encoder, text projection, the text-to-vision
    encoder of the Conditioned Interaction and the PLAM decoder (the inference path of
    RecLMIS Fig. 3). :meth:`RecLMIS.inference_network` returns it; its state dict can be
    saved and loaded on its own.

    Args:
        in_channels: image channels.
        out_channels: output channels (sigmoid logits, one per target).
        channels: the five encoder widths, e.g. ``(64, 128, 256, 512, 512)``.
        text_dim: feature dimension of the input token features.
        embed_dim: common vision/text feature dimension of the interaction.
        num_heads: attention heads of the interaction.
        dropout: dropout of the interaction.
        image_size: nominal input side (multiple of 16); sets the size of the learned
            position embedding of the bottleneck patches (interpolated for other sizes).
        use_interaction: with ``False`` there is no text path and the network is a plain
            PLAM U-Net (the text is accepted and ignored).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        text_dim: int = 384,
        embed_dim: int = 512,
        num_heads: int = 4,
        dropout: float = 0.1,
        image_size: int = 224,
        use_interaction: bool = True,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 5:
            raise ValueError(f"channels must have 5 entries, got {channels}.")
        if image_size % 16 != 0:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}.")
        self.in_channels, self.out_channels, self.text_dim = in_channels, out_channels, text_dim
        self.channels, self.embed_dim, self.image_size = channels, embed_dim, image_size
        self.use_interaction = use_interaction
        c0, c1, c2, c3, c4 = channels

        self.inc = TwoConv(2, in_channels, c0, _ACT, _NORM, bias=True)
        self.downs = nn.ModuleList([Down(2, channels[i], channels[i + 1], _ACT, _NORM, bias=True) for i in range(4)])
        self.ups = nn.ModuleList(
            [
                PLAMUpBlock(2, c4, c3, c2),
                PLAMUpBlock(2, c2, c2, c1),
                PLAMUpBlock(2, c1, c1, c0),
                PLAMUpBlock(2, c0, c0, c0),
            ]
        )
        self.head = Convolution(2, c0, out_channels, kernel_size=1, conv_only=True)

        self.tokens: CrossModalTokens | None = None
        self.text_to_vision: CrossModalAttention | None = None
        self.vision_out: nn.Module | None = None
        if use_interaction:
            self.tokens = CrossModalTokens(c4, text_dim, embed_dim, image_size // 16)
            self.text_to_vision = CrossModalAttention(embed_dim, num_heads, dropout)
            self.vision_out = (
                nn.Identity() if c4 == embed_dim else Convolution(2, embed_dim, c4, kernel_size=1, conv_only=True)
            )

    def check_inputs(
        self, image: torch.Tensor, text: Any, text_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Validate the inputs and unpack the text.

        Args:
            image: ``(B, in_channels, H, W)`` with ``H, W`` multiples of 16.
            text: token features ``(B, L, text_dim)``, or an object with ``.tokens`` and
                ``.mask`` (e.g. ``TextFeatures``), or a mapping with ``"tokens"`` / ``"mask"``.
            text_mask: boolean ``(B, L)``, ``True`` for valid tokens; overrides the mask of
                ``text``; ``None``: all tokens valid.

        Returns:
            ``(tokens, mask)`` on the device and (floating) dtype of ``image``.

        Raises:
            ValueError: on any shape mismatch.
        """
        text, text_mask = unpack_text(text, text_mask)
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            raise ValueError(
                f"image must be a 4D tensor (B, C, H, W), got shape {tuple(getattr(image, 'shape', ()))}; "
                "run sequences frame by frame (fold T into the batch)."
            )
        b, c, h, w = image.shape
        if c != self.in_channels:
            raise ValueError(f"image has {c} channels, the network expects in_channels={self.in_channels}.")
        if h % 16 or w % 16:
            raise ValueError(f"image height and width must be multiples of 16, got {h}x{w}.")
        if not isinstance(text, torch.Tensor) or text.ndim != 3:
            raise ValueError(
                f"text tokens must be a 3D tensor (B, L, D), got shape {tuple(getattr(text, 'shape', ()))}."
            )
        if text.shape[0] != b:
            raise ValueError(f"text batch ({text.shape[0]}) differs from image batch ({b}).")
        if text.shape[2] != self.text_dim:
            raise ValueError(f"text token dim is {text.shape[2]}, the network expects text_dim={self.text_dim}.")
        if text.shape[1] < 1:
            raise ValueError("text must have at least one token.")
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=image.device)
        if text_mask.shape != text.shape[:2]:
            raise ValueError(f"text_mask shape {tuple(text_mask.shape)} must be (B, L) = {tuple(text.shape[:2])}.")
        text_mask = text_mask.to(device=image.device, dtype=torch.bool)
        if not bool(text_mask.any(dim=1).all()):
            raise ValueError("every text must have at least one valid (unmasked) token.")
        return text.to(device=image.device, dtype=image.dtype), text_mask

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            image: ``(B, in_channels, H, W)``.

        Returns:
            the five encoder feature maps, finest first; the last is the bottleneck at ``H/16``.
        """
        feats = [self.inc(image)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            feats: encoder feature maps as from :meth:`encode`, the bottleneck possibly fused.

        Returns:
            logits ``(B, out_channels, H, W)``.
        """
        x = feats[4]
        for up, skip in zip(self.ups, feats[3::-1]):
            x = up(x, skip)
        return self.head(x)

    def interact(
        self, vision: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, pos: torch.Tensor
    ) -> torch.Tensor:
        """
        Text-to-vision encoder: the patches (with position) query the words, giving ``V'``.

        Args:
            vision: ``V`` ``(B, N, D)``.
            text: ``E`` ``(B, L, D)``.
            text_mask: boolean ``(B, L)``.
            pos: position embedding ``(1, N, D)``.

        Returns:
            ``V'`` ``(B, N, D)``.
        """
        return self.text_to_vision(vision + pos, text, text_mask)  # type: ignore[misc]

    def forward_features(self, image: torch.Tensor, tokens: torch.Tensor, text_mask: torch.Tensor) -> dict:
        """
        Run the inference path and keep the intermediate tokens (inputs already checked).

        Returns:
            dict with ``logits``, ``feats`` (encoder maps), and with the interaction ``vision``
            (``V``), ``text`` (``E``), ``vision_fused`` (``V'``), ``pos``.
        """
        feats = self.encode(image)
        out: dict[str, Any] = {"feats": feats}
        if self.use_interaction:
            bottleneck = feats[4]
            h, w = bottleneck.shape[-2:]
            pos = self.tokens.position(h, w)  # type: ignore[union-attr]
            vision = self.tokens.vision(bottleneck)  # type: ignore[union-attr]
            text = self.tokens.text(tokens, text_mask)  # type: ignore[union-attr]
            fused = self.interact(vision, text, text_mask, pos)
            fused_map = fused.transpose(1, 2).reshape(fused.shape[0], -1, h, w)
            feats = feats[:4] + [self.vision_out(fused_map)]  # type: ignore[misc]
            out.update(vision=vision, text=text, vision_fused=fused, pos=pos)
        out["logits"] = self.decode(feats)
        return out

    def forward(self, image: torch.Tensor, text: Any, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            image: ``(B, in_channels, H, W)``, ``H, W`` multiples of 16.
            text: token features ``(B, L, text_dim)`` or a ``TextFeatures``-like object.
            text_mask: boolean ``(B, L)`` of valid tokens, or ``None``.

        Returns:
            logits ``(B, out_channels, H, W)``.
        """
        tokens, mask = self.check_inputs(image, text, text_mask)
        return self.forward_features(image, tokens, mask)["logits"]


@register_network("reclmis")
class RecLMIS(nn.Module):
    """
    RecLMIS: language-guided segmentation with cross-modal conditioned reconstruction.

    A PLAM U-Net whose last encoder stage meets the text in a single Conditioned Interaction
    (text-to-vision and vision-to-text cross-attention, patches/words of interest
    ``W_poi`` / ``W_woi``), trained with a conditioned contrastive loss and two auxiliary
    conditioned reconstructions: CVR (masked patches rebuilt from the words) and CLR (masked
    words rebuilt from the patches). The reconstructions and the vision-to-text branch exist
    only for training; :meth:`inference_network` gives the smaller inference network.

    Based on:

        Huang et al. "Cross-model Conditioned Reconstruction for Language-guided Medical Image
        Segmentation", IEEE TMI 2024 (arXiv:2404.02845).

    In training mode ``forward`` returns a :class:`RecLMISOutput` (logits + everything
    :class:`monai_ext.losses.RecLMISLoss` needs); in eval mode it returns the logits.

    Args:
        in_channels: image channels.
        out_channels: output channels (sigmoid logits).
        base_channels: width of the first stage; the stages are ``b, 2b, 4b, 8b, 8b``.
        channels: explicit five stage widths, overriding ``base_channels``.
        text_dim: feature dimension of the input token features (384 MiniLM, 512 CLIP, 768 BERT).
        embed_dim: common feature dimension of the interaction and reconstructions; when it
            differs from the bottleneck width, 1x1 convolutions map in and out.
        num_heads: attention heads of the interaction and of the reconstructors.
        dropout: dropout rate of the interaction and reconstructors.
        num_recon_layers: layers of each conditioned reconstructor.
        recon_ffn_dim: hidden width of the reconstructors' feed-forward networks
            (default ``2 * embed_dim``).
        alpha_v: fraction of the patches masked for CVR.
        alpha_t: fraction of the (valid) words masked for CLR.
        image_size: nominal input side (multiple of 16), sets the learned patch position
            embedding (interpolated for other input sizes).
        recon_condition: how the reconstructors use the interest weights: ``"hadamard"``
            (eq. 7/9, multiplies the attention scores) or ``"log"`` (adds their log).
        use_interaction: Conditioned Interaction on (off: plain PLAM U-Net, uniform interest
            weights for the auxiliary losses, the text does not reach the segmentation).
        use_cvr: conditioned vision reconstruction (training only).
        use_clr: conditioned language reconstruction (training only).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_channels: int = 64,
        channels: Sequence[int] | None = None,
        text_dim: int = 384,
        embed_dim: int = 512,
        num_heads: int = 4,
        dropout: float = 0.1,
        num_recon_layers: int = 3,
        recon_ffn_dim: int | None = None,
        alpha_v: float = 0.5,
        alpha_t: float = 0.3,
        image_size: int = 224,
        recon_condition: str = "hadamard",
        use_interaction: bool = True,
        use_cvr: bool = True,
        use_clr: bool = True,
    ) -> None:
        super().__init__()
        if channels is None:
            b = base_channels
            channels = (b, 2 * b, 4 * b, 8 * b, 8 * b)
        for name, ratio in (("alpha_v", alpha_v), ("alpha_t", alpha_t)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {ratio}.")
        self.alpha_v, self.alpha_t = alpha_v, alpha_t
        self.use_interaction, self.use_cvr, self.use_clr = use_interaction, use_cvr, use_clr

        self.segmenter = RecLMISSegmenter(
            in_channels, out_channels, channels, text_dim, embed_dim, num_heads, dropout, image_size, use_interaction
        )
        # Training-only parts.
        self.aux_tokens: CrossModalTokens | None = None
        if not use_interaction:
            self.aux_tokens = CrossModalTokens(self.segmenter.channels[4], text_dim, embed_dim, image_size // 16)
        self.vision_to_text: CrossModalAttention | None = None
        self.poi_head: InterestHead | None = None
        self.woi_head: InterestHead | None = None
        if use_interaction:
            self.vision_to_text = CrossModalAttention(embed_dim, num_heads, dropout)
            self.poi_head = InterestHead(embed_dim)
            self.woi_head = InterestHead(embed_dim)
        recon_args = dict(
            embed_dim=embed_dim, num_layers=num_recon_layers, num_heads=num_heads, ffn_dim=recon_ffn_dim,
            dropout=dropout, condition=recon_condition,
        )
        self.vision_reconstructor = ConditionedReconstructor(**recon_args) if use_cvr else None  # type: ignore
        self.text_reconstructor = ConditionedReconstructor(**recon_args) if use_clr else None  # type: ignore

    @property
    def tokens(self) -> CrossModalTokens:
        """The module making ``V`` / ``E`` (shared with the inference path when it has one)."""
        return self.segmenter.tokens if self.segmenter.tokens is not None else self.aux_tokens  # type: ignore

    def inference_network(self, copy_weights: bool = False) -> RecLMISSegmenter:
        """
        The inference-only network (encoder, text projection, text-to-vision encoder, decoder).

        Args:
            copy_weights: return an independent deep copy (for export) instead of the shared submodule.

        Returns:
            a :class:`RecLMISSegmenter` giving the same logits as this model in eval mode.
        """
        return copy.deepcopy(self.segmenter) if copy_weights else self.segmenter

    def forward(
        self,
        image: torch.Tensor,
        text: Any,
        text_mask: torch.Tensor | None = None,
        return_aux: bool | None = None,
    ) -> torch.Tensor | RecLMISOutput:
        """
        Args:
            image: ``(B, in_channels, H, W)``, ``H, W`` multiples of 16.
            text: token features ``(B, L, text_dim)``, or a ``TextFeatures``-like object with
                ``.tokens`` and ``.mask`` (or a mapping with ``"tokens"`` / ``"mask"``).
            text_mask: boolean ``(B, L)``, ``True`` for valid tokens; ``None``: taken from
                ``text`` or all valid.
            return_aux: return the :class:`RecLMISOutput` (``True``) or only the logits
                (``False``); default: ``self.training``.

        Returns:
            logits ``(B, out_channels, H, W)`` or a :class:`RecLMISOutput`.

        Raises:
            ValueError: wrong image/text shapes (see :meth:`RecLMISSegmenter.check_inputs`).
        """
        seg = self.segmenter
        tokens, mask = seg.check_inputs(image, text, text_mask)
        if not (self.training if return_aux is None else return_aux):
            return seg.forward_features(image, tokens, mask)["logits"]

        out = seg.forward_features(image, tokens, mask)
        if self.use_interaction:
            vision, text_e, pos = out["vision"], out["text"], out["pos"]
            text_fused = self.vision_to_text(text_e, vision + pos)  # type: ignore[misc]
            w_poi = self.poi_head(out["vision_fused"])  # type: ignore[misc]
            w_woi = self.woi_head(text_fused, mask)  # type: ignore[misc]
        else:
            bottleneck = out["feats"][4]
            pos = self.tokens.position(*bottleneck.shape[-2:])
            vision, text_e = self.tokens.vision(bottleneck), self.tokens.text(tokens, mask)
            w_poi = torch.full(vision.shape[:2], 1.0 / vision.shape[1], device=vision.device, dtype=vision.dtype)
            w_woi = mask.to(vision.dtype) / mask.sum(dim=1, keepdim=True)

        result = dict(
            logits=out["logits"], vision=vision, text=text_e, text_mask=mask, w_poi=w_poi, w_woi=w_woi,
            text_groups=text_groups(tokens, mask),
        )
        if self.vision_reconstructor is not None:
            masked = sample_interest_mask(w_poi, self.alpha_v)
            v_m = vision.masked_fill(masked[..., None], 0.0)
            result.update(
                vision_recon=self.vision_reconstructor(v_m, text_e, w_woi, mask, query_pos=pos),
                vision_target=vision.detach(),
                vision_masked=masked,
            )
        if self.text_reconstructor is not None:
            masked = sample_interest_mask(w_woi, self.alpha_t, valid=mask)
            e_m = text_e.masked_fill(masked[..., None], 0.0)
            text_pos = sinusoidal_encoding_1d(e_m.shape[1], e_m.shape[2], e_m.device).to(e_m.dtype)
            result.update(
                text_recon=self.text_reconstructor(e_m, vision + pos, w_poi, None, query_pos=text_pos[None]),
                text_target=text_e.detach(),
                text_masked=masked,
            )
        return RecLMISOutput(**result)
