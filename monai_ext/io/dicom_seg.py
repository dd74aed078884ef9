"""DICOM SEG output (highdicom) of a mask predicted on a DICOM series (docs/DESIGN.md, section 3).

The mask arrives in the source geometry ``(1, X, Y, Z)`` as :py:func:`monai_ext.io.read_dicom_series`
gives it (X: columns, Y: rows, Z: slices in position order) and is written as a BINARY
Segmentation with one segment, one frame per source slice, each frame referencing its source
instance; highdicom copies the patient/study of the source and the plane geometry of each slice.

What is recorded where:

- ``SegmentSequence[0]``: ``SegmentLabel`` and ``SegmentDescription`` = the target (e.g. ``"spleen"``),
  ``SegmentAlgorithmType`` AUTOMATIC, ``SegmentAlgorithmName`` and the segmented property codes
  (:py:func:`segmented_property_codes`);
- ``SegmentSequence[0].SegmentationAlgorithmIdentificationSequence``: ``AlgorithmName`` /
  ``AlgorithmVersion`` = the bundle's name / version, ``AlgorithmFamilyCodeSequence`` = DCM 123110
  "Artificial Intelligence", ``AlgorithmSource`` = ``monai_ext``, ``AlgorithmParameters`` =
  ``prompt=<the typed prompt>`` (whole, an LT of up to 10240 characters);
- ``SeriesDescription`` = the typed prompt (a LO: at most 64 characters, cut with ``...``);
  ``ContentDescription`` = ``<target> (<bundle name> <bundle version>)`` (LO, 64 characters);
- ``ReferencedSeriesSequence`` = the source series and its instances; per frame
  ``DerivationImageSequence`` / ``SourceImageSequence`` = the source instance of that slice,
  ``PlanePositionSequence`` its ``ImagePositionPatient``; shared ``PlaneOrientationSequence`` and
  ``PixelMeasuresSequence`` the series' orientation and spacing;
- ``Manufacturer`` = ``monai_ext``, ``ManufacturerModelName`` = the bundle name, ``SoftwareVersions`` =
  the monai_ext version; ``SeriesNumber`` = the source's + 1000 unless given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.utils import convert_to_numpy

from ..atomic import atomic_write
from .meta import SourceKind, mask_array, source_stem

__all__ = ["write_dicom_seg", "seg_output_path", "segmented_property_codes"]

#: words (at a word start) that make a target a lesion rather than an anatomical structure.
_LESION_PATTERN = re.compile(
    r"\b(tumou?r|lesion|polyp|neoplas|necros|necrot|o?edema|cyst|nodul|mass\b|cancer|carcinoma|metasta|"
    r"ha?emorrhag|gallstone|stone|calcul|fractur|infarct|enhancing|abscess|effusion)",
    re.IGNORECASE,
)
_LO_MAX = 64
#: Type 2 patient/study attributes highdicom copies from the source (present, possibly empty, in conforming files)
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


def segmented_property_codes(target: str) -> tuple[Any, Any]:
    """
    The (category, type) codes of a target's segment: kept generic, the target's name is in the label.

    A target naming a lesion (tumour, lesion, polyp, necrosis, oedema, cyst, nodule, mass, cancer,
    metastasis, haemorrhage, stone, fracture, infarct, enhancing..., matched at word starts) gets
    SCT 49755003 "Morphologically Altered Structure" / SCT 52988006 "Lesion"; anything else (organs,
    vessels, cavities, muscles) SCT 91723000 "Anatomical Structure" for both.

    Args:
        target: the target's name.

    Returns:
        ``(category, type)`` as ``pydicom.sr.coding.Code``.
    """
    from pydicom.sr.coding import Code

    if _LESION_PATTERN.search(target):
        return Code("49755003", "SCT", "Morphologically Altered Structure"), Code("52988006", "SCT", "Lesion")
    anatomy = Code("91723000", "SCT", "Anatomical Structure")
    return anatomy, anatomy




def seg_output_path(source_meta: Mapping[str, Any], output_dir: str | os.PathLike, stem: str | None = None) -> Path:
    """
    Where :py:func:`write_dicom_seg` writes the SEG of a source into a folder: ``<output_dir>/<stem>_seg.dcm``.

    Args:
        source_meta: the metadata of the loaded source.
        output_dir: the output folder.
        stem: base name instead of the source's (``meta["stem"]``), as for the NIfTI mask.

    Returns:
        the path, beside ``<stem>_mask.nii.gz`` of :py:func:`monai_ext.io.write_mask`.
    """
    return Path(output_dir) / f"{stem or source_stem(source_meta)}_seg.dcm"


def _text(value: str, max_len: int | None = None) -> str:
    """A DICOM text value: no backslash (the value separator) nor control characters, cut to ``max_len``."""
    text = " ".join(str(value).replace("\\", "/").split())
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 3].rstrip() + "..."
    return text




def _with_type2(ds: Any, owned: bool) -> Any:
    """``ds`` with the Type 2 attributes highdicom copies (empty where missing); a caller's dataset is not changed."""
    missing = [k for k in _TYPE2_COPIED if k not in ds]
    if not missing:
        return ds
    if not owned:
        from pydicom.dataset import Dataset

        new = Dataset()
        new.update(ds)  # a new element dictionary sharing the elements: adding to it leaves ``ds`` as it is
        if hasattr(ds, "file_meta"):
            new.file_meta = ds.file_meta
        ds = new
    for key in missing:
        setattr(ds, key, "")
    return ds


def _source_datasets(source_meta: Mapping[str, Any], uids: Sequence[str], given: Sequence[Any] | None) -> list[Any]:
    """The source instances in slice order: ``given`` reordered by SOPInstanceUID, or the headers of ``dicom_files``."""
    if given is not None:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in given}
        missing = [u for u in uids if u not in by_uid]
        if missing:
            raise ValueError(
                f"source_datasets lack {len(missing)} of the series' {len(uids)} instances (e.g. SOPInstanceUID "
                f"{missing[0]}); pass the datasets of the series that was read, or none to read its files."
            )
        return [_with_type2(by_uid[u], owned=False) for u in uids]
    import pydicom

    files = source_meta.get("dicom_files")
    if not files or len(files) != len(uids):
        raise ValueError(
            "source_meta has no 'dicom_files' for each of its 'sop_instance_uids' (as read_dicom_series records); "
            "pass source_datasets, or the metadata of load_source(<series folder>)."
        )
    datasets = []
    for path, uid in zip(files, uids):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)  # highdicom needs the headers only
        except Exception as e:
            raise ValueError(f"{path}: cannot read the source DICOM file again ({type(e).__name__}: {e}).") from e
        if str(ds.get("SOPInstanceUID", "")) != uid:
            raise ValueError(
                f"{path}: SOPInstanceUID {ds.get('SOPInstanceUID')} is not {uid} read before: the series changed "
                "since it was loaded; load it again."
            )
        datasets.append(_with_type2(ds, owned=True))
    return datasets


def write_dicom_seg(
    mask: NdarrayOrTensor,
    source_meta: Mapping[str, Any] | None,
    output_path_or_dir: str | os.PathLike,
    *,
    target: str,
    prompt: str,
    algorithm_name: str,
    algorithm_version: str,
    source_datasets: Sequence[Any] | None = None,
    stem: str | None = None,
    series_number: int | None = None,
    omit_empty_frames: bool = False,
    segmented_property_category: Any | None = None,
    segmented_property_type: Any | None = None,
) -> Path:
    """
    Write a mask predicted on a DICOM series as a DICOM Segmentation (BINARY, one segment) referencing it.

    The mask's voxel ``(x, y, z)`` is pixel (row ``y``, column ``x``) of the ``z``-th slice of the series
    in position order (``source_meta["sop_instance_uids"]``), exactly the mapping of
    :py:func:`monai_ext.io.read_dicom_series`; frame ``z`` of the SEG (all frames are kept by default)
    references that slice. Any non-zero label is the segment. An empty mask gives a valid SEG whose
    frames are all empty (highdicom cannot write a SEG without frames). What is recorded where is
    listed in this module's docstring. The file is written to a temporary file and renamed into place.

    Args:
        mask: ``(1, X, Y, Z)`` or ``(X, Y, Z)`` labels in the source geometry (e.g. after ``Invertd``).
        source_meta: metadata of the loaded series (``load_source(folder).meta``); ``None`` to use
            ``mask.meta`` when ``mask`` is a MetaTensor.
        output_path_or_dir: a ``.dcm`` file, or a folder (created if needed) to write
            ``<stem>_seg.dcm`` into (:py:func:`seg_output_path`).
        target: the segment's name (the prompt library's target, e.g. ``"spleen"``).
        prompt: the prompt as typed.
        algorithm_name: the bundle's name.
        algorithm_version: the bundle's version.
        source_datasets: the series' pydicom datasets (any order, matched by SOPInstanceUID); ``None``
            reads the headers of ``source_meta["dicom_files"]``.
        stem: base name of the output in a folder instead of the source's.
        series_number: the SEG's SeriesNumber; default the source's + 1000.
        omit_empty_frames: leave out frames without the target (smaller file; an empty mask keeps all).
        segmented_property_category: a ``Code`` instead of :py:func:`segmented_property_codes`' category.
        segmented_property_type: a ``Code`` instead of :py:func:`segmented_property_codes`' type.

    Returns:
        the written path.

    Raises:
        ValueError: the source is not a DICOM series (DICOM SEG needs the source instances to reference),
            an empty target, a mask shape or affine that is not the source's, or source files that changed.
        ImportError: highdicom is missing (``pip install monai_ext[dicom]``).
    """
    if source_meta is None:
        if not isinstance(mask, MetaTensor):
            raise ValueError("source_meta is None and mask is not a MetaTensor: no source metadata.")
        source_meta = mask.meta
    kind = source_meta.get("source_kind")
    name = source_meta.get("filename_or_obj")
    if kind != SourceKind.DICOM_SERIES:
        raise ValueError(
            f"{name}: DICOM SEG output needs a DICOM series input (source kind 'dicom_series'), this one is {kind!r}; "
            "write the mask as NIfTI or PNG (write_mask) instead."
        )
    if not str(target).strip():
        raise ValueError("target is empty: a DICOM SEG segment needs a name.")
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError as e:
        raise ImportError("DICOM SEG output needs highdicom: pip install 'monai_ext[dicom]' (or highdicom).") from e

    expected = tuple(int(s) for s in np.asarray(source_meta["spatial_shape"]).reshape(-1))
    array = mask_array(mask, expected, "the source spatial shape", f" of {name}; nothing written.")
    source_affine = source_meta.get("original_affine", source_meta.get("affine"))
    if isinstance(mask, MetaTensor) and source_affine is not None:
        # the voxel -> slice mapping below holds only in the series' own geometry (not e.g. after Orientation)
        if not np.allclose(mask.affine.detach().cpu().numpy(), convert_to_numpy(source_affine), atol=1e-2):
            raise ValueError(
                f"the mask's affine differs from the source's of {name}: it is not in the series' geometry "
                "(invert the preprocessing first, e.g. with Invertd); nothing written."
            )
    uids = [str(u) for u in source_meta.get("sop_instance_uids", [])]
    if len(uids) != expected[-1]:
        raise ValueError(f"source_meta has {len(uids)} sop_instance_uids for {expected[-1]} slices of {name}.")
    datasets = _source_datasets(source_meta, uids, source_datasets)
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    if (cols, rows) != expected[:2]:
        raise ValueError(f"the source slices are {rows}x{cols} (rows x columns) but the mask is {expected[:2]} (x, y).")

    # (X = column, Y = row, Z = slice) -> (slice, row, column), the frames of the source instances in order
    pixels = np.ascontiguousarray(np.transpose(array != 0, (2, 1, 0)))
    category, prop_type = segmented_property_codes(str(target))
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_text(algorithm_name, _LO_MAX),
        family=codes.cid7162.ArtificialIntelligence,
        version=_text(algorithm_version, _LO_MAX),
        source="monai_ext",
        parameters={"prompt": _text(prompt)} if str(prompt).strip() else None,
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=_text(target, _LO_MAX),
        segmented_property_category=segmented_property_category or category,
        segmented_property_type=segmented_property_type or prop_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    segment.SegmentDescription = _text(target, 1024)  # ST; the label (LO) is cut at 64 characters
    if series_number is None:
        try:
            series_number = int(datasets[0].get("SeriesNumber", 0) or 0) + 1000
        except (TypeError, ValueError):
            series_number = 1000
    from monai_ext import __version__

    extra: dict[str, Any] = {}
    if any(not str(t).isascii() for t in (target, prompt, algorithm_name, algorithm_version)):
        extra["specific_character_set"] = "ISO_IR 192"  # UTF-8: prompts may hold any character
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=int(series_number),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="monai_ext",
        manufacturer_model_name=_text(algorithm_name, _LO_MAX),
        software_versions=f"monai_ext {__version__}",
        device_serial_number="0",
        content_description=_text(f"{target} ({algorithm_name} {algorithm_version})", _LO_MAX),
        omit_empty_frames=omit_empty_frames,
        **extra,
    )
    seg.SeriesDescription = _text(prompt if str(prompt).strip() else target, _LO_MAX)

    output = Path(output_path_or_dir)
    if output.is_dir() or output.suffix.lower() != ".dcm":
        output = seg_output_path(source_meta, output, stem)
    return atomic_write(output, lambda tmp: seg.save_as(tmp), suffix=".dcm")
