"""Starting weights of a training run: resume a checkpoint, or fine-tune from earlier weights."""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

__all__ = ["latest_checkpoint", "load_init_weights"]

logger = logging.getLogger(__name__)

_EPOCH = re.compile(r"_epoch=(\d+)\.pt$")


def latest_checkpoint(directory: str | os.PathLike, prefix: str = "checkpoint") -> Path | None:
    """The newest ``<prefix>_epoch=N.pt`` that MONAI's ``CheckpointSaver`` wrote in ``directory`` (None: none)."""
    folder = Path(directory)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.glob(f"{prefix}*_epoch=*.pt") if (m := _EPOCH.search(p.name))]
    return max(found)[1] if found else None


def _target_of(
    path: Path, state: dict[str, torch.Tensor], network: torch.nn.Module, export: Callable | None
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The module ``state`` fits (the network, or its exported form) and that module's own tensors; checks shapes."""
    target, own = network, network.state_dict(keep_vars=True)
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        exported = export(network) if export is not None else network
        exported_state = exported.state_dict(keep_vars=True)
        if exported is network or set(state) - set(exported_state):
            raise ValueError(f"init_weights {path} has keys this network lacks, e.g. {unexpected[:5]}")
        target, own = exported, exported_state
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        try:
            # a module may resample some tensors when loading (RecLMIS's position grid of another
            # image size): tried on a copy, so the network stays untouched here
            copy.deepcopy(target).load_state_dict(state, strict=False)
        except RuntimeError:
            raise ValueError(
                f"init_weights {path}: shape mismatch for {wrong[:5]}, e.g. {tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}"
            ) from None
    return target, own


def load_init_weights(
    network: torch.nn.Module,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None,
    export: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> list[str]:
    """Fine-tune from earlier weights: load ``files`` into ``network`` in order; return the keys none provided.

    Each file holds the training network's state (a training checkpoint, whose ``"network"`` entry
    is taken, or a state dict) or the exported network's (a shipped ``model.pt`` written by
    :class:`monai_ext.handlers.ModelExporter` with ``export``, e.g. RecLMIS's inference network,
    whose keys lack the training network's prefix; parts it lacks, such as training-only branches,
    keep their initialisation). Later files overwrite what earlier ones set, so ``[checkpoint,
    averaged model.pt]`` takes the training-only branches from a run and the rest from an average.
    Every file is read and checked before the network is touched: a bad file leaves it as it was.

    Args:
        network: the training network.
        files: one file, a list, or None / ``""`` for none.
        export: ``export(network) -> module`` that the shipped weights belong to; None: the network.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: a file holds keys neither network has, or a tensor of another shape that the
            module does not resample when loading.
    """
    if files is None or (isinstance(files, (str, os.PathLike)) and not os.fspath(files)):
        return []
    paths = [Path(files)] if isinstance(files, (str, os.PathLike)) else [Path(f) for f in files]
    missing_files = [str(p) for p in paths if not p.is_file()]
    if missing_files:
        raise FileNotFoundError(f"init_weights file not found: {', '.join(missing_files)}")
    network_state = network.state_dict(keep_vars=True)
    plan = []
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "optimizer" in state:
            state = state.get("network", state.get("model"))  # a training checkpoint (CheckpointSaver's, or a 0.x trainer's)
        plan.append((path, *_target_of(path, state, network, export), state))
    loaded: set[int] = set()
    for path, target, own, state in plan:
        target.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
        # tensors are loaded in place, so the network's own entries that share their storage were set
        loaded |= {own[k].data_ptr() for k in state}
        logger.info("initialised from %s (%d tensors)", path, len(state))
    missing = sorted(k for k, t in network_state.items() if t.data_ptr() not in loaded)
    if missing:
        logger.info("%d network tensors kept their initialisation", len(missing))
    return missing
