"""DropEmptyFramesd on real ACDC / BraTS label sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai_ext.transforms import KEPT_FRAMES_META_KEY, DropEmptyFramesd, ToSequenced, frame_presence

try:
    from monai_ext.io import load_source as _load_source
except ImportError:  # pragma: no cover - before monai_ext.io exists
    _load_source = None


def load(path) -> MetaTensor:
    if _load_source is not None:
        return _load_source(str(path))
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)(str(path))


@pytest.fixture(scope="module")
def acdc(shared_data):
    d = {
        "image": load(shared_data / "acdc/patient001/patient001_frame01.nii.gz"),
        "label": load(shared_data / "acdc/patient001/patient001_frame01_gt.nii.gz"),
    }
    return ToSequenced(("image", "label"), mode=("bilinear", "nearest"))(d)


def _fresh(acdc):
    out = {}
    for k, v in acdc.items():
        m = MetaTensor(v.as_tensor().clone())
        m.copy_meta_from(v)
        m.applied_operations = [dict(op) for op in v.applied_operations]
        out[k] = m
    return out


def test_drop_and_inverse(acdc):
    data = _fresh(acdc)
    presence = frame_presence(data["label"])
    assert 0 < presence.sum() < len(presence)  # real gts: the apex/base slices are empty
    t = DropEmptyFramesd(("image", "label"))
    out = t(data)
    kept = np.flatnonzero(presence).tolist()
    assert out["image"].shape[0] == out["label"].shape[0] == len(kept)
    assert out["image"].meta[KEPT_FRAMES_META_KEY] == kept
    assert frame_presence(out["label"]).all()
    assert torch.equal(out["image"].as_tensor(), data["image"].as_tensor()[kept])
    back = t.inverse(out)
    assert torch.equal(back["label"].as_tensor(), data["label"].as_tensor())  # dropped frames were empty
    img = back["image"].as_tensor()
    assert img.shape == data["image"].shape
    dropped = [i for i in range(len(presence)) if i not in kept]
    assert float(img[dropped].abs().max()) == 0.0  # zeros back in the dropped positions
    assert torch.equal(img[kept], data["image"].as_tensor()[kept])
    assert KEPT_FRAMES_META_KEY not in back["image"].meta
    assert len(back["image"].applied_operations) == 1  # only the ToSequenced record is left


def test_min_frames_keeps_neighbours(acdc):
    data = _fresh(acdc)
    presence = frame_presence(data["label"])
    n = len(presence)
    t = DropEmptyFramesd(("image", "label"), min_frames=int(presence.sum()) + 1)
    out = t(data)
    kept = out["label"].meta[KEPT_FRAMES_META_KEY]
    assert len(kept) == presence.sum() + 1 and kept == sorted(kept)
    extra = [i for i in kept if not presence[i]]
    first, last = np.flatnonzero(presence)[[0, -1]]
    assert len(extra) == 1 and extra[0] in (first - 1, last + 1)  # next to a labelled frame
    all_kept = DropEmptyFramesd(("image", "label"), min_frames=1000)(_fresh(acdc))
    assert all_kept["image"].shape[0] == n


def test_label_values_and_errors(acdc):
    data = _fresh(acdc)
    rv = frame_presence(data["label"], label_values=[1])
    lv = frame_presence(data["label"], label_values=[3])
    assert rv.sum() <= frame_presence(data["label"]).sum() and lv.any()
    out = DropEmptyFramesd(("image", "label"), label_values=[1])(_fresh(acdc))
    assert out["label"].shape[0] == max(int(rv.sum()), 1)
    with pytest.raises(ValueError, match=r"\(T, C, S1, S2\)"):
        DropEmptyFramesd("label")({"label": data["label"][0]})
    with pytest.raises(KeyError, match="label"):
        DropEmptyFramesd("image")({"image": data["image"]})
    bad = _fresh(acdc)
    bad["image"] = bad["image"][1:]
    with pytest.raises(ValueError, match="frames"):
        DropEmptyFramesd(("image", "label"))(bad)
