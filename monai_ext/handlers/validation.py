"""Validation every ``interval`` epochs and after the last one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai.handlers import ValidationHandler
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["LastEpochValidationHandler"]


class LastEpochValidationHandler(ValidationHandler):
    """MONAI's ``ValidationHandler`` (epoch level) that also validates the run's last epoch.

    With ``interval`` 2 and 5 epochs, MONAI's handler validates after epochs 2 and 4 only, and a
    1-epoch run never: the weights of the last epochs would never be scored, nor a model exported
    (:class:`monai_ext.handlers.ModelExporter` writes on validation). This one validates after
    epochs 2, 4 and 5. Same arguments as ``ValidationHandler`` (``epoch_level`` is always True).
    """

    def attach(self, engine: Engine) -> None:
        def due(engine: Engine, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch == engine.state.max_epochs

        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=due), self)
        if self.exec_at_start:
            engine.add_event_handler(Events.STARTED, self)
