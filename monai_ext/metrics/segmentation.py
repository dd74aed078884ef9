"""Dice, IoU and HD95 of binary mask sequences, on MONAI's metric functions.

Conventions (docs/DESIGN.md section 7), applied per frame and per sequence/volume:

* prediction and ground truth both empty -> Dice 1, IoU 1, HD95 0;
* exactly one of them empty -> Dice 0, IoU 0, HD95 = the image diagonal in the spacing's
  units (``sqrt(sum((n_i * s_i) ** 2))`` over the spatial axes of the image the distance
  is computed on: ``n_i`` the number of pixels/voxels, ``s_i`` the spacing), so that the
  value stays finite and can be averaged;
* otherwise Dice / IoU come from :func:`monai.metrics.compute_dice` /
  :func:`monai.metrics.compute_iou` and HD95 from
  :func:`monai.metrics.compute_hausdorff_distance` (``percentile=95``, symmetric,
  euclidean, edge pixels/voxels, with the spacing).

Inputs are binary sequences shaped ``(T, H, W)`` (frames or slices first, as
``monai_ext.transforms.ToSequence`` gives them, channel dimension removed); anything
non-zero counts as foreground. Numpy arrays and torch tensors are accepted; an input
``(T, 1, H, W)`` has its singleton channel dropped.

Spacing is given in the array's axis order: ``(row, col)`` for the 2D frame axes, or
``(slice, row, col)`` for a volume seen as a slice sequence. ``None`` means 1 everywhere.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

__all__ = [
    "as_binary_sequence",
    "image_diagonal",
    "frame_metrics",
    "sequence_metrics",
    "mask_metrics",
    "prediction_metrics",
    "source_metrics",
]

def as_binary_sequence(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Return ``x`` as a boolean CPU tensor ``(T, H, W)``.

    Accepts ``(T, H, W)`` or ``(T, 1, H, W)``; a 2D ``(H, W)`` mask becomes one frame.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach().cpu())
    if t.ndim == 4:
        if t.shape[1] != 1:
            raise ValueError(f"expected (T, 1, H, W) for a 4D mask, got shape {tuple(t.shape)}")
        t = t[:, 0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"expected a (T, H, W) mask sequence, got shape {tuple(t.shape)}")
    return t != 0


def _spacing_tuple(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Spacing for the last ``ndim`` axes (a longer spacing keeps its last ``ndim`` entries)."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float, np.floating, np.integer)):
        return (float(spacing),) * ndim
    sp = tuple(float(s) for s in np.asarray(spacing, dtype=float).ravel())
    if len(sp) == 1:
        return sp * ndim
    if len(sp) < ndim:
        raise ValueError(f"spacing {sp} has fewer than {ndim} entries")
    return sp[-ndim:]


def image_diagonal(shape: Sequence[int], spacing: float | Sequence[float] | None = None) -> float:
    """Diagonal of an image of ``shape`` (spatial axes only) in the spacing's units.

    ``sqrt(sum((n_i * s_i) ** 2))``; this is the HD95 given when exactly one of the
    prediction and the ground truth is empty.
    """
    sp = _spacing_tuple(spacing, len(shape))
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, sp))))


def _hd95_batch(pred: torch.Tensor, gt: torch.Tensor, spacing: tuple[float, ...]) -> np.ndarray:
    """HD95 of each item of a batch ``(B, *spatial)`` of boolean masks, empties by convention."""
    n = pred.shape[0]
    out = np.zeros(n, dtype=np.float64)
    p_any = pred.reshape(n, -1).any(1).numpy()
    g_any = gt.reshape(n, -1).any(1).numpy()
    diag = image_diagonal(pred.shape[1:], spacing)
    out[p_any != g_any] = diag
    both = np.nonzero(p_any & g_any)[0]
    if both.size:
        idx = torch.as_tensor(both)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd = compute_hausdorff_distance(
                pred[idx][:, None].float(),
                gt[idx][:, None].float(),
                include_background=True,
                percentile=95,
                spacing=list(spacing),
            )
        out[both] = hd[:, 0].double().numpy()
    return out


def _overlap_batch(pred: torch.Tensor, gt: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU of each item of a batch ``(B, *spatial)``; both empty -> 1, one empty -> 0."""
    p = pred[:, None].float()
    g = gt[:, None].float()
    dice = compute_dice(p, g, include_background=True, ignore_empty=False)[:, 0].double().numpy()
    iou = compute_iou(p, g, include_background=True, ignore_empty=False)[:, 0].double().numpy()
    return dice, iou


def frame_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    spacing: float | Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame Dice, IoU and HD95 of two binary sequences ``(T, H, W)``.

    Args:
        pred: predicted mask sequence (non-zero = foreground).
        gt: ground-truth mask sequence of the same shape.
        spacing: in-plane pixel spacing ``(row, col)`` (a 3-entry volume spacing
            ``(slice, row, col)`` is accepted: its last two entries are used), or a scalar.

    Returns:
        ``{"dice": (T,), "iou": (T,), "hd95": (T,), "empty_pred": (T,) bool,
        "empty_gt": (T,) bool}``, numpy arrays; the empty-mask conventions of the module
        apply frame by frame (HD95 of a one-sided empty frame = the frame diagonal).
    """
    p, g = as_binary_sequence(pred), as_binary_sequence(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(p.shape)} vs {tuple(g.shape)}")
    sp = _spacing_tuple(spacing, 2)
    dice, iou = _overlap_batch(p, g)
    hd95 = _hd95_batch(p, g, sp)
    t = p.shape[0]
    return {
        "dice": dice,
        "iou": iou,
        "hd95": hd95,
        "empty_pred": ~p.reshape(t, -1).any(1).numpy(),
        "empty_gt": ~g.reshape(t, -1).any(1).numpy(),
    }


def sequence_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    spacing: float | Sequence[float] | None = None,
    volume: bool | None = None,
) -> dict[str, float]:
    """Dice, IoU and HD95 of a whole sequence / volume ``(T, H, W)``.

    Dice and IoU are computed over all frames together (all pixels of the sequence pooled
    into one mask), not averaged per frame.

    HD95 depends on what the sequence is:

    * ``volume=True`` (a CT/MR volume seen as slices): one 3D HD95 over the ``(T, H, W)``
      voxel grid with the voxel spacing ``(slice, row, col)``; one-sided empty -> the
      volume diagonal.
    * ``volume=False`` (a video / frame sequence, frames are not a spatial axis): HD95 is
      computed per frame in 2D (spacing ``(row, col)``) and averaged over the frames where
      at least one of prediction and ground truth is non-empty (so a frame that is empty in
      both adds nothing, a one-sided empty frame adds the frame diagonal); when every frame
      is empty in both, HD95 = 0.
    * ``volume=None`` (default): ``True`` when ``spacing`` has 3 entries, else ``False``.

    Returns:
        ``{"dice": float, "iou": float, "hd95": float}``.
    """
    p, g = as_binary_sequence(pred), as_binary_sequence(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(p.shape)} vs {tuple(g.shape)}")
    if volume is None:
        volume = spacing is not None and np.ndim(spacing) == 1 and len(spacing) == 3  # type: ignore[arg-type]
    dice, iou = _overlap_batch(p[None], g[None])
    if volume:
        hd95 = float(_hd95_batch(p[None], g[None], _spacing_tuple(spacing, 3))[0])
    else:
        per_frame = _hd95_batch(p, g, _spacing_tuple(spacing, 2))
        t = p.shape[0]
        counted = p.reshape(t, -1).any(1).numpy() | g.reshape(t, -1).any(1).numpy()
        hd95 = float(per_frame[counted].mean()) if counted.any() else 0.0
    return {"dice": float(dice[0]), "iou": float(iou[0]), "hd95": hd95}


def mask_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    spacing: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Dice, IoU and HD95 of one 2D mask ``(H, W)`` (a one-frame :func:`sequence_metrics`)."""
    return sequence_metrics(pred, gt, spacing=_spacing_tuple(spacing, 2), volume=False)


def _source_spacing(meta: Mapping[str, Any]) -> list[float] | None:
    """Voxel spacing ``(X, Y, Z)`` in mm of a volume source, from its affine; None for frame sources."""
    if meta.get("source_kind") not in ("volume", "dicom_series"):
        return None
    affine = np.asarray(meta["affine"], dtype=float)
    return [float(np.linalg.norm(affine[:3, i])) for i in range(3)]


def source_metrics(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, meta: Mapping[str, Any]) -> dict[str, float]:
    """Dice / IoU / HD95 of a binary prediction and label in their source geometry ``(X, Y, Z)`` / ``(H, W, T)``.

    Metrics take frames first (the slice / time axis is last in the source); volumes get 3D HD95
    in mm with spacing ``(slice, row, col)``, frame sources per-frame 2D HD95 in pixels (see
    :func:`sequence_metrics`).

    Args:
        pred: binary prediction without the channel axis.
        gt: binary label, same shape.
        meta: the source's metadata (``source_kind``, ``affine``).
    """
    pred_t, gt_t = torch.as_tensor(pred).movedim(-1, 0), torch.as_tensor(gt).movedim(-1, 0)
    spacing = _source_spacing(meta)
    if spacing is not None:
        spacing = [spacing[2], spacing[0], spacing[1]]
    return sequence_metrics(pred_t, gt_t, spacing=spacing, volume=spacing is not None)


def prediction_metrics(pred: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """:func:`source_metrics` of a pipeline's output: a channel-first mask ``(1, ...)`` in its input's
    geometry, carrying the input's metadata (``pred.meta``), against its label ``(1, ...)``."""
    return source_metrics(torch.as_tensor(pred)[0] > 0, torch.as_tensor(label)[0] > 0, pred.meta)
