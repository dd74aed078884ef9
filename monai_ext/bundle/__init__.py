"""The project's MONAI bundles from Python: their configs, their pipelines, example inputs and the model-zoo checks."""

from __future__ import annotations

from .batch import SUMMARY_FILE, case_summary_path, check_cases_per_process, pending_cases, read_cases, write_batch_summary
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
from .segment import CONFIG_SYNTAX, check_literal_text, literal_path, resolve_device, segment
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
    "SUMMARY_FILE",
    "CONFIG_BASES",
    "CONFIG_FILES",
    "CONFIG_SYNTAX",
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
    "case_summary_path",
    "check_cases_per_process",
    "check_literal_text",
    "config_disagreements",
    "config_files",
    "format_report",
    "image_spec",
    "load_metadata",
    "literal_path",
    "load_parser",
    "make_image_input",
    "make_network_inputs",
    "make_text_input",
    "network_output",
    "parse_config_overrides",
    "pending_cases",
    "read_cases",
    "register_text_format",
    "resolve_bundle",
    "resolve_device",
    "segment",
    "segment_video",
    "verify_bundle",
    "write_batch_summary",
]
