"""One input through a bundle's ``inference.json``, from Python: what ``monai-ext segment`` and the MONAI Label app run."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_ext.bundle.config import load_parser

__all__ = ["CONFIG_SYNTAX", "check_literal_text", "literal_path", "resolve_device", "segment"]

#: a config value starting with one of these is an expression, a reference or a macro to MONAI's ConfigParser
CONFIG_SYNTAX = ("$", "@", "%")


def check_literal_text(name: str, value: Any) -> None:
    """Refuse text from a user that MONAI's ``ConfigParser`` would not take literally.

    A prompt, report or series set as a config value is read by the parser: ``"$..."`` would be run as
    Python, ``"@id"`` replaced by another config item. None of them has a reason to start so.

    Raises:
        ValueError: ``value`` is a string starting with ``$``, ``@`` or ``%``.
    """
    if isinstance(value, str) and value.startswith(CONFIG_SYNTAX):
        raise ValueError(f"{name} {value[:40]!r} may not start with {', '.join(CONFIG_SYNTAX)} (config syntax); rephrase it")


def resolve_device(name: str) -> Any:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]`` as a ``torch.device``.

    Raises:
        ValueError: CUDA asked for where there is none, or a name torch does not know.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name}: no CUDA device here (use auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected auto, cpu or cuda[:N]") from None


def literal_path(path: str | os.PathLike) -> str:
    """``path`` as given, made absolute where it starts like config syntax (a file named ``@scan.nii.gz``)."""
    text = str(path)
    return str(Path(text).absolute()) if text.startswith(CONFIG_SYNTAX) else text


def segment(
    bundle: str | os.PathLike,
    input_path: str | os.PathLike,
    prompt: str,
    output_dir: str | os.PathLike,
    device: Any = None,
    formats: Sequence[str] = ("auto",),
    overlay: bool = False,
    report: str | None = None,
    modality: str | None = None,
    series: str | None = None,
    progress: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Segment ``prompt``'s target in one input with ``bundle``'s ``inference.json`` and write the outputs.

    Args:
        bundle: the bundle folder.
        input_path: a 2D image, frame folder, video, volume, DICOM series or study folder.
        prompt: the typed prompt (one target).
        output_dir: where the masks and ``<stem>_prediction.json`` go.
        device: the torch device (None: the config's, CUDA when available).
        formats: output formats (``monai_ext.io.FORMATS``).
        overlay: also write overlay pictures.
        report: report text added to the prompt.
        modality: the input's modality (None: detected).
        series: a study folder's series (SeriesInstanceUID or SeriesNumber).
        progress: a progress bar over frames on stderr.
        overrides: other config ids (trusted: values are parsed as config).

    Returns:
        the written ``<stem>_prediction.json`` with its own path as ``"prediction"``.

    Raises:
        ValueError: text that would be read as config syntax (:func:`check_literal_text`), or what the
            pipeline raises for a bad input.
    """
    for name, value in (("prompt", prompt), ("report", report), ("modality", modality), ("series", series)):
        check_literal_text(name, value)
    values: dict[str, Any] = {
        "input": literal_path(input_path),
        "prompt": prompt,
        "output_dir": literal_path(output_dir),
        "report": report,
        "modality": modality,
        "series": series,
        "output_formats": list(formats),
        "overlay": overlay,
        "progress": progress,
    }
    if device is not None:
        values["device"] = device
    values.update(overrides or {})
    parser = load_parser(bundle, "inference.json", overrides=values)
    if "initialize" in parser:
        parser.get_parsed_content("initialize")
    evaluator = parser.get_parsed_content("evaluator")
    evaluator.run()
    summary_path = Path(evaluator.state.output["pred_files"][-1])
    with open(summary_path) as f:
        summary = json.load(f)
    summary["prediction"] = str(summary_path)
    return summary
