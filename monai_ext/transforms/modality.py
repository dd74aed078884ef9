"""The input's modality: how it is detected and which intensity preset turns it into model frames.

A 2D or sequence model sees every input the same way: a sequence of ``T`` frames
``(T, 3, S, S)`` in [0, 1], made by the intensity preset of the input's modality and
:class:`monai_ext.transforms.ToSequence`. :class:`DetectModalityd` and
:class:`ModalityIntensityd` are the dictionary transforms a bundle's ``preprocessing`` lists.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform

from monai_ext.prompts import MODALITIES, PromptLibrary, default_library
from monai_ext.transforms.intensity import IntensityPreset
from monai_ext.transforms.sequence import ToSequence

__all__ = [
    "MODALITIES",
    "DetectModalityd",
    "ModalityIntensityd",
    "detect_modality",
    "frame_preprocessing",
    "intensity_preset_for",
]

logger = logging.getLogger(__name__)

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


class DetectModalityd(MapTransform):
    """Fill ``data[modality_key]`` from the loaded image when it is None (see :func:`detect_modality`).

    The prompt's target (``data[target_key]``, a prompt-library name) is the hint; a target the
    library does not describe for the modality is logged as a warning, since the shipped bundles
    met such pairings in training only as wrong prompts (empty masks). ``data[described_key]``
    records whether it is described.

    Args:
        keys: the loaded image's key.
        modality_key: key of the modality (None: detect; a given one is checked).
        target_key: key of the target name (None: no hint, no check).
        described_key: where to record whether the library describes the target for the modality.
        library: the prompt library (default: the shipped one).
        allow_missing_keys: don't raise when a key is missing.

    Raises:
        ValueError: a given modality is unknown.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        modality_key: str = "modality",
        target_key: str | None = "target",
        described_key: str = "target_described_for_modality",
        library: PromptLibrary | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modality_key, self.target_key, self.described_key = modality_key, target_key, described_key
        self.library = library or default_library()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            entry = self.library.lookup(d[self.target_key]) if self.target_key is not None else None
            modality = d.get(self.modality_key)
            if modality is None:
                hint = entry.modalities if entry is not None else ()
                modality = detect_modality(d[key], getattr(d[key], "meta", None), hint=hint)
            elif modality not in MODALITIES:
                raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
            d[self.modality_key] = modality
            if entry is not None:
                d[self.described_key] = modality in entry.modalities
                if not d[self.described_key]:
                    logger.warning(
                        "%r is described for %s, not for this %s input: the shipped bundles met such pairings in "
                        "training only as wrong prompts (empty masks), so expect an empty or unreliable mask (set "
                        "`modality` if the input was misread)",
                        entry.name, "/".join(entry.modalities), modality,
                    )
        return d


class ModalityIntensityd(MapTransform):
    """The intensity preset of each example's own modality (``data[modality_key]``, see :func:`intensity_preset_for`).

    Args:
        keys: keys of the images (never labels).
        modality_key: key of the modality.
        num_channels: channels of the output (grey repeated).
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self, keys: KeysCollection = "image", modality_key: str = "modality", num_channels: int = 3, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modality_key = modality_key
        self.presets = {m: intensity_preset_for(m, num_channels) for m in _PRESETS}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        modality = d[self.modality_key]
        if modality not in self.presets:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        for key in self.key_iterator(d):
            d[key] = self.presets[modality](d[key])
        return d
