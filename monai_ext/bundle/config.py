"""A bundle's configs: finding the bundle, reading (and merging) its config files, command-line style overrides.

``evaluate.json`` and the ``multi_gpu_*.json`` files are overlays, the model-zoo way: they are read over
``inference.json`` / ``evaluate.json`` / ``train.json`` (:data:`CONFIG_BASES`), as ``python -m monai.bundle
run --config_file "['configs/inference.json','configs/evaluate.json']"`` does.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CONFIG_BASES",
    "CONFIG_FILES",
    "REPO_ROOT",
    "apply_config_overrides",
    "build_network",
    "config_files",
    "load_metadata",
    "load_parser",
    "parse_config_overrides",
    "resolve_bundle",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = (
    "inference.json",
    "evaluate.json",
    "multi_gpu_inference.json",
    "multi_gpu_evaluate.json",
    "train.json",
    "multi_gpu_train.json",
)
#: overlay config -> the config it is read over (itself possibly an overlay)
CONFIG_BASES = {
    "evaluate.json": "inference.json",
    "multi_gpu_inference.json": "inference.json",
    "multi_gpu_evaluate.json": "evaluate.json",
    "multi_gpu_train.json": "train.json",
}


def config_files(config: str | Sequence[str]) -> list[str]:
    """The config file names to merge, in order, for ``config``: an overlay comes after its bases
    (``"multi_gpu_evaluate.json"`` -> ``["inference.json", "evaluate.json", "multi_gpu_evaluate.json"]``);
    a list is taken as it is."""
    if not isinstance(config, str):
        return list(config)
    chain = [config]
    while chain[0] in CONFIG_BASES:
        chain.insert(0, CONFIG_BASES[chain[0]])
    return chain


def resolve_bundle(name_or_path: str | os.PathLike, bundles_dir: str | os.PathLike | None = None) -> Path:
    """A bundle folder from a path or a name under ``bundles/``."""
    p = Path(name_or_path)
    if p.is_dir():
        return p.resolve()
    root = Path(bundles_dir) if bundles_dir is not None else REPO_ROOT / "bundles"
    if (root / str(name_or_path)).is_dir():
        return (root / str(name_or_path)).resolve()
    raise FileNotFoundError(f"no bundle {name_or_path!r} (not a folder, nor under {root})")


def load_metadata(bundle: Path) -> dict:
    with open(Path(bundle) / "configs" / "metadata.json") as f:
        return json.load(f)


def load_parser(
    bundle: str | os.PathLike,
    config: str | Sequence[str] = "inference.json",
    device: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """A ``monai.bundle.ConfigParser`` of the bundle's ``configs/<config>`` with the metadata as ``_meta_``.

    ``config`` is one file name (an overlay is read over its base, see :func:`config_files`) or a
    list merged in order. ``bundle_root`` is set to the bundle folder, as ``monai.bundle run
    --bundle_root`` does, then ``device`` (when given) and ``overrides`` (``{id: value}``, as
    ``--id value`` on the command line).
    """
    from monai.bundle import ConfigParser  # deferred: importing monai.bundle takes seconds, --help should not

    bundle = Path(bundle)
    files = [str(bundle / "configs" / c) for c in config_files(config)]
    parser = ConfigParser()
    parser.read_config(f=files if len(files) > 1 else files[0])
    meta = bundle / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(f=str(meta))
    parser["bundle_root"] = str(bundle)
    if device is not None:
        parser["device"] = torch.device(device)
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser


def parse_config_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``ID=VALUE`` items (a tool's ``--override``) to a dict; values are read as Python literals,
    anything else is kept as a string.

    Raises:
        ValueError: an item without ``=`` or without an id.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--override takes ID=VALUE, got {item!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def apply_config_overrides(parser: Any, overrides: Mapping[str, Any], where: str) -> None:
    """Set config ids as the bundle command line would, before anything is built.

    Raises:
        SystemExit: an id the config (named ``where`` in the message) does not have.
    """
    for key, value in overrides.items():
        if key not in parser:
            raise SystemExit(f"--override {key}: {where} has no id {key!r}")
        parser[key] = value


def build_network(parser: Any, net_id: str = "network_def", ckpt_file: str | os.PathLike | None = None) -> torch.nn.Module:
    """Instantiate ``net_id`` from ``parser``, load ``ckpt_file`` when it exists (strictly, with
    :func:`monai_ext.networks.load_checkpoint`), return it in eval mode."""
    from monai_ext.networks.weights import load_checkpoint

    net = parser.get_parsed_content(net_id)
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"config id {net_id!r} is not a torch.nn.Module: {type(net)}")
    if ckpt_file is not None and Path(ckpt_file).is_file():
        load_checkpoint(net, ckpt_file)
    return net.eval()
