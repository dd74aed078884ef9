"""Readers of monai_ext.io on real files: volumes, frames, images, DICOM cine, detection and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_ext.io import (
    LoadSequence,
    LoadSequenced,
    SequenceReadError,
    detect_source_kind,
    load_source,
    natural_sort_key,
)

COMMON_KEYS = ("source_kind", "filename_or_obj", "spatial_shape", "affine", "original_affine")


def _check_common(img: MetaTensor, kind: str) -> None:
    assert isinstance(img, MetaTensor)
    assert img.ndim == 4
    for key in COMMON_KEYS:
        assert key in img.meta, key
    assert img.meta["source_kind"] == kind
    assert tuple(int(s) for s in img.meta["spatial_shape"]) == tuple(img.shape[1:])
    assert np.allclose(np.asarray(img.meta["original_affine"]), img.affine.numpy())


@pytest.mark.parametrize(
    "rel",
    [
        "totalseg/ct_small/ct.nii.gz",
        "totalseg/mr_small/mr.nii.gz",
        "acdc/patient001/patient001_frame01.nii.gz",
        "acdc/patient001/patient001_frame01_gt.nii.gz",
        "brats2013/brats_2013_pat0003_1/flair.nii.gz",
    ],
)
def test_nifti_volume(shared_data: Path, rel: str) -> None:
    path = shared_data / rel
    ref = nib.load(path)
    img = load_source(path)
    _check_common(img, "volume")
    assert img.shape == (1, *ref.shape)
    assert img.dtype == torch.float32
    np.testing.assert_allclose(img.affine.numpy(), ref.affine, atol=1e-6)
    np.testing.assert_array_equal(img[0].numpy(), np.asarray(ref.dataobj, dtype=np.float32))
    assert img.meta["filename_or_obj"] == str(path)
    assert img.meta["stem"] == path.name[: -len(".nii.gz")]


def test_nifti_keeps_dtype(shared_data: Path) -> None:
    img = load_source(shared_data / "totalseg/ct_small/ct.nii.gz", dtype=None)
    assert img.dtype == torch.int16


@pytest.mark.parametrize("ext", [".mha", ".nrrd", ".mhd"])
@pytest.mark.parametrize("rel", ["totalseg/ct_small/ct.nii.gz", "totalseg/mr_small/mr.nii.gz"])
def test_sitk_volume_matches_nifti(shared_data: Path, tmp_path: Path, rel: str, ext: str) -> None:
    import SimpleITK as sitk
    src = shared_data / rel
    out = tmp_path / f"vol{ext}"
    sitk.WriteImage(sitk.ReadImage(str(src)), str(out))
    ref = load_source(src, dtype=None)
    img = load_source(out, dtype=None)
    _check_common(img, "volume")
    assert img.shape == ref.shape
    np.testing.assert_array_equal(img.numpy(), ref.numpy())
    np.testing.assert_allclose(img.affine.numpy(), ref.affine.numpy(), atol=1e-4)


def test_sitk_volume_oblique_lps_to_ras(tmp_path: Path) -> None:
    import SimpleITK as sitk
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(6, 5, 4)  # (Z, Y, X)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    image.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(image, str(tmp_path / "obl.mha"))
    img = load_source(tmp_path / "obl.mha", dtype=None)
    assert img.shape == (1, 4, 5, 6)
    np.testing.assert_array_equal(img[0].numpy(), arr.transpose(2, 1, 0))
    # voxel (i, j, k) -> LPS point from ITK, then flip x, y for RAS
    for idx in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(idx))
        ras = img.affine.numpy() @ np.array([*idx, 1.0])
        np.testing.assert_allclose(ras[:3], lps * np.array([-1, -1, 1]), atol=1e-5)


def test_frames_list_cvc(shared_data: Path) -> None:
    paths = [shared_data / "cvc_clinicdb/Original" / f"{i}.png" for i in (1, 2, 3, 10, 11)]
    img = load_source(paths)
    _check_common(img, "frames")
    assert img.shape == (3, 288, 384, 5)
    assert img.meta["frame_names"] == ["1", "2", "3", "10", "11"]
    assert img.meta["filename_or_obj"] == [str(p) for p in paths]
    np.testing.assert_allclose(img.affine.numpy(), np.eye(4))
    ref = np.asarray(Image.open(paths[3]).convert("RGB"))
    np.testing.assert_array_equal(img[..., 3].numpy().transpose(1, 2, 0), ref)


def test_frames_folder_natural_sort(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "cvc_clinicdb/Original"
    folder = tmp_path / "seq"
    folder.mkdir()
    for name, frame in (("10.png", "3.png"), ("2.png", "2.png"), ("1.png", "1.png")):
        shutil.copy(src / frame, folder / name)
    (folder / "notes.txt").write_text("not a frame")
    assert detect_source_kind(folder) == "frames"
    img = load_source(folder, dtype=None)
    assert img.dtype == torch.uint8
    assert img.meta["frame_names"] == ["1", "2", "10"]
    assert img.meta["stem"] == "seq"
    for t, frame in enumerate(("1.png", "2.png", "3.png")):
        ref = np.asarray(Image.open(src / frame).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(img[..., t].numpy(), ref)
    assert sorted(["10.png", "2.png", "1.png", "a1.png"], key=natural_sort_key) == ["1.png", "2.png", "10.png", "a1.png"]


def test_frames_carotid_grey(shared_data: Path) -> None:
    folder = shared_data / "carotid_us/US images"
    acq = sorted(folder.glob("202201121806070027VAS_slice_*.png"), key=natural_sort_key)
    assert len(acq) == 12
    img = LoadSequence()(acq)
    _check_common(img, "frames")
    assert img.shape == (1, 749, 709, 12)  # grey: one channel; (rows, columns, time)
    numbers = [int(n.split("_")[-1]) for n in img.meta["frame_names"]]
    assert numbers == sorted(numbers)  # natural order, as given
    rev = load_source(acq[::-1], dtype=None)
    assert rev.meta["frame_names"] == img.meta["frame_names"][::-1]  # a list keeps its order
    ref = np.asarray(Image.open(acq[0]))
    np.testing.assert_array_equal(img[0, ..., 0].numpy(), ref)


def test_frames_mismatch_names_offending_file(shared_data: Path) -> None:
    cvc = shared_data / "cvc_clinicdb/Original/1.png"
    carotid = next((shared_data / "carotid_us/US images").glob("*.png"))
    with pytest.raises(SequenceReadError, match=carotid.name):
        load_source([cvc, carotid])


def test_frames_channel_mismatch(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "cvc_clinicdb/Original/1.png"
    Image.open(src).convert("L").save(tmp_path / "grey.png")
    with pytest.raises(SequenceReadError, match="grey.png"):
        load_source([src, tmp_path / "grey.png"])


def test_image_busbra_grey(shared_data: Path) -> None:
    path = shared_data / "busbra/Images/bus_0006-s.png"
    img = load_source(path)
    _check_common(img, "image")
    assert img.shape == (1, 389, 407, 1)
    assert img.meta["frame_names"] == ["bus_0006-s"]


def test_image_rgba_drops_alpha(shared_data: Path) -> None:
    path = shared_data / "ultrasound_stills/20_ultrasound_breast.png"
    img = load_source(path, dtype=None)
    assert img.shape == (3, 1024, 1024, 1)
    ref = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(img[..., 0].numpy(), ref)


def test_dicom_cine_ybr_to_rgb() -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("examples_ybr_color.dcm")
    img = load_source(path, dtype=None)
    _check_common(img, "dicom_cine")
    assert img.shape == (3, 240, 320, 30)
    assert len(img.meta["frame_names"]) == 30 and img.meta["frame_names"][0] == "frame_0000"
    assert img.meta["fps"] == pytest.approx(30.0, rel=1e-3)  # FrameTime 33.333 ms
    np.testing.assert_allclose(img.affine.numpy(), np.eye(4))
    # pydicom's own decoding converts YBR to RGB: same pixels
    ref = pydicom.dcmread(path).pixel_array  # (T, H, W, 3), RGB
    np.testing.assert_array_equal(img.numpy().transpose(3, 1, 2, 0), ref)


def test_dicom_cine_modality_tag_detects_ultrasound() -> None:
    # the issue: the colour echocardiography cine (Modality US) was taken for endoscopy
    from pydicom.data import get_testdata_file

    from monai_ext.transforms import detect_modality

    img = load_source(get_testdata_file("examples_ybr_color.dcm"))
    assert img.meta["Modality"] == "US"
    assert detect_modality(img) == "ultrasound"
    assert detect_modality(img, {k: v for k, v in img.meta.items() if k != "Modality"}) == "endoscopy"  # the old guess


def test_single_frame_dicom_file() -> None:
    from pydicom.data import get_testdata_file

    img = load_source(get_testdata_file("CT_small.dcm"))
    assert img.meta["source_kind"] == "dicom_cine"
    assert img.shape == (1, 128, 128, 1)


def test_truncated_nifti(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "totalseg/ct_small/ct.nii.gz").read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SequenceReadError, match="cut.nii.gz.*(truncated|corrupt)"):
        load_source(bad)


def test_wrong_dimensionality(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((8, 9), np.int16), np.eye(4)), tmp_path / "flat.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2, 2), np.int16), np.eye(4)), tmp_path / "five.nii.gz")
    with pytest.raises(SequenceReadError, match="flat.nii.gz"):
        load_source(tmp_path / "flat.nii.gz")
    with pytest.raises(SequenceReadError, match="five.nii.gz"):
        load_source(tmp_path / "five.nii.gz")
    import SimpleITK as sitk
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9), np.int16)), str(tmp_path / "flat.mha"))
    with pytest.raises(SequenceReadError, match="flat.mha.*3D"):
        load_source(tmp_path / "flat.mha")


def test_four_d_nifti_is_rejected(tmp_path: Path) -> None:
    # read_volume reads the 4th axis as channels; load_source rejects them before any model work
    data = np.random.default_rng(0).integers(0, 100, (5, 6, 7, 2)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "multi.nii.gz")
    img = load_source(tmp_path / "multi.nii.gz", dtype=None, check=False)
    assert img.shape == (2, 5, 6, 7)
    np.testing.assert_array_equal(img.numpy(), np.moveaxis(data, -1, 0))
    with pytest.raises(SequenceReadError, match=r"multi.nii.gz: a 4D volume: 2 volumes .* extract one"):
        load_source(tmp_path / "multi.nii.gz")


def test_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(SequenceReadError, match=r"x\.xyz.*unsupported"):
        load_source(tmp_path / "x.xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SequenceReadError, match="empty.*empty folder"):
        load_source(tmp_path / "empty")
    with pytest.raises(SequenceReadError, match="not found"):
        load_source(tmp_path / "nothing.nii.gz")
    with pytest.raises(SequenceReadError, match="empty list"):
        load_source([])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SequenceReadError, match="broken.png"):
        load_source(tmp_path / "broken.png")
    assert issubclass(SequenceReadError, ValueError)


def test_load_sequenced(shared_data: Path) -> None:
    data = {
        "image": str(shared_data / "totalseg/ct_small/ct.nii.gz"),
        "label": str(shared_data / "totalseg/ct_small/seg.nii.gz"),
        "other": None,
        "id": "ct_small",
    }
    out = LoadSequenced(keys=("image", "label", "other"))(data)
    assert out["image"].shape == out["label"].shape == (1, 122, 101, 30)
    assert out["other"] is None and out["id"] == "ct_small"
    np.testing.assert_allclose(out["image"].affine.numpy(), out["label"].affine.numpy())
