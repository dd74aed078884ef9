"""Weight averaging of fine-tuned models of one lineage ("model soup", Wortsman et al., ICML 2022)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import torch

__all__ = ["average_state_dicts", "load_state_dict_file"]


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` state dict (a bundle's ``model.pt``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a flat tensor state dict (e.g. a training ``checkpoint.pt``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a torch file
        raise ValueError(f"{path} is not a readable PyTorch weights file: {e}") from e
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        kinds = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor)) if isinstance(state, Mapping) else []
        raise ValueError(
            f"{path} is not a flat state dict of tensors (a model.pt){'; it holds ' + str(kinds[:5]) if kinds else ''}"
        )
    return dict(state)


def average_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts of the same network.

    Floating-point tensors are averaged (in float64, then cast back to their dtype); other
    tensors (integer buffers such as batch-norm counters) are taken from the last state dict.
    Averaging only makes sense for models fine-tuned from a common starting point.

    Args:
        states: two or more state dicts with the same keys and shapes.
        weights: one non-negative weight per state dict (normalised to sum 1); None = equal.

    Returns:
        the averaged state dict.

    Raises:
        ValueError: fewer than two states, keys or shapes differ, or bad weights.
    """
    if len(states) < 2:
        raise ValueError(f"need at least two state dicts to average, got {len(states)}")
    if weights is None:
        weights = [1.0] * len(states)
    if len(weights) != len(states) or any(float(w) < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per state dict (sum > 0), got {list(weights)} for {len(states)}")
    total = float(sum(weights))
    keys = list(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != set(keys):
            diff = sorted(set(state) ^ set(keys))
            raise ValueError(f"state dict {i} has other keys than state dict 0: {diff[:5]}")
        for k in keys:
            if state[k].shape != states[0][k].shape:
                raise ValueError(f"{k}: shape {tuple(state[k].shape)} in state dict {i}, {tuple(states[0][k].shape)} in 0")
    averaged = {}
    for k in keys:
        if states[0][k].is_floating_point():
            mean = sum(float(w) / total * s[k].double() for w, s in zip(weights, states))
            averaged[k] = mean.to(states[0][k].dtype)
        else:
            averaged[k] = states[-1][k].clone()
    return averaged
