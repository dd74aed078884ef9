"""Loss of sequence models that predict a mask and an object score per frame (SAM-2 style)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.losses import DiceLoss, FocalLoss

__all__ = ["MaskObjectSequenceLoss"]


class MaskObjectSequenceLoss(nn.Module):
    """Per-frame mask loss on frames holding the target, plus an object-score loss on every frame.

    As in SAM-2, the mask terms (focal + Dice) are applied only where the target is in the
    ground truth: on frames without it the object score alone is supervised (its head decides
    that the mask is empty). ``last_terms`` holds the terms of the last call, for logging.

    Args:
        focal_weight: weight of the sigmoid focal loss (SAM-2: 20).
        dice_weight: weight of the Dice loss (SAM-2: 1).
        object_weight: weight of the object-score binary cross-entropy (SAM-2: 1).
    """

    def __init__(self, focal_weight: float = 20.0, dice_weight: float = 1.0, object_weight: float = 1.0) -> None:
        super().__init__()
        self.focal_weight, self.dice_weight, self.object_weight = focal_weight, dice_weight, object_weight
        self.dice = DiceLoss(sigmoid=True, reduction="none")
        self.focal = FocalLoss(alpha=0.25, gamma=2.0, use_softmax=False, reduction="none")
        self.last_terms: dict[str, float] = {}

    def forward(self, outputs: Mapping[str, Any], label: torch.Tensor) -> torch.Tensor:
        """
        Args:
            outputs: ``{"pred": mask logits (B, T, 1, H, W), "object_logits": (B, T, 1)}``, the
                network's output (e.g. :class:`~monai_ext.networks.nets.tgsam2.TGSAM2` on clips).
            label: (B, T, 1, H, W) binary masks.

        Returns:
            The weighted total (a scalar).
        """
        logits, object_logits = outputs["pred"], outputs["object_logits"]
        if logits.shape != label.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and label {tuple(label.shape)} differ")
        present = label.flatten(2).amax(-1) > 0  # (B, T)
        object_loss = F.binary_cross_entropy_with_logits(object_logits[..., 0], present.to(object_logits.dtype))
        if present.any():
            lg, lb = logits[present], label[present]  # (N, 1, H, W)
            dice = self.dice(lg, lb).mean()
            focal = self.focal(lg, lb).mean()
        else:
            dice = focal = logits.sum() * 0.0
        total = self.focal_weight * focal + self.dice_weight * dice + self.object_weight * object_loss
        self.last_terms = {"focal": float(focal.detach()), "dice": float(dice.detach()), "object": float(object_loss.detach())}
        return total
