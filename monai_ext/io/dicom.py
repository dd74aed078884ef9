"""DICOM: single-frame series folders, multi-frame (cine) files, and a CT-like series writer."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai.data import MetaTensor

from .errors import SequenceReadError
from .meta import SourceKind, frame_index_names, make_source
from .volume import LPS_TO_RAS

__all__ = [
    "SeriesInfo",
    "list_dicom_series",
    "read_dicom_series",
    "read_dicom_cine",
    "write_dicom_series",
    "is_dicom_file",
]

_IGNORED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}
_IGNORED_SUFFIXES = {".txt", ".json", ".xml", ".md", ".csv", ".ini", ".log"}
_YBR = ("YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420", "YBR_PARTIAL_422")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """
    Whether a file starts like a DICOM Part 10 file (``DICM`` after the 128-byte preamble).

    Args:
        path: a file.

    Returns:
        True for a Part 10 DICOM file.
    """
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _decode_frames(ds, path) -> tuple[np.ndarray, str]:
    """Pixel data as stored (no colour conversion) and its photometric interpretation after decoding."""
    try:
        try:  # pydicom >= 3: decode without the implicit YCbCr -> RGB conversion, convert explicitly below
            from pydicom.pixels import get_decoder

            decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
            array, info = decoder.as_array(ds, as_rgb=False)
            photometric = str(info.get("photometric_interpretation", ds.PhotometricInterpretation))
        except ImportError:  # pydicom 2.x
            array = ds.pixel_array
            photometric = str(ds.PhotometricInterpretation)
    except Exception as e:
        raise SequenceReadError(
            path,
            f"cannot decode DICOM pixel data ({type(e).__name__}: {e}); install the decoder of its transfer syntax "
            "(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) or convert the file to uncompressed DICOM",
        ) from e
    return array, photometric


def _convert_color_space(array: np.ndarray, photometric: str) -> np.ndarray:
    try:
        from pydicom.pixels import convert_color_space
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import convert_color_space
    return convert_color_space(array, photometric, "RGB", per_frame=True)


def _rescale(array: np.ndarray, ds) -> np.ndarray:
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if slope == 1.0 and intercept == 0.0:
        return array
    out = array.astype(np.float64) * slope + intercept
    if float(slope).is_integer() and float(intercept).is_integer():
        return out.astype(np.int32)
    return out.astype(np.float32)


#: modalities of DICOM objects that are not images to segment (segmentations, structure sets, reports,
#: presentation states, registrations, dose grids...): skipped when a folder's series are listed, so that
#: e.g. a SEG written beside a series does not turn its folder into a "study" of two series.
_NON_IMAGE_MODALITIES = {
    "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "FID", "PLAN"
}


@dataclass(frozen=True)
class SeriesInfo:
    """
    One DICOM series found in a folder by :py:func:`list_dicom_series`.

    Attributes:
        uid: ``SeriesInstanceUID`` (``""`` when its files have none).
        number: ``SeriesNumber``, ``None`` when absent.
        description: ``SeriesDescription`` (``""`` when absent).
        modality: ``Modality`` (``""`` when absent).
        n_instances: number of files of the series.
        path: the folder holding its files (their common folder when they are spread over several).
        files: its files, sorted by path.
    """

    uid: str
    number: int | None
    description: str
    modality: str
    n_instances: int
    path: Path
    files: tuple[Path, ...] = field(default=(), repr=False, compare=False)

    def summary(self) -> str:
        """One line describing the series, as listed in error messages: number, description, modality, count, UID."""
        number = "?" if self.number is None else str(self.number)
        description = f" '{self.description}'" if self.description else ""
        count = f"{self.n_instances} instance{'' if self.n_instances == 1 else 's'}"
        return f"number {number}{description} {self.modality or '?'}, {count}, UID {self.uid or '(none)'}"


def _is_candidate(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.name not in _IGNORED_NAMES
        and path.suffix.lower() not in _IGNORED_SUFFIXES
    )


def _read_headers(files: Sequence[Path]) -> tuple[list[tuple[Path, Any]], list[SequenceReadError]]:
    """Headers (no pixel data) of the files that pydicom reads, and one error per file it cannot read."""
    import pydicom

    headers, errors = [], []
    for f in files:
        try:
            headers.append((f, pydicom.dcmread(f, stop_before_pixels=True)))
        except Exception as e:
            errors.append(
                SequenceReadError(
                    f,
                    f"not a readable DICOM file ({type(e).__name__}: {e}); remove it from the series folder, "
                    "or give the series' DICOM files a folder of their own",
                )
            )
    return headers, errors


def _is_image_header(ds) -> bool:
    """False for DICOM objects that are not images to segment (see ``_NON_IMAGE_MODALITIES``) and directory records."""
    if str(ds.get("Modality", "")).upper() in _NON_IMAGE_MODALITIES:
        return False
    return "Rows" in ds or "SeriesInstanceUID" in ds


def _scan_folder(folder: Path) -> tuple[list[tuple[Path, Any]], bool]:
    """
    The DICOM headers of a series or study folder and whether they come from its sub-folders.

    The folder's own files are read first (every file must then be DICOM, as in a plain series folder).
    Only when none of them is a DICOM image (none is DICOM, or only directory records, reports...) are its
    sub-folders searched, recursively, for DICOM Part 10 files (other files there are skipped: study
    exports hold viewers, reports, thumbnails...).
    """
    if not folder.is_dir():
        raise SequenceReadError(folder, "not a folder; give the folder that holds the DICOM series (or a study folder)")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    top = [p for p in entries if _is_candidate(p)]
    headers, errors = _read_headers(top)
    if any(_is_image_header(ds) for _, ds in headers):
        if errors:  # a plain series folder: every file must be DICOM (today's contract)
            raise errors[0]
        return headers, False
    nested: list[Path] = []
    for sub in (p for p in entries if p.is_dir()):
        for root, dirs, names in os.walk(sub):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                path = Path(root) / name
                if _is_candidate(path) and is_dicom_file(path):
                    nested.append(path)
    if not nested:
        if errors:
            raise errors[0]
        if headers:  # DICOM files, none an image: the caller says so
            return headers, False
        raise SequenceReadError(
            folder,
            "empty folder: no frame image or DICOM file here or in its sub-folders; give the folder that holds "
            "the series' DICOM files (or the frame images)",
        )
    headers, nested_errors = _read_headers(nested)
    if nested_errors:
        raise nested_errors[0]
    return headers, True


def _group_series(folder: Path, headers: Sequence[tuple[Path, Any]]) -> list[tuple[SeriesInfo, list[tuple[Path, Any]]]]:
    """Image headers grouped by ``SeriesInstanceUID``, with their :py:class:`SeriesInfo`, sorted by number then UID."""
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for f, ds in headers:
        if _is_image_header(ds):
            groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    out = []
    for uid, items in groups.items():
        ds0 = items[0][1]
        number = ds0.get("SeriesNumber")
        try:
            number = None if number in (None, "") else int(number)
        except (TypeError, ValueError):
            number = None
        files = tuple(f for f, _ in items)
        parents = {str(f.parent) for f in files}
        path = Path(os.path.commonpath(sorted(parents))) if len(parents) > 1 else files[0].parent
        info = SeriesInfo(
            uid=uid,
            number=number,
            description=str(ds0.get("SeriesDescription", "") or "").strip(),
            modality=str(ds0.get("Modality", "") or "").strip(),
            n_instances=len(items),
            path=path,
            files=files,
        )
        out.append((info, items))
    out.sort(key=lambda x: (x[0].number is None, x[0].number or 0, x[0].uid))
    return out


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """
    The DICOM series of a series or study folder.

    A folder's own files are its series (every file must be DICOM, as for :py:func:`read_dicom_series`);
    only when it holds no DICOM image itself are its sub-folders searched, recursively, for DICOM Part 10
    files (e.g. one sub-folder per series, or a DICOMDIR tree). Objects that are not images to segment
    (SEG, RTSTRUCT, SR, presentation states...) and DICOMDIR records are not listed.

    Args:
        folder: the folder.

    Returns:
        one :py:class:`SeriesInfo` per ``SeriesInstanceUID``, sorted by series number then UID.

    Raises:
        SequenceReadError: not a folder, no DICOM file, or a file of the folder itself that is not DICOM.
    """
    folder = Path(folder)
    headers, _ = _scan_folder(folder)
    return [info for info, _ in _group_series(folder, headers)]


def _choices(infos: Sequence[SeriesInfo]) -> str:
    return "; ".join(info.summary() for info in infos)


def _select_series(folder: Path, groups: Sequence[tuple[SeriesInfo, Any]], series: str | int | None):
    """The group the user asked for (by UID or number), or the only one; errors list the choices."""
    infos = [info for info, _ in groups]
    if series is None:
        if len(groups) == 1:
            return groups[0]
        raise SequenceReadError(
            folder,
            f"{len(groups)} DICOM series in this folder (mixed series: several SeriesInstanceUIDs); choose one with "
            f"--series UID|NUMBER (load_source(..., series=...)): {_choices(infos)}",
        )
    wanted = str(series).strip()
    for group in groups:
        if group[0].uid == wanted:
            return group
    try:
        number = int(wanted)
    except ValueError:
        number = None
    matches = [g for g in groups if number is not None and g[0].number == number]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise SequenceReadError(
            folder,
            f"{len(matches)} DICOM series have the number {number}; choose one by its UID with --series UID: "
            f"{_choices([g[0] for g in matches])}",
        )
    raise SequenceReadError(
        folder,
        f"no DICOM series {wanted!r} (by SeriesInstanceUID or SeriesNumber) in this folder; choose one of them with "
        f"--series UID|NUMBER: {_choices(infos)}",
    )


def _series_stem(folder: Path, info: SeriesInfo, groups: Sequence[tuple[SeriesInfo, Any]], nested: bool) -> str | None:
    """Output base name of a series picked out of a study folder (``None``: the folder's name, as for a series)."""
    if len(groups) == 1 and not nested:
        return None
    others = [g[0] for g in groups if g[0] is not info]
    own_folder = info.path != folder and all(f.parent == info.path for f in info.files)
    if own_folder and not any(o.path == info.path or info.path in o.path.parents for o in others):
        return info.path.name  # one sub-folder per series: its name (e.g. "CT5N")
    numbers = [g[0].number for g in groups]
    if info.number is not None and numbers.count(info.number) == 1:
        return f"{folder.name}_series{info.number}"
    return f"{folder.name}_{info.uid.replace('.', '')[-8:] or 'series'}"


def read_dicom_series(
    folder: str | os.PathLike,
    dtype: np.dtype | type | str | None = np.float32,
    gap_tolerance: float = 0.25,
    series: str | int | None = None,
) -> MetaTensor:
    """
    Read a folder of single-frame DICOM files of one series as a volume; or one series of a study folder.

    Slices are ordered by their position along the slice normal (``ImagePositionPatient``
    projected on the cross product of the ``ImageOrientationPatient`` row and column
    directions), never by file name. ``RescaleSlope``/``RescaleIntercept`` are applied.
    A study folder (files of several series, or no DICOM file itself but sub-folders holding them,
    e.g. one per series; see :py:func:`list_dicom_series`) needs ``series`` when it holds more than
    one series.

    Args:
        folder: the series folder (its own files), or a study folder.
        dtype: output data type, ``None`` keeps the (rescaled) type.
        gap_tolerance: relative deviation of a slice step from the median step that is
            reported as a missing slice (0.25: a step 1.25x the median or more).
        series: the series to read, by ``SeriesInstanceUID`` or ``SeriesNumber`` (str or int);
            ``None``: the folder's only series.

    Returns:
        ``(1, X, Y, Z)`` MetaTensor (X: columns, Y: rows, Z: slices) with the RAS affine; meta
        ``sop_instance_uids``, ``dicom_files`` (both in slice order), ``series_instance_uid`` and, when
        the files have them, ``Modality``, ``series_number``, ``series_description``. ``stem`` is the
        folder's name; for a series picked out of a study folder, its own sub-folder's name or
        ``<folder>_series<number>``.

    Raises:
        SequenceReadError: no DICOM file, several series and no (or an unknown) ``series`` (the message
            lists them), mixed stacks in one series (orientations or slice sizes), multi-frame files,
            duplicated or missing slices, undecodable pixels.
    """
    folder = Path(folder)
    headers, nested = _scan_folder(folder)
    groups = _group_series(folder, headers)
    if not groups:
        raise SequenceReadError(
            folder,
            "no DICOM image in this folder (only reports, segmentations or directory records); give an image series",
        )
    info, chosen = _select_series(folder, groups, series)
    return _read_series_headers(
        folder, chosen, dtype=dtype, gap_tolerance=gap_tolerance, stem=_series_stem(folder, info, groups, nested)
    )


def _read_series_headers(
    folder: Path,
    headers: list[tuple[Path, Any]],
    dtype: np.dtype | type | str | None,
    gap_tolerance: float,
    stem: str | None,
) -> MetaTensor:
    """The volume of one series from its files' headers (see :py:func:`read_dicom_series`)."""
    import pydicom

    for f, ds in headers:
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if tag not in ds:
                raise SequenceReadError(
                    f,
                    f"DICOM file has no {tag}: cannot place it in a series (not a cross-sectional slice); remove it "
                    "from the series folder, or load the file on its own",
                )
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise SequenceReadError(
                f, "multi-frame DICOM file inside a series folder; load the file itself (dicom_cine)"
            )

    stack_remedy = "keep the files of one stack (e.g. not the localizer) in a folder of their own"
    f0, ds0 = headers[0]
    series_uid = str(ds0.get("SeriesInstanceUID", ""))
    iop0 = np.asarray(ds0.ImageOrientationPatient, dtype=np.float64)
    size0 = (int(ds0.Rows), int(ds0.Columns))
    spacing0 = np.asarray(ds0.PixelSpacing, dtype=np.float64)
    for f, ds in headers[1:]:
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uid != series_uid:
            raise SequenceReadError(f, f"mixed series: SeriesInstanceUID {uid} differs from {series_uid} of {f0.name}")
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), iop0, atol=1e-4):
            raise SequenceReadError(f, f"mixed series: ImageOrientationPatient differs from {f0.name}; {stack_remedy}")
        if (int(ds.Rows), int(ds.Columns)) != size0:
            raise SequenceReadError(
                f,
                f"mixed series: slice size {(int(ds.Rows), int(ds.Columns))} differs from {size0} of {f0.name}; "
                f"{stack_remedy}",
            )
        if not np.allclose(np.asarray(ds.PixelSpacing, dtype=np.float64), spacing0, atol=1e-4):
            raise SequenceReadError(f, f"mixed series: PixelSpacing differs from {f0.name}; {stack_remedy}")

    row_dir, col_dir = iop0[:3], iop0[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.asarray([np.asarray(ds.ImagePositionPatient, dtype=np.float64) for _, ds in headers])
    order = np.argsort(positions @ normal, kind="stable")
    headers = [headers[i] for i in order]
    positions = positions[order]
    dist = positions @ normal
    if len(headers) > 1:
        steps = np.diff(dist)
        dup = np.flatnonzero(steps < 1e-4)
        if dup.size:
            i = int(dup[0])
            raise SequenceReadError(
                headers[i + 1][0],
                f"duplicated slice position: same position as {headers[i][0].name} (mixed series?); remove the "
                f"duplicate, or {stack_remedy}",
            )
        median = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - median) > gap_tolerance * median)
        if bad.size:
            i = int(bad[0])
            raise SequenceReadError(
                folder,
                f"missing slice (non-uniform slice spacing): step {steps[i]:.4g} mm between {headers[i][0].name} and "
                f"{headers[i + 1][0].name}, median step {median:.4g} mm; the series is incomplete: export it again "
                "with all its slices",
            )
        step_vec = (positions[-1] - positions[0]) / (len(headers) - 1)
    else:
        thickness = float(ds0.get("SpacingBetweenSlices", 0) or ds0.get("SliceThickness", 0) or 1.0)
        step_vec = normal * thickness

    slices = []
    for f, _ in headers:
        ds = pydicom.dcmread(f)
        array, _ = _decode_frames(ds, f)
        if array.ndim != 2:
            raise SequenceReadError(
                f, f"expected a grey 2D slice, got pixel array of shape {array.shape}; load a colour file on its own"
            )
        slices.append(_rescale(array, ds).T)  # (rows, cols) -> (X = column, Y = row)
    volume = np.stack(slices, axis=-1)[None]

    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing0[1]  # along a row: column index increases, column spacing
    lps[:3, 1] = col_dir * spacing0[0]  # along a column: row index increases, row spacing
    lps[:3, 2] = step_vec
    lps[:3, 3] = positions[0]
    extra: dict[str, Any] = {
        "sop_instance_uids": [str(ds.get("SOPInstanceUID", "")) for _, ds in headers],
        "series_instance_uid": series_uid,
        "dicom_files": [str(f) for f, _ in headers],
    }
    extra.update(_series_tags(ds0))
    return make_source(
        volume, SourceKind.DICOM_SERIES, folder, affine=LPS_TO_RAS @ lps, stem=stem, extra=extra, dtype=dtype
    )


def _series_tags(ds) -> dict[str, Any]:
    """``Modality`` (read by ``DetectModalityd``), ``series_number``, ``series_description`` where the file has them."""
    out: dict[str, Any] = {}
    modality = str(ds.get("Modality", "") or "").strip()
    if modality:
        out["Modality"] = modality
    try:
        if ds.get("SeriesNumber") not in (None, ""):
            out["series_number"] = int(ds.SeriesNumber)
    except (TypeError, ValueError):
        pass
    description = str(ds.get("SeriesDescription", "") or "").strip()
    if description:
        out["series_description"] = description
    return out


def read_dicom_cine(path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32) -> MetaTensor:
    """
    Read a (multi-frame) DICOM file as a frame sequence; YBR colour is converted to RGB.

    A single-frame file gives one frame (``T = 1``).

    Args:
        path: the DICOM file.
        dtype: output data type, ``None`` keeps the stored type.

    Returns:
        ``(C, H, W, T)`` MetaTensor, identity affine, meta ``frame_names``, ``fps`` (from
        ``CineRate``, ``RecommendedDisplayFrameRate`` or ``FrameTime`` when present, else absent) and,
        when the file has them, ``Modality``, ``series_number``, ``series_description``.

    Raises:
        SequenceReadError: not a DICOM file, no pixel data or undecodable pixels.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise SequenceReadError(
            path,
            f"not a readable DICOM file ({type(e).__name__}: {e}); check that it is a complete DICOM file "
            "(export it again)",
        ) from e
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise SequenceReadError(
            path, "DICOM file has no pixel data (a report, segmentation or directory?); give a DICOM image file"
        )
    array, photometric = _decode_frames(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1:
        array = array[None]
    if samples == 1 and array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise SequenceReadError(path, f"unexpected pixel array shape {array.shape}; convert it to grey or RGB frames")
    if samples == 3 and photometric.upper() in _YBR:
        array = _convert_color_space(array, photometric.upper())
    elif samples == 1:
        array = _rescale(array, ds)
        if photometric.upper() == "MONOCHROME1":
            array = array.max() + array.min() - array
    elif samples not in (1, 3):
        raise SequenceReadError(path, f"unsupported SamplesPerPixel {samples}; convert it to grey or RGB frames")
    array = np.transpose(array[..., :3], (3, 1, 2, 0))  # (T, H, W, C) -> (C, H, W, T)
    extra: dict = {"frame_names": frame_index_names(array.shape[-1])}
    fps = _dicom_fps(ds)
    if fps:
        extra["fps"] = fps
    extra.update(_series_tags(ds))  # Modality: an ultrasound cine is read as ultrasound (DetectModalityd)
    return make_source(array, SourceKind.DICOM_CINE, path, extra=extra, dtype=dtype)


def _dicom_fps(ds) -> float | None:
    for tag in ("CineRate", "RecommendedDisplayFrameRate"):
        value = ds.get(tag)
        if value:
            return float(value)
    frame_time = ds.get("FrameTime")
    if frame_time and float(frame_time) > 0:
        return 1000.0 / float(frame_time)
    return None


def write_dicom_series(
    volume_array: np.ndarray,
    affine: np.ndarray,
    folder: str | os.PathLike,
    series_description: str = "monai_ext series",
    patient_id: str = "ANON",
    modality: str = "CT",
    series_instance_uid: str | None = None,
    series_number: int = 1,
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    file_names: Sequence[str] | None = None,
    shuffle_names: bool = False,
    seed: int = 0,
) -> list[Path]:
    """
    Write a 3D volume as a CT-like single-frame DICOM series (one file per slice along the 3rd axis).

    Each file gets ``ImagePositionPatient``, ``ImageOrientationPatient``, ``PixelSpacing``,
    ``SliceThickness``/``SpacingBetweenSlices``, the shared ``SeriesInstanceUID``/``StudyInstanceUID``/
    ``FrameOfReferenceUID`` and its own ``SOPInstanceUID``, so that :py:func:`read_dicom_series`
    gives back the same array and affine (when the 3rd axis of ``affine`` points along the
    slice normal; otherwise the slices come back in the reverse order).

    Args:
        volume_array: ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) array, X = columns, Y = rows, Z = slices.
        affine: 4x4 RAS affine of ``volume_array`` (as ``load_source`` gives).
        folder: output folder, created if needed.
        series_description: SeriesDescription.
        patient_id: PatientID and PatientName (as the family name).
        modality: Modality (``CT`` uses CT Image Storage, others Secondary Capture).
        series_instance_uid: use this SeriesInstanceUID instead of a new one.
        series_number: SeriesNumber.
        rescale_slope: stored = (value - intercept) / slope; by default 1 for integer data that fits
            int16, otherwise chosen to cover the data range in int16 (lossy).
        rescale_intercept: see ``rescale_slope``.
        file_names: one file name per slice (default ``IM0000.dcm``, ...).
        shuffle_names: permute the default file names so that name order differs from slice order.
        seed: random seed of ``shuffle_names``.

    Returns:
        the written files, in slice order.

    Raises:
        ValueError: not a 3D array, or an affine whose slice axis is not perpendicular to the slice plane.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    array = np.asarray(volume_array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"volume_array must be (X, Y, Z) or (1, X, Y, Z), got shape {array.shape}.")
    nx, ny, nz = array.shape
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    col_spacing = float(np.linalg.norm(lps[:3, 0]))
    row_spacing = float(np.linalg.norm(lps[:3, 1]))
    step = lps[:3, 2]
    thickness = float(np.linalg.norm(step))
    row_dir, col_dir = lps[:3, 0] / col_spacing, lps[:3, 1] / row_spacing
    normal = np.cross(row_dir, col_dir)
    if abs(abs(float(normal @ step)) - thickness) > 1e-4 * max(thickness, 1.0):
        raise ValueError("affine is sheared: the slice axis is not perpendicular to the slice plane, not a DICOM series.")

    if rescale_slope is None and rescale_intercept is None:
        is_int = np.issubdtype(array.dtype, np.integer) or np.array_equal(array, np.round(array))
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if is_int and lo >= -32768 and hi <= 32767:
            slope, intercept = 1.0, 0.0
        else:
            slope, intercept = max((hi - lo) / 65535.0, 1e-12), lo + 32768.0 * max((hi - lo) / 65535.0, 1e-12)
    else:
        slope = 1.0 if rescale_slope is None else float(rescale_slope)
        intercept = 0.0 if rescale_intercept is None else float(rescale_intercept)
    stored = np.clip(np.round((array.astype(np.float64) - intercept) / slope), -32768, 32767).astype(np.int16)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if file_names is None:
        index = np.random.default_rng(seed).permutation(nz) if shuffle_names else np.arange(nz)
        width = max(4, len(str(nz - 1)))
        file_names = [f"IM{int(i):0{width}d}.dcm" for i in index]
    elif len(file_names) != nz:
        raise ValueError(f"got {len(file_names)} file names for {nz} slices.")

    sop_class = CTImageStorage if modality.upper() == "CT" else SecondaryCaptureImageStorage
    study_uid, frame_uid = generate_uid(), generate_uid()
    series_uid = series_instance_uid or generate_uid()
    now = datetime.datetime.now()
    written = []
    for k in range(nz):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = modality
        ds.PatientID = patient_id
        ds.PatientName = patient_id if "^" in patient_id else f"{patient_id}^"  # a family name, not a bare component
        # Type 2 attributes of the patient/study modules: present (empty) as in a conforming file
        ds.PatientBirthDate = ds.PatientSex = ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.Manufacturer = "monai_ext"
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = now.strftime("%H%M%S")
        ds.SeriesDescription = series_description
        ds.SeriesNumber = int(series_number)
        ds.InstanceNumber = k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        position = lps[:3, 3] + k * step
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{row_spacing:.6f}", f"{col_spacing:.6f}"]
        ds.SliceThickness = f"{thickness:.6f}"
        ds.SpacingBetweenSlices = f"{thickness:.6f}"
        ds.SliceLocation = f"{float(position @ normal):.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        ds.RescaleType = "HU" if modality.upper() == "CT" else "US"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # (X, Y) -> (rows, cols)
        path = folder / file_names[k]
        try:
            ds.save_as(path, enforce_file_format=True)
        except TypeError:  # pydicom 2.x
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)
        written.append(path)
    return written
