"""IntensityPreset(d) on real CT, MR, ultrasound and endoscopy data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai_ext.transforms import CT_WINDOWS, INTENSITY_PRESETS, IntensityPreset, IntensityPresetd, ToSequence

try:
    from monai_ext.io import load_source as _load_source
except ImportError:  # pragma: no cover - before monai_ext.io exists
    _load_source = None


def load(path) -> MetaTensor:
    if _load_source is not None:
        return _load_source(path if isinstance(path, list) else str(path))
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)(path if isinstance(path, list) else str(path))


def _check_unit(x: torch.Tensor) -> None:
    assert x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_named_windows_are_documented():
    assert CT_WINDOWS == {
        "abdomen": (40.0, 400.0),
        "soft_tissue": (50.0, 350.0),
        "lung": (-600.0, 1500.0),
        "bone": (400.0, 1800.0),
        "brain": (40.0, 80.0),
    }
    assert set(INTENSITY_PRESETS) == {"ct", "mr", "ultrasound", "rgb"}


@pytest.mark.parametrize("window", [None, *CT_WINDOWS, (0.0, 1000.0)])
def test_ct_window(shared_data, window):
    src = load(shared_data / "totalseg/ct_small/ct.nii.gz")
    out = IntensityPreset("ct", window=window)(src)
    _check_unit(out)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, src.affine)
    level, width = IntensityPreset.resolve_window("abdomen" if window is None else window)
    x = src.as_tensor().double()
    expected = ((x - (level - width / 2)) / width).clamp(0, 1)
    assert torch.allclose(out.as_tensor().double(), expected, atol=1e-6)
    # the documented anchor values: level - width/2 -> 0, level -> 0.5, level + width/2 -> 1
    anchors = torch.tensor([[level - width / 2, level, level + width / 2, -5000.0, 5000.0]])
    probe = IntensityPreset("ct", window=window)(anchors)
    assert torch.allclose(probe, torch.tensor([[0.0, 0.5, 1.0, 0.0, 1.0]]), atol=1e-6)


def test_mr_percentiles_per_volume(shared_data):
    src = load(shared_data / "totalseg/mr_small/mr.nii.gz")
    out = IntensityPreset("mr")(src)
    _check_unit(out)
    x = src.as_tensor().numpy().astype(np.float64)
    lo, hi = np.percentile(x, [0.5, 99.5])
    expected = np.clip((x - lo) / (hi - lo), 0, 1)
    assert np.allclose(out.as_tensor().numpy(), expected, atol=1e-5)
    assert 0.001 < float((out == 1).float().mean()) <= 0.006  # ~0.5 % at the top
    # the same on the sequence: percentiles over the whole sequence, not per frame
    seq = ToSequence()(src)
    out_seq = IntensityPreset("mr")(seq)
    _check_unit(out_seq)
    assert torch.allclose(out_seq.as_tensor(), ToSequence()(out).as_tensor())  # global percentiles commute
    per_frame = IntensityPreset("mr", per_frame=True)(seq)
    assert not torch.allclose(per_frame.as_tensor(), out_seq.as_tensor())


def test_per_frame_percentiles(shared_data):
    src = load(shared_data / "brats2013/brats_2013_pat0003_1/flair.nii.gz")
    seq = ToSequence()(src)[60:70]  # ten axial frames through the brain
    out = IntensityPreset("mr", per_frame=True)(seq)
    _check_unit(out)
    for t in range(out.shape[0]):
        frame = seq.as_tensor()[t].numpy().astype(np.float64)
        lo, hi = np.percentile(frame, [0.5, 99.5])
        assert np.allclose(out.as_tensor()[t].numpy(), np.clip((frame - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_ultrasound_frames_and_three_channels(shared_data):
    folder = shared_data / "carotid_us" / "US images"
    frames = sorted(folder.glob("*.png"))[:4]
    src = load([str(p) for p in frames])
    grey = src[:1] if src.shape[0] == 3 else src
    seq = ToSequence()(grey)
    out = IntensityPreset("ultrasound", num_channels=3)(seq)
    _check_unit(out)
    assert out.shape == (seq.shape[0], 3, *seq.shape[2:])
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert out.meta.get("is_sequence") is True
    # on a source (channel first) the channel axis is 0
    vol = IntensityPreset("mr", num_channels=3)(load(shared_data / "totalseg/mr_small/mr.nii.gz"))
    assert vol.shape[0] == 3


def test_rgb(shared_data):
    paths = [str(shared_data / "cvc_clinicdb" / "Original" / f"{i}.png") for i in (1, 2)]
    src = load(paths)
    out = IntensityPreset("rgb")(src)
    _check_unit(out)
    assert torch.allclose(out.as_tensor(), src.as_tensor() / 255.0)
    assert IntensityPreset("rgb", num_channels=3)(src).shape == src.shape  # already 3 channels
    with pytest.raises(ValueError, match="channels"):
        IntensityPreset("rgb", num_channels=4)(src)


def test_dict_keeps_label_and_trace(shared_data):
    img = load(shared_data / "totalseg/ct_small/ct.nii.gz")
    lab = load(shared_data / "totalseg/ct_small/seg.nii.gz")
    to_seq = ToSequence()
    seq = to_seq(img)
    d = IntensityPresetd("image", preset="CT", window="lung")({"image": seq, "label": lab})
    _check_unit(d["image"])
    assert d["label"] is lab
    assert len(d["image"].applied_operations) == 1  # the ToSequence record survives (for Invertd)
    assert to_seq.inverse(d["image"]).shape == img.shape


def test_errors():
    with pytest.raises(ValueError, match="ct, mr, ultrasound, rgb"):
        IntensityPreset("xray")
    with pytest.raises(ValueError, match="abdomen"):
        IntensityPreset("ct", window="liver")
    with pytest.raises(ValueError, match="width"):
        IntensityPreset("ct", window=(40, 0))
    with pytest.raises(ValueError, match="only used by the 'ct'"):
        IntensityPreset("mr", window="lung")
    with pytest.raises(ValueError, match="lower"):
        IntensityPreset("mr", lower=60, upper=40)


def test_constant_input_gives_zeros():
    out = IntensityPreset("mr")(torch.full((1, 4, 4, 3), 7.0))
    assert out.dtype == torch.float32 and float(out.abs().max()) == 0.0
    out = IntensityPreset("ultrasound", per_frame=True, channel_dim=1)(torch.full((3, 1, 4, 4), 7.0))
    assert float(out.abs().max()) == 0.0
