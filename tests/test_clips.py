"""ClipSampler / SampleClipd / split_by_sequence (real ACDC label presence, real CVC-ClinicDB sequence ids)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai_ext.data import CLIP_META_KEY, ClipSampler, SampleClipd, split_by_sequence
from monai_ext.transforms import ToSequenced, frame_presence

try:
    from monai_ext.io import load_source as _load_source
except ImportError:  # pragma: no cover - before monai_ext.io exists
    _load_source = None


def load(path) -> MetaTensor:
    if _load_source is not None:
        return _load_source(str(path))
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)(str(path))


def _check_clip(clip: np.ndarray, n: int, t: int) -> None:
    assert clip.shape == (t,) and clip.dtype == np.int64
    assert clip.min() >= 0 and clip.max() < n
    assert np.all(np.diff(clip) >= 0)


@pytest.mark.parametrize(
    "n,t,stride,jitter",
    [(50, 8, 1, 0), (50, 8, 3, 0), (50, 8, 2, 1), (40, 5, 4, 3), (7, 8, 1, 0), (10, 4, 5, 2), (1, 3, 1, 0)],
)
def test_clip_properties(n, t, stride, jitter):
    sampler = ClipSampler(num_frames=t, stride=stride, jitter=jitter, seed=0)
    for _ in range(200):
        clip = sampler(n)
        _check_clip(clip, n, t)
        steps = np.diff(clip)
        if clip[-1] < n - 1 or n > (t - 1) * (stride + jitter):  # the clip fits: no padding
            assert np.all(steps >= max(1, stride - jitter)) and np.all(steps <= stride + jitter)
        if jitter == 0 and n > (t - 1) * stride:
            assert np.all(steps == stride)


def test_short_sequence_padded_with_last_frame():
    clip = ClipSampler(num_frames=8, seed=0)(5)
    assert clip.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    clip = ClipSampler(num_frames=4, stride=3, seed=0)([False, True, False, False, False])
    assert clip.tolist() == [0, 3, 4, 4]


def test_deterministic_with_seed():
    presence = np.zeros(60, dtype=bool)
    presence[[5, 30, 31, 50]] = True
    a = [ClipSampler(6, stride=2, jitter=1, seed=3)(presence).tolist() for _ in range(1)]
    s1, s2, s3 = (ClipSampler(6, stride=2, jitter=1, seed=s) for s in (3, 3, 4))
    r1 = [s1(presence).tolist() for _ in range(20)]
    r2 = [s2(presence).tolist() for _ in range(20)]
    r3 = [s3(presence).tolist() for _ in range(20)]
    assert r1 == r2 and r1[0] == a[0]
    assert r1 != r3


@pytest.mark.parametrize("require", ["any", "first"])
def test_resamples_where_target_absent(require):
    presence = np.zeros(100, dtype=bool)
    presence[[10, 11, 70]] = True
    sampler = ClipSampler(num_frames=4, stride=2, jitter=1, require=require, seed=1)
    starts = set()
    for _ in range(200):
        clip = sampler(presence)
        _check_clip(clip, 100, 4)
        if require == "any":
            assert presence[clip].any()
        else:
            assert presence[clip[0]]
        starts.add(int(clip[0]))
    assert len(starts) > 2  # still random among the valid starts
    # without resampling the target is often missed
    plain = ClipSampler(num_frames=4, stride=2, resample_if_absent=False, seed=1)
    assert not all(presence[plain(presence)].any() for _ in range(50))


def test_absent_everywhere_and_errors():
    clip = ClipSampler(num_frames=3, seed=0)(np.zeros(10, dtype=bool))
    _check_clip(clip, 10, 3)
    with pytest.raises(ValueError, match="empty"):
        ClipSampler(3)([])
    bad = ({"num_frames": 0}, {"num_frames": 2, "stride": 0}, {"num_frames": 2, "jitter": -1}, {"num_frames": 2, "require": "x"})
    for kwargs in bad:
        with pytest.raises(ValueError):
            ClipSampler(**kwargs)


def test_sample_clipd_on_real_sequence(shared_data):
    d = {
        "image": load(shared_data / "acdc/patient001/patient001_frame01.nii.gz"),
        "label": load(shared_data / "acdc/patient001/patient001_frame01_gt.nii.gz"),
    }
    seq = ToSequenced(("image", "label"), mode=("bilinear", "nearest"))(d)
    presence = frame_presence(seq["label"], label_values=[3])
    assert 0 < presence.sum() < len(presence)
    t = SampleClipd(("image", "label"), num_frames=3, stride=2, label_values=[3], require="first", seed=0)
    for _ in range(10):
        out = t(seq)
        clip = out["image"].meta[CLIP_META_KEY]
        assert out["image"].shape == (3, *seq["image"].shape[1:])
        assert out["label"].meta[CLIP_META_KEY] == clip
        assert presence[clip[0]]
        assert torch.equal(out["label"].as_tensor(), seq["label"].as_tensor()[clip])
        assert seq["image"].shape[0] == len(presence)  # the input is not modified
    # MONAI-style re-seeding gives the same clips
    t7 = [SampleClipd(("image", "label"), 4, seed=0).set_random_state(7) for _ in range(2)]
    a = [t(seq)["image"].meta[CLIP_META_KEY] for t in t7]
    assert a[0] == a[1]
    with pytest.raises(ValueError, match="frames"):
        SampleClipd(("image", "label"), 2)({"image": seq["image"][1:], "label": seq["label"]})


def _cvc_samples(shared_data) -> list[dict]:
    blocks = json.loads((shared_data / "cvc_clinicdb" / "sequences.json").read_text())["sequences"]
    samples = []
    for block in blocks:
        for i in range(block["first"], block["last"] + 1):
            samples.append({"id": f"cvc_{i:04d}", "image": f"{i}.png", "sequence_id": block["id"]})
    return samples


def test_split_by_sequence_never_mixes(shared_data):
    samples = _cvc_samples(shared_data)
    groups = {s["sequence_id"] for s in samples}
    assert len(groups) >= 10
    splits = split_by_sequence(samples, seed=0)
    assert set(splits) == {"training", "validation", "test"}
    seen: dict[str, str] = {}
    for name, items in splits.items():
        assert items, name  # every split gets at least one sequence
        for s in items:
            assert s["split"] == name
            assert seen.setdefault(s["sequence_id"], name) == name
    assert sorted(s["id"] for v in splits.values() for s in v) == sorted(s["id"] for s in samples)
    assert "split" not in samples[0]  # the input is not modified
    n_train = len({s["sequence_id"] for s in splits["training"]})
    assert abs(n_train - 0.7 * len(groups)) <= 1
    # deterministic, independent of the sample order, and seed-dependent
    again = split_by_sequence(list(reversed(samples)), seed=0)
    assign = lambda sp: {s["id"]: n for n, v in sp.items() for s in v}  # noqa: E731
    assert assign(again) == assign(splits)
    others = [assign(split_by_sequence(samples, seed=s)) for s in (1, 2, 3)]
    assert any(o != assign(splits) for o in others)


def test_split_by_sequence_options_and_errors():
    samples = [{"id": f"s{i}", "case": f"c{i // 3}"} for i in range(30)]  # 10 cases of 3
    sp = split_by_sequence(samples, fractions={"training": 0.8, "test": 0.2}, seed=5, key="case")
    assert [len(v) for v in sp.values()] == [24, 6]
    sp = split_by_sequence(samples[:3], key="case")  # one case: all in the largest split
    assert len(sp["training"]) == 3 and not sp["validation"] and not sp["test"]
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_sequence(samples, fractions={"training": 0.5, "test": 0.2}, key="case")
    with pytest.raises(ValueError, match="non-negative"):
        split_by_sequence(samples, fractions={"training": 1.2, "test": -0.2}, key="case")
    with pytest.raises(KeyError, match="sequence_id"):
        split_by_sequence(samples)
