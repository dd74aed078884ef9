"""Checks of a loaded source before any model work (docs/DESIGN.md, section 1).

A bad input should fail at once with one line naming the file, the problem and the remedy, rather than
run through the model: NaN voxels used to give a silent empty mask (and made the volume look like MR),
a 4D volume failed deep inside the intensity presets, a one-pixel-wide image inside the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import SequenceReadError
from .meta import FRAME_KINDS, VOLUME_KINDS, SourceKind

__all__ = ["check_source", "MIN_FRAME_SIZE"]

#: the smallest frame (rows and columns) a source may have: a frame must have an inside and an outside.
MIN_FRAME_SIZE = 2


def _where(meta: dict[str, Any]) -> Any:
    name = meta.get("filename_or_obj")
    return name if name else None


def _axial_axes(affine: Any) -> tuple[int, int]:
    """The array axes of a volume that span its axial (R-L, A-P) plane, the frames the bundles segment."""
    import nibabel as nib

    aff = np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        return 0, 1  # no usable orientation: the array's own first two axes
    world = nib.orientations.io_orientation(aff)[:, 0]  # array axis -> world axis (0: R-L, 1: A-P, 2: S-I)
    axes = [i for i in range(3) if int(world[i]) in (0, 1)]
    return (axes[0], axes[1]) if len(axes) == 2 else (0, 1)


def check_source(image: torch.Tensor) -> None:
    """
    Check a loaded source (:py:func:`monai_ext.io.load_source` runs it after reading).

    Errors, each one line naming the file, the problem and what to do:

    - no voxels or frames (a spatial axis of size 0);
    - NaN or infinite values (floating point data), with their count;
    - a 4D volume: a ``volume`` / ``dicom_series`` with more than one channel (time points, echoes or
      modalities); frame kinds keep their 1 (grey) or 3 (RGB) channels;
    - frames smaller than ``MIN_FRAME_SIZE`` (2) pixels in rows or columns: for frame kinds the
      ``(H, W)`` of each frame; for volumes the two axes of the axial plane (from the affine), since the
      bundles segment axial slices.

    Args:
        image: the loaded source ``(C, S1, S2, S3)`` with its ``meta`` (``source_kind``,
            ``filename_or_obj``, ``affine``); a plain tensor is checked as a volume without a name.

    Raises:
        SequenceReadError: the input fails a check.
    """
    meta = dict(getattr(image, "meta", {}) or {})
    where = _where(meta)
    kind = meta.get("source_kind", SourceKind.VOLUME)
    data = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
    shape = tuple(int(s) for s in data.shape)
    if data.ndim != 4:
        raise SequenceReadError(
            where, f"expected a (channels, 3 spatial axes) source, got shape {shape}; load it with load_source"
        )
    spatial = shape[1:]
    is_frames = kind in FRAME_KINDS
    if min(shape) == 0:
        what, axes = ("frames", "rows, columns, frames") if is_frames else ("voxels", "x, y, z")
        raise SequenceReadError(
            where, f"no {what}: the input has shape {shape} (channels, {axes}); give a non-empty input"
        )

    # the sum is NaN/Inf whenever a value is (and, rarely, when huge values overflow it): only then count them,
    # which needs a boolean copy of the whole input
    if data.is_floating_point() and not bool(torch.isfinite(data.sum())):
        finite = torch.isfinite(data)
        if not bool(finite.all()):
            n_nan = int(torch.isnan(data).sum())
            n_inf = int((~finite).sum()) - n_nan
            unit = "pixel values" if is_frames else "voxels"
            raise SequenceReadError(
                where,
                f"{n_nan + n_inf} of {data.numel()} {unit} are not finite ({n_nan} NaN, {n_inf} infinite), which would "
                "give a meaningless mask; replace them (e.g. numpy.nan_to_num, or the background value) and save the "
                "file again",
            )

    size = "x".join(str(s) for s in spatial)
    if kind in VOLUME_KINDS and shape[0] != 1:
        raise SequenceReadError(
            where,
            f"a 4D volume: {shape[0]} volumes (time points, echoes or modalities) of {size} voxels; the bundles "
            "segment one 3D volume: extract one (e.g. nibabel.four_to_three(image)[k], or fslroi IN OUT k 1) and "
            "give that file",
        )

    if is_frames:
        rows, cols = spatial[0], spatial[1]
        if rows < MIN_FRAME_SIZE or cols < MIN_FRAME_SIZE:
            raise SequenceReadError(
                where,
                f"frames of {rows}x{cols} pixels (rows x columns) are too small to segment (at least "
                f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}); give the full-size image or video",
            )
    elif kind in VOLUME_KINDS:
        a, b = _axial_axes(meta.get("affine", np.eye(4)))
        if spatial[a] < MIN_FRAME_SIZE or spatial[b] < MIN_FRAME_SIZE:
            raise SequenceReadError(
                where,
                f"the volume ({size} voxels) has axial slices of {spatial[a]}x{spatial[b]} voxels, too small to "
                f"segment (at least {MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}); give the whole volume (a single sagittal or "
                "coronal slice: save it as a 2D image)",
            )
