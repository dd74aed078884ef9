"""Networks of the project, registered by short name.

Bundle configs can reach a network either by dotted path
(``"_target_": "monai_ext.networks.nets.reclmis.RecLMIS"``) or by its short registry name
(``"_target_": "monai_ext.networks.get_network", "name": "reclmis", ...``).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from monai.utils import ComponentStore

from monai_ext.networks.weights import load_checkpoint

NETWORKS = ComponentStore("networks", "Networks of monai_ext, registered under a short name.")

# Modules that register networks when imported; each is imported on first look-up so that a
# missing optional dependency of one network does not break the others.
_NETWORK_MODULES: tuple[str, ...] = ("monai_ext.networks.nets.reclmis", "monai_ext.networks.nets.tgsam2")


def register_network(name: str, desc: str | None = None) -> Callable:
    """Decorator registering a network class, or a function building one, under ``name`` in :data:`NETWORKS`."""

    def _register(cls: type) -> type:
        NETWORKS.add(name, desc or (cls.__doc__ or "").strip().split("\n")[0], cls)
        return cls

    return _register


def _import_network_modules() -> None:
    for module in _NETWORK_MODULES:
        importlib.import_module(module)


def list_networks() -> list[str]:
    """Return the registered network names."""
    _import_network_modules()
    return sorted(NETWORKS.names)


def get_network(name: str, **kwargs: Any) -> Any:
    """Instantiate the network registered as ``name`` with ``kwargs``.

    Raises:
        KeyError: ``name`` is not registered; the message lists the known names.
    """
    _import_network_modules()
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; registered networks: {sorted(NETWORKS.names)}")
    return NETWORKS[name](**kwargs)


__all__ = ["NETWORKS", "register_network", "get_network", "list_networks", "load_checkpoint"]
