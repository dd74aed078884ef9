"""One JSON line per training epoch (losses, learning rate, validation, time), and an optional time limit."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["TrainingLog"]

logger = logging.getLogger(__name__)


class TrainingLog:
    """Append a record per epoch to ``path`` (JSON lines) and print it; stop training after ``max_minutes``.

    A record holds the epoch, the mean loss and mean loss terms over the epoch's iterations (the
    loss function's ``last_terms`` after each step, as ``MaskObjectSequenceLoss`` and
    ``RecLMISLoss`` keep them), the learning rate, ``epoch_seconds`` (the training steps, from the
    epoch's start to its last iteration: what ``tools/training_minutes.py`` adds up), and, when it
    validated in this epoch, the validator's metrics and ``validation_seconds``. Attach it after the ``ValidationHandler`` and the
    ``CheckpointSaver``: when the run has used ``max_minutes`` (counted from the trainer's start), it
    asks the trainer to stop at the end of the epoch, after the checkpoint is written, so the run can
    be resumed. Under DDP only process 0 writes and prints, and every process stops when any has
    used its time, so that none waits for the others.

    Args:
        path: the JSON-lines file (``train_log.jsonl``), appended to across resumed runs.
        loss_function: the trainer's loss function (for its ``last_terms``), or None.
        optimizer: for the learning rate, or None.
        validator: the ``SupervisedEvaluator`` run by the ``ValidationHandler``, or None.
        max_minutes: stop after the epoch in which this many minutes have passed; None: no limit.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        loss_function: Any = None,
        optimizer: Any = None,
        validator: Engine | None = None,
        max_minutes: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.loss_function, self.optimizer, self.validator = loss_function, optimizer, validator
        self.max_minutes = max_minutes
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._start = self._epoch_start = self._last_step = time.perf_counter()
        self._validated_epoch: int | None = None
        self._validation_start = self._validation_seconds = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        if self.validator is not None:
            self.validator.add_event_handler(Events.STARTED, self.validation_started)
            self.validator.add_event_handler(Events.COMPLETED, lambda _: self.validation_completed(engine))

    def started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def validation_started(self, validator: Engine) -> None:
        self._validation_start = time.perf_counter()

    def validation_completed(self, trainer: Engine) -> None:
        self._validated_epoch = trainer.state.epoch
        self._validation_seconds = time.perf_counter() - self._validation_start

    def epoch_started(self, engine: Engine) -> None:
        self._sums.clear()
        self._count = 0
        self._epoch_start = self._last_step = time.perf_counter()

    def iteration_completed(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output["loss"] if isinstance(output, dict) else output[0]["loss"]
        self._sums["loss"] += float(loss.item() if isinstance(loss, torch.Tensor) else loss)
        for name, value in (getattr(self.loss_function, "last_terms", None) or {}).items():
            self._sums[name] += float(value)
        self._count += 1
        self._last_step = time.perf_counter()

    def record(self, engine: Engine) -> dict[str, Any]:
        """The epoch's record (see the class docstring)."""
        record: dict[str, Any] = {"epoch": engine.state.epoch}
        record.update({k: v / max(self._count, 1) for k, v in self._sums.items()})
        if self.optimizer is not None:
            record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["epoch_seconds"] = round(self._last_step - self._epoch_start, 1)
        if self.validator is not None and self._validated_epoch == engine.state.epoch:
            record.update({k: float(v) for k, v in self.validator.state.metrics.items() if isinstance(v, (int, float))})
            record["validation_seconds"] = round(self._validation_seconds, 1)
        return record

    def _time_is_up(self) -> bool:
        minutes = torch.tensor((time.perf_counter() - self._start) / 60)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(minutes, op=dist.ReduceOp.MAX)
        return self.max_minutes is not None and float(minutes) > self.max_minutes

    def epoch_completed(self, engine: Engine) -> None:
        record = self.record(engine)
        if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
        if self.max_minutes is not None and engine.state.epoch < (engine.state.max_epochs or math.inf) and self._time_is_up():
            logger.info("stopping after epoch %d: max_minutes %s used; resume to continue", engine.state.epoch, self.max_minutes)
            engine.terminate()
