"""RemoveMinorComponents: per-frame removal of components small next to the frame's largest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.transforms import RemoveMinorComponents, RemoveMinorComponentsd


def frames() -> np.ndarray:
    """(4, 1, 20, 20): big blob + speck / two equal blobs / a speck alone / empty."""
    m = np.zeros((4, 1, 20, 20), np.uint8)
    m[0, 0, 2:12, 2:12] = 1  # 100 px
    m[0, 0, 16:18, 16:18] = 1  # 4 px: 4 % of the largest
    m[1, 0, 1:6, 1:6] = 1
    m[1, 0, 10:15, 10:15] = 1  # two blobs of 25 px
    m[2, 0, 5:7, 5:7] = 1  # one 4 px speck, the frame's largest
    return m


def test_removes_minor_components_frame_by_frame():
    m = frames()
    out = RemoveMinorComponents(min_fraction=0.1)(m)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == m.shape
    expected = m.copy()
    expected[0, 0, 16:18, 16:18] = 0
    np.testing.assert_array_equal(out, expected)
    # a frame's largest component is measured in that frame only: frame 2's speck stays
    assert out[2].sum() == 4 and out[3].sum() == 0
    # min_fraction 0 keeps everything; 0.03 keeps the 4 % speck
    np.testing.assert_array_equal(RemoveMinorComponents(min_fraction=0.0)(m), m)
    np.testing.assert_array_equal(RemoveMinorComponents(min_fraction=0.03)(m), m)


def test_torch_metatensor_and_dictionary_twin():
    meta = {"affine": torch.eye(4), "stem": "case"}
    m = MetaTensor(torch.as_tensor(frames()) * 255, meta=meta)  # any non-zero value is foreground
    out = RemoveMinorComponents(min_fraction=0.5)(m)
    assert isinstance(out, MetaTensor) and out.dtype == torch.uint8 and out.meta["stem"] == "case"
    assert int(out[0].sum()) == 100 * 255 and int(out[1].sum()) == 50 * 255  # equal blobs both kept
    d = RemoveMinorComponentsd(keys="pred", min_fraction=0.5)({"pred": m, "other": 1})
    torch.testing.assert_close(d["pred"].as_tensor(), out.as_tensor())
    assert d["other"] == 1


def test_connectivity_decides_diagonal_neighbours():
    m = np.zeros((1, 10, 10), np.uint8)
    m[0, 0:6, 0:6] = 1  # 36 px
    m[0, 6, 6] = 1  # touches the square's corner only
    assert RemoveMinorComponents(min_fraction=0.5, connectivity=2)(m).sum() == 37
    assert RemoveMinorComponents(min_fraction=0.5, connectivity=1)(m).sum() == 36


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_fraction"):
        RemoveMinorComponents(min_fraction=1.5)
    with pytest.raises(ValueError, match="connectivity"):
        RemoveMinorComponents(connectivity=3)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        RemoveMinorComponents()(np.ones(5))
