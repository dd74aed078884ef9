"""Score a text-prompted network on every sample of a datalist and write ``metrics.json``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from monai_ext.engines.runner import SequenceSegmentationRunner
from monai_ext.io import load_source
from monai_ext.transforms import target_mask
from monai_ext.metrics import MetricsAccumulator, sequence_metrics

__all__ = ["read_datalist", "score_in_source", "labelled_sources", "DatalistEvaluator"]

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")


def read_datalist(path: str | os.PathLike | None, split: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Samples of a ``tools/prepare_dataset.py`` datalist, of ``split`` (None: all splits).

    Raises:
        FileNotFoundError / ValueError: missing file, or an unknown split name.
    """
    if path is None:
        raise ValueError("no datalist given: pass --datalist FILE (written by tools/prepare_dataset.py)")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist not found: {path} (make one with tools/prepare_dataset.py)")
    with open(path) as f:
        data = json.load(f)
    splits = SPLITS if split is None else ([split] if isinstance(split, str) else list(split))
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {SPLITS}")
    return [sample for s in splits for sample in data.get(s, [])]


def _spacing(meta: Mapping[str, Any], ndim: int) -> list[float] | None:
    if meta.get("source_kind") not in ("volume", "dicom_series"):
        return None
    affine = np.asarray(meta["affine"], dtype=float)
    return [float(np.linalg.norm(affine[:3, i])) for i in range(ndim)]


def score_in_source(pred: torch.Tensor, gt: torch.Tensor, meta: Mapping[str, Any]) -> dict[str, float]:
    """Dice / IoU / HD95 of a binary prediction and label in the source geometry ``(X, Y, Z)`` / ``(H, W, T)``.

    Metrics take frames first (the slice / time axis is last in the source); volumes get
    3D HD95 in mm with spacing ``(slice, row, col)``, frame sources per-frame 2D HD95 in pixels.
    """
    pred_t, gt_t = torch.as_tensor(pred).movedim(-1, 0), torch.as_tensor(gt).movedim(-1, 0)
    spacing = _spacing(meta, 3)
    if spacing is not None:
        spacing = [spacing[2], spacing[0], spacing[1]]
    return sequence_metrics(pred_t, gt_t, spacing=spacing, volume=spacing is not None)


def labelled_sources(samples: Sequence[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], Any, torch.Tensor]]:
    """Yield ``(sample, source, gt)`` for the samples with a label, ``gt`` the sample's binary target mask.

    Samples of one image are consecutive in a datalist (ACDC's 3 structures, BraTS's 5 parts), so
    the source and its label file are read once for all of them and dropped when the image changes.
    """
    cache: dict[str, Any] = {}
    for sample in samples:
        if sample.get("label") is None:
            continue
        key = str(sample["image"])
        if key not in cache:
            cache.clear()  # one source at a time
            cache[key] = load_source(sample["image"])
        label_key = f"label:{sample['label']}"
        if label_key not in cache:
            cache[label_key] = load_source(sample["label"])[0]
        yield sample, cache[key], target_mask(cache[label_key], sample.get("label_values"))


class DatalistEvaluator:
    """Evaluate a :class:`SequenceSegmentationRunner` on datalist samples, in each input's own geometry.

    For each sample the prompt is built from its target, modality and report, the prediction
    is mapped back to the source geometry and compared with the label there: Dice/IoU over the
    whole sequence/volume, HD95 in mm for volumes (3D) and in pixels per frame for frame
    sources (see :func:`monai_ext.metrics.sequence_metrics`).

    Args:
        runner: the inference runner (network, text encoder, size).
        save_masks: also write each predicted mask under ``output_dir/masks``.
    """

    def __init__(self, runner: SequenceSegmentationRunner, save_masks: bool = False) -> None:
        self.runner = runner
        self.save_masks = save_masks

    def evaluate(self, samples: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """Score ``samples``; write ``output_dir/metrics.json`` when ``output_dir`` is given."""
        acc = MetricsAccumulator()
        for sample, source, gt in labelled_sources(samples):
            mask, _ = self.runner.predict(source, sample["target"], modality=sample["modality"], report=sample.get("report"))
            metrics = score_in_source(torch.as_tensor(mask)[0] > 0, gt, source.meta)
            acc.add(sample["id"], metrics, target=sample["target"], dataset=sample.get("dataset"), split=sample.get("split"))
            logger.info("%s %s: dice %.4f", sample["id"], sample["target"], metrics["dice"])
            if self.save_masks and output_dir is not None:
                from monai_ext.io import write_mask

                write_mask(mask, source.meta, Path(output_dir) / "masks" / f"{sample['id']}")
        if output_dir is None:
            return acc.aggregate()
        result = acc.write(Path(output_dir) / "metrics.json")
        print(f"dice {result['dice']}, iou {result['iou']}, hd95 {result['hd95']} over {result['n_cases']} cases -> {output_dir}/metrics.json")
        return result
