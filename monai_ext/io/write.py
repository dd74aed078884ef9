"""Writers of predicted masks in the geometry and kind of their source (docs/DESIGN.md, section 3)."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_numpy, ensure_tuple_rep

from ..atomic import atomic_write, atomic_write_json, atomic_write_pngs
from .meta import FRAME_KINDS, VOLUME_KINDS, mask_array, source_stem

__all__ = [
    "FORMATS",
    "atomic_write",
    "frames_with_target",
    "output_formats",
    "mask_output_paths",
    "write_mask",
    "SavePredictiond",
    "write_mask_video",
    "write_overlays",
    "SaveSequenceMask",
    "SaveSequenceMaskd",
]

logger = logging.getLogger(__name__)

#: the output formats :class:`SavePredictiond` writes; "auto" is the input's own (:func:`output_formats`)
FORMATS = ("auto", "nifti", "png", "dicom-seg", "video")
#: the source kinds each format can be written for
_FORMAT_KINDS = {"nifti": VOLUME_KINDS, "png": FRAME_KINDS, "dicom-seg": ("dicom_series",), "video": ("video",)}

_AUTO_FORMATS = {"dicom_series": ["nifti", "dicom-seg"], "video": ["video"]}

#: summary field -> data key of what :class:`SavePredictiond` records by default.
SUMMARY_KEYS = {
    "typed_prompt": "typed_prompt",
    "target": "target",
    "target_similarity": "target_similarity",
    "prompt": "prompt_text",
    "modality": "modality",
    "target_described_for_modality": "target_described_for_modality",
    "refined_frames": "refined_frames",
    "target_present": "target_present",
    "frame_score_kind": "frame_score_kind",
    "frame_scores": "frame_scores",
}




def mask_output_paths(source_meta: Mapping[str, Any], output_dir: str | os.PathLike, stem: str | None = None) -> list[Path]:
    """
    Where :py:func:`write_mask` writes the mask of a source.

    Args:
        source_meta: the metadata of the loaded source.
        output_dir: the output folder.
        stem: base name to use instead of the source's.

    Returns:
        ``[<output_dir>/<stem>_mask.nii.gz]`` for volumes and DICOM series, otherwise one
        ``<output_dir>/<stem>/<frame_name>_mask.png`` per frame.
    """
    kind = source_meta.get("source_kind")
    stem = stem or source_stem(source_meta)
    if kind in VOLUME_KINDS:
        return [Path(output_dir) / f"{stem}_mask.nii.gz"]
    if kind in FRAME_KINDS:
        return [Path(output_dir) / stem / f"{name}_mask.png" for name in source_meta["frame_names"]]
    raise ValueError(f"unknown source_kind {kind!r} in source_meta, expected one of {VOLUME_KINDS + FRAME_KINDS}.")




def write_mask(
    mask: NdarrayOrTensor,
    source_meta: Mapping[str, Any] | None,
    output_dir: str | os.PathLike,
    stem: str | None = None,
    binary_frames: bool = True,
) -> list[Path]:
    """
    Write a mask in its source's own geometry and kind.

    ``volume``/``dicom_series`` -> ``<output_dir>/<stem>_mask.nii.gz`` (uint8 labels, the source's
    original affine); ``frames``/``video``/``image``/``dicom_cine`` -> one PNG per frame,
    ``<output_dir>/<stem>/<frame_name>_mask.png`` (H x W uint8, 0/255).
    The shape is validated before anything is written; every file is written to a temporary file
    in the target folder and renamed into place, so an error never leaves a partial output nor
    replaces an existing one.

    Args:
        mask: ``(1, X, Y, Z)`` / ``(1, H, W, T)`` (or without the channel axis) label array in the
            source geometry, e.g. the output of the inverse sequence transform.
        source_meta: metadata of the loaded source (``load_source(...).meta``); ``None`` to use
            ``mask.meta`` when ``mask`` is a MetaTensor.
        output_dir: the output folder (created if needed).
        stem: base name of the output instead of ``source_meta["stem"]`` (or the file name).
        binary_frames: PNG frames are written 0/255 (any non-zero label -> 255). When False, the
            label values are written as they are (must fit uint8).

    Returns:
        the written paths (one NIfTI, or one PNG per frame in frame order).

    Raises:
        ValueError: no metadata, unknown kind, shape mismatch with ``source_meta["spatial_shape"]``,
            or labels that do not fit uint8.
    """
    if source_meta is None:
        if not isinstance(mask, MetaTensor):
            raise ValueError("source_meta is None and mask is not a MetaTensor: no source metadata.")
        source_meta = mask.meta
    kind = source_meta.get("source_kind")
    paths = mask_output_paths(source_meta, output_dir, stem)
    expected = np.asarray(source_meta["spatial_shape"]).reshape(-1)
    array = mask_array(
        mask, expected, "the source spatial shape",
        f" (expected (1, {', '.join(map(str, expected))})) of {source_meta.get('filename_or_obj')}; nothing written.",
    )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(array)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"mask labels must be in [0, 255], got [{array.min()}, {array.max()}]; nothing written.")
    labels = array.astype(np.uint8)

    if kind in VOLUME_KINDS:
        import nibabel as nib

        affine = source_meta.get("original_affine", source_meta.get("affine"))
        affine = np.eye(4) if affine is None else convert_to_numpy(affine).astype(np.float64)
        image = nib.Nifti1Image(labels, affine)
        image.set_sform(affine, code=1)
        image.set_qform(affine, code=1)
        image.header.set_data_dtype(np.uint8)
        return [atomic_write(paths[0], lambda tmp: nib.save(image, str(tmp)), suffix=".nii.gz")]

    if len(paths) != labels.shape[-1]:
        raise ValueError(f"{len(paths)} frame names for {labels.shape[-1]} frames in the mask; nothing written.")
    frames = (labels > 0).astype(np.uint8) * 255 if binary_frames else labels
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    # every frame first, then all renamed: a failure leaves no new file behind
    return atomic_write_pngs(paths, (np.ascontiguousarray(frames[:, :, t]) for t in range(len(paths))))


class SaveSequenceMask(Transform):
    """
    Save a mask in its source's geometry and kind, see :py:func:`write_mask`.

    Args:
        output_dir: the output folder.
        stem: base name instead of the source's (rarely useful for a transform applied to many sources).
        binary_frames: write PNG frames as 0/255 (default) rather than the label values.

    """

    def __init__(self, output_dir: str | os.PathLike, stem: str | None = None, binary_frames: bool = True) -> None:
        self.output_dir = output_dir
        self.stem = stem
        self.binary_frames = binary_frames

    def __call__(self, mask: NdarrayOrTensor, meta: Mapping[str, Any] | None = None) -> NdarrayOrTensor:
        """
        Args:
            mask: the mask in source geometry.
            meta: the source metadata; ``None`` to use ``mask.meta``.

        Returns:
            ``mask`` unchanged; for a MetaTensor, ``mask.meta["saved_to"]`` lists the written paths.
        """
        paths = write_mask(mask, meta, self.output_dir, stem=self.stem, binary_frames=self.binary_frames)
        if isinstance(mask, MetaTensor):
            mask.meta["saved_to"] = [str(p) for p in paths]
        return mask


class SaveSequenceMaskd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`SaveSequenceMask`.

    The source metadata of each key comes from, in this order: ``data[meta_keys[i]]`` when
    ``meta_keys`` is given; ``data[source_keys[i]].meta`` when ``source_keys`` is given (e.g. the
    loaded ``"image"``); else the mask's own ``meta`` (e.g. after ``Invertd``).

    Args:
        keys: keys of the masks to save.
        output_dir: the output folder.
        meta_keys: keys of metadata dictionaries, one per key (or one for all).
        source_keys: keys of source MetaTensors whose ``meta`` to use, one per key (or one for all).
        stem: base name instead of the source's.
        binary_frames: write PNG frames as 0/255 (default) rather than the label values.
        allow_missing_keys: don't raise when a key is missing.

    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        meta_keys: KeysCollection | None = None,
        source_keys: KeysCollection | None = None,
        stem: str | None = None,
        binary_frames: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.saver = SaveSequenceMask(output_dir, stem=stem, binary_frames=binary_frames)
        self.meta_keys = ensure_tuple_rep(meta_keys, len(self.keys))
        self.source_keys = ensure_tuple_rep(source_keys, len(self.keys))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, meta_key, source_key in self.key_iterator(d, self.meta_keys, self.source_keys):
            meta = None
            if meta_key is not None:
                meta = d[meta_key]
            elif source_key is not None:
                meta = d[source_key].meta
            d[key] = self.saver(d[key], meta)
        return d


def output_formats(formats: Sequence[str], source_kind: str) -> list[str]:
    """The formats to write for a source of ``source_kind``: ``"auto"`` is the input's own kind (a NIfTI
    for a volume, the NIfTI and a DICOM SEG for a DICOM series, a mask video (mp4) for a video, one PNG
    per frame for the other frame kinds).

    Raises:
        ValueError: an unknown format, or one that does not fit the source (e.g. a DICOM SEG for a video).
    """
    chosen: list[str] = []
    for name in formats:
        if name == "auto":
            chosen.extend(_AUTO_FORMATS.get(source_kind, ["nifti"] if source_kind in VOLUME_KINDS else ["png"]))
            continue
        if name not in _FORMAT_KINDS:
            raise ValueError(f"unknown output format {name!r}; expected some of {FORMATS}")
        if source_kind not in _FORMAT_KINDS[name]:
            fits = ", ".join(f for f, kinds in _FORMAT_KINDS.items() if source_kind in kinds)
            raise ValueError(f"output format {name!r} does not fit a {source_kind} input (it takes: auto, {fits})")
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def frames_with_target(mask: torch.Tensor, axcodes: str | None = "RAS", slice_axis: int = -1) -> list[int]:
    """Indices of the frames of a mask in its source geometry that hold any foreground.

    The mask is cut into frames as the bundles cut their inputs (``ToSequence`` with ``axcodes`` and
    ``slice_axis``, no resizing), so the indices are the input's frame / slice numbers.
    """
    from monai_ext.transforms import ToSequence  # transforms import nothing of io; deferred to keep io light

    frames = torch.as_tensor(ToSequence(axcodes=axcodes, slice_axis=slice_axis)(mask))
    return [int(i) for i in torch.nonzero(frames.flatten(1).any(1)).flatten()]


def write_mask_video(mask: Any, source_meta: Mapping[str, Any], output_dir: str | os.PathLike, stem: str | None = None) -> Path:
    """Write the mask of a video ``(1, H, W, T)`` as ``<output_dir>/<stem>_mask.mp4`` at the video's fps and size."""
    from .video import MaskVideoWriter  # PyAV is the video extra: imported when a video is written

    array = convert_to_numpy(mask) != 0
    path = Path(output_dir) / f"{stem or source_stem(source_meta)}_mask.mp4"
    with MaskVideoWriter(path, fps=source_meta.get("fps"), size=tuple(array.shape[-3:-1])) as writer:
        writer.write_frames(array)
    return path


def write_overlays(
    source: Any, mask: Any, source_meta: Mapping[str, Any], output_dir: str | os.PathLike, title: str, modality: str | None = None
) -> list[Path]:
    """Pictures to look at: an overlay video for a video, overlay PNGs for other frame sources, a mosaic
    of slices (``<stem>_mosaic.png``, with ``title``) for a volume; the mask filled and outlined on the input.

    Endoscopy is shown in green (red does not stand out on the mucosa), other modalities in red; a CT
    mosaic in the abdominal window the bundles read CT with.
    """
    from .overlay import iter_overlay_frames, write_mosaic, write_overlay_frames

    kind = str(source_meta.get("source_kind", "volume"))
    colour = (0, 255, 0) if modality == "endoscopy" else (255, 0, 0)
    stem = source_stem(source_meta)
    if kind in VOLUME_KINDS:
        window = "abdomen" if modality == "ct" else None
        return [write_mosaic(source, mask, Path(output_dir) / f"{stem}_mosaic.png", title=title, window=window)]
    if kind == "video":
        from .video import OverlayVideoWriter

        path = Path(output_dir) / f"{stem}_overlay.mp4"
        with OverlayVideoWriter(path, fps=source_meta.get("fps"), size=tuple(source.shape[1:3])) as writer:
            for frame in iter_overlay_frames(source, mask, colour=colour):
                writer.write(frame)
        return [path]
    return write_overlay_frames(source, mask, output_dir, source_meta=source_meta, colour=colour)


class SavePredictiond(MapTransform):
    """Write a referring prediction: the mask in its input's geometry and kind, and a JSON summary beside it.

    The mask (``data[key]``, ``(1, ...)`` in the source geometry with the source's metadata, e.g. after
    ``Invertd``) is written in ``formats`` (:func:`output_formats`: by default the input's own kind,
    :func:`write_mask`, and for a DICOM series also a DICOM SEG, :func:`monai_ext.io.write_dicom_seg`,
    naming the target, the typed prompt and the algorithm); ``<stem>_prediction.json`` records the
    summary fields present in ``data`` (``summary_keys``), the number of frames segmented, the frames
    with the target and the written files. One line per input is printed (target, frames with it, folder).

    Args:
        keys: key of the mask.
        output_dir: the output folder.
        frames_key: key of the network's frames ``(T, ...)`` (their count is ``n_frames``).
        input_key: key of the input as the user gave it (recorded as ``input``), read from the
            mask's ``filename_or_obj`` when absent.
        folder_key: key of a sub-folder name per input (e.g. ``"id"`` in an evaluation); None writes into
            ``output_dir``.
        summary_keys: ``{summary field: data key}`` of the ``data`` fields recorded as they are.
        formats: output formats (:data:`FORMATS`), e.g. ``["auto"]`` or ``["dicom-seg"]``.
        algorithm_name: the model that made the mask (the bundle's name), recorded in a DICOM SEG.
        algorithm_version: its version.
        prompt_key: key of the prompt as typed, recorded in a DICOM SEG and used as the overlays' title.
        overlay: also write pictures to look at (:func:`write_overlays`), from the loaded input at ``source_key``.
        source_key: key of the loaded input (``CopyItemsd`` after loading), for ``overlay``.
        allow_missing_keys: don't raise when a key is missing.

    Raises:
        ValueError: an unknown format (at construction), or one that does not fit the input (when called).
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        frames_key: str = "image",
        input_key: str = "input",
        folder_key: str | None = None,
        summary_keys: Mapping[str, str] | None = None,
        formats: Sequence[str] = ("auto",),
        algorithm_name: str = "monai_ext",
        algorithm_version: str = "",
        prompt_key: str = "prompt",
        overlay: bool = False,
        source_key: str = "source",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.frames_key, self.input_key, self.folder_key = frames_key, input_key, folder_key
        self.summary_keys = dict(summary_keys) if summary_keys is not None else dict(SUMMARY_KEYS)
        self.formats = [formats] if isinstance(formats, str) else list(formats)
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown output format(s) {unknown}; expected some of {FORMATS}")
        self.algorithm_name, self.algorithm_version = str(algorithm_name), str(algorithm_version)
        self.prompt_key = prompt_key
        self.overlay, self.source_key = bool(overlay), source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            meta = mask.meta if isinstance(mask, MetaTensor) else {}
            out = self.output_dir / str(d[self.folder_key]) if self.folder_key is not None else self.output_dir
            formats = output_formats(self.formats, str(meta.get("source_kind", "volume")))
            labels = torch.as_tensor(mask).to(torch.uint8)
            written = write_mask(labels, meta, out) if {"nifti", "png"} & set(formats) else []
            if "dicom-seg" in formats:
                from .dicom_seg import write_dicom_seg  # highdicom is the dicom extra: imported when a SEG is asked for

                written.append(
                    write_dicom_seg(
                        labels, meta, out, target=str(d.get("target", key)), prompt=str(d.get(self.prompt_key, "")),
                        algorithm_name=self.algorithm_name, algorithm_version=self.algorithm_version,
                    )
                )
            if "video" in formats:
                written.append(write_mask_video(labels, meta, out))
            if self.overlay:
                if self.source_key not in d:
                    raise ValueError(f"overlay needs the loaded input at {self.source_key!r} (CopyItemsd after loading)")
                title = str(d.get(self.prompt_key) or d.get("target", ""))
                written.extend(write_overlays(d[self.source_key], labels, meta, out, title, d.get("modality")))
            summary = {name: d[k] for name, k in self.summary_keys.items() if k in d}
            summary["n_frames"] = int(d[self.frames_key].shape[0])
            summary["frames_with_target"] = frames_with_target(mask)
            summary["input"] = str(d.get(self.input_key, meta.get("filename_or_obj")))
            summary["outputs"] = [str(p) for p in written]
            summary_path = out / f"{source_stem(meta)}_prediction.json"
            atomic_write_json(summary_path, summary, indent=1)
            d[f"{key}_files"] = [str(p) for p in written] + [str(summary_path)]
            target = summary.get("target", key)
            logger.info("%s: %d/%d frames with %s -> %s", summary["input"], len(summary["frames_with_target"]), summary["n_frames"], target, out)
            print(f"{target}: {len(summary['frames_with_target'])}/{summary['n_frames']} frames; masks in {out}")
        return d
