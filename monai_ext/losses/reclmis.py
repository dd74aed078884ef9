"""Losses of RecLMIS (Huang et al., IEEE TMI 2024): eq. 4-6, 8, 10 and the total eq. 11."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.losses import DiceCELoss

__all__ = [
    "conditioned_similarity",
    "ConditionedContrastiveLoss",
    "WeightedReconstructionLoss",
    "RecLMISLoss",
]


def conditioned_similarity(
    vision: torch.Tensor,
    text: torch.Tensor,
    w_poi: torch.Tensor,
    w_woi: torch.Tensor,
    text_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Conditioned image-text similarity of every image with every text of a batch (eq. 5):
    ``S = 1/2 (sum_i w_v^i max_j a_ij + sum_j w_e^j max_i a_ij)`` with ``a_ij`` the cosine
    between patch ``v_i`` and word ``e_j``.

    For a cross pair (image ``p``, text ``q``) the patch weights are those of image ``p``
    and the word weights those of text ``q`` (each computed with its own paired input).

    Args:
        vision: patch tokens ``(B, N, D)``.
        text: word tokens ``(B, L, D)``.
        w_poi: patch weights ``(B, N)``, summing to 1 over the patches.
        w_woi: word weights ``(B, L)``, summing to 1 over the valid words.
        text_mask: boolean ``(B, L)`` of valid words, or ``None``.

    Returns:
        ``(B, B)`` similarities, row = image, column = text, in ``[-1, 1]``.
    """
    v = F.normalize(vision, dim=-1)
    e = F.normalize(text, dim=-1)
    a = torch.einsum("pnd,qld->pqnl", v, e)  # (B_img, B_txt, N, L)
    if text_mask is not None:
        valid = text_mask[None, :, None, :]
        best_word = a.masked_fill(~valid, float("-inf")).amax(dim=-1)  # (B, B, N)
        w_woi = w_woi.masked_fill(~text_mask, 0.0)
    else:
        best_word = a.amax(dim=-1)
    best_patch = a.amax(dim=-2)  # (B, B, L); padded words get weight 0 below
    s_v = (best_word * w_poi[:, None, :]).sum(-1)
    s_e = (best_patch * w_woi[None, :, :]).sum(-1)
    return 0.5 * (s_v + s_e)


class ConditionedContrastiveLoss(nn.Module):
    """
    Conditioned contrastive loss ``L_CCL`` (RecLMIS eq. 4-6): a symmetric InfoNCE over the
    batch on the conditioned similarity :func:`conditioned_similarity`, ``exp(S / tau)``.

    Only positive pairs (image whose mask is not empty) take part: a text naming an absent
    target has no image to match. Identical texts in the batch (same ``groups`` id) are not
    used as negatives of each other. With fewer than 2 usable pairs the loss is 0.

    Args:
        temperature: initial (or fixed) ``tau``.
        learnable_temperature: learn ``log(1 / tau)`` (CLIP style, clamped to ``tau >= 0.01``);
            the optimiser must then include this module's parameters.
    """

    def __init__(self, temperature: float = 0.07, learnable_temperature: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        init = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=math.log(100.0)).exp())

    def forward(
        self,
        vision: torch.Tensor,
        text: torch.Tensor,
        w_poi: torch.Tensor,
        w_woi: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        positive: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            vision: patch tokens ``(B, N, D)``.
            text: word tokens ``(B, L, D)``.
            w_poi: patch weights ``(B, N)``.
            w_woi: word weights ``(B, L)``.
            text_mask: boolean ``(B, L)`` of valid words, or ``None``.
            positive: boolean ``(B,)``, pairs whose image contains the target; ``None``: all.
            groups: ``(B,)`` ids of identical texts, or ``None``: all texts distinct.

        Returns:
            scalar loss (0 when fewer than 2 positive pairs).
        """
        keep = torch.ones(vision.shape[0], dtype=torch.bool, device=vision.device) if positive is None else positive
        idx = torch.nonzero(keep.to(vision.device), as_tuple=False).squeeze(1)
        if idx.numel() < 2:
            return vision.new_zeros(())
        mask = None if text_mask is None else text_mask[idx]
        sim = conditioned_similarity(vision[idx], text[idx], w_poi[idx], w_woi[idx], mask)
        logits = sim * self.logit_scale.clamp(max=math.log(100.0)).exp()
        n = idx.numel()
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        if groups is not None:
            g = groups.to(logits.device)[idx]
            same = (g[:, None] == g[None, :]) & ~eye
            logits = logits.masked_fill(same, float("-inf"))
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class WeightedReconstructionLoss(nn.Module):
    """
    Interest-weighted reconstruction error ``L_T2V`` / ``L_V2T`` (RecLMIS eq. 8 / 10):
    per sample ``sum_j w_j * mean_d (x_jd - x_hat_jd)^2`` over the valid tokens, averaged
    over the batch.

    The paper writes ``1/N sum_j w_j |x_j - x_hat_j|^2`` with softmax weights summing to 1;
    the constant ``1/N`` is dropped here (it only rescales ``lambda``), so the value is a
    weighted mean of the per-token MSE and does not shrink with the number of tokens.

    With ``normalize_target`` (default) each target token is layer-normalised (zero mean,
    unit variance over the features, no affine) before the error, as MAE's normalised-pixel
    loss: the targets are detached features whose scale drifts with training (the text
    projection in particular grows under the segmentation loss), and an unnormalised MSE
    then grows with it instead of measuring the reconstruction. ``False`` is the literal eq.

    Args:
        detach_weights: stop gradients through the weights, so the interest heads cannot
            lower the loss by moving weight onto easy tokens.
        normalize_target: layer-normalise each target token (see above).
    """

    def __init__(self, detach_weights: bool = True, normalize_target: bool = True) -> None:
        super().__init__()
        self.detach_weights = detach_weights
        self.normalize_target = normalize_target

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            pred: reconstructed tokens ``(B, N, D)``.
            target: original tokens ``(B, N, D)`` (already detached by the network).
            weights: token weights ``(B, N)``.
            mask: boolean ``(B, N)`` of valid tokens, or ``None``.

        Returns:
            scalar loss.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must match.")
        w = weights.detach() if self.detach_weights else weights
        if mask is not None:
            w = w * mask
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        if self.normalize_target:
            target = F.layer_norm(target, target.shape[-1:])
        err = (pred - target).pow(2).mean(dim=-1)
        return (w * err).sum(dim=1).mean()


class RecLMISLoss(nn.Module):
    """
    Total RecLMIS objective (eq. 11):
    ``lambda_v2t L_V2T + lambda_t2v L_T2V + lambda_ccl L_CCL + lambda_seg (L_Dice + L_CE)``
    with defaults ``(1, 1, 0.2, 5)``; ``L_V2T`` is the language reconstruction (CLR, eq. 10),
    ``L_T2V`` the vision reconstruction (CVR, eq. 8), ``L_CCL`` the conditioned contrastive
    loss (eq. 6) and the segmentation term MONAI's ``DiceCELoss(sigmoid=True)``.

    Call it as ``loss(output, target)`` with ``output`` a :class:`RecLMISOutput` (training)
    or plain logits (then only the segmentation term), ``target`` the binary masks
    ``(B, out_channels or 1, H, W)``. A term whose inputs the network did not produce
    (branch switched off) is skipped. The terms of the last call are kept in
    :attr:`last_terms` (detached) for logging.

    Args:
        lambda_v2t: weight of the language reconstruction loss (CLR).
        lambda_t2v: weight of the vision reconstruction loss (CVR).
        lambda_ccl: weight of the conditioned contrastive loss.
        lambda_seg: weight of Dice + CE.
        use_clr: include ``L_V2T``.
        use_cvr: include ``L_T2V``.
        use_contrastive: include ``L_CCL``.
        use_segmentation: include Dice + CE.
        temperature: contrastive temperature ``tau``.
        learnable_temperature: learn ``tau`` (the optimiser must include this module's parameters).
        detach_recon_weights: see :class:`WeightedReconstructionLoss`.
        normalize_recon_target: see :class:`WeightedReconstructionLoss`.
        dice_ce_kwargs: extra arguments of ``monai.losses.DiceCELoss`` (``sigmoid=True`` is set).
    """

    def __init__(
        self,
        lambda_v2t: float = 1.0,
        lambda_t2v: float = 1.0,
        lambda_ccl: float = 0.2,
        lambda_seg: float = 5.0,
        use_clr: bool = True,
        use_cvr: bool = True,
        use_contrastive: bool = True,
        use_segmentation: bool = True,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        detach_recon_weights: bool = True,
        normalize_recon_target: bool = True,
        dice_ce_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.lambdas = {"v2t": lambda_v2t, "t2v": lambda_t2v, "ccl": lambda_ccl, "seg": lambda_seg}
        self.use = {"v2t": use_clr, "t2v": use_cvr, "ccl": use_contrastive, "seg": use_segmentation}
        self.contrastive = ConditionedContrastiveLoss(temperature, learnable_temperature)
        self.reconstruction = WeightedReconstructionLoss(detach_recon_weights, normalize_recon_target)
        self.segmentation = DiceCELoss(**{**(dice_ce_kwargs or {}), "sigmoid": True})
        self.last_terms: dict[str, torch.Tensor] = {}

    def terms(self, output: Any, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        The unweighted loss terms that are switched on and computable.

        Args:
            output: a ``RecLMISOutput`` or logits ``(B, C, H, W)``.
            target: binary masks ``(B, C or 1, H, W)``.

        Returns:
            dict with some of ``"v2t"``, ``"t2v"``, ``"ccl"``, ``"seg"``.
        """
        logits = output if isinstance(output, torch.Tensor) else output.logits
        target = target.to(device=logits.device, dtype=logits.dtype)
        if target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
        terms: dict[str, torch.Tensor] = {}
        if self.use["seg"]:
            terms["seg"] = self.segmentation(logits, target)
        if isinstance(output, torch.Tensor):
            return terms
        if self.use["v2t"] and output.text_recon is not None:
            terms["v2t"] = self.reconstruction(output.text_recon, output.text_target, output.w_woi, output.text_mask)
        if self.use["t2v"] and output.vision_recon is not None:
            terms["t2v"] = self.reconstruction(output.vision_recon, output.vision_target, output.w_poi)
        if self.use["ccl"]:
            positive = target.flatten(1).sum(dim=1) > 0
            terms["ccl"] = self.contrastive(
                output.vision, output.text, output.w_poi, output.w_woi, output.text_mask, positive, output.text_groups
            )
        return terms

    def forward(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            output: a ``RecLMISOutput`` or logits ``(B, C, H, W)``.
            target: binary masks ``(B, C or 1, H, W)``.

        Returns:
            the weighted sum (eq. 11), a scalar.
        """
        terms = self.terms(output, target)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        if not terms:
            raise ValueError("all RecLMIS loss terms are switched off or unavailable.")
        return sum(self.lambdas[k] * v for k, v in terms.items())  # type: ignore[return-value]
