"""DICOM SEG output: read back with highdicom and pydicom, voxel for voxel equal to the NIfTI mask, in the source's geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from pydicom.data import get_testdata_file

from monai_ext.io import (
    load_source,
    seg_output_path,
    segmented_property_codes,
    write_dicom_seg,
    write_dicom_series,
    write_mask,
)
from monai_ext.sample import sample_path

hd = pytest.importorskip("highdicom")  # the dicom extra; part of dev, so CI has it

ALGORITHM = {"algorithm_name": "reclmis_language_guided_segmentation", "algorithm_version": "0.5.5"}
#: pydicom's real CT series: 5 contiguous 16x16 slices (GE LightSpeed, 2.5 mm) in a study folder
PYDICOM_CT_STUDY = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001"


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory):
    """The shipped CT sample written as a DICOM series (file names shuffled), loaded, and its left kidney label."""
    ct = load_source(sample_path("ct_small"), dtype=None)
    folder = tmp_path_factory.mktemp("ct") / "series"
    write_dicom_series(ct[0].numpy(), ct.affine.numpy(), folder, shuffle_names=True, seed=1)
    source = load_source(folder)
    labels = {v: int(k) for k, v in json.loads(sample_path("ct_small_labels").read_text()).items()}
    seg = load_source(sample_path("ct_small_seg"), dtype=None)
    # the series reads back in the NIfTI's own geometry (tests/test_io_dicom.py), so the label maps as it is
    np.testing.assert_allclose(source.affine.numpy(), seg.affine.numpy(), atol=1e-4)
    kidney = (seg == labels["kidney_left"]).to(torch.uint8)
    assert 0 < int(kidney.sum()) and int(kidney[0].flatten(0, 1).any(0).sum()) < kidney.shape[-1]  # some slices empty
    return source, kidney


def _seg_volume_pydicom(path: Path, source_meta: dict) -> np.ndarray:
    """The SEG's segment 1 as an (X, Y, Z) array, frames placed by their referenced SOP instance (pydicom only)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    slice_of = {uid: z for z, uid in enumerate(source_meta["sop_instance_uids"])}
    nx, ny, nz = (int(s) for s in source_meta["spatial_shape"])
    out = np.zeros((nx, ny, nz), np.uint8)
    shared = ds.SharedFunctionalGroupsSequence[0]
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        segment = item if "SegmentIdentificationSequence" in item else shared  # one segment: may be shared
        assert segment.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        out[:, :, slice_of[uid]] = frame.T  # (rows, columns) -> (X = column, Y = row)
    return out


def _check_geometry(path: Path, source_meta: dict) -> None:
    """Every frame's position, and the shared orientation and spacing, equal its source slice's."""
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    sources = {str(s.SOPInstanceUID): s for s in (pydicom.dcmread(f, stop_before_pixels=True) for f in source_meta["dicom_files"])}
    first = next(iter(sources.values()))
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in first.ImageOrientationPatient],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing], [float(v) for v in first.PixelSpacing], atol=1e-6
    )
    assert (int(ds.Rows), int(ds.Columns)) == (int(first.Rows), int(first.Columns))
    assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
    for item in ds.PerFrameFunctionalGroupsSequence:
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(
            [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
            [float(v) for v in sources[uid].ImagePositionPatient],
            atol=1e-5,
        )


def test_seg_roundtrip_ct_sample(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    nifti = write_mask(kidney, source.meta, tmp_path)[0]
    prompt = "the left kidney, please"
    path = write_dicom_seg(kidney, source.meta, tmp_path, target="left kidney", prompt=prompt, **ALGORITHM)
    assert path == tmp_path / "series_seg.dcm" == seg_output_path(source.meta, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series_mask.nii.gz", "series_seg.dcm"]  # no temporary file
    reference = np.asarray(nib.load(nifti).dataobj)

    # highdicom: frames by source instance, in slice order
    seg = hd.seg.segread(path)
    uids = source.meta["sop_instance_uids"]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])
    np.testing.assert_array_equal(np.transpose(pixels[..., 0], (2, 1, 0)), reference)
    # pydicom alone: the same, from the per-frame references
    np.testing.assert_array_equal(_seg_volume_pydicom(path, source.meta), reference)
    assert int(reference.sum()) == int(kidney.sum())
    _check_geometry(path, source.meta)

    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY" and int(seg.NumberOfFrames) == len(uids)
    segment = seg.SegmentSequence[0]
    assert len(seg.SegmentSequence) == 1
    assert segment.SegmentLabel == "left kidney" and segment.SegmentDescription == "left kidney"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == ALGORITHM["algorithm_name"]
    assert algorithm.AlgorithmVersion == ALGORITHM["algorithm_version"]
    assert algorithm.AlgorithmParameters == f"prompt={prompt}"
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "91723000"  # anatomical structure
    assert seg.SeriesDescription == prompt
    assert seg.ContentDescription == "left kidney (reclmis_language_guided_segmentation 0.5.5)"
    ref_series = seg.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == source.meta["series_instance_uid"]
    assert sorted(i.ReferencedSOPInstanceUID for i in ref_series.ReferencedInstanceSequence) == sorted(uids)
    first = pydicom.dcmread(source.meta["dicom_files"][0], stop_before_pixels=True)
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.PatientID == first.PatientID
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID and int(seg.SeriesNumber) == 1001


def _real_ct_roundtrip(source, tmp_path: Path) -> None:
    mask = (source > -100).to(torch.uint8)  # soft tissue and bone of the real CT
    assert 0 < int(mask.sum()) < mask.numel()
    nifti = write_mask(mask, source.meta, tmp_path)[0]
    path = write_dicom_seg(mask, source.meta, tmp_path, target="body", prompt="body", **ALGORITHM)
    reference = np.asarray(nib.load(nifti).dataobj)
    np.testing.assert_array_equal(_seg_volume_pydicom(path, source.meta), reference)
    pixels = hd.seg.segread(path).get_pixels_by_source_instance(
        source_sop_instance_uids=source.meta["sop_instance_uids"], segment_numbers=[1]
    )
    np.testing.assert_array_equal(np.transpose(pixels[..., 0], (2, 1, 0)), reference)
    _check_geometry(path, source.meta)


def test_seg_roundtrip_pydicom_real_ct_series(tmp_path: Path) -> None:
    # pydicom's only real multi-slice CT series whose slices are evenly spaced: CT5N, series 5 of a study folder
    source = load_source(PYDICOM_CT_STUDY, series=5)
    assert source.shape == (1, 16, 16, 5) and source.meta["Modality"] == "CT"
    _real_ct_roundtrip(source, tmp_path)


def test_seg_roundtrip_pydicom_ct_small_one_slice(tmp_path: Path) -> None:
    # CT_small.dcm is a single slice: a one-slice series
    folder = tmp_path / "ct_small"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "CT_small.dcm")
    source = load_source(folder)
    assert source.meta["source_kind"] == "dicom_series" and source.shape == (1, 128, 128, 1)
    _real_ct_roundtrip(source, tmp_path / "out")


def test_seg_empty_mask_is_valid(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    path = write_dicom_seg(torch.zeros_like(kidney), source.meta, tmp_path / "empty.dcm", target="left kidney", prompt="left kidney", **ALGORITHM)
    seg = hd.seg.segread(path)
    assert int(seg.NumberOfFrames) == kidney.shape[-1]  # one (empty) frame per slice
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=source.meta["sop_instance_uids"], segment_numbers=[1])
    assert pixels.shape[0] == kidney.shape[-1] and not pixels.any()


def test_seg_omit_empty_frames(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    path = write_dicom_seg(kidney[0], source.meta, tmp_path / "s.dcm", target="left kidney", prompt="left kidney", omit_empty_frames=True, **ALGORITHM)
    with_target = int(kidney[0].flatten(0, 1).any(0).sum())
    assert int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames) == with_target
    np.testing.assert_array_equal(_seg_volume_pydicom(path, source.meta), kidney[0].numpy())


def test_seg_text_and_codes(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    prompt = "la lésion du foie \\ hypodense, " + "très " * 20
    path = write_dicom_seg(kidney, source.meta, tmp_path / "t.dcm", target="liver lesion", prompt=prompt, **ALGORITHM)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert len(ds.SeriesDescription) <= 64 and ds.SeriesDescription.startswith("la lésion du foie / hypodense")
    assert ds.SeriesDescription.endswith("...")
    params = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert params == "prompt=" + " ".join(prompt.replace("\\", "/").split())  # the whole prompt
    segment = ds.SegmentSequence[0]
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Lesion"
    for target, meaning in [("polyp", "Lesion"), ("enhancing tumour", "Lesion"), ("left kidney", "Anatomical Structure"), ("massa", "Anatomical Structure")]:
        assert segmented_property_codes(target)[1].meaning == meaning, target


def test_seg_given_datasets_any_order(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    datasets = [pydicom.dcmread(f) for f in reversed(source.meta["dicom_files"])]
    del datasets[-1].AccessionNumber  # a non-conforming source: highdicom needs it, the writer fills it in
    meta = {k: v for k, v in source.meta.items() if k != "dicom_files"}
    path = write_dicom_seg(kidney, meta, tmp_path, target="left kidney", prompt="left kidney", source_datasets=datasets, **ALGORITHM)
    assert "AccessionNumber" not in datasets[-1]  # the caller's dataset is left as it was
    np.testing.assert_array_equal(_seg_volume_pydicom(path, source.meta), kidney[0].numpy())
    with pytest.raises(ValueError, match="source_datasets lack 1 of"):
        write_dicom_seg(kidney, meta, tmp_path, target="left kidney", prompt="left kidney", source_datasets=datasets[1:], **ALGORITHM)


def test_seg_replaces_atomically(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    path = write_dicom_seg(kidney, source.meta, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="does not match the source spatial shape"):
        write_dicom_seg(kidney[:, :-1], source.meta, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    path2 = write_dicom_seg(torch.zeros_like(kidney), source.meta, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    assert path2 == path and path.read_bytes() != before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_seg_errors(ct_series, tmp_path: Path) -> None:
    source, kidney = ct_series
    volume = load_source(sample_path("ct_small"))
    with pytest.raises(ValueError, match=r"ct.nii.gz: DICOM SEG output needs a DICOM series input .* 'volume'"):
        write_dicom_seg(kidney, volume.meta, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    with pytest.raises(ValueError, match="target is empty"):
        write_dicom_seg(kidney, source.meta, tmp_path, target=" ", prompt="left kidney", **ALGORITHM)
    moved = MetaTensor(kidney.as_tensor(), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="affine differs"):
        write_dicom_seg(moved, source.meta, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    with pytest.raises(ValueError, match="no source metadata"):
        write_dicom_seg(np.zeros(kidney.shape), None, tmp_path, target="left kidney", prompt="left kidney", **ALGORITHM)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_seg_beside_the_series_keeps_it_one_series(ct_series, tmp_path: Path) -> None:
    # a SEG written into the series folder is not a second series of it: the folder still reads as before
    source, kidney = ct_series
    folder = tmp_path / "series"
    shutil.copytree(Path(source.meta["dicom_files"][0]).parent, folder)
    before = load_source(folder)
    write_dicom_seg(kidney, before.meta, folder, target="left kidney", prompt="left kidney", **ALGORITHM)
    after = load_source(folder)
    assert after.meta["sop_instance_uids"] == before.meta["sop_instance_uids"] and after.meta["stem"] == "series"
    np.testing.assert_array_equal(after.numpy(), before.numpy())
