"""Input checks before any model work: NaN/Inf, 4D volumes, empty or one-pixel frames, unreadable files.

Every message is one line naming the file, the problem and what to do.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_ext.io import SequenceReadError, check_source, load_source, write_dicom_series
from monai_ext.sample import sample_path


def _error(source, **kwargs) -> str:
    with pytest.raises(SequenceReadError) as err:
        load_source(source, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def ct():
    return nib.load(sample_path("ct_small"))


def test_nan_volume(ct, tmp_path: Path) -> None:
    # the issue: NaN voxels gave a silent empty mask (and the volume was taken for MR)
    data = np.asarray(ct.dataobj, dtype=np.float32)
    data[10, 20, 3] = data[11, 20, 3] = data[0, 0, 0] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, ct.affine), path)
    message = _error(path)
    assert message.startswith(f"{path}: 3 of {data.size} voxels are not finite (3 NaN, 0 infinite)")
    assert "replace them" in message and "save the file again" in message
    assert load_source(path, check=False).shape == (1, *data.shape)  # check=False reads it as it is


def test_inf_volume(ct, tmp_path: Path) -> None:
    import SimpleITK as sitk

    data = np.asarray(ct.dataobj, dtype=np.float32)
    data[5, 5, 5], data[6, 5, 5] = np.inf, -np.inf
    image = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))
    sitk.WriteImage(image, str(tmp_path / "inf.mha"))
    assert _error(tmp_path / "inf.mha").startswith(f"{tmp_path / 'inf.mha'}: 2 of {data.size} voxels are not finite (0 NaN, 2 infinite)")


def test_finite_and_integer_inputs_pass(ct, tmp_path: Path) -> None:
    data = np.asarray(ct.dataobj, dtype=np.float32)
    data[0, 0, 0] = 3e38  # huge values overflow the sum, not the check
    data[1, 0, 0] = 3e38
    nib.save(nib.Nifti1Image(data, ct.affine), tmp_path / "big.nii.gz")
    assert load_source(tmp_path / "big.nii.gz").shape == (1, *data.shape)
    assert load_source(sample_path("ct_small"), dtype=None).dtype == torch.int16  # integers are not scanned


def test_4d_volumes(ct, tmp_path: Path) -> None:
    import SimpleITK as sitk

    data = np.stack([np.asarray(ct.dataobj)] * 3, axis=-1).astype(np.int16)
    nib.save(nib.Nifti1Image(data, ct.affine), tmp_path / "cine.nii.gz")
    message = _error(tmp_path / "cine.nii.gz")
    assert message.startswith(f"{tmp_path / 'cine.nii.gz'}: a 4D volume: 3 volumes")
    assert "of 122x101x30 voxels" in message and "extract one" in message and "give that file" in message
    vector = sitk.GetImageFromArray(np.zeros((4, 5, 6, 2), np.float32), isVector=True)  # 2 components per voxel
    sitk.WriteImage(vector, str(tmp_path / "vector.mha"))
    assert "vector.mha: a 4D volume: 2 volumes" in _error(tmp_path / "vector.mha")


def test_one_pixel_frames(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 1), 128, np.uint8)).save(tmp_path / "line.png")
    message = _error(tmp_path / "line.png")
    assert message.startswith(f"{tmp_path / 'line.png'}: frames of 40x1 pixels (rows x columns) are too small")
    Image.fromarray(np.full((1, 30, 3), 128, np.uint8)).save(tmp_path / "row.png")
    assert "frames of 1x30 pixels" in _error([tmp_path / "row.png", tmp_path / "row.png"])
    Image.fromarray(np.full((2, 2), 9, np.uint8)).save(tmp_path / "tiny.png")
    assert load_source(tmp_path / "tiny.png").shape == (1, 2, 2, 1)  # 2x2 is enough


def test_one_voxel_wide_volume(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((1, 6, 5), np.int16), np.eye(4)), tmp_path / "sagittal.nii.gz")
    message = _error(tmp_path / "sagittal.nii.gz")
    assert "sagittal.nii.gz: the volume (1x6x5 voxels) has axial slices of 1x6 voxels, too small" in message
    # the axial plane follows the affine: the same array as axial (x, y) slices of a volume lying along another axis
    swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    nib.save(nib.Nifti1Image(np.zeros((1, 6, 5), np.int16), swap), tmp_path / "axial.nii.gz")
    assert load_source(tmp_path / "axial.nii.gz").shape == (1, 1, 6, 5)
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 1), np.int16), np.eye(4)), tmp_path / "slice.nii.gz")
    assert load_source(tmp_path / "slice.nii.gz").shape == (1, 6, 5, 1)  # one axial slice is fine


def test_one_pixel_dicom_series(tmp_path: Path) -> None:
    write_dicom_series(np.zeros((1, 8, 3), np.int16), np.diag([0.5, 0.5, 2.0, 1.0]), tmp_path / "thin")
    assert "thin: the volume (1x8x3 voxels) has axial slices of 1x8 voxels" in _error(tmp_path / "thin")


def test_empty_source() -> None:
    empty = MetaTensor(torch.zeros(1, 0, 4, 4), meta={"source_kind": "volume", "filename_or_obj": "/x/empty.nii"})
    with pytest.raises(SequenceReadError, match=r"/x/empty.nii: no voxels: the input has shape \(1, 0, 4, 4\)"):
        check_source(empty)
    frames = MetaTensor(torch.zeros(3, 5, 5, 0), meta={"source_kind": "frames", "filename_or_obj": ["/x/a.png"]})
    with pytest.raises(SequenceReadError, match=r"no frames: the input has shape \(3, 5, 5, 0\)"):
        check_source(frames)


def test_unreadable_files_say_what_to_do(tmp_path: Path) -> None:
    data = sample_path("ct_small").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    assert "cut.nii.gz: truncated or corrupt NIfTI file" in (m := _error(tmp_path / "cut.nii.gz")) and "export it again" in m
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert "replace or remove it" in _error(tmp_path / "broken.png")
    (tmp_path / "broken.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n")
    assert "broken.mha: cannot read volume with SimpleITK" in (m := _error(tmp_path / "broken.mha")) and "convert it" in m
    (tmp_path / "x.dcm").write_bytes(b"\x00" * 300)
    assert "x.dcm: not a readable DICOM file" in (m := _error(tmp_path / "x.dcm")) and "export it again" in m
    series = tmp_path / "series"
    write_dicom_series(np.zeros((4, 4, 3), np.int16), np.eye(4), series)
    (series / "notes.bin").write_bytes(b"\x00" * 300)
    assert "notes.bin: not a readable DICOM file" in (m := _error(series)) and "remove it from the series folder" in m
    assert "check the path" in _error(tmp_path / "missing.nii.gz")
