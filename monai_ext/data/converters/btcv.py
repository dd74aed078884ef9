"""BTCV / Synapse multi-atlas abdomen CT: the ``decathlon`` layout, dataset ``btcv``, modality ct.

``imagesTr/X.nii.gz`` + ``labelsTr/X.nii.gz`` + ``dataset.json`` (13 organs: 1 spleen, 2 right
kidney, 3 left kidney, 4 gallbladder, 5 esophagus, 6 liver, 7 stomach, 8 aorta, 9 inferior vena
cava, 10 portal vein and splenic vein, 11 pancreas, 12 right adrenal gland, 13 left adrenal gland),
or MONAI's ``dataset_0.json`` layout (``training`` / ``validation`` lists pairing ``img0001`` with
``label0001``, abbreviated names ``rkid``, ``gall``, ``IVC``, ``veins``, ``rad`` ... mapped by
``LABEL_ALIASES``). One sample per (volume, organ present); every organ name must be a
prompt-library name with CT descriptions, and a ``dataset.json`` naming another modality is an
error. ``sequence_id`` = the volume (``btcv_00``; ``btcv_`` is prefixed when missing).
"""

from __future__ import annotations

from pathlib import Path

from ._common import ConversionResult
from .decathlon import read_layout

FORMAT = "btcv"
DATASET = "btcv"
MODALITY = "ct"
LABEL_ALIASES = {
    "rkid": "right kidney",
    "lkid": "left kidney",
    "gall": "gallbladder",
    "eso": "esophagus",
    "sto": "stomach",
    "ivc": "inferior vena cava",
    "veins": "portal vein and splenic vein",
    "rad": "right adrenal gland",
    "lad": "left adrenal gland",
}


def convert(src: Path, dataset: str | None = None, **_: object) -> ConversionResult:
    return read_layout(
        Path(src),
        fmt=FORMAT,
        dataset=dataset or DATASET,
        expect_modality=MODALITY,
        aliases=LABEL_ALIASES,
        strict=True,
        case_prefix="btcv",
        what="BTCV folder",
    )
