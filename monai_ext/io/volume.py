"""Readers of 3D volumes: NIfTI (through MONAI's ``NibabelReader``), NRRD and MHA/MHD (through SimpleITK)."""

from __future__ import annotations

import os

import numpy as np

from monai.data import MetaTensor, NibabelReader
from monai.transforms import EnsureChannelFirst

from .errors import SequenceReadError
from .meta import SourceKind, make_source, path_stem, path_suffix

__all__ = ["LPS_TO_RAS", "sitk_image_affine", "read_nifti", "read_sitk_volume", "read_volume"]

#: flips the first two world axes: LPS (ITK/DICOM) <-> RAS (NIfTI/MONAI).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def sitk_image_affine(image) -> np.ndarray:
    """
    RAS affine of a 3D SimpleITK image, for the array axes ``(X, Y, Z)`` = ITK index order.

    Args:
        image: a ``SimpleITK.Image`` of dimension 3.

    Returns:
        4x4 float64 affine mapping voxel indices ``(i, j, k)`` to RAS millimetres.
    """
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(spacing)
    lps[:3, 3] = np.asarray(image.GetOrigin(), dtype=np.float64)
    return LPS_TO_RAS @ lps


def read_nifti(path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32) -> MetaTensor:
    """
    Read a ``.nii``/``.nii.gz`` volume as ``LoadImage(reader="NibabelReader", ensure_channel_first=True)`` would.

    Args:
        path: the NIfTI file.
        dtype: output data type, ``None`` keeps the stored type (after scaling).

    Returns:
        ``(C, X, Y, Z)`` MetaTensor with the file's RAS affine (``C > 1`` for 4D files, which
        :py:func:`monai_ext.io.load_source` then rejects: the bundles segment one 3D volume).

    Raises:
        SequenceReadError: unreadable, truncated or corrupt file, or not 3D/4D.
    """
    reader = NibabelReader()
    try:
        img = reader.read(str(path))
        ndim = len(img.shape)
        if ndim not in (3, 4):
            raise SequenceReadError(
                path,
                f"a volume must be 3D (or 4D with channels last), got shape {tuple(img.shape)}; save one 3D volume "
                "(a 2D image as PNG or TIFF)",
            )
        array, meta = reader.get_data(img)
    except SequenceReadError:
        raise
    except Exception as e:  # nibabel/zlib raise many types (EOFError, OSError, zlib.error, ImageFileError...)
        raise SequenceReadError(
            path, f"truncated or corrupt NIfTI file ({type(e).__name__}: {e}); copy or export it again"
        ) from e
    meta["filename_or_obj"] = str(path)
    meta["source_kind"] = SourceKind.VOLUME
    meta["stem"] = path_stem(path)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    out = EnsureChannelFirst()(MetaTensor.ensure_torch_and_prune_meta(np.ascontiguousarray(array), meta))
    if out.ndim != 4:
        raise SequenceReadError(
            path, f"a volume must have 3 spatial axes, got shape {tuple(img.shape)}; save one 3D volume"
        )
    out.meta["original_channel_dim"] = 0
    return out


def read_sitk_volume(path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32) -> MetaTensor:
    """
    Read a NRRD or MHA/MHD volume with SimpleITK, converting its LPS geometry to a RAS affine.

    Args:
        path: the ``.nrrd``, ``.mha`` or ``.mhd`` file.
        dtype: output data type, ``None`` keeps the stored type.

    Returns:
        ``(C, X, Y, Z)`` MetaTensor (``C`` = number of components per voxel).

    Raises:
        SequenceReadError: unreadable or corrupt file, or not a 3D image.
    """
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except Exception as e:  # RuntimeError from ITK
        msg = str(e).strip().splitlines()
        raise SequenceReadError(
            path,
            f"cannot read volume with SimpleITK ({msg[-1] if msg else type(e).__name__}); check that the file (and, "
            "for .mhd, its raw data file) is complete, or convert it to NIfTI",
        ) from e
    if image.GetDimension() != 3:
        raise SequenceReadError(
            path,
            f"a volume must be 3D, got a {image.GetDimension()}D image of size {image.GetSize()}; save one 3D volume "
            "(a 2D image as PNG or TIFF)",
        )
    try:
        array = sitk.GetArrayFromImage(image)  # (Z, Y, X) or (Z, Y, X, C)
    except Exception as e:
        raise SequenceReadError(path, f"cannot decode voxel data ({e}); convert the file to NIfTI") from e
    if array.ndim == 3:
        array = array[None]
    else:
        array = np.moveaxis(array, -1, 0)
    array = np.transpose(array, (0, 3, 2, 1))  # (C, X, Y, Z)
    return make_source(array, SourceKind.VOLUME, path, affine=sitk_image_affine(image), dtype=dtype)


def read_volume(path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32) -> MetaTensor:
    """
    Read any supported volume file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ``.mhd``).

    Args:
        path: the volume file.
        dtype: output data type, ``None`` keeps the stored type.

    Returns:
        ``(C, X, Y, Z)`` MetaTensor with ``meta["source_kind"] == "volume"``.
    """
    if path_suffix(path) in (".nii", ".nii.gz"):
        return read_nifti(path, dtype=dtype)
    return read_sitk_volume(path, dtype=dtype)
