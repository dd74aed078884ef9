"""Write the network a bundle ships (``models/model.pt``) whenever validation finds it better."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

from monai_ext.atomic import atomic_write

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ModelExporter"]

logger = logging.getLogger(__name__)


class ModelExporter:
    """Save the exported network's state dict when the validator's key metric improves.

    Attach it to the validator (``SupervisedEvaluator``): after each validation, if
    ``engine.state.metrics[metric_name]`` beats the best so far, ``export(network).state_dict()``
    (e.g. RecLMIS's inference network without its training branches), with floating tensors cast
    to ``dtype`` (e.g. float16 to halve the shipped file), is written to ``path`` atomically. The
    best value is part of :meth:`state_dict`, so listing the exporter in the trainer's
    ``CheckpointSaver`` / ``CheckpointLoader`` keeps a resumed run from overwriting a better model.
    MONAI's ``CheckpointSaver(save_key_metric=True)`` writes the training network's own state and
    forgets the best value on resume, hence this handler. Under DDP every process tracks the best
    (the metric is gathered across processes) and process 0 writes.

    Args:
        path: the file to write (``model.pt``).
        network: the trained network (unwrapped from DDP if needed).
        metric_name: the validator metric that decides (greater is better).
        export: ``export(network) -> module`` whose state is written; None: the network.
        dtype: e.g. ``"float16"``; None keeps the training dtype.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        network: torch.nn.Module,
        metric_name: str = "val_mean_dice",
        export: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        self.path = Path(path)
        self.network = network
        self.metric_name = metric_name
        self.export = export
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.best = -math.inf

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The state dict written to :attr:`path`."""
        module = self.network.module if hasattr(self.network, "module") else self.network
        state = (self.export(module) if self.export is not None else module).state_dict()
        if self.dtype is None:
            return state
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in state.items()}

    def save(self) -> None:
        """Write :meth:`exported_state` to :attr:`path` now."""
        state = self.exported_state()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))

    def __call__(self, engine: Engine) -> None:
        value = float(engine.state.metrics.get(self.metric_name, math.nan))
        if math.isnan(value) or value <= self.best:
            return
        self.best = value
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        self.save()
        logger.info("%s %.4f: best so far, %s written", self.metric_name, value, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
