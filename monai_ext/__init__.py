"""monai_ext: shared library of the text-prompted medical sequence segmentation bundles.

Sub-packages are imported lazily so that ``import monai_ext`` stays cheap and works without
the optional extras (video, dicom, label, pretrained weights).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("bundle", "data", "engines", "handlers", "io", "losses", "metrics", "networks", "prompts", "sample", "transforms")

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
