"""ToSequence / ToSequenced / FromSequence on the real volumes, DICOM series and frame sources of ../shared/data."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import Compose, Invertd
from monai_ext.transforms import (
    SEQUENCE_META_KEY,
    DropEmptyFramesd,
    FromSequence,
    FromSequenced,
    IntensityPresetd,
    ToSequence,
    ToSequenced,
    from_sequence,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

try:  # the project's reader (docs/DESIGN.md, section 1)
    from monai_ext.io import load_source as _load_source
except ImportError:  # pragma: no cover - before monai_ext.io exists
    _load_source = None


def load(path) -> MetaTensor:
    """Channel-first MetaTensor of a source, with monai_ext.io when available, else MONAI's LoadImage."""
    if isinstance(path, list):
        return _load(tuple(str(p) for p in path))
    return _load(str(path))


@functools.lru_cache(maxsize=6)
def _load(path: str | tuple[str, ...]) -> MetaTensor:
    """Cached: several tests use the same files (the tests never modify a loaded source in place)."""
    if _load_source is not None:
        return _load_source(list(path) if isinstance(path, tuple) else path)
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)(path if isinstance(path, str) else list(path))


def _volume_files() -> list[str]:
    """Every real volume (image and label) of the shared data, relative to its root."""
    files = [
        "totalseg/ct_small/ct.nii.gz",
        "totalseg/ct_small/seg.nii.gz",
        "totalseg/mr_small/mr.nii.gz",
        "totalseg/mr_small/seg.nii.gz",
        "totalseg/ct_long_unlabeled/ct.nii.gz",
    ]
    if SHARED.is_dir():
        files += sorted(str(p.relative_to(SHARED)) for p in SHARED.glob("acdc/patient*/*.nii.gz"))
        files += sorted(str(p.relative_to(SHARED)) for p in SHARED.glob("brats2013/*/*.nii.gz"))
    return files


VOLUMES = _volume_files()


def _cvc_frames(shared_data: Path, first: int = 1, count: int = 6) -> tuple[list[str], list[str]]:
    images = [str(shared_data / "cvc_clinicdb" / "Original" / f"{i}.png") for i in range(first, first + count)]
    masks = [str(shared_data / "cvc_clinicdb" / "Ground Truth" / f"{i}.png") for i in range(first, first + count)]
    return images, masks


def _world(affine: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    return (aff[:3, :3] @ idx.T).T + aff[:3, 3]


def test_volume_count(shared_data):
    assert len([v for v in VOLUMES if v.startswith("acdc/")]) == 80  # 40 volumes + 40 gts
    assert len([v for v in VOLUMES if v.startswith("brats2013/")]) == 8  # 4 flair + 4 labels
    for v in VOLUMES:
        assert (shared_data / v).is_file(), v


@pytest.mark.parametrize("rel", VOLUMES)
def test_volume_round_trip_voxel_exact(shared_data, rel):
    """source -> ToSequence -> inverse is voxel-exact (array and affine) for several geometries."""
    src = load(shared_data / rel)
    assert src.ndim == 4
    configs = [
        {},  # RAS, axial (the mask check below runs on this one)
        {"axcodes": "LPS", "slice_axis": 0},
    ]
    src_t = src.as_tensor()
    for i, cfg in enumerate(configs):
        to_seq = ToSequence(**cfg)
        seq = to_seq(src)
        assert seq.ndim == 4 and seq.shape[1] == src.shape[0], cfg
        assert seq.meta[SEQUENCE_META_KEY] is True
        assert sorted(seq.shape[:1] + seq.shape[2:]) == sorted(src.shape[1:])
        if i == 0:  # a one-channel mask sequence (made before the inverse pops the record) goes back too
            thr = float(seq.as_tensor()[:, :1].mean())
            mask = MetaTensor((seq.as_tensor()[:, :1] > thr).to(torch.uint8))
            mask.copy_meta_from(seq)
        back = to_seq.inverse(seq)
        assert back.shape == src.shape, cfg
        assert torch.equal(back.as_tensor(), src_t), cfg
        assert torch.equal(back.affine.double(), src.affine.double()), cfg
        assert SEQUENCE_META_KEY not in back.meta
        assert len(back.applied_operations) == len(src.applied_operations)
        if i == 0:
            mback = to_seq.inverse(mask)
            assert mback.shape == (1, *src.shape[1:])
            assert mback.dtype == torch.uint8
            assert torch.equal(mback.as_tensor(), (src_t[:1] > thr).to(torch.uint8))


@pytest.mark.parametrize(
    "rel",
    [
        "totalseg/mr_small/mr.nii.gz",
        "brats2013/brats_2013_pat0003_1/flair.nii.gz",
        "acdc/patient001/patient001_frame01.nii.gz",
    ],
)
@pytest.mark.parametrize("axcodes,slice_axis", [("RAS", -1), ("LPS", -1), (None, 1), ("PLI", 0)])
def test_sequence_affine_is_consistent(shared_data, rel, axcodes, slice_axis):
    """Each sequence voxel (s1, s2, t) lies at the same world point as the source voxel it came from."""
    src = load(shared_data / rel)
    seq = ToSequence(axcodes=axcodes, slice_axis=slice_axis)(src)
    rng = np.random.RandomState(0)
    t_idx = rng.randint(seq.shape[0], size=20)
    a_idx = rng.randint(seq.shape[2], size=20)
    b_idx = rng.randint(seq.shape[3], size=20)
    world = _world(seq.affine, np.stack([a_idx, b_idx, t_idx], axis=1).astype(np.float64))
    inv_src = np.linalg.inv(np.asarray(src.affine, dtype=np.float64))
    vox = np.rint((inv_src[:3, :3] @ world.T).T + inv_src[:3, 3]).astype(int)
    for k in range(20):
        assert seq[t_idx[k], 0, a_idx[k], b_idx[k]] == src[0, vox[k, 0], vox[k, 1], vox[k, 2]]
    if axcodes == "RAS" and slice_axis == -1:  # axial frames: the frame axis points superior
        assert float(seq.affine[2, 2]) > 0


def test_orientation_matches_monai(shared_data):
    """The oriented frames are MONAI's Orientation output with the slice axis moved to the front."""
    from monai.transforms import Orientation

    src = load(shared_data / "totalseg/mr_small/mr.nii.gz")  # LPS on disk
    oriented = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(src.clone())
    seq = ToSequence(axcodes="RAS")(src)
    assert torch.equal(seq.as_tensor(), oriented.as_tensor().permute(3, 0, 1, 2))


def test_permuted_affine_round_trip(shared_data):
    """A source whose voxel axes are permuted w.r.t. RAS (e.g. a sagittal acquisition) is re-ordered and back."""
    src = load(shared_data / "totalseg/ct_small/ct.nii.gz")
    aff = np.asarray(src.affine, dtype=np.float64)
    perm = np.eye(4)[:, [2, 0, 1, 3]]  # voxel axis 0 -> S, 1 -> R, 2 -> A
    tilted = MetaTensor(src.as_tensor().clone(), meta=dict(src.meta))
    tilted.affine = torch.as_tensor(aff @ perm)
    to_seq = ToSequence(axcodes="RAS")
    seq = to_seq(tilted)
    assert seq.shape == (src.shape[1], 1, src.shape[2], src.shape[3])  # the S axis (voxel axis 0) is the frame axis
    back = to_seq.inverse(seq)
    assert torch.equal(back.as_tensor(), tilted.as_tensor())
    assert torch.equal(back.affine, tilted.affine.double())


@pytest.mark.parametrize(
    "rel,mode",
    [
        ("totalseg/ct_small/ct.nii.gz", "bilinear"),
        ("totalseg/ct_small/seg.nii.gz", "nearest"),
        ("totalseg/mr_small/mr.nii.gz", "area"),
        ("acdc/patient001/patient001_frame01_gt.nii.gz", "nearest"),
    ],
)
def test_resize_round_trip_shape(shared_data, rel, mode):
    src = load(shared_data / rel)
    to_seq = ToSequence(spatial_size=(64, 48), mode=mode)
    seq = to_seq(src)
    assert seq.shape[2:] == (64, 48)
    back = to_seq.inverse(seq)
    assert back.shape == src.shape
    assert torch.equal(back.affine, src.affine.double())
    if mode == "nearest":  # labels stay labels and mostly agree with the source
        assert set(torch.unique(back).tolist()) <= set(torch.unique(src).tolist())
        agree = (back.as_tensor() == src.as_tensor()).float().mean().item()
        assert agree > 0.85


def test_resize_keeps_a_dimension(shared_data):
    src = load(shared_data / "acdc/patient001/patient001_frame01.nii.gz")
    seq = ToSequence(spatial_size=(128, -1))(src)
    assert seq.shape[2:] == (128, src.shape[2])


def test_invertd_restores_geometry(shared_data):
    """MONAI's Invertd maps a predicted sequence back to the source geometry (resized and not)."""
    ct = str(shared_data / "totalseg/ct_small/ct.nii.gz")
    seg = str(shared_data / "totalseg/ct_small/seg.nii.gz")
    label = load(seg)
    for spatial_size in (None, (96, 80)):
        pre = Compose(
            [
                ToSequenced(("image", "label"), axcodes="LPS", spatial_size=spatial_size, mode=("bilinear", "nearest")),
                IntensityPresetd("image", preset="ct", window="abdomen"),
            ]
        )
        data = pre({"image": load(ct), "label": label.clone()})
        assert data["image"].shape[0] == label.shape[3]
        pred = MetaTensor((data["label"].as_tensor() == 5).float())  # (T, 1, S1, S2), "a prediction" of organ 5
        out = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)({**data, "pred": pred})
        restored = out["pred"]
        assert restored.shape == label.shape
        assert torch.equal(restored.affine, label.affine.double())
        assert set(torch.unique(restored).tolist()) <= {0.0, 1.0}
        truth = (label.as_tensor() == 5).float()
        if spatial_size is None:
            assert torch.equal(restored.as_tensor(), truth)
        else:
            inter = (restored.as_tensor() * truth).sum()
            dice = (2 * inter / (restored.as_tensor().sum() + truth.sum())).item()
            assert dice > 0.8


def test_invertd_through_drop_empty_frames(shared_data):
    """Invertd undoes DropEmptyFramesd (zeros back) and then ToSequenced: the label comes back exactly."""
    img = load(shared_data / "acdc/patient001/patient001_frame01.nii.gz")
    lab = load(shared_data / "acdc/patient001/patient001_frame01_gt.nii.gz")
    pre = Compose(
        [
            ToSequenced(("image", "label"), mode=("bilinear", "nearest")),
            DropEmptyFramesd(("image", "label"), label_key="label"),
        ]
    )
    data = pre({"image": img, "label": lab})
    assert data["image"].shape[0] < img.shape[3]  # ACDC gts have empty slices
    pred = MetaTensor(data["label"].as_tensor().clone())
    restored = Invertd(keys="pred", transform=pre, orig_keys="image")({**data, "pred": pred})["pred"]
    assert restored.shape == lab.shape
    assert torch.equal(restored.as_tensor(), lab.as_tensor())
    assert torch.equal(restored.affine, lab.affine.double())


def test_dict_inverse_and_from_sequence(shared_data):
    src = load(shared_data / "brats2013/brats_2013_pat0004_1/flair.nii.gz")
    lab = load(shared_data / "brats2013/brats_2013_pat0004_1/labels.nii.gz")
    t = ToSequenced(("image", "label"), axcodes="RAS", slice_axis=1, mode=("bilinear", "nearest"))
    d = t({"image": src, "label": lab})
    back = t.inverse(d)
    assert torch.equal(back["image"].as_tensor(), src.as_tensor())
    assert torch.equal(back["label"].as_tensor(), lab.as_tensor())
    # FromSequence from the source meta alone, on a plain tensor
    plain = d["label"].as_tensor()
    for source in (src, dict(src.meta)):
        out = FromSequence(axcodes="RAS", slice_axis=1)(plain, source)
        assert torch.equal(out.as_tensor(), lab.as_tensor())
        assert torch.equal(out.affine, src.affine.double())
    out = from_sequence(plain, src, axcodes="RAS", slice_axis=1)
    assert torch.equal(out.as_tensor(), lab.as_tensor())
    out = FromSequenced("pred", source_key="image", axcodes="RAS", slice_axis=1)({"pred": plain, "image": src})
    assert torch.equal(out["pred"].as_tensor(), lab.as_tensor())


def test_from_sequence_resized(shared_data):
    src = load(shared_data / "totalseg/mr_small/mr.nii.gz")
    seq = ToSequence(spatial_size=(50, 40))(src)
    mask = (seq.as_tensor()[:, :1] > 100).to(torch.uint8)
    out = FromSequence()(mask, src)
    assert out.shape == src.shape and out.dtype == torch.uint8
    assert torch.equal(out.affine, src.affine.double())


def test_dicom_series_round_trip(shared_data, tmp_path):
    """A DICOM series (written from a real CT, file names shuffled) round-trips exactly."""
    import monai_ext.io as io
    ct = load(shared_data / "totalseg/ct_small/ct.nii.gz")
    io.write_dicom_series(ct[0].numpy(), np.asarray(ct.affine), tmp_path / "series", shuffle_names=True)
    src = io.load_source(str(tmp_path / "series"))
    assert src.meta["source_kind"] == "dicom_series"
    to_seq = ToSequence()
    seq = to_seq(src)
    ref = ToSequence()(ct)
    assert torch.allclose(seq.as_tensor(), ref.as_tensor())  # same frames as from the NIfTI
    mask = MetaTensor((seq.as_tensor()[:, :1] > 0).to(torch.uint8))
    mask.copy_meta_from(seq)  # before the inverse below pops the record from seq
    back = to_seq.inverse(seq)
    assert torch.equal(back.as_tensor(), src.as_tensor())
    assert torch.equal(back.affine, src.affine.double())
    mback = to_seq.inverse(mask)
    assert mback.shape == (1, *src.shape[1:])
    assert torch.equal(mback.affine, src.affine.double())


def test_frame_source_round_trip(shared_data):
    """(3, H, W, T) frames from real CVC-ClinicDB PNGs: never re-oriented, time is the frame axis."""
    images, masks = _cvc_frames(shared_data)
    src = load(images)
    assert src.shape[0] == 3 and src.shape[3] == len(images)
    if "source_kind" not in src.meta:  # pragma: no cover - fallback loader
        src.meta["source_kind"] = "frames"
    for axcodes in ("RAS", "LPS"):
        to_seq = ToSequence(axcodes=axcodes)
        seq = to_seq(src)
        assert seq.shape == (len(images), 3, src.shape[1], src.shape[2])
        for t in range(len(images)):
            assert torch.equal(seq[t].as_tensor(), src[..., t].as_tensor())
        back = to_seq.inverse(seq)
        assert torch.equal(back.as_tensor(), src.as_tensor())
        assert torch.equal(back.affine, src.affine.double())
    # a one-channel mask of the RGB frames, resized and back
    gt = load(masks)[:1]
    to_seq = ToSequence(spatial_size=(128, 160))
    seq = to_seq(src)
    gseq = ToSequence(spatial_size=(128, 160), mode="nearest")(gt)
    pred = MetaTensor((gseq.as_tensor() > 127).to(torch.uint8))
    pred.copy_meta_from(seq)
    back = to_seq.inverse(pred)  # integer masks are resized back with nearest
    assert back.shape == (1, *src.shape[1:]) and back.dtype == torch.uint8
    agree = (back.as_tensor() == (gt.as_tensor() > 127).to(torch.uint8)).float().mean().item()
    assert agree > 0.97


def test_frame_kinds_are_not_reoriented(shared_data):
    images, _ = _cvc_frames(shared_data, count=3)
    src = load(images)
    flipped = MetaTensor(src.as_tensor().clone(), meta={"source_kind": "frames"})
    flipped.affine = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64))
    seq = ToSequence(axcodes="RAS")(flipped)
    assert torch.equal(seq.as_tensor(), flipped.as_tensor().permute(3, 0, 1, 2))


def test_wrong_dimensionality(shared_data):
    src = load(shared_data / "acdc/patient001/patient001_frame01.nii.gz")
    with pytest.raises(ValueError, match="channel-first"):
        ToSequence()(src[0])  # (X, Y, Z): no channel
    with pytest.raises(ValueError, match="channel-first"):
        ToSequence()(src[None])
    with pytest.raises(ValueError, match="slice_axis"):
        ToSequence(slice_axis=3)
    with pytest.raises(ValueError, match="axcodes"):
        ToSequence(axcodes="RA")
    to_seq = ToSequence()
    seq = to_seq(src)
    bad = MetaTensor(seq.as_tensor()[:, 0])
    bad.copy_meta_from(seq)
    with pytest.raises(ValueError, match=r"\(T, C, S1, S2\)"):
        to_seq.inverse(bad)
    short = MetaTensor(seq.as_tensor()[1:])
    short.copy_meta_from(seq)
    with pytest.raises(ValueError, match="frames"):
        to_seq.inverse(short)
    with pytest.raises(ValueError, match="spatial_shape"):
        FromSequence()(seq.as_tensor(), {"affine": np.eye(4)})


def test_invertd_after_collate_and_decollate(shared_data):
    """The MONAI inference pattern: DataLoader batch -> decollate_batch -> Invertd, records survive collation."""
    from monai.data import DataLoader, Dataset, decollate_batch

    files = [{"image": load(shared_data / f"acdc/patient001/patient001_frame0{i}.nii.gz")} for i in (1, 2)]
    pre = Compose(
        [ToSequenced("image", spatial_size=(128, 128)), IntensityPresetd("image", preset="mr", num_channels=3)]
    )
    batch = next(iter(DataLoader(Dataset(files, pre), batch_size=2, num_workers=0)))
    assert batch["image"].shape[0] == 2 and batch["image"].shape[2:] == (3, 128, 128)
    batch["pred"] = (batch["image"][:, :, :1] > 0.5).float()
    for item, src in zip(decollate_batch(batch), files):
        out = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)(item)
        assert out["pred"].shape == (1, *src["image"].shape[1:])
        assert torch.equal(out["pred"].affine, src["image"].affine.double())
