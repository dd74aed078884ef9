"""DICOM series: writer helper and reader (slice order, geometry, rescale, mixed/missing slices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pydicom  # noqa: E402  (a hard dependency: missing fails, never skips)

from monai_ext.io import SequenceReadError, load_source, read_dicom_series, write_dicom_series  # noqa: E402


@pytest.fixture(scope="module")
def ct_small(shared_data: Path):
    return load_source(shared_data / "totalseg/ct_small/ct.nii.gz", dtype=None)


@pytest.fixture()
def ct_series(ct_small, tmp_path: Path) -> tuple[Path, list[Path]]:
    folder = tmp_path / "series"
    paths = write_dicom_series(ct_small[0].numpy(), ct_small.affine.numpy(), folder, shuffle_names=True, seed=3)
    return folder, paths


def test_series_roundtrip_shuffled_names(ct_small, ct_series) -> None:
    folder, paths = ct_series
    names = [p.name for p in paths]
    assert names != sorted(names)  # file name order differs from slice order
    img = load_source(folder, dtype=None)
    assert img.meta["source_kind"] == "dicom_series"
    assert img.shape == ct_small.shape == (1, 122, 101, 30)
    np.testing.assert_array_equal(img.numpy(), ct_small.numpy())
    np.testing.assert_allclose(img.affine.numpy(), ct_small.affine.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(img.meta["original_affine"]), ct_small.affine.numpy(), atol=1e-4)
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    assert img.meta["sop_instance_uids"] == uids
    assert img.meta["filename_or_obj"] == str(folder)
    assert img.meta["stem"] == "series"
    assert tuple(img.meta["spatial_shape"]) == (122, 101, 30)


def test_series_headers(ct_small, ct_series) -> None:
    _, paths = ct_series
    first, second = (pydicom.dcmread(p, stop_before_pixels=True) for p in paths[:2])
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    np.testing.assert_allclose([float(v) for v in first.PixelSpacing], [3.0, 3.0])
    assert float(first.SliceThickness) == pytest.approx(3.0)
    np.testing.assert_allclose([float(v) for v in first.ImageOrientationPatient], [-1, 0, 0, 0, -1, 0], atol=1e-6)
    step = np.asarray(second.ImagePositionPatient, float) - np.asarray(first.ImagePositionPatient, float)
    np.testing.assert_allclose(step, [0, 0, 3.0], atol=1e-5)
    # LPS position of voxel 0 = RAS position with x, y negated
    ras0 = ct_small.affine.numpy()[:3, 3]
    np.testing.assert_allclose(np.asarray(first.ImagePositionPatient, float), ras0 * [-1, -1, 1], atol=1e-4)


def test_series_rescale_slope_intercept(ct_small, tmp_path: Path) -> None:
    data = ct_small[0].numpy().astype(np.float64)
    write_dicom_series(data, ct_small.affine.numpy(), tmp_path / "s", rescale_slope=2.0, rescale_intercept=-1024.0)
    ds = pydicom.dcmread(next((tmp_path / "s").iterdir()))
    assert float(ds.RescaleSlope) == 2.0 and float(ds.RescaleIntercept) == -1024.0
    img = load_source(tmp_path / "s")
    # stored = round((v + 1024) / 2): the read-back is within one slope step of the original
    assert np.abs(img[0].numpy() - data).max() <= 1.0


def test_series_float_data_is_rescaled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (16, 12, 5)).astype(np.float32)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    write_dicom_series(data, affine, tmp_path / "f", modality="MR")
    img = load_source(tmp_path / "f")
    span = data.max() - data.min()
    assert np.abs(img[0].numpy() - data).max() <= span / 65535 + 1e-6
    np.testing.assert_allclose(img.affine.numpy(), affine, atol=1e-4)


def test_oblique_series_affine(tmp_path: Path) -> None:
    c, s = np.cos(0.4), np.sin(0.4)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # rotation about the y axis
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.9, 2.0])
    affine[:3, 3] = [12.0, -40.0, 7.5]
    data = np.arange(6 * 7 * 4, dtype=np.int16).reshape(6, 7, 4)
    write_dicom_series(data, affine, tmp_path / "obl", shuffle_names=True)
    img = read_dicom_series(tmp_path / "obl", dtype=None)
    np.testing.assert_array_equal(img[0].numpy(), data)
    np.testing.assert_allclose(img.affine.numpy(), affine, atol=1e-4)


def test_missing_slice(ct_series) -> None:
    folder, paths = ct_series
    paths[12].unlink()
    with pytest.raises(SequenceReadError, match="missing slice"):
        load_source(folder)


def test_mixed_series_uid(ct_small, ct_series, tmp_path: Path) -> None:
    folder, _ = ct_series
    other = write_dicom_series(ct_small[0].numpy(), ct_small.affine.numpy(), tmp_path / "other")
    other[0].rename(folder / "extra.dcm")
    with pytest.raises(SequenceReadError, match="mixed series.*SeriesInstanceUID"):
        load_source(folder)


def test_mixed_orientation(ct_series) -> None:
    folder, paths = ct_series
    ds = pydicom.dcmread(paths[5])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[5])
    with pytest.raises(SequenceReadError, match=f"{paths[5].name}.*mixed series.*Orientation"):
        load_source(folder)


def test_mixed_size(ct_small, ct_series) -> None:
    folder, paths = ct_series
    uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    small = ct_small[0].numpy()[:50, :40, :2]
    extra = write_dicom_series(small, ct_small.affine.numpy(), folder / "tmp", series_instance_uid=uid)
    extra[0].rename(folder / "zz_small.dcm")
    for p in extra[1:]:
        p.unlink()
    (folder / "tmp").rmdir()
    with pytest.raises(SequenceReadError, match="zz_small.dcm.*mixed series.*size"):
        load_source(folder)


def test_non_dicom_file_in_series_folder(ct_series) -> None:
    folder, _ = ct_series
    (folder / "garbage.bin").write_bytes(b"\x00" * 300)
    with pytest.raises(SequenceReadError, match="garbage.bin"):
        load_source(folder)


def test_sheared_affine_rejected(tmp_path: Path) -> None:
    affine = np.eye(4)
    affine[0, 2] = 0.5
    with pytest.raises(ValueError, match="sheared"):
        write_dicom_series(np.zeros((4, 4, 3), np.int16), affine, tmp_path / "x")
