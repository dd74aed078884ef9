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


# --- study folders (several series), the Modality tag -------------------------------------------------

#: pydicom's DICOMDIR test tree: real studies with one sub-folder per series
PYDICOM_STUDIES = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"


@pytest.fixture(scope="module")
def ct_sample():
    from monai_ext.sample import sample_path

    return load_source(sample_path("ct_small"), dtype=None)


def _write_study(ct, root: Path, layout: str) -> tuple[str, str]:
    """A CT series (number 3, 30 slices) and an MR one (number 7, 12 slices) in one folder or one sub-folder each."""
    data, affine = ct[0].numpy(), ct.affine.numpy()
    flat = layout == "flat"
    a = write_dicom_series(
        data, affine, root if flat else root / "abdomen", series_description="CT abdomen", series_number=3,
        file_names=[f"A{k:03d}.dcm" for k in range(30)] if flat else None, shuffle_names=not flat,
    )
    b = write_dicom_series(
        data[:, :, :12], affine, root if flat else root / "t2", series_description="MR T2", series_number=7, modality="MR",
        file_names=[f"B{k:03d}.dcm" for k in range(12)] if flat else None,
    )
    return (str(pydicom.dcmread(a[0], stop_before_pixels=True).SeriesInstanceUID),
            str(pydicom.dcmread(b[0], stop_before_pixels=True).SeriesInstanceUID))


@pytest.mark.parametrize("layout", ["flat", "subfolders"])
def test_study_folder(ct_sample, tmp_path: Path, layout: str) -> None:
    from monai_ext.io import LoadSequenced, detect_source_kind, list_dicom_series

    root = tmp_path / "study"
    uid_ct, uid_mr = _write_study(ct_sample, root, layout)
    assert detect_source_kind(root) == "dicom_series"  # sub-folders only: was "empty folder"
    infos = list_dicom_series(root)
    assert [(i.uid, i.number, i.description, i.modality, i.n_instances) for i in infos] == [
        (uid_ct, 3, "CT abdomen", "CT", 30), (uid_mr, 7, "MR T2", "MR", 12)
    ]
    assert [i.path for i in infos] == ([root, root] if layout == "flat" else [root / "abdomen", root / "t2"])

    with pytest.raises(SequenceReadError) as err:
        load_source(root)
    message = str(err.value)
    assert message.startswith(f"{root}: 2 DICOM series") and "\n" not in message and "--series UID|NUMBER" in message
    assert f"number 3 'CT abdomen' CT, 30 instances, UID {uid_ct}" in message
    assert f"number 7 'MR T2' MR, 12 instances, UID {uid_mr}" in message

    data = ct_sample[0].numpy()
    for choice in (3, "3", uid_ct):
        img = load_source(root, series=choice, dtype=None)
        np.testing.assert_array_equal(img[0].numpy(), data)
        assert img.meta["series_instance_uid"] == uid_ct and img.meta["Modality"] == "CT" and img.meta["series_number"] == 3
        assert img.meta["stem"] == ("study_series3" if layout == "flat" else "abdomen")
        assert img.meta["filename_or_obj"] == str(root)
    for choice in (7, uid_mr):
        img = LoadSequenced(keys="image", series=choice, dtype=None)({"image": root})["image"]
        np.testing.assert_array_equal(img[0].numpy(), data[:, :, :12])
        assert img.meta["Modality"] == "MR" and img.meta["series_description"] == "MR T2"
        assert len(img.meta["dicom_files"]) == 12
    with pytest.raises(SequenceReadError, match=f"no DICOM series '99' .* --series UID\\|NUMBER: number 3 .*{uid_mr}"):
        load_source(root, series=99)


def test_study_folder_real_pydicom_series() -> None:
    from monai_ext.io import list_dicom_series

    study = PYDICOM_STUDIES / "98892001"  # a scout (CT2N) and a 5-slice CT (CT5N), one sub-folder each
    infos = list_dicom_series(study)
    assert [(i.number, i.description, i.modality, i.n_instances, i.path.name) for i in infos] == [
        (4, "Scout", "CT", 2, "CT2N"), (5, "SmartScore - Gated 0.5 sec", "CT", 5, "CT5N")
    ]
    with pytest.raises(SequenceReadError, match="2 DICOM series .*'Scout' CT, 2 instances.*'SmartScore - Gated 0.5 sec' CT, 5"):
        load_source(study)
    img = load_source(study, series=5, dtype=None)
    assert img.shape == (1, 16, 16, 5) and img.meta["stem"] == "CT5N" and img.meta["Modality"] == "CT"
    ref = load_source(study / "CT5N", dtype=None)  # the series folder itself: the same volume
    np.testing.assert_array_equal(img.numpy(), ref.numpy())
    np.testing.assert_allclose(img.affine.numpy(), ref.affine.numpy())
    assert ref.meta["stem"] == "CT5N"
    # two series of another study share the number 2 (a CR and a CT): the number is ambiguous
    with pytest.raises(SequenceReadError, match="2 DICOM series have the number 2; choose one by its UID"):
        load_source(PYDICOM_STUDIES / "77654033", series=2)


def test_series_modality_tag(ct_sample, tmp_path: Path) -> None:
    from monai_ext.transforms import detect_modality

    write_dicom_series(ct_sample[0].numpy(), ct_sample.affine.numpy(), tmp_path / "mr", modality="MR")
    img = load_source(tmp_path / "mr")
    assert img.meta["Modality"] == "MR"
    assert float(img.min()) < -100  # Hounsfield-like values, yet the tag decides
    assert detect_modality(img) == "mr"


def test_series_option_needs_a_dicom_folder(ct_sample, tmp_path: Path) -> None:
    from monai_ext.sample import sample_path

    with pytest.raises(SequenceReadError, match=r"ct.nii.gz: a series \(3\) was chosen .* 'volume'.*drop --series"):
        load_source(sample_path("ct_small"), series=3)
    write_dicom_series(ct_sample[0].numpy()[:, :, :3], ct_sample.affine.numpy(), tmp_path / "s", series_number=4)
    assert load_source(tmp_path / "s", series=4).shape[-1] == 3  # a plain series folder takes its own number
    with pytest.raises(SequenceReadError, match="no DICOM series '5'"):
        load_source(tmp_path / "s", series=5)


def test_empty_study_folders(tmp_path: Path) -> None:
    (tmp_path / "study" / "a" / "b").mkdir(parents=True)
    with pytest.raises(SequenceReadError, match="study: empty folder"):
        load_source(tmp_path / "study")
    (tmp_path / "study" / "a" / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(SequenceReadError, match="study: empty folder: no frame image or DICOM file here or in its sub-folders"):
        load_source(tmp_path / "study")
