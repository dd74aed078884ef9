"""The project's MONAI bundles from Python: their configs, their pipelines, example inputs and the model-zoo checks."""

from __future__ import annotations

from .config import (
    CONFIG_BASES,
    CONFIG_FILES,
    REPO_ROOT,
    apply_config_overrides,
    build_network,
    config_files,
    load_metadata,
    load_parser,
    parse_config_overrides,
    resolve_bundle,
)
from .examples import (
    DEFAULT_ANY_SIZE,
    DEFAULT_TEXT_LENGTH,
    image_spec,
    make_image_input,
    make_network_inputs,
    make_text_input,
    network_output,
    register_text_format,
)
from .pipeline import BundlePipeline
from .video import segment_video
from .verify import (
    MAX_MODEL_BYTES,
    PER_CONFIG_IDS,
    REQUIRED_FILES,
    SCHEMA_FILE,
    SCHEMA_URL_NAME,
    CheckResult,
    config_disagreements,
    format_report,
    verify_bundle,
)

__all__ = [
    "BundlePipeline",
    "CONFIG_BASES",
    "CONFIG_FILES",
    "CheckResult",
    "DEFAULT_ANY_SIZE",
    "DEFAULT_TEXT_LENGTH",
    "MAX_MODEL_BYTES",
    "PER_CONFIG_IDS",
    "REPO_ROOT",
    "REQUIRED_FILES",
    "SCHEMA_FILE",
    "SCHEMA_URL_NAME",
    "apply_config_overrides",
    "build_network",
    "config_disagreements",
    "config_files",
    "format_report",
    "image_spec",
    "load_metadata",
    "load_parser",
    "make_image_input",
    "make_network_inputs",
    "make_text_input",
    "network_output",
    "parse_config_overrides",
    "register_text_format",
    "resolve_bundle",
    "segment_video",
    "verify_bundle",
]
