"""A MONAI Label infer task with a free-text prompt, run by a bundle's own ``inference.json``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from monai_ext.bundle import check_literal_text, load_metadata, resolve_device, segment
from monai_ext.cli import MAX_PROMPT_CHARACTERS  # the command line's bound: the text encoder reads 64 tokens
from monai_ext.prompts import MODALITIES

__all__ = ["PromptError", "TextPromptInferTask", "check_request_params", "MAX_PROMPT_CHARACTERS"]

#: request params the task takes (the command line's options that make sense for one image)
PARAMS = ("prompt", "report", "modality", "series", "device")


class PromptError(ValueError):
    """A request whose prompt or options cannot be run (the server answers 400 with this message)."""


def check_request_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The task's params from a request, checked before any work.

    Raises:
        PromptError: no prompt, an empty or too long one, a non-text value, text in config syntax, an
            unknown modality or device.
    """
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError("params.prompt is missing or empty: name one target, e.g. {\"prompt\": \"the spleen\"}")
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        raise PromptError(
            f"params.prompt has {len(prompt)} characters (at most {MAX_PROMPT_CHARACTERS}): name one target; put a report in params.report"
        )
    values = {name: params.get(name) or None for name in PARAMS}
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            raise PromptError(f"params.{name} must be text, got {type(value).__name__}")
        try:
            check_literal_text(f"params.{name}", value)
        except ValueError as e:
            raise PromptError(str(e)) from None
    if values["modality"] not in (None, *MODALITIES):
        raise PromptError(f"params.modality {values['modality']!r}: expected one of {', '.join(MODALITIES)}")
    if values["device"] not in (None, "auto", "cpu") and not str(values["device"]).startswith("cuda"):
        raise PromptError(f"params.device {values['device']!r}: expected auto, cpu or cuda[:N]")
    return values


def _label_file(outputs: list[str], dicom: bool) -> Path | None:
    """The label among a prediction's outputs: the DICOM SEG for a series, else the mask file (a 2D
    image's mask folder holds one PNG)."""
    for output in map(Path, outputs):
        if dicom and output.suffix != ".dcm":
            continue
        if output.is_dir():
            files = sorted(p for p in output.iterdir() if p.is_file())
            output = files[0] if len(files) == 1 else None
        if output is not None and output.is_file():
            return output
    return None


class TextPromptInferTask(InferTask):
    """One installed bundle as a MONAI Label model: ``params.prompt`` says what to segment.

    The request runs :func:`monai_ext.bundle.segment` - the bundle's ``inference.json`` (its
    ``preprocessing``, ``inferer``, ``postprocessing``), as ``monai-ext segment`` does - on the
    datastore's image. The label is the NIfTI mask in the image's geometry for a volume (a PNG mask
    for a 2D image), or a DICOM SEG for a DICOM series; ``params`` of the answer are the bundle's
    ``prediction.json`` (grounded target, similarity, per-frame scores, present/absent).

    Args:
        bundle: the bundle folder.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``; a request's ``device`` wins.
    """

    def __init__(self, bundle: str | os.PathLike, device: str = "auto") -> None:
        self.bundle = Path(bundle)
        meta = load_metadata(self.bundle)
        self.version = meta.get("version")
        self.device = device
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=[],  # any target the prompt names: see info()["prompt"]
            dimension=3,
            description=f"{meta.get('name', self.bundle.name)} {self.version}: {meta.get('description', '')}",
            config={"prompt": "", "report": "", "modality": "", "series": "", "device": device},
        )

    def is_valid(self) -> bool:
        return (self.bundle / "models" / "model.pt").is_file()

    def info(self) -> dict[str, Any]:
        from monai_ext.prompts import PromptLibrary

        library = PromptLibrary()
        info = super().info()
        info["version"] = self.version
        info["prompt"] = {
            "param": "prompt",
            "type": "text",
            "required": True,
            "max_characters": MAX_PROMPT_CHARACTERS,
            "one_target": True,
            "examples": ["the liver", "a polyp in the colon", "left ventricle"],
            "targets": {m: sorted(e.name for e in library.entries if m in e.modalities) for m in MODALITIES},
        }
        return info

    def _device(self, name: str | None) -> Any:
        try:
            return resolve_device(name or self.device)
        except ValueError as e:
            raise PromptError(f"params.{e}") from None

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        from monai_ext.io import detect_source_kind

        params = check_request_params(request)
        image = str(request["image"])
        kind = detect_source_kind(image)
        formats = ["dicom-seg"] if kind == "dicom_series" else ["auto"]
        work = Path(tempfile.mkdtemp(prefix="monai-ext-label-"))
        try:
            summary = segment(
                self.bundle, image, params["prompt"], work, device=self._device(params["device"]), formats=formats,
                report=params["report"], modality=params["modality"], series=params["series"],
            )
            label = _label_file(summary["outputs"], dicom=kind == "dicom_series")
            if label is None:
                raise RuntimeError(f"{self.bundle.name} wrote no single label file for {image}: {summary['outputs']}")
            # MONAI Label sends the label file and deletes it: keep it, drop the rest of the work folder
            fd, kept = tempfile.mkstemp(suffix="".join(label.suffixes[-2:]) if label.name.endswith(".nii.gz") else label.suffix)
            os.close(fd)
            shutil.copyfile(label, kept)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary.pop("outputs", None)
        summary.pop("prediction", None)
        summary.update(bundle=self.bundle.name, version=self.version)
        return kept, summary
