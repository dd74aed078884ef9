"""Clip the gradient norm of a MONAI trainer between its backward pass and its optimiser step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["GradientClipping"]


class GradientClipping:
    """Scale the trainer network's gradients to a total norm of at most ``max_norm`` before each step.

    ``SupervisedTrainer`` fires ``IterationEvents.BACKWARD_COMPLETED`` after ``loss.backward()`` and
    before ``optimizer.step()``; this handler runs ``torch.nn.utils.clip_grad_norm_`` there. Under
    DDP the gradients are already averaged across processes, so every process clips alike.

    Args:
        max_norm: the largest total L2 norm of the gradients.
    """

    def __init__(self, max_norm: float = 1.0) -> None:
        if max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        self.max_norm = float(max_norm)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm)
