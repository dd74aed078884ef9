"""
Loaded source <-> sequence of 2D frames (docs/DESIGN.md, section 2).

:py:class:`ToSequence` turns a channel-first source ``(C, X, Y, Z)`` (volume) or ``(C, H, W, T)``
(frame-like source) into a frame-first sequence ``(T, C, S1, S2)``:

1. optional re-orientation to ``axcodes`` (volumes only, MONAI's :py:class:`monai.transforms.Orientation`),
2. the slice axis is moved to the front,
3. optional per-frame resize to ``spatial_size`` (MONAI's :py:class:`monai.transforms.Resize`).

Everything needed to go back is pushed as one entry on the MetaTensor's ``applied_operations``,
so ``ToSequence.inverse`` / ``ToSequenced.inverse`` / MONAI's ``Invertd`` map a predicted mask
sequence ``(T, 1, S1, S2)`` back to ``(1, X, Y, Z)`` with the source affine.
:py:class:`FromSequence` does the same from the source metadata alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import nibabel as nib
import numpy as np
import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.data.utils import to_affine_nd
from monai.transforms import Orientation, Resize
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.transform import MapTransform, Transform
from monai.transforms.utils import scale_affine
from monai.utils import SpaceKeys, TraceKeys, TransformBackends, convert_to_numpy, ensure_tuple_rep, fall_back_tuple

__all__ = [
    "FRAME_KINDS",
    "SEQUENCE_META_KEY",
    "ToSequence",
    "ToSequenced",
    "FromSequence",
    "FromSequenced",
    "from_sequence",
    "sequence_record",
    "ToSequenceD",
    "ToSequenceDict",
    "FromSequenceD",
    "FromSequenceDict",
]

#: source kinds whose spatial axes are (row, column, time); these are never re-oriented.
FRAME_KINDS = ("frames", "video", "image", "dicom_cine")
#: meta key set to ``True`` on a ``(T, C, S1, S2)`` sequence made by :py:class:`ToSequence`.
SEQUENCE_META_KEY = "is_sequence"

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))
_NEAREST_MODES = ("nearest", "nearest-exact")


def _affine_np(affine: Any) -> np.ndarray:
    """4x4 float64 numpy copy of a (3D) affine; identity when ``affine`` is None."""
    if affine is None:
        return np.eye(4, dtype=np.float64)
    aff = np.asarray(convert_to_numpy(affine), dtype=np.float64)
    return np.asarray(to_affine_nd(3, aff), dtype=np.float64)


def _orientation_labels(meta: Mapping, labels: Sequence[tuple[str, str]] | None) -> Sequence[tuple[str, str]]:
    """The axis labels :py:class:`monai.transforms.Orientation` uses for this metadata."""
    if labels is not None:
        return labels
    space = meta.get("space") if meta is not None else None
    if space is not None and SpaceKeys(space) == SpaceKeys.LPS:
        return _LPS_LABELS
    return _RAS_LABELS


def _normalise_axis(axis: int, ndim: int = 3) -> int:
    if not isinstance(axis, (int, np.integer)) or not -ndim <= int(axis) < ndim:
        raise ValueError(f"slice_axis must be a spatial axis index in [{-ndim}, {ndim - 1}], got {axis!r}.")
    return int(axis) % ndim


def sequence_record(
    affine: Any,
    spatial_shape: Sequence[int],
    source_kind: str = "volume",
    axcodes: str | None = "RAS",
    slice_axis: int = -1,
    spatial_size: Sequence[int] | int | None = None,
    mode: str = "bilinear",
    align_corners: bool | None = None,
    labels: Sequence[tuple[str, str]] | None = None,
    space: str | None = None,
) -> dict[str, Any]:
    """
    The geometry of a :py:class:`ToSequence` call, computed from the source geometry alone.

    This is what ``ToSequence`` stores (as ``extra_info``) in ``applied_operations`` and what
    :py:class:`FromSequence` recomputes from the source metadata. Every value is collate-friendly
    (no ``None``).

    Args:
        affine: the source affine (4x4; identity for frame-like kinds).
        spatial_shape: the source spatial shape ``(X, Y, Z)`` / ``(H, W, T)``.
        source_kind: ``meta["source_kind"]`` of the source; frame-like kinds are never re-oriented.
        axcodes: target orientation of volumes, e.g. ``"RAS"``, ``"LPS"``; None keeps the source's.
        slice_axis: spatial axis (of the oriented source) that becomes the frame axis.
        spatial_size: per-frame output size ``(S1, S2)``; None keeps the frame size, a non-positive
            component keeps that dimension.
        mode: interpolation mode of the per-frame resize.
        align_corners: ``align_corners`` of the per-frame resize.
        labels: orientation labels (see :py:class:`monai.transforms.Orientation`); None derives them
            from ``space``.
        space: ``meta["space"]`` of the source (``"RAS"`` or ``"LPS"``), only used when ``labels`` is None.

    Returns:
        dict with ``original_affine`` (4x4), ``source_kind``, ``spatial_shape``, ``ornt`` (nibabel
        orientation of the re-orientation, (3, 2)), ``oriented_shape``, ``slice_axis`` (normalised),
        ``frame_shape`` (before resize), ``out_frame_shape`` (after resize), ``resized``, ``mode``,
        ``align_corners`` and ``sequence_affine`` (affine of the sequence, indexing ``(S1, S2, T)``).
    """
    shape = tuple(int(s) for s in convert_to_numpy(spatial_shape, wrap_sequence=True).tolist())
    if len(shape) != 3:
        raise ValueError(f"the source must have 3 spatial axes (X, Y, Z) / (H, W, T), got spatial shape {shape}.")
    orig_affine = _affine_np(affine)
    kind = str(source_kind) if source_kind is not None else "volume"
    if axcodes is not None and kind not in FRAME_KINDS:
        if len(axcodes) != 3:
            raise ValueError(f"axcodes must name 3 axes, e.g. 'RAS', got {axcodes!r}.")
        labels_ = _orientation_labels({"space": space} if space is not None else {}, labels)
        # the same computation as monai.transforms.Orientation
        src = nib.io_orientation(orig_affine)
        dst = nib.orientations.axcodes2ornt(axcodes, labels=labels_)
        ornt = nib.orientations.ornt_transform(src, dst)
    else:
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)
    oriented_shape = [0, 0, 0]
    for i, (j, _) in enumerate(ornt):
        oriented_shape[int(j)] = shape[i]
    oriented_affine = orig_affine @ nib.orientations.inv_ornt_aff(ornt, shape)

    s = _normalise_axis(slice_axis)
    a, b = (i for i in range(3) if i != s)
    frame_shape = (oriented_shape[a], oriented_shape[b])
    seq_affine = oriented_affine[:, [a, b, s, 3]]
    if spatial_size is None:
        out_frame = frame_shape
    else:
        size = ensure_tuple_rep(spatial_size, 2)
        out_frame = tuple(int(v) for v in fall_back_tuple(size, frame_shape))
    resized = tuple(out_frame) != tuple(frame_shape)
    if resized:
        scale = scale_affine(frame_shape, out_frame, align_corners=bool(align_corners))
        scale_4 = np.eye(4, dtype=np.float64)
        scale_4[:2, :2] = scale[:2, :2]
        scale_4[:2, 3] = scale[:2, 2]
        seq_affine = seq_affine @ scale_4
    return {
        "original_affine": orig_affine,
        "source_kind": kind,
        "spatial_shape": list(shape),
        "ornt": np.asarray(ornt, dtype=np.float64),
        "oriented_shape": oriented_shape,
        "slice_axis": s,
        "frame_shape": list(frame_shape),
        "out_frame_shape": list(out_frame),
        "resized": bool(resized),
        "mode": str(mode),
        "align_corners": TraceKeys.NONE if align_corners is None else bool(align_corners),
        "sequence_affine": seq_affine,
    }


def _resize_frames(
    frames: torch.Tensor, size: Sequence[int], mode: str, align_corners: bool | None, anti_aliasing: bool = False
) -> torch.Tensor:
    """Resize every 2D frame of a plain ``(T, C, A, B)`` tensor with MONAI's ``Resize``."""
    t, c = frames.shape[:2]
    size = tuple(int(v) for v in size)
    if tuple(frames.shape[2:]) == size:
        return frames
    in_dtype = frames.dtype
    resizer = Resize(spatial_size=size, mode=mode, align_corners=align_corners, anti_aliasing=anti_aliasing)
    flat = frames.reshape(t * c, *frames.shape[2:])
    if not torch.is_floating_point(flat):
        flat = flat.to(torch.float32)
    with resizer.trace_transform(False):
        out = resizer(flat)
    out = out.as_tensor() if isinstance(out, MetaTensor) else torch.as_tensor(out)
    out = out.reshape(t, c, *size)
    if mode in _NEAREST_MODES and in_dtype != out.dtype:
        out = out.to(in_dtype)  # labels keep their dtype
    return out


def _invert_record(
    data: torch.Tensor, record: Mapping[str, Any], mode: str | None = None, align_corners: bool | None = None
) -> torch.Tensor:
    """
    Map a ``(T, C', S1, S2)`` sequence back to ``(C', X, Y, Z)`` using a :py:func:`sequence_record`.

    Returns a plain tensor (the caller sets the metadata).
    """
    if data.ndim != 4:
        raise ValueError(
            f"a sequence must have shape (T, C, S1, S2) (4 dims), got shape {tuple(data.shape)}; "
            "add the channel dim (e.g. pred[:, None]) for a (T, S1, S2) mask."
        )
    x = data.as_tensor() if isinstance(data, MetaTensor) else torch.as_tensor(data)
    s = int(record["slice_axis"])
    oriented_shape = [int(v) for v in record["oriented_shape"]]
    if x.shape[0] != oriented_shape[s]:
        raise ValueError(
            f"the sequence has {x.shape[0]} frames but its source has {oriented_shape[s]} along the slice axis; "
            "invert frame-dropping/clip transforms first."
        )
    frame_shape = [int(v) for v in record["frame_shape"]]
    if list(x.shape[2:]) != frame_shape:
        if mode is None:
            mode = str(record["mode"])
            if not (torch.is_floating_point(x) or torch.is_complex(x)):
                mode = "nearest"  # an integer/bool mask is never interpolated
        if align_corners is None:
            ac = record.get("align_corners", TraceKeys.NONE)
            align_corners = None if ac == TraceKeys.NONE or mode in _NEAREST_MODES or mode == "area" else bool(ac)
        x = _resize_frames(x, frame_shape, mode, align_corners)
    a, b = (i for i in range(3) if i != s)
    pos = {s: 0, a: 2, b: 3}
    x = x.permute(1, pos[0], pos[1], pos[2])  # (C', D0, D1, D2) in the oriented frame
    ornt = np.asarray(convert_to_numpy(record["ornt"]), dtype=np.float64)
    # forward (MONAI orientation): flip input axes with ornt[:, 1] == -1, then permute so that input axis i
    # lands at output axis ornt[i, 0]; undo it in reverse order.
    perm = [0] + [int(j) + 1 for j in ornt[:, 0]]
    if perm != list(range(4)):
        x = x.permute(perm)
    flips = [i + 1 for i, f in enumerate(ornt[:, 1]) if f == -1]
    if flips:
        x = torch.flip(x, dims=flips)
    expected = [int(v) for v in record["spatial_shape"]]
    if list(x.shape[1:]) != expected:  # pragma: no cover - internal consistency
        raise RuntimeError(f"inverse produced spatial shape {list(x.shape[1:])}, expected {expected}.")
    return x.contiguous()


class ToSequence(InvertibleTransform):
    """
    Turn a loaded source ``(C, X, Y, Z)`` / ``(C, H, W, T)`` into a frame-first sequence ``(T, C, S1, S2)``.

    Steps: re-orientation of volumes to ``axcodes`` (MONAI ``Orientation``; frame-like kinds,
    ``meta["source_kind"]`` in :py:data:`FRAME_KINDS`, are never re-oriented), the slice axis moved to the
    front, an optional per-frame resize (MONAI ``Resize``).

    The output is a MetaTensor whose ``affine`` indexes ``(S1, S2, T)`` (frame row, frame column, frame)
    in world coordinates, with ``meta["is_sequence"] = True``; the other metadata of the source are kept.
    One entry is pushed on ``applied_operations`` (``orig_size`` = source spatial shape, ``extra_info`` =
    :py:func:`sequence_record`), so :py:meth:`inverse` and MONAI's ``Invertd`` can map any sequence of the
    same frames (e.g. a predicted mask ``(T, 1, S1, S2)``, whatever its channel count) back to the source
    geometry with the source affine: voxel-exact without resize.

    Example::

        to_seq = ToSequence(axcodes="RAS", spatial_size=(256, 256))
        seq = to_seq(load_source("ct.nii.gz"))               # (Z, 1, 256, 256)
        pred = MetaTensor((model(seq) > 0).float())          # (Z, 1, 256, 256)
        pred.copy_meta_from(seq)                             # carries the applied_operations
        mask = to_seq.inverse(pred)                          # (1, X, Y, Z), source affine

    ``inverse`` must be called on the instance that made the sequence (MONAI checks the transform id).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        axcodes: str | None = "RAS",
        slice_axis: int = -1,
        spatial_size: Sequence[int] | int | None = None,
        mode: str = "bilinear",
        align_corners: bool | None = None,
        anti_aliasing: bool = False,
        labels: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """
        Args:
            axcodes: orientation of volumes, e.g. ``"RAS"`` (default), ``"LPS"``; None keeps the source's.
            slice_axis: spatial axis of the (oriented) source that becomes the frame axis; default ``-1``,
                the last one: axial for RAS volumes, time for frame sources.
            spatial_size: per-frame output size ``(S1, S2)`` (or one int for both); None: no resize;
                a non-positive component keeps that dimension.
            mode: per-frame interpolation: ``"bilinear"`` or ``"area"`` for images, ``"nearest"`` for labels
                (any mode of ``torch.nn.functional.interpolate``).
            align_corners: as in ``torch.nn.functional.interpolate`` (bilinear only).
            anti_aliasing: Gaussian smoothing before down-sampling (see MONAI ``Resize``).
            labels: orientation labels, see MONAI ``Orientation``; None: from ``meta["space"]``.
        """
        if axcodes is not None and len(axcodes) != 3:
            raise ValueError(f"axcodes must name 3 axes, e.g. 'RAS', got {axcodes!r}.")
        self.axcodes = axcodes
        self.slice_axis = _normalise_axis(slice_axis)
        self.spatial_size = spatial_size
        self.mode = mode
        self.align_corners = align_corners
        self.anti_aliasing = anti_aliasing
        self.labels = labels

    def __call__(self, img: torch.Tensor, mode: str | None = None, align_corners: bool | None = None) -> MetaTensor:
        """
        Args:
            img: channel-first source ``(C, X, Y, Z)`` or ``(C, H, W, T)``; a MetaTensor (a plain tensor is
                treated as a volume with identity affine).
            mode: overrides ``self.mode`` for this call.
            align_corners: overrides ``self.align_corners`` for this call.

        Returns:
            MetaTensor ``(T, C, S1, S2)``.

        Raises:
            ValueError: the input does not have 4 dims (channel + 3 spatial).
        """
        if img.ndim != 4:
            raise ValueError(
                "ToSequence expects a channel-first source with 3 spatial axes, (C, X, Y, Z) or (C, H, W, T), "
                f"got shape {tuple(img.shape)} ({img.ndim} dims); use EnsureChannelFirst / add the missing axis."
            )
        mode = self.mode if mode is None else mode
        align_corners = self.align_corners if align_corners is None else align_corners
        src = img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))
        if src.pending_operations:
            raise ValueError("ToSequence does not support lazy (pending) operations; apply them first.")
        meta = src.meta
        record = sequence_record(
            affine=src.affine,
            spatial_shape=src.shape[1:],
            source_kind=meta.get("source_kind", "volume"),
            axcodes=self.axcodes,
            slice_axis=self.slice_axis,
            spatial_size=self.spatial_size,
            mode=mode,
            align_corners=align_corners,
            labels=self.labels,
            space=meta.get("space"),
        )
        x: torch.Tensor = src
        if record["source_kind"] not in FRAME_KINDS and self.axcodes is not None:
            orienter = Orientation(axcodes=self.axcodes, labels=_orientation_labels(meta, self.labels))
            with orienter.trace_transform(False):
                x = orienter(src)
            if list(x.shape[1:]) != record["oriented_shape"]:  # pragma: no cover - internal consistency
                raise RuntimeError("Orientation disagrees with the recorded orientation.")
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        s = record["slice_axis"]
        a, b = (i for i in range(3) if i != s)
        x = x.permute(s + 1, 0, a + 1, b + 1)
        if record["resized"]:
            x = _resize_frames(x, record["out_frame_shape"], mode, align_corners, self.anti_aliasing)
        out = MetaTensor(x.contiguous())
        out.copy_meta_from(src, copy_attr=True)
        out.meta = deepcopy(dict(src.meta))
        out.applied_operations = deepcopy(src.applied_operations)
        out.affine = torch.as_tensor(record["sequence_affine"], dtype=torch.float64)
        out.meta[SEQUENCE_META_KEY] = True
        extra = {k: v for k, v in record.items() if k != "sequence_affine"}
        self.push_transform(out, orig_size=tuple(record["spatial_shape"]), extra_info=extra)
        return out if get_track_meta() else out.as_tensor()  # type: ignore[return-value]

    def inverse(self, data: torch.Tensor) -> MetaTensor:
        """
        Map a sequence ``(T, C', S1, S2)`` made from this transform's output back to ``(C', X, Y, Z)``.

        The channel count may differ from the source (e.g. a one-channel mask of an RGB video). A resized
        sequence is resized back with the recorded mode, but integer/bool data always with ``nearest``
        (MONAI's ``Invertd(nearest_interp=True)`` turns the recorded mode into ``nearest`` as well).

        Args:
            data: MetaTensor carrying this transform's entry in ``applied_operations``.

        Returns:
            MetaTensor in the source geometry with the source affine.
        """
        transform = self.pop_transform(data)
        return self.inverse_transform(data, transform)

    def inverse_transform(self, data: torch.Tensor, transform: Mapping[str, Any]) -> MetaTensor:
        """
        Invert using an already popped ``applied_operations`` entry.

        Args:
            data: sequence ``(T, C', S1, S2)``.
            transform: the entry pushed by :py:meth:`__call__`.

        Returns:
            MetaTensor ``(C', X, Y, Z)`` with the source affine.
        """
        record = transform[TraceKeys.EXTRA_INFO]
        x = _invert_record(data, record)
        out = MetaTensor(x)
        if isinstance(data, MetaTensor):
            out.copy_meta_from(data, copy_attr=True)
            out.meta = deepcopy(dict(data.meta))
        out.meta.pop(SEQUENCE_META_KEY, None)
        out.affine = torch.as_tensor(_affine_np(record["original_affine"]), dtype=torch.float64)
        return out


class FromSequence(Transform):
    """
    Map a sequence ``(T, C, S1, S2)`` back to its source geometry from the source metadata alone.

    For users who hold the source (or its metadata) but not the sequence's ``applied_operations``,
    e.g. after a model returned a plain tensor. The arguments must be those given to :py:class:`ToSequence`.
    """

    def __init__(
        self,
        axcodes: str | None = "RAS",
        slice_axis: int = -1,
        mode: str = "nearest",
        align_corners: bool | None = None,
        labels: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """
        Args:
            axcodes: the ``axcodes`` given to ``ToSequence``.
            slice_axis: the ``slice_axis`` given to ``ToSequence``.
            mode: interpolation used when the frames must be resized back (``"nearest"`` for masks).
            align_corners: as in ``torch.nn.functional.interpolate``.
            labels: the ``labels`` given to ``ToSequence``.
        """
        self.axcodes = axcodes
        self.slice_axis = _normalise_axis(slice_axis)
        self.mode = mode
        self.align_corners = align_corners
        self.labels = labels

    def __call__(self, seq: torch.Tensor, source: MetaTensor | Mapping[str, Any]) -> MetaTensor:
        """
        Args:
            seq: sequence ``(T, C, S1, S2)``; any channel count, any frame size.
            source: the loaded source MetaTensor, or its metadata dict (needs ``affine`` and
                ``spatial_shape``; ``source_kind`` and ``space`` are used when present).

        Returns:
            MetaTensor ``(C, X, Y, Z)`` / ``(C, H, W, T)`` with the source metadata and affine.
        """
        if isinstance(source, MetaTensor):
            meta = dict(source.meta)
            affine, shape = source.affine, source.shape[1:]
        elif isinstance(source, Mapping):
            meta = dict(source)
            if "spatial_shape" not in meta:
                raise ValueError("source metadata needs 'spatial_shape' (and 'affine') to invert a sequence.")
            affine, shape = meta.get("affine"), meta["spatial_shape"]
        else:
            raise TypeError(f"source must be a MetaTensor or a metadata mapping, got {type(source).__name__}.")
        record = sequence_record(
            affine=affine,
            spatial_shape=shape,
            source_kind=meta.get("source_kind", "volume"),
            axcodes=self.axcodes,
            slice_axis=self.slice_axis,
            mode=self.mode,
            align_corners=self.align_corners,
            labels=self.labels,
            space=meta.get("space"),
        )
        x = _invert_record(seq, record, mode=self.mode, align_corners=self.align_corners)
        out = MetaTensor(x)
        out.meta = deepcopy(meta)
        out.meta.pop(SEQUENCE_META_KEY, None)
        out.affine = torch.as_tensor(record["original_affine"], dtype=torch.float64)
        return out


def from_sequence(
    seq: torch.Tensor,
    source: MetaTensor | Mapping[str, Any],
    axcodes: str | None = "RAS",
    slice_axis: int = -1,
    mode: str = "nearest",
) -> MetaTensor:
    """
    Functional form of :py:class:`FromSequence`.

    Args:
        seq: sequence ``(T, C, S1, S2)``.
        source: the loaded source MetaTensor or its metadata (``affine``, ``spatial_shape``, ``source_kind``).
        axcodes: the ``axcodes`` given to ``ToSequence``.
        slice_axis: the ``slice_axis`` given to ``ToSequence``.
        mode: interpolation if the frames were resized (``"nearest"`` for masks).

    Returns:
        MetaTensor in the source geometry with the source affine.
    """
    return FromSequence(axcodes=axcodes, slice_axis=slice_axis, mode=mode)(seq, source)


class ToSequenced(MapTransform, InvertibleTransform):
    """
    Dictionary-based :py:class:`ToSequence`; ``mode`` may be given per key (e.g. ``("bilinear", "nearest")``
    for ``keys=("image", "label")``).

    Its inverse (directly, or with ``Invertd(keys="pred", transform=..., orig_keys="image")``) maps a
    predicted sequence back to the source geometry.
    """

    backend = ToSequence.backend

    def __init__(
        self,
        keys: KeysCollection,
        axcodes: str | None = "RAS",
        slice_axis: int = -1,
        spatial_size: Sequence[int] | int | None = None,
        mode: str | Sequence[str] = "bilinear",
        align_corners: bool | None | Sequence[bool | None] = None,
        anti_aliasing: bool = False,
        labels: Sequence[tuple[str, str]] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        """
        Args:
            keys: keys of the items to transform.
            axcodes: see :py:class:`ToSequence`.
            slice_axis: see :py:class:`ToSequence`.
            spatial_size: see :py:class:`ToSequence`.
            mode: per-frame interpolation, one value or one per key; use ``"nearest"`` for labels.
            align_corners: one value or one per key.
            anti_aliasing: see :py:class:`ToSequence`.
            labels: see :py:class:`ToSequence`.
            allow_missing_keys: don't raise an exception if a key is missing.
        """
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.to_sequence = ToSequence(
            axcodes=axcodes,
            slice_axis=slice_axis,
            spatial_size=spatial_size,
            anti_aliasing=anti_aliasing,
            labels=labels,
        )
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.align_corners = ensure_tuple_rep(align_corners, len(self.keys))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Args:
            data: dict holding channel-first sources at ``keys``.

        Returns:
            dict with ``(T, C, S1, S2)`` sequences at ``keys``.
        """
        d = dict(data)
        for key, mode, align_corners in self.key_iterator(d, self.mode, self.align_corners):
            d[key] = self.to_sequence(d[key], mode=mode, align_corners=align_corners)
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """
        Args:
            data: dict holding sequences (with this transform's entry in ``applied_operations``) at ``keys``.

        Returns:
            dict with the sequences mapped back to the source geometry.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.to_sequence.inverse(d[key])
        return d


class FromSequenced(MapTransform):
    """
    Dictionary-based :py:class:`FromSequence`: ``d[key]`` (a sequence) is mapped back using the source
    metadata found at ``d[source_key]`` (a MetaTensor or a metadata dict).
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "image",
        axcodes: str | None = "RAS",
        slice_axis: int = -1,
        mode: str | Sequence[str] = "nearest",
        allow_missing_keys: bool = False,
    ) -> None:
        """
        Args:
            keys: keys of the sequences to map back.
            source_key: key of the source MetaTensor or its metadata dict.
            axcodes: the ``axcodes`` given to ``ToSequence``.
            slice_axis: the ``slice_axis`` given to ``ToSequence``.
            mode: interpolation if the frames were resized, one value or one per key.
            allow_missing_keys: don't raise an exception if a key is missing.
        """
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.axcodes = axcodes
        self.slice_axis = slice_axis
        self.mode = ensure_tuple_rep(mode, len(self.keys))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """
        Args:
            data: dict with sequences at ``keys`` and the source (or its metadata) at ``source_key``.

        Returns:
            dict with the sequences in the source geometry.
        """
        d = dict(data)
        if self.source_key not in d:
            raise KeyError(f"FromSequenced needs the source (or its metadata) at key {self.source_key!r}.")
        source = d[self.source_key]
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = FromSequence(axcodes=self.axcodes, slice_axis=self.slice_axis, mode=mode)(d[key], source)
        return d


ToSequenceD = ToSequenceDict = ToSequenced
FromSequenceD = FromSequenceDict = FromSequenced
