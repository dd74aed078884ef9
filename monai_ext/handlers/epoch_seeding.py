"""Seed the random draws of each training epoch from the seed and the epoch number, so resumed runs repeat them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EpochSeeding"]


class EpochSeeding:
    """At the start of every epoch, seed the sampler's generator and the dataset's random draws.

    The seed of epoch ``e`` on process ``r`` is ``seed * 100003 + e * 1009 + r``: a run resumed at
    epoch ``e`` draws the same examples, prompts and augmentations as an uninterrupted one, and DDP
    processes draw different ones. The sampler's ``set_epoch`` is called when it has one
    (``DistributedSampler`` and its subclasses split the data by epoch).

    Args:
        seed: the run's seed.
        generator: the ``torch.Generator`` the sampler draws with.
        dataset: a dataset with ``set_random_state`` (e.g. :class:`monai_ext.data.ReferringDataset`,
            which seeds its prompt draws and transforms), or None.
        sampler: the sampler, for ``set_epoch``; None: none.
    """

    def __init__(self, seed: int, generator: torch.Generator | None = None, dataset: Any = None, sampler: Any = None) -> None:
        self.seed = int(seed)
        self.generator, self.dataset, self.sampler = generator, dataset, sampler

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def epoch_seed(self, epoch: int) -> int:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return self.seed * 100003 + epoch * 1009 + rank

    def __call__(self, engine: Engine) -> None:
        seed = self.epoch_seed(engine.state.epoch)
        if self.generator is not None:
            self.generator.manual_seed(seed)
        if self.dataset is not None:
            self.dataset.set_random_state(seed % (2**32))
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(engine.state.epoch)
