"""Modality handling shared by the inference, evaluation and training engines.

A 2D or sequence model sees every input the same way: a sequence of ``T`` frames
``(T, 3, S, S)`` in [0, 1], made by :class:`monai_ext.transforms.ToSequence` and the
intensity preset of the input's modality.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from monai.transforms import Compose

from monai_ext.transforms import IntensityPreset, ToSequence

__all__ = ["MODALITIES", "intensity_preset_for", "detect_modality", "frame_preprocessing"]

MODALITIES = ("ct", "mr", "ultrasound", "endoscopy")

# modality -> IntensityPreset arguments; CT uses the abdominal window (level 40, width 400)
# since the shipped targets are mostly abdominal organs.
_PRESETS: dict[str, dict[str, Any]] = {
    "ct": {"preset": "ct", "window": "abdomen"},
    "mr": {"preset": "mr"},
    "ultrasound": {"preset": "ultrasound"},
    "endoscopy": {"preset": "rgb"},
}

_DICOM_MODALITY = {"CT": "ct", "MR": "mr", "US": "ultrasound", "ES": "endoscopy", "XC": "endoscopy"}


def intensity_preset_for(modality: str, num_channels: int = 3) -> IntensityPreset:
    """Return the :class:`IntensityPreset` used for ``modality``.

    Raises:
        ValueError: unknown modality.
    """
    if modality not in _PRESETS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return IntensityPreset(num_channels=num_channels, **_PRESETS[modality])


def detect_modality(image: torch.Tensor, meta: Mapping[str, Any] | None = None, hint: Sequence[str] = ()) -> str:
    """Guess the modality of a loaded source.

    Order: a DICOM ``Modality`` tag in ``meta``; then the data: values below -100 (Hounsfield
    units) are CT; other volumes are MR, or CT when ``hint`` (e.g. the modalities a
    prompt-library entry is described for) names CT and not MR (CT stored without its
    rescale offset); colour frames are endoscopy and grey frames ultrasound (MR and CT
    sequences come as volumes or tagged DICOM). The prompt never changes how the data are
    read otherwise, so "liver" on a colonoscopy video is read as endoscopy, not windowed as CT.

    Args:
        image: the loaded source, channel first.
        meta: its metadata (``source_kind``, optional ``Modality``).
        hint: candidate modalities, e.g. ``PromptEntry.modalities``.

    Returns:
        One of :data:`MODALITIES`.
    """
    meta = dict(meta or getattr(image, "meta", {}) or {})
    tag = str(meta.get("Modality", meta.get("modality", ""))).upper()
    if tag in _DICOM_MODALITY:
        return _DICOM_MODALITY[tag]
    if float(image.min()) < -100:  # Hounsfield units: only CT stores values this low
        return "ct"
    if meta.get("source_kind", "volume") in ("volume", "dicom_series"):
        return "ct" if "ct" in hint and "mr" not in hint else "mr"
    colour = image.shape[0] == 3 and not (torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
    return "endoscopy" if colour else "ultrasound"


def frame_preprocessing(
    modality: str, spatial_size: Sequence[int] | None, axcodes: str | None = "RAS", slice_axis: int = -1
) -> Compose:
    """Compose turning a loaded source ``(C, ...)`` into model frames ``(T, 3, S1, S2)`` in [0, 1].

    The geometric part (:class:`ToSequence`) is invertible: apply ``compose.inverse`` (or
    ``ToSequence.inverse``) to a predicted mask sequence carrying the frames' applied
    operations to get it back in the source geometry.
    """
    # intensity first, on the channel-first source, so percentiles and channel repetition
    # see the whole volume/video; the geometric part comes last and is the one inverted.
    return Compose(
        [
            intensity_preset_for(modality),
            ToSequence(axcodes=axcodes, slice_axis=slice_axis, spatial_size=spatial_size),
        ]
    )
