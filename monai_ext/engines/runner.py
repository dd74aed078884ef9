"""Segment a user's input (volume, video, frames, image, DICOM) with a text prompt and write the masks."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from monai.data import MetaTensor

from monai_ext.atomic import atomic_write_json
from monai_ext.engines.inferer import FramewiseSequenceInferer
from monai_ext.engines.preprocessing import detect_modality, frame_preprocessing
from monai_ext.io import load_source, write_mask
from monai_ext.prompts import PromptLibrary, TextEncoder, build_prompt
from monai_ext.transforms import ToSequence

__all__ = ["load_checkpoint", "postprocess_mask", "SequenceSegmentationRunner"]

logger = logging.getLogger(__name__)


def load_checkpoint(network: torch.nn.Module, checkpoint: str | os.PathLike | None, strict: bool = True) -> None:
    """Load weights into ``network`` from a bundle checkpoint (a state dict, or ``{"model": state_dict}``).

    Raises:
        FileNotFoundError: the checkpoint file does not exist; the message says how to get one.
    """
    if checkpoint is None:
        return
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights not found at {path}. Use the bundle's shipped models/model.pt, train one with "
            "configs/train.json, or pass --checkpoint PATH (nothing is downloaded at run time)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    network.load_state_dict(state, strict=strict)


def _frames_with_target(frames: torch.Tensor) -> list[int]:
    """Indices of the frames ``(T, 1, H, W)`` with any foreground.

    ``frames`` is the written mask cut into frames the way the runner cut the input, without
    resizing, so the indices are those of the written mask whichever way it was mapped back.
    """
    return [int(i) for i in torch.nonzero(torch.as_tensor(frames).flatten(1).any(1)).flatten()]


def _postprocess_in_frames(
    mask: MetaTensor, to_frames: ToSequence, postprocessing: Callable[[MetaTensor], Any]
) -> tuple[MetaTensor, MetaTensor]:
    """``postprocess_mask`` with the frame transform given; also returns the cleaned frames."""
    frames = to_frames(mask)
    cleaned = MetaTensor(
        torch.as_tensor(postprocessing(frames)).to(torch.uint8),
        meta=dict(frames.meta),
        applied_operations=list(frames.applied_operations),
    )
    return MetaTensor(torch.as_tensor(to_frames.inverse(cleaned)).to(torch.uint8), meta=dict(mask.meta)), cleaned


def postprocess_mask(mask: MetaTensor, modality: str, postprocessing: Callable[[MetaTensor], Any]) -> MetaTensor:
    """Apply ``postprocessing`` to a mask in its source geometry, frame by frame at the source's resolution.

    The mask is cut into frames ``(T, 1, H, W)`` the way the runner cuts ``modality``'s inputs
    (re-oriented, slice axis first, no resizing), ``postprocessing`` runs on them, and the result
    is mapped back voxel-exactly to the mask's geometry.

    Returns:
        uint8 mask, same shape and metadata as ``mask``.
    """
    return _postprocess_in_frames(mask, frame_preprocessing(modality, None).transforms[-1], postprocessing)[0]


class SequenceSegmentationRunner:
    """Text-prompted segmentation of one input, written back in the input's own format.

    Steps: the prompt is looked up in the prompt library (an unknown or empty prompt fails
    before anything is read or written), the input is read with
    :func:`monai_ext.io.load_source`, turned into frames ``(T, 3, S, S)``, segmented frame by
    frame in batches, mapped back to the input geometry with the inverse sequence transform,
    thresholded, optionally post-processed frame by frame (``postprocessing``), optionally redrawn
    (``refiner``) and post-processed again, and written with :func:`monai_ext.io.write_mask`. The
    seconds each stage took go into the summary (``seconds``: read, to_frames, text, network,
    to_input_geometry, postprocessing, refinement when a ``refiner`` is set, write).

    Args:
        network: a 2D ``network(image, text_tokens, text_mask)`` returning logits.
        text_encoder: the :class:`TextEncoder` the network was trained with.
        spatial_size: the network's frame size.
        checkpoint: weights to load (None: keep the network's weights).
        device: torch device name.
        modality: ``ct``, ``mr``, ``ultrasound``, ``endoscopy`` or None (detected).
        prompt_style: ``"description"`` (name + the library's descriptions) or ``"name"``.
        threshold: probability threshold of the masks.
        batch_size: frames per forward pass.
        library: the prompt library (default: the shipped one).
        inferer: runs the network over the frames, ``inferer(frames, network, tokens, mask)``
            (default: :class:`FramewiseSequenceInferer` with ``batch_size``; sequence models
            pass a :class:`StreamingSequenceInferer`).
        resample_probabilities: map the network's probabilities back to the input geometry
            (with the frames' own interpolation, bilinear by default) and threshold them there,
            so a mask made at 128x128 gets smooth boundaries at the input's size. ``False``
            thresholds at the network's size and maps the mask back with nearest neighbours
            (blocky at the input's size; how RecLMIS up to 0.5.0 and TGSAM-2 up to 0.4.0 were scored).
        postprocessing: a transform of the binary mask cut into frames at the input's own
            resolution, ``(T, 1, H, W)`` (e.g. :class:`~monai_ext.transforms.RemoveMinorComponents`),
            applied before the mask is mapped back to the input's geometry and written; None: none.
        refiner: redraws the (post-processed) mask, ``refiner(source, mask, modality) -> (mask,
            number of frames redrawn)``, e.g. :class:`~monai_ext.engines.BoxPromptRefiner`; the result
            is post-processed again. None: none.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        text_encoder: TextEncoder,
        spatial_size: Sequence[int],
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        modality: str | None = None,
        prompt_style: str = "description",
        threshold: float = 0.5,
        batch_size: int = 8,
        library: PromptLibrary | None = None,
        inferer: Any = None,
        resample_probabilities: bool = True,
        postprocessing: Callable[[MetaTensor], Any] | None = None,
        refiner: Callable[[MetaTensor, MetaTensor, str], tuple[MetaTensor, int]] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device)
        load_checkpoint(self.network, checkpoint)
        self.network.eval()
        self.text_encoder = text_encoder
        self.spatial_size = tuple(spatial_size)
        self.modality = modality
        self.prompt_style = prompt_style
        self.threshold = threshold
        self.inferer = inferer if inferer is not None else FramewiseSequenceInferer(batch_size=batch_size)
        self.library = library or PromptLibrary()
        self.resample_probabilities = resample_probabilities
        self.postprocessing = postprocessing
        self.refiner = refiner

    def _network_probabilities(
        self, source: MetaTensor, target: str, modality: str | None, report: str | None
    ) -> tuple[torch.Tensor, MetaTensor, Any, dict[str, Any]]:
        """Probabilities ``(T, 1, S, S)`` at the network's size, the frames, their transform and the
        summary fields (target, prompt, modality, number of frames, ``seconds`` per stage)."""
        clock = time.perf_counter()
        entry = self.library.lookup(target)
        modality = modality or self.modality or detect_modality(source, source.meta, hint=entry.modalities)
        described = modality in entry.modalities
        if not described:
            # the prompt falls back to another modality's descriptions, as for the bundles' wrong-prompt training pairs
            logger.warning(
                "%r is described for %s, not for this %s input: the shipped bundles met such pairings in training "
                "only as wrong prompts (empty masks), so expect an empty or unreliable mask (set `modality` if the "
                "input was misread)",
                entry.name, "/".join(entry.modalities), modality,
            )
        text = build_prompt(entry.name, modality, report=report, style=self.prompt_style, library=self.library, fallback=True)
        preprocess = frame_preprocessing(modality, self.spatial_size)
        frames = preprocess(source)
        seconds = {"to_frames": time.perf_counter() - clock}
        clock = time.perf_counter()
        features = self.text_encoder.encode([text])
        seconds["text"] = time.perf_counter() - clock
        clock = time.perf_counter()
        logits = self.inferer(
            frames.as_tensor().to(self.device),
            self.network,
            features.tokens.to(self.device),
            features.mask.to(self.device),
        )
        probabilities = torch.sigmoid(logits[:, :1].float()).cpu()
        seconds["network"] = time.perf_counter() - clock
        info = {
            "target": entry.name,
            "prompt": text,
            "modality": modality,
            "target_described_for_modality": described,
            "n_frames": int(probabilities.shape[0]),
            "seconds": seconds,
        }
        return probabilities, frames, preprocess, info

    @torch.no_grad()
    def predict_probabilities(
        self, source: MetaTensor, target: str, modality: str | None = None, report: str | None = None
    ) -> tuple[MetaTensor, dict[str, Any]]:
        """Segment ``target`` in a loaded source; return its probability map in the source geometry.

        The network's probabilities are mapped back with the frames' own interpolation
        (bilinear unless the runner was built otherwise), so thresholds can be compared on one
        forward pass (``tools/threshold_sweep.py``).

        Returns:
            ``(probabilities, info)``: float32 ``(1, ...)`` in the source's geometry, and a dict
            with the target, prompt, modality and number of frames.
        """
        probabilities, frames, preprocess, info = self._network_probabilities(source, target, modality, report)
        clock = time.perf_counter()
        prob_seq = MetaTensor(probabilities, meta=dict(frames.meta), applied_operations=list(frames.applied_operations))
        mapped = MetaTensor(torch.as_tensor(preprocess.inverse(prob_seq)).float(), meta=dict(source.meta))
        info["seconds"]["to_input_geometry"] = time.perf_counter() - clock
        return mapped, info

    @torch.no_grad()
    def predict(
        self, source: MetaTensor, target: str, modality: str | None = None, report: str | None = None
    ) -> tuple[MetaTensor, dict[str, Any]]:
        """Segment ``target`` in a loaded source; return the mask in source geometry and a summary.

        Args:
            source: output of :func:`monai_ext.io.load_source`.
            target: free text naming the target (looked up in the prompt library).
            modality: overrides the runner's modality / detection.
            report: optional report text appended to the prompt.

        Returns:
            ``(mask, summary)``: mask ``(1, ...)`` uint8 in the source's geometry, and a dict with
            the prompt used, modality, number of frames and frames with the target.
        """
        if self.resample_probabilities:
            # the threshold applies at the input's own resolution, after bilinear resampling
            probabilities, info = self.predict_probabilities(source, target, modality, report)
            clock = time.perf_counter()
            mask = MetaTensor((probabilities.as_tensor() > self.threshold).to(torch.uint8), meta=dict(source.meta))
            info["seconds"]["to_input_geometry"] += time.perf_counter() - clock
        else:
            probabilities_net, frames, preprocess, info = self._network_probabilities(source, target, modality, report)
            clock = time.perf_counter()
            mask_frames = (probabilities_net > self.threshold).to(torch.uint8)
            mask_seq = MetaTensor(mask_frames, meta=dict(frames.meta), applied_operations=list(frames.applied_operations))
            mask = MetaTensor(torch.as_tensor(preprocess.inverse(mask_seq)).to(torch.uint8), meta=dict(source.meta))
            info["seconds"]["to_input_geometry"] = time.perf_counter() - clock
        mask, written_frames, details = self.clean_and_refine(source, mask, info["modality"], self.postprocessing)
        info["seconds"].update(details.pop("seconds"))
        if written_frames is None:
            written_frames = frame_preprocessing(info["modality"], None).transforms[-1](mask)
        summary = info | details | {"frames_with_target": _frames_with_target(written_frames)}
        return mask, summary

    def clean_and_refine(
        self, source: MetaTensor, mask: MetaTensor, modality: str, postprocessing: Callable[[MetaTensor], Any] | None
    ) -> tuple[MetaTensor, MetaTensor | None, dict[str, Any]]:
        """What :meth:`predict` does to a thresholded mask: post-process it frame by frame, redraw it
        with the ``refiner`` (if any) and post-process the redrawn mask again.

        ``postprocessing`` is passed in (the runner's own in :meth:`predict`) so that tools can compare
        others on the same probabilities (``tools/threshold_sweep.py``).

        Returns:
            ``(mask, cleaned_frames, details)``: the mask in the source's geometry; the last
            post-processing's frames ``(T, 1, H, W)`` at the input's resolution, or None without
            post-processing; ``details`` with ``seconds`` (``postprocessing``, and ``refinement`` when
            a refiner is set) and ``refined_frames`` when a refiner is set.
        """
        # frames at the input's resolution: what post-processing cleans
        to_frames = frame_preprocessing(modality, None).transforms[-1]
        cleaned_frames = None
        details: dict[str, Any] = {"seconds": {}}
        clock = time.perf_counter()
        if postprocessing is not None:
            mask, cleaned_frames = _postprocess_in_frames(mask, to_frames, postprocessing)
        details["seconds"]["postprocessing"] = time.perf_counter() - clock
        if self.refiner is not None:
            clock = time.perf_counter()
            mask, details["refined_frames"] = self.refiner(source, mask, modality)
            if postprocessing is not None:  # the refined outline is cleaned as the first one was
                mask, cleaned_frames = _postprocess_in_frames(mask, to_frames, postprocessing)
            details["seconds"]["refinement"] = time.perf_counter() - clock
        return mask, cleaned_frames, details

    def run(self, input: Any, prompt: str, output_dir: str | os.PathLike, report: str | None = None) -> list[Path]:
        """Read ``input``, segment what ``prompt`` names, write the masks under ``output_dir``.

        Returns:
            The written files (mask files and ``<stem>_prediction.json``).
        """
        self.library.lookup(prompt)  # fail on an empty / unknown prompt before reading anything
        clock = time.perf_counter()
        source = load_source(input)
        read_seconds = time.perf_counter() - clock
        mask, summary = self.predict(source, prompt, report=report)
        clock = time.perf_counter()
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = list(write_mask(mask, source.meta, out))
        summary["seconds"] = {"read": read_seconds, **summary["seconds"], "write": time.perf_counter() - clock}
        summary["input"] = str(input)
        summary["outputs"] = [str(p) for p in written]
        summary_path = out / f"{source.meta.get('stem', 'input')}_prediction.json"
        atomic_write_json(summary_path, summary, indent=1)
        logger.info("%s: %d/%d frames with %s -> %s", input, len(summary["frames_with_target"]), summary["n_frames"], summary["target"], out)
        print(f"{summary['target']}: {len(summary['frames_with_target'])}/{summary['n_frames']} frames; masks in {out}")
        return written + [summary_path]
