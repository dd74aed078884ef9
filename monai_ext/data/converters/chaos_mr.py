"""CHAOS abdominal MR (T2-SPIR): the ``decathlon`` layout, dataset ``chaos_mr_t2``, modality mr.

``imagesTr/chaos_NN.nii.gz`` + ``labelsTr/chaos_NN.nii.gz`` + ``dataset.json`` (1 liver, 2 right
kidney, 3 left kidney, 4 spleen). One sample per (volume, organ present); every organ name must be
a prompt-library name with MR descriptions, and a ``dataset.json`` naming another modality is an
error. ``sequence_id`` = the volume (``chaos_01``; ``chaos_`` is prefixed when missing).
``--dataset`` renames the dataset (e.g. ``chaos_mr_t1`` for the T1 DUAL series in the same layout).
"""

from __future__ import annotations

from pathlib import Path

from ._common import ConversionResult
from .decathlon import read_layout

FORMAT = "chaos-mr"
DATASET = "chaos_mr_t2"
MODALITY = "mr"


def convert(src: Path, dataset: str | None = None, **_: object) -> ConversionResult:
    return read_layout(
        Path(src),
        fmt=FORMAT,
        dataset=dataset or DATASET,
        expect_modality=MODALITY,
        strict=True,
        case_prefix="chaos",
        what="CHAOS MR folder",
    )
