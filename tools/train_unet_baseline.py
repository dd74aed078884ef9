"""Baseline for the bundles' docs: a plain MONAI UNet (no text), one model per target, same data and frame size.

    python tools/train_unet_baseline.py --datalist DIR/datalist.json --target polyp --dataset cvc_clinicdb \
        --spatial_size 160 --minutes 10 --output_dir runs/unet_polyp [--fit_schedule] [--spatial_augment JSON]

``--minutes`` caps the training time. With ``--fit_schedule`` the number of epochs is chosen
to fill that time (on a throw-away copy of the network one epoch is run untimed, then a
second - ``iterations`` steps, one validation, the checkpoint - is timed), so the cosine
schedule ends when the budget does - the fair way to give a baseline the same time as
another model.

Trains on the training split's frames of that (dataset, target), validates on the validation
split, then scores the validation split in each input's own geometry exactly as the bundles'
evaluate.json does and writes ``output_dir/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from monai_ext.engines import DatalistEvaluator, FrameTrainer, ReferringFrameBank, SequenceSegmentationRunner, read_datalist


class TextFreeNetwork(torch.nn.Module):
    """Wrap an image-only network so it takes (and ignores) the text arguments of the engines."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, text_tokens: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(image)


class ConstantTextEncoder:
    """A stand-in for :class:`TextEncoder` when the network ignores text: one zero token."""

    def encode(self, texts):  # noqa: D401 - same contract as TextEncoder.encode
        from monai_ext.prompts import TextFeatures

        n = len(texts)
        return TextFeatures(tokens=torch.zeros(n, 1, 1), mask=torch.ones(n, 1, dtype=torch.bool), pooled=torch.zeros(n, 1))


def build_unet(channels: int = 32) -> TextFreeNetwork:
    c = channels
    return TextFreeNetwork(UNet(2, 3, 1, channels=(c, 2 * c, 4 * c, 8 * c, 16 * c), strides=(2, 2, 2, 2), num_res_units=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spatial_size", type=int, default=160)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--fit_schedule", action="store_true", help="choose the epochs so training fills --minutes")
    parser.add_argument(
        "--spatial_augment",
        type=json.loads,
        default=None,
        help='JSON arguments of MONAI RandAffined for the training pairs, as the bundles\' train.json spatial_augment '
        '(e.g. \'{"prob": 0.8, "rotate_range": 0.26, "scale_range": 0.15, "translate_range": 12}\')',
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    def pick(split: str) -> list[dict]:
        return [s for s in read_datalist(args.datalist, split) if s["target"] == args.target and s["dataset"] == args.dataset]

    train, val = pick("training"), pick("validation")
    if not train:
        print(f"no training samples of {args.dataset}/{args.target} in {args.datalist}", file=sys.stderr)
        return 2
    size = (args.spatial_size, args.spatial_size)
    start = time.perf_counter()
    encoder = ConstantTextEncoder()
    train_bank = ReferringFrameBank(train, size, prompt_style="name", foreign_negatives=0, spatial_augment=args.spatial_augment)
    val_bank = ReferringFrameBank(val, size, prompt_style="name", foreign_negatives=0) if val else None
    for bank in (train_bank, val_bank):
        if bank is not None:
            bank.encode_prompts(encoder)
    network = build_unet(args.channels)
    loss = DiceCELoss(sigmoid=True)

    def make_trainer(net: torch.nn.Module, output_dir: str | Path, epochs: int) -> FrameTrainer:
        return FrameTrainer(
            net,
            lambda out, label: loss(out, label),
            train_bank,
            val_bank,
            output_dir,
            epochs=epochs,
            iterations=args.iterations,
            batch_size=args.batch_size,
            lr=args.lr,
            max_minutes=args.minutes,
        )

    epochs = args.epochs
    if args.fit_schedule:
        with tempfile.TemporaryDirectory() as probe_dir:
            probe = make_trainer(build_unet(args.channels), probe_dir, 1)
            probe.run()  # not timed: the first epoch pays one-off costs and would shorten the schedule
            probe.epochs = 2
            probe_start = time.perf_counter()
            probe.run()  # resumes from the first epoch: one steady-state epoch with its validation and saving
            epoch_seconds = time.perf_counter() - probe_start
        left = args.minutes * 60 - (time.perf_counter() - start)
        epochs = max(1, min(args.epochs, int(left / epoch_seconds)))
        print(f"schedule fitted to {args.minutes} min: one epoch took {epoch_seconds:.1f} s -> {epochs} epochs")
    trainer = make_trainer(network, args.output_dir, epochs)
    trainer.run()
    network.load_state_dict(torch.load(Path(args.output_dir) / "model.pt", map_location="cpu", weights_only=True))
    runner = SequenceSegmentationRunner(network, encoder, size, prompt_style="name")
    result = DatalistEvaluator(runner).evaluate(val or train, args.output_dir)
    summary = {
        "target": args.target,
        "dataset": args.dataset,
        "dice": result["dice"],
        "n_cases": result["n_cases"],
        "train_minutes": round((time.perf_counter() - start) / 60, 1),
        "epochs": trainer.epoch,
        "minutes_budget": args.minutes,
        "fit_schedule": bool(args.fit_schedule),
        "spatial_size": args.spatial_size,
        "spatial_augment": args.spatial_augment,
    }
    print(json.dumps(summary))
    (Path(args.output_dir) / "baseline_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
