"""Loading a network's weights from a file: the one ``load_checkpoint`` of the package."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = ["load_checkpoint"]


def load_checkpoint(network: torch.nn.Module, checkpoint: str | os.PathLike | None, strict: bool = True) -> None:
    """Load weights into ``network`` from a bundle checkpoint: a state dict, or ``{"model": state_dict}``
    (a training ``checkpoint.pt``).

    Tensors are cast to the dtype of the network's own (a float16 ``model.pt`` fills float32
    parameters), as ``load_state_dict`` does.

    Args:
        network: the network to fill.
        checkpoint: path of the file; None loads nothing.
        strict: require the file's keys and the network's to be the same set.

    Raises:
        FileNotFoundError: the file does not exist; the message says how to get one (nothing is downloaded).
        RuntimeError: with ``strict``, the keys differ, or a shape differs (from ``load_state_dict``).
    """
    if checkpoint is None:
        return
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights not found at {path}. Use the bundle's shipped models/model.pt, train one with "
            "configs/train.json, or pass --checkpoint PATH (nothing is downloaded at run time)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    network.load_state_dict(state, strict=strict)
