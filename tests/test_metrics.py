"""Dice / IoU / HD95 of monai_ext.metrics: hand-computed cases, empty conventions, real masks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from monai_ext.metrics import MetricsAccumulator, frame_metrics, image_diagonal, mask_metrics, sequence_metrics


def squares(shape=(10, 10)):
    """4x4 squares: a at cols 0-3, b at cols 2-5 (rows 0-3) -> overlap 8 px of 16 each."""
    a, b = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    a[0:4, 0:4] = 1
    b[0:4, 2:6] = 1
    return a, b


def dot(shape, *idx):
    m = np.zeros(shape, np.uint8)
    m[idx] = 1
    return m


def test_half_overlap_squares():
    a, b = squares()
    m = mask_metrics(a, b)
    assert m["dice"] == pytest.approx(0.5)  # 2*8 / (16+16)
    assert m["iou"] == pytest.approx(1 / 3)  # 8 / 24
    # edge pixels of a (12) to edge pixels of b: col 0 -> 2 (x4), col 1 -> 1 (x2), col 2 -> 0 (x4),
    # col 3 -> 0 (rows 0, 3) and 1 (rows 1, 2): 95th percentile = 2; symmetric -> 2
    assert m["hd95"] == pytest.approx(2.0)


def test_spacing_scales_hd95():
    a, b = squares()
    assert mask_metrics(a, b, spacing=(1.0, 2.0))["hd95"] == pytest.approx(4.0)  # shift is along columns
    assert mask_metrics(a, b, spacing=(3.0, 1.0))["hd95"] == pytest.approx(2.0)  # rows do not matter here
    assert mask_metrics(a, b, spacing=0.5)["hd95"] == pytest.approx(1.0)
    p, g = dot((10, 10), 2, 2), dot((10, 10), 2, 5)
    assert mask_metrics(p, g)["hd95"] == pytest.approx(3.0)
    assert mask_metrics(p, g, spacing=(1.0, 2.5))["hd95"] == pytest.approx(7.5)
    p, g = dot((10, 10), 1, 1), dot((10, 10), 4, 5)
    assert mask_metrics(p, g)["hd95"] == pytest.approx(5.0)  # 3-4-5 triangle


def test_identical_masks():
    a, _ = squares()
    m = mask_metrics(a, a)
    assert (m["dice"], m["iou"], m["hd95"]) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(0.0))


def test_empty_conventions():
    z = np.zeros((10, 10), np.uint8)
    a, _ = squares()
    assert mask_metrics(z, z) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    for p, g in ((z, a), (a, z)):
        m = mask_metrics(p, g)
        assert m["dice"] == 0.0 and m["iou"] == 0.0
        assert m["hd95"] == pytest.approx(math.sqrt(200))
        assert math.isfinite(m["hd95"])
    assert mask_metrics(z, a, spacing=(1.0, 2.0))["hd95"] == pytest.approx(math.sqrt(100 + 400))
    assert image_diagonal((3, 4)) == pytest.approx(5.0)
    assert image_diagonal((3, 4, 12), (1, 1, 1)) == pytest.approx(13.0)


def test_frame_metrics_per_frame():
    a, b = squares()
    z = np.zeros_like(a)
    pred = np.stack([a, z, a, z])
    gt = np.stack([b, z, z, b])
    fm = frame_metrics(pred, gt)
    np.testing.assert_allclose(fm["dice"], [0.5, 1, 0, 0])
    np.testing.assert_allclose(fm["iou"], [1 / 3, 1, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(fm["hd95"], [2, 0, math.sqrt(200), math.sqrt(200)])
    np.testing.assert_array_equal(fm["empty_pred"], [False, True, False, True])
    np.testing.assert_array_equal(fm["empty_gt"], [False, True, True, False])
    # torch input with a channel axis gives the same
    fm_t = frame_metrics(torch.as_tensor(pred)[:, None], torch.as_tensor(gt)[:, None].bool())
    np.testing.assert_allclose(fm_t["hd95"], fm["hd95"])
    with pytest.raises(ValueError):
        frame_metrics(pred, gt[:3])


def test_sequence_metrics_frames_and_volume():
    a, b = squares()
    z = np.zeros_like(a)
    pred = np.stack([a, z, a])
    gt = np.stack([b, z, z])
    m = sequence_metrics(pred, gt)
    # pooled over frames: |p| = 32, |g| = 16, overlap 8
    assert m["dice"] == pytest.approx(16 / 48)
    assert m["iou"] == pytest.approx(8 / 40)
    # HD95: mean over frames with something in pred or gt (frame 1 is empty in both)
    assert m["hd95"] == pytest.approx((2.0 + math.sqrt(200)) / 2)
    assert sequence_metrics(np.zeros((3, 5, 5)), np.zeros((3, 5, 5))) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    # volume: 3D distance with voxel spacing (slice, row, col)
    p = np.zeros((6, 8, 8), np.uint8)
    g = np.zeros_like(p)
    p[1, 3, 3] = 1
    g[4, 3, 3] = 1
    assert sequence_metrics(p, g, spacing=(1, 1, 1))["hd95"] == pytest.approx(3.0)
    assert sequence_metrics(p, g, spacing=(2.5, 0.7, 0.7))["hd95"] == pytest.approx(7.5)
    assert sequence_metrics(p, g, spacing=(2.5, 0.7, 0.7), volume=False)["hd95"] == pytest.approx(
        math.hypot(8 * 0.7, 8 * 0.7)
    )  # frame mode: each frame is one-sided empty -> frame diagonal
    vol = sequence_metrics(p, np.zeros_like(g), spacing=(2.0, 1.0, 1.0))
    assert vol["dice"] == 0.0 and vol["hd95"] == pytest.approx(math.sqrt(12**2 + 8**2 + 8**2))


def test_real_mask_vs_eroded(shared_data):
    from PIL import Image
    from scipy import ndimage

    gt = np.asarray(Image.open(shared_data / "cvc_clinicdb" / "Ground Truth" / "1.png").convert("L")) > 127
    assert gt.sum() > 100
    eroded = ndimage.binary_erosion(gt, iterations=3)
    n_g, n_e = int(gt.sum()), int(eroded.sum())
    assert 0 < n_e < n_g
    m = mask_metrics(eroded, gt, spacing=(1.0, 1.0))
    assert m["dice"] == pytest.approx(2 * n_e / (n_g + n_e), rel=1e-5)
    assert m["iou"] == pytest.approx(n_e / n_g, rel=1e-5)
    # the eroded edge lies 3 px (4-connected erosion) inside the gt edge: 0 < HD95 <= 3 px diagonal-ish
    assert 1.0 <= m["hd95"] <= 3 * math.sqrt(2) + 1e-6
    m2 = mask_metrics(eroded, gt, spacing=(0.5, 0.5))
    assert m2["hd95"] == pytest.approx(m["hd95"] / 2, rel=1e-5)
    seq = sequence_metrics(np.stack([eroded, gt]), np.stack([gt, gt]))
    assert seq["dice"] == pytest.approx(2 * (n_e + n_g) / (2 * n_g + n_e + n_g), rel=1e-5)
    assert seq["hd95"] == pytest.approx(m["hd95"] / 2, rel=1e-5)


def test_accumulator_writes_metrics_json(tmp_path):
    a, b = squares()
    z = np.zeros_like(a)
    acc = MetricsAccumulator()
    acc.add_prediction("c1", np.stack([a]), np.stack([b]), target="polyp", dataset="cvc_clinicdb")
    acc.add_prediction("c2", np.stack([a]), np.stack([a]), target="polyp", dataset="cvc_clinicdb")
    acc.add("c3", {"dice": 0.0, "iou": 0.0, "hd95": 10.0}, target="left kidney", dataset="totalseg")
    acc.add_prediction("c4", np.stack([z]), np.stack([z]), target="liver", dataset="totalseg")
    assert len(acc) == 4
    out = acc.write(tmp_path / "sub" / "metrics.json")
    data = json.loads((tmp_path / "sub" / "metrics.json").read_text())
    assert data == out
    assert set(data) == {"dice", "iou", "hd95", "n_cases", "per_case", "per_dataset"}
    assert data["n_cases"] == 4
    assert data["dice"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert data["hd95"] == pytest.approx((2 + 0 + 10 + 0) / 4)
    assert data["per_case"][0] == {
        "id": "c1", "target": "polyp", "dataset": "cvc_clinicdb", "dice": 0.5,
        "iou": pytest.approx(1 / 3), "hd95": 2.0,
    }
    assert data["per_dataset"]["cvc_clinicdb"] == {"dice": 0.75, "iou": pytest.approx(2 / 3), "hd95": 1.0, "n_cases": 2}
    assert data["per_dataset"]["totalseg"]["n_cases"] == 2
    assert not list((tmp_path / "sub").glob("*.tmp"))
    with pytest.raises(KeyError):
        acc.add("bad", {"dice": 1.0})
