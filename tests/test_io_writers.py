"""Mask writers: NIfTI for volumes/DICOM series, one PNG per frame for frame kinds; validation, atomicity."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_ext.io import (
    LoadSequenced,
    SaveSequenceMask,
    SaveSequenceMaskd,
    load_source,
    mask_output_paths,
    write_dicom_series,
    write_mask,
)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def ct(shared_data: Path):
    return load_source(shared_data / "totalseg/ct_small/ct.nii.gz")


@pytest.fixture(scope="module")
def ct_seg(shared_data: Path):
    return load_source(shared_data / "totalseg/ct_small/seg.nii.gz", dtype=None)


@pytest.fixture(scope="module")
def cvc(shared_data: Path):
    frames = [shared_data / "cvc_clinicdb/Original" / f"{i}.png" for i in (1, 2, 10)]
    masks = [shared_data / "cvc_clinicdb/Ground Truth" / f"{i}.png" for i in (1, 2, 10)]
    return load_source(frames), load_source(masks, dtype=None)


def test_volume_mask_nifti(ct, ct_seg, tmp_path: Path) -> None:
    paths = write_mask(ct_seg, ct.meta, tmp_path)
    assert paths == [tmp_path / "ct_mask.nii.gz"]
    out = nib.load(paths[0])
    assert out.shape == tuple(ct.shape[1:])
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(out.affine, ct.affine.numpy(), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(out.dataobj), ct_seg[0].numpy().astype(np.uint8))
    back = load_source(paths[0])  # readable by our own reader with the same geometry
    np.testing.assert_allclose(back.affine.numpy(), ct.affine.numpy(), atol=1e-5)
    assert _files(tmp_path) == paths  # no temporary file left


def test_volume_mask_float_and_no_channel(ct, tmp_path: Path) -> None:
    mask = torch.zeros(ct.shape[1:])
    mask[10:20, 10:20, 5:8] = 1.0
    (path,) = write_mask(mask, ct.meta, tmp_path, stem="pred")
    assert path.name == "pred_mask.nii.gz"
    assert int(np.asarray(nib.load(path).dataobj).sum()) == 10 * 10 * 3


def test_dicom_series_mask(ct, tmp_path: Path) -> None:
    write_dicom_series(ct[0].numpy().astype(np.int16), ct.affine.numpy(), tmp_path / "case7", shuffle_names=True)
    series = load_source(tmp_path / "case7")
    mask = (series > 0).to(torch.uint8)
    (path,) = write_mask(mask, series.meta, tmp_path / "out")
    assert path == tmp_path / "out" / "case7_mask.nii.gz"
    out = nib.load(path)
    np.testing.assert_allclose(out.affine, ct.affine.numpy(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(out.dataobj), mask[0].numpy())


def test_frames_mask_png(cvc, tmp_path: Path) -> None:
    image, gt = cvc
    mask = (gt[:1] > 127).to(torch.uint8)  # (1, H, W, T), labels 0/1
    paths = write_mask(mask, image.meta, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "Original/1_mask.png",
        "Original/2_mask.png",
        "Original/10_mask.png",
    ]
    assert paths == mask_output_paths(image.meta, tmp_path)
    for t, p in enumerate(paths):
        png = np.asarray(Image.open(p))
        assert png.dtype == np.uint8 and png.shape == (288, 384)
        assert set(np.unique(png)) <= {0, 255}
        np.testing.assert_array_equal(png, mask[0, ..., t].numpy() * 255)
    assert _files(tmp_path) == sorted(paths)


def test_video_and_cine_names(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    cine = load_source(get_testdata_file("examples_ybr_color.dcm"))
    mask = torch.zeros((1, 240, 320, 30), dtype=torch.uint8)
    mask[0, 100:120, 50:80, 3] = 1
    paths = write_mask(mask, cine.meta, tmp_path)
    assert len(paths) == 30
    assert paths[3] == tmp_path / "examples_ybr_color" / "frame_0003_mask.png"
    assert np.asarray(Image.open(paths[3])).sum() == 20 * 30 * 255


def test_image_mask(shared_data: Path, tmp_path: Path) -> None:
    image = load_source(shared_data / "busbra/Images/bus_0006-s.png")
    gt = load_source(shared_data / "busbra/Masks/mask_0006-s.png", dtype=None)
    (path,) = write_mask(gt[:1], image.meta, tmp_path)
    assert path == tmp_path / "bus_0006-s" / "bus_0006-s_mask.png"
    assert np.asarray(Image.open(path)).shape == (389, 407)


@pytest.mark.parametrize("shape", [(1, 122, 101, 29), (2, 122, 101, 30), (101, 122, 30)])
def test_volume_shape_mismatch_writes_nothing(ct, tmp_path: Path, shape) -> None:
    with pytest.raises(ValueError, match="shape|channel"):
        write_mask(torch.zeros(shape), ct.meta, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not _files(tmp_path / "out")


def test_frames_shape_mismatch_writes_nothing(cvc, tmp_path: Path) -> None:
    image, _ = cvc
    with pytest.raises(ValueError, match="does not match"):
        write_mask(torch.zeros((1, 384, 288, 3)), image.meta, tmp_path)  # H and W swapped
    with pytest.raises(ValueError, match="does not match"):
        write_mask(torch.zeros((1, 288, 384, 2)), image.meta, tmp_path)  # a frame short
    assert _files(tmp_path) == []


def test_bad_labels_rejected(ct, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels"):
        write_mask(torch.full((1, 122, 101, 30), 300), ct.meta, tmp_path)
    assert _files(tmp_path) == []


def test_failed_nifti_write_keeps_existing(ct, ct_seg, tmp_path: Path, monkeypatch) -> None:
    (good,) = write_mask(ct_seg, ct.meta, tmp_path)
    before = good.read_bytes()

    def broken_save(img, filename):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_mask(torch.zeros_like(ct_seg), ct.meta, tmp_path)
    assert good.read_bytes() == before
    assert _files(tmp_path) == [good]


def test_failed_png_write_keeps_existing(cvc, tmp_path: Path, monkeypatch) -> None:
    image, gt = cvc
    good = write_mask(gt[:1], image.meta, tmp_path)
    before = [p.read_bytes() for p in good]
    original_save = Image.Image.save
    calls = {"n": 0}

    def flaky_save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        write_mask(torch.zeros_like(gt[:1]), image.meta, tmp_path)
    assert [p.read_bytes() for p in good] == before  # not even the first two frames were replaced
    assert _files(tmp_path) == sorted(good)


def test_save_transforms(shared_data: Path, tmp_path: Path) -> None:
    data = LoadSequenced(keys=("image", "label"), dtype=None)(
        {
            "image": str(shared_data / "acdc/patient001/patient001_frame01.nii.gz"),
            "label": str(shared_data / "acdc/patient001/patient001_frame01_gt.nii.gz"),
        }
    )
    out = SaveSequenceMaskd(keys="label", output_dir=tmp_path, source_keys="image")(data)
    saved = out["label"].meta["saved_to"]
    assert saved == [str(tmp_path / "patient001_frame01_mask.nii.gz")]
    np.testing.assert_array_equal(np.asarray(nib.load(saved[0]).dataobj), data["label"][0].numpy())
    # default: the mask's own meta (e.g. after Invertd), array transform with explicit meta
    out = SaveSequenceMaskd(keys="label", output_dir=tmp_path / "own")(data)
    assert Path(out["label"].meta["saved_to"][0]).name == "patient001_frame01_gt_mask.nii.gz"
    SaveSequenceMask(tmp_path / "arr")(data["label"].numpy(), data["image"].meta)
    assert (tmp_path / "arr" / "patient001_frame01_mask.nii.gz").is_file()
