"""A bundle's pipeline over a long video in chunks, so that memory does not grow with the video's length.

``inference.json`` reads an input whole, which a ten-minute video does not fit. :func:`segment_video`
reads the video lazily (:func:`monai_ext.io.iter_video_chunks`), runs each chunk of frames through the
bundle's own ``preprocessing``, ``inferer`` and ``postprocessing`` (a :class:`BundlePipeline`: the same
objects the config's evaluator runs), and appends the chunk's masks to the outputs as they come: the
mask video, overlay video and PNGs, then one ``<stem>_prediction.json`` for the whole video. A tracking
inferer (``StreamingSequenceInferer``) carries its memory from one chunk to the next (``keep_state``),
so a chunked video is tracked as in one pass; a frame-wise one needs nothing carried.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from monai_ext.bundle.pipeline import BundlePipeline
from monai_ext.engines.streaming import progress_bar

__all__ = ["segment_video"]


def _wrapped(inferer: Any) -> list[Any]:
    """An inferer and the ones it wraps (``AffineTTAInferer(StreamingSequenceInferer)``), outermost first."""
    found = []
    while inferer is not None:
        found.append(inferer)
        inferer = getattr(inferer, "inferer", None)
    return found


def _streaming_inferers(inferer: Any) -> list[Any]:
    """The inferers that carry a tracking state (``keep_state``), inside any wrappers."""
    return [i for i in _wrapped(inferer) if hasattr(i, "keep_state")]


def _frames_to_segment(total: int | None, frame_range: tuple[int, int | None] | None, stride: int) -> int | None:
    """How many frames a range and stride keep of a video of ``total`` frames (None: unknown)."""
    if total is None:
        return None
    start, stop = frame_range if frame_range is not None else (0, None)
    stop = total if stop is None else min(stop, total)
    return max(0, -(-(stop - start) // stride))


def _stop_before(pipeline: BundlePipeline, names: Sequence[str]) -> int:
    """Index of the first post-processing transform named in ``names`` (the writers), or the end."""
    for i, transform in enumerate(pipeline.postprocessing.transforms):
        if type(transform).__name__ in names:
            return i
    return len(pipeline.postprocessing.transforms)


def segment_video(
    pipeline: BundlePipeline,
    path: str | os.PathLike,
    prompt: str,
    output_dir: str | os.PathLike,
    formats: Sequence[str] = ("auto",),
    overlay: bool = False,
    frame_range: tuple[int, int | None] | None = None,
    stride: int = 1,
    chunk_frames: int = 64,
    report: str | None = None,
    modality: str | None = None,
    threshold: float = 0.5,
    min_frames: int = 1,
) -> dict[str, Any]:
    """Segment ``prompt``'s target in a video chunk by chunk and write the outputs; return the summary.

    Args:
        pipeline: the bundle's inference pipeline; its own writer (``SavePredictiond``) and present/absent
            decision are skipped, this function writes for the whole video.
        path: the video file.
        prompt: the typed prompt.
        output_dir: the output folder.
        formats: ``"auto"`` / ``"video"`` (a mask video at the input's size, at ``fps / stride``) and / or
            ``"png"`` (one mask PNG per frame, named by the frame's index in the video).
        overlay: also write an overlay video (and overlay PNGs with ``"png"``).
        frame_range: ``(start, stop)`` frames of the video (stop None: to the end).
        stride: keep every ``stride``-th frame.
        chunk_frames: frames per chunk (memory is about two chunks of frames and their masks).
        report: report text for the prompt.
        modality: the input's modality (None: detected on the first chunk, then kept).
        threshold: the bundle's threshold (for the present/absent decision over the whole video).
        min_frames: frames that must show the target for it to be present.

    Returns:
        the summary written to ``<stem>_prediction.json``.

    Raises:
        ValueError: a format that does not fit a video; errors of the pipeline (the first chunk's come
            before anything is written).
    """
    from monai_ext.atomic import atomic_write_json
    from monai_ext.io import MaskVideoWriter, OverlayVideoWriter, iter_overlay_frames, output_formats, write_mask, write_overlay_frames
    from monai_ext.io.meta import path_stem
    from monai_ext.io.video import iter_video_chunks, probe_video
    from monai_ext.transforms.confidence import target_present

    formats = output_formats(formats, "video")
    out = Path(output_dir)
    info = probe_video(path)
    stem = path_stem(path)
    fps = Fraction(info.fps).limit_denominator(1001) / stride if info.fps else None
    carriers = _streaming_inferers(pipeline.inferer)
    stop = _stop_before(pipeline, ("TargetPresenced", "SavePredictiond"))
    masks = overlays = None
    scores: list[float] = []
    foreground: list[bool] = []
    frames_with_target: list[int] = []
    written: list[Path] = []
    first: dict[str, Any] = {}
    if any(getattr(c, "bidirectional", False) for c in carriers):
        raise ValueError("bidirectional tracking needs the whole sequence at once: it cannot stream a video in chunks")
    # one bar over the whole video instead of the inferers' own, which would restart at every chunk
    inferers = [i for i in _wrapped(pipeline.inferer) if hasattr(i, "progress")]
    show_progress = any(i.progress for i in inferers)
    for inferer in inferers:
        inferer.progress = False
    for carrier in carriers:
        carrier.keep_state = True
        carrier.reset()
    chunks = iter_video_chunks(path, chunk_frames=chunk_frames, frame_range=frame_range, stride=stride)
    bar = progress_bar(None, total=_frames_to_segment(info.frames, frame_range, stride)) if show_progress else None
    try:
        for chunk in chunks:
            item = {"image": chunk, "prompt": prompt, "report": report, "modality": first.get("modality", modality), "input": str(path)}
            data = pipeline.postprocess(pipeline.predict(pipeline.preprocess(item)), stop=stop)
            mask = torch.as_tensor(data["pred"]).to(torch.uint8)  # (1, H, W, t)
            if not first:
                first = {k: data.get(k) for k in ("typed_prompt", "target", "target_similarity", "prompt_text", "modality",
                                                  "target_described_for_modality", "frame_score_kind")}
                if "video" in formats:
                    masks = MaskVideoWriter(out / f"{stem}_mask.mp4", fps=fps, size=tuple(mask.shape[1:3]))
                if overlay:
                    overlays = OverlayVideoWriter(out / f"{stem}_overlay.mp4", fps=fps, size=tuple(mask.shape[1:3]))
            indices = list(chunk.meta["frame_indices"])
            present = mask.flatten(0, 2).any(0).tolist()
            foreground.extend(present)
            frames_with_target.extend(int(i) for i, hit in zip(indices, present) if hit)
            scores.extend(data.get("frame_scores", []))
            if masks is not None:
                masks.write_frames(mask)
            if overlays is not None:
                colour = (0, 255, 0) if first["modality"] == "endoscopy" else (255, 0, 0)
                for frame in iter_overlay_frames(chunk, mask, colour=colour):
                    overlays.write(frame)
            if "png" in formats:
                written.extend(write_mask(mask, chunk.meta, out))
                if overlay:
                    written.extend(write_overlay_frames(chunk, mask, out, source_meta=chunk.meta))
            if bar is not None:
                bar.update(len(indices))
    except BaseException:
        for writer in (masks, overlays):
            if writer is not None:
                writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
        for carrier in carriers:
            carrier.keep_state = False
            carrier.reset()
        for inferer in inferers:
            inferer.progress = show_progress
    if not first:
        raise ValueError(f"{path}: no frame in the range asked for (frame_range {frame_range}, stride {stride})")
    videos = [w.close() for w in (masks, overlays) if w is not None]
    summary = {
        "typed_prompt": first["typed_prompt"],
        "target": first["target"],
        "target_similarity": first["target_similarity"],
        "prompt": first["prompt_text"],
        "modality": first["modality"],
        "target_described_for_modality": first["target_described_for_modality"],
        "target_present": bool(scores) and target_present(scores, foreground, threshold, min_frames),
        "frame_score_kind": first["frame_score_kind"],
        "frame_scores": scores,
        "n_frames": len(foreground),
        "frames_with_target": frames_with_target,
        "frame_range": list(frame_range) if frame_range is not None else None,
        "stride": stride,
        "input": str(path),
        "outputs": [str(p) for p in videos + written],
    }
    summary = {k: v for k, v in summary.items() if v is not None or k == "frame_range"}
    atomic_write_json(out / f"{stem}_prediction.json", summary, indent=1)
    print(f"{summary['target']}: {len(frames_with_target)}/{summary['n_frames']} frames; masks in {out}")
    return summary

