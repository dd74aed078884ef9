"""
Per-frame clean-up of binary masks: drop the connected components that are small next to the
frame's largest one (stray specks a sequence model leaves far from its target).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from scipy import ndimage

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

__all__ = [
    "RemoveMinorComponents",
    "RemoveMinorComponentsd",
    "RemoveMinorComponentsD",
    "RemoveMinorComponentsDict",
]


class RemoveMinorComponents(Transform):
    """
    In every 2D frame of a binary mask, remove the connected components whose area is below
    ``min_fraction`` of the frame's largest component.

    The frames are the last two dimensions; every index of the leading dimensions (channels,
    or ``(T, C)`` of a sequence made by :py:class:`~monai_ext.transforms.ToSequence`) is one
    frame, handled on its own. The rule is relative, so it does not depend on the frame size,
    and a frame keeps all of its components of similar size (two lesions, two vessels) - unlike
    MONAI's ``KeepLargestConnectedComponent``, which keeps one, or a 3D clean-up, which would join
    or cut frames of a video that are not neighbours in space. Frames are not compared with each
    other: a frame with only small components keeps its largest one.

    Args:
        min_fraction: components with fewer pixels than ``min_fraction`` x (pixels of the
            frame's largest component) are set to 0. ``0`` keeps everything; ``1`` keeps the
            largest component(s) only.
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood, the default).

    Returns:
        The mask, same type, shape and dtype, with the minor components set to 0 (metadata of a
        ``MetaTensor`` kept).
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, min_fraction: float = 0.1, connectivity: int = 2) -> None:
        if not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction must lie in [0, 1], got {min_fraction}")
        if connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
        self.min_fraction = float(min_fraction)
        self.structure = ndimage.generate_binary_structure(2, connectivity)

    def __call__(self, img: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """
        Args:
            img: binary mask ``(..., H, W)`` with at least two dimensions (any non-zero value is foreground).
        """
        if img.ndim < 2:
            raise ValueError(f"RemoveMinorComponents needs a mask with frames (..., H, W), got shape {tuple(img.shape)}")
        if self.min_fraction == 0.0:
            return img
        mask = convert_to_numpy(img) != 0
        frames = mask.reshape(-1, *mask.shape[-2:])
        keep = np.zeros_like(frames)
        for i, frame in enumerate(frames):
            labels, n = ndimage.label(frame, structure=self.structure)
            if n <= 1:
                keep[i] = frame
                continue
            sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
            kept_labels = 1 + np.flatnonzero(sizes >= self.min_fraction * sizes.max())
            keep[i] = np.isin(labels, kept_labels)
        keep = keep.reshape(mask.shape)
        cleaned = convert_to_numpy(img).copy()
        cleaned[~keep] = 0
        out, *_ = convert_to_dst_type(cleaned, img, dtype=img.dtype)
        return out


class RemoveMinorComponentsd(MapTransform):
    """Dictionary-based :py:class:`RemoveMinorComponents`."""

    backend = RemoveMinorComponents.backend

    def __init__(
        self, keys: KeysCollection, min_fraction: float = 0.1, connectivity: int = 2, allow_missing_keys: bool = False
    ) -> None:
        """
        Args:
            keys: keys of the masks to clean.
            min_fraction: see :py:class:`RemoveMinorComponents`.
            connectivity: see :py:class:`RemoveMinorComponents`.
            allow_missing_keys: don't raise if a key is missing.
        """
        super().__init__(keys, allow_missing_keys)
        self.remover = RemoveMinorComponents(min_fraction=min_fraction, connectivity=connectivity)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.remover(d[key])
        return d


RemoveMinorComponentsD = RemoveMinorComponentsDict = RemoveMinorComponentsd
