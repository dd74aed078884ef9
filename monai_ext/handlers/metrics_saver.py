"""Score every evaluated case in its input's own geometry and write the bundle's ``metrics.json``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_ext.metrics import MetricsAccumulator, prediction_metrics

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["SourceMetricsSaver"]

logger = logging.getLogger(__name__)


class SourceMetricsSaver:
    """Per-case Dice / IoU / HD95 of an evaluator's outputs, written as ``metrics.json`` at the end.

    Attach it to a ``SupervisedEvaluator`` that evaluates one case (one input and target) per
    iteration with ``decollate=False`` and post-processing that maps the prediction back to the
    input's geometry: after each iteration ``output["pred"]`` and ``output["label"]`` (``(1, ...)``
    in the source geometry) are scored with :func:`monai_ext.metrics.prediction_metrics` (Dice and IoU
    over the whole volume or sequence, HD95 in mm for volumes and per frame in pixels for frame
    sources), and the case is recorded with the batch's ``id``, ``target``, ``dataset`` and
    ``split``. When the evaluator completes, ``output_dir/metrics.json`` is written (the
    ``MetricsAccumulator`` format: means, per case, per dataset) and the evaluator's
    ``state.metrics`` gets ``dice``, ``iou`` and ``hd95``. Under ``torch.distributed``
    (``multi_gpu_evaluate.json``) the processes' cases are gathered and the first process writes.

    Args:
        output_dir: folder of ``metrics.json``; None: only ``state.metrics``.
        fields: batch fields recorded with each case.
    """

    def __init__(self, output_dir: str | os.PathLike | None, fields: Sequence[str] = ("split",)) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.fields = tuple(fields)
        self.accumulator = MetricsAccumulator()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.accumulator.reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def iteration_completed(self, engine: Engine) -> None:
        output, batch = engine.state.output, engine.state.batch
        pred, label = output["pred"], output["label"]
        metrics = prediction_metrics(pred, label)
        extra: dict[str, Any] = {k: batch.get(k) for k in self.fields if k in batch}
        self.accumulator.add(batch["id"], metrics, target=batch.get("target"), dataset=batch.get("dataset"), **extra)
        logger.info("%s %s: dice %.4f", batch["id"], batch.get("target"), metrics["dice"])

    def _gather_cases(self) -> None:
        """Under ``torch.distributed``, every process's cases in the dataset's order (one ``metrics.json``).

        ``DistributedSampler(shuffle=False, even_divisible=False)`` gives process ``r`` cases ``r, r + W, ...``,
        so interleaving the processes' lists restores the order one process would have.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        per_rank: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, self.accumulator.cases)
        merged = [cases[i] for i in range(max(map(len, per_rank))) for cases in per_rank if i < len(cases)]
        self.accumulator.reset()
        self.accumulator.cases.extend(merged)

    def completed(self, engine: Engine) -> None:
        import torch.distributed as dist

        self._gather_cases()
        first = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
        if self.output_dir is None or not first:
            result = self.accumulator.aggregate()
        else:
            result = self.accumulator.write(self.output_dir / "metrics.json")
            print(f"dice {result['dice']}, iou {result['iou']}, hd95 {result['hd95']} over {result['n_cases']} cases -> {self.output_dir}/metrics.json")
        engine.state.metrics.update({k: result[k] for k in ("dice", "iou", "hd95")})
