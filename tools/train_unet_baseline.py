"""Baseline for the bundles' docs: a plain MONAI UNet (no text), one model per target, same data and frame size.

    python tools/train_unet_baseline.py --datalist DIR/datalist.json --target polyp --dataset cvc_clinicdb \
        --spatial_size 160 --minutes 10 --output_dir runs/unet_polyp [--fit_schedule] [--spatial_augment JSON] \
        [--bundle reclmis_language_guided_segmentation]

The samples of that (dataset, target) are written to ``output_dir/datalist.json`` (training and
validation splits). Training runs on MONAI's engines like the bundles' ``train.json``: the frames
of the training split as a :class:`monai_ext.data.ReferringDataset` (one-frame examples, the
target's name as the only prompt, no foreign negatives; 75 % of the draws positive), augmented by
``--bundle``'s ``train.json`` ``train#augmentation`` (its intensity moves; its spatial move replaced
by ``RandAffined`` with the ``--spatial_augment`` arguments, none without them), a
``SupervisedTrainer`` with ``DiceCELoss``, AdamW and a ``WarmupCosineSchedule`` stepped per
iteration, a ``ValidationHandler`` validating every epoch on the validation split's frames (Dice
at 0.5; :class:`monai_ext.handlers.ModelExporter` writes the best network to ``output_dir/model.pt``)
and :class:`monai_ext.handlers.TrainingLog` (``train_log.jsonl``).

``--minutes`` caps the training time (``TrainingLog(max_minutes)``). With ``--fit_schedule`` the number of
epochs is chosen to fill that time (a throw-away copy of the network is trained and its epochs -
``iterations`` steps and one validation each - are timed after the first, which pays one-off costs,
over at least two epochs and 5 % of the budget; epochs are planned for 90 % of the time left, a
margin for timing noise), so the cosine schedule ends when the budget does - the fair way to give
a baseline the same time as another model.

The best network is then scored on the validation split (the training split when there is none)
by ``--bundle``'s ``evaluate.json`` run with the UNet in place of the bundle's network: its
preprocessing (intensity preset, frames at ``--spatial_size``), probabilities mapped back to each
input's own geometry, threshold 0.5 without the bundle's frame clean-up, and its
``SourceMetricsSaver`` writing ``output_dir/metrics.json``. ``output_dir/baseline_summary.json``
records the Dice, epochs and settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import LrScheduleHandler, MeanDice, ValidationHandler, from_engine
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.optimizers import WarmupCosineSchedule
from monai.transforms import Activationsd, AsDiscreted, Compose, RandAffined, SqueezeDimd
from monai.utils import set_determinism

from monai_ext.bundle import load_parser, resolve_bundle
from monai_ext.data import ReferringDataset, ReferringPrompts, read_datalist
from monai_ext.handlers import EpochSeeding, ModelExporter, TrainingLog

SEED = 0
#: evaluation threshold of the baseline's probabilities (no frame clean-up), as before Foundation v2
THRESHOLD = 0.5
VAL_MAX_EXAMPLES = 600
WEIGHT_DECAY = 1e-4
#: --fit_schedule times at least this many steady-state epochs, and at least this share of the budget
PROBE_EPOCHS = 2
PROBE_SHARE = 0.05
#: share of the time left that --fit_schedule plans epochs for: epochs vary by up to a third on a busy
#: machine, and a schedule cut by the time cap never reaches the end of its cosine
FIT_MARGIN = 0.9


class TextFreeNetwork(torch.nn.Module):
    """Wrap an image-only network so it takes (and ignores) the text arguments of the bundles' inferers."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, image: torch.Tensor, text_tokens: torch.Tensor | None = None, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.net(image)


class ConstantTextEncoder:
    """A stand-in for :class:`monai_ext.prompts.TextEncoder` when the network ignores text: one zero token."""

    def encode(self, texts: str | Sequence[str]) -> Any:
        """``TextFeatures`` of one zero token per text (``TextEncoder.encode``'s contract)."""
        from monai_ext.prompts import TextFeatures

        n = 1 if isinstance(texts, str) else len(texts)
        return TextFeatures(tokens=torch.zeros(n, 1, 1), mask=torch.ones(n, 1, dtype=torch.bool), pooled=torch.zeros(n, 1))


def build_unet(channels: int = 32) -> TextFreeNetwork:
    """MONAI's 2D ``UNet`` (3 channels in, 1 logit out, five levels from ``channels`` features, two residual
    units per level), taking the bundles' ``(image, text_tokens, text_mask)`` arguments."""
    c = channels
    return TextFreeNetwork(UNet(2, 3, 1, channels=(c, 2 * c, 4 * c, 8 * c, 16 * c), strides=(2, 2, 2, 2), num_res_units=2))


def training_augmentation(bundle: Path, spatial_augment: Mapping[str, Any] | None) -> Compose:
    """``bundle``'s ``train#augmentation`` without its spatial move, and ``RandAffined(**spatial_augment)`` after the
    ``SqueezeDimd`` that makes one-frame examples ``(C, H, W)``.

    Raises:
        ValueError: ``spatial_augment`` sets ``keys`` / ``mode`` (fixed: image bilinear, label nearest) or
            arguments ``RandAffined`` does not take.
    """
    config = load_parser(bundle, "train.json", overrides={"spatial_augment": False})
    steps = list(config.get_parsed_content("train#augmentation").transforms)
    if spatial_augment:
        reserved = sorted({"keys", "mode"} & set(spatial_augment))
        if reserved:
            raise ValueError(f"--spatial_augment sets {reserved}; those are fixed (image bilinear, label nearest)")
        try:
            move = RandAffined(
                keys=("image", "label"), mode=("bilinear", "nearest"), padding_mode="zeros", **dict(spatial_augment)
            )
        except TypeError as e:
            raise ValueError(f"--spatial_augment: {e} (arguments of monai.transforms.RandAffined expected)") from e
        at = next(i for i, t in enumerate(steps) if isinstance(t, SqueezeDimd)) + 1
        steps.insert(at, move)
    return Compose(steps)


def build_trainer(
    network: torch.nn.Module,
    train_data: ReferringDataset,
    val_data: ReferringDataset | None,
    output_dir: str | Path,
    epochs: int,
    args: argparse.Namespace,
    max_minutes: float | None,
) -> tuple[SupervisedTrainer, ModelExporter]:
    """A ``SupervisedTrainer`` of ``network`` for ``epochs`` x ``args.iterations`` steps, validating every epoch.

    Returns:
        ``(trainer, exporter)``: the exporter writes ``output_dir/model.pt`` when the validation Dice improves.
    """
    device = torch.device(args.device)
    output_dir = Path(output_dir)
    network = network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=WEIGHT_DECAY)
    total = max(1, epochs * args.iterations)
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=min(args.warmup_iterations, total - 1), t_total=total)
    exporter = ModelExporter(output_dir / "model.pt", network, metric_name="val_mean_dice")
    validator = None
    if val_data is not None:
        validator = SupervisedEvaluator(
            device=device,
            val_data_loader=DataLoader(val_data, batch_size=args.batch_size, shuffle=False, num_workers=0),
            network=network,
            postprocessing=Compose([Activationsd(keys="pred", sigmoid=True), AsDiscreted(keys="pred", threshold=0.5)]),
            key_val_metric={"val_mean_dice": MeanDice(include_background=True, output_transform=from_engine(["pred", "label"]))},
            val_handlers=[exporter],
        )
    generator = torch.Generator()
    sampler = torch.utils.data.WeightedRandomSampler(
        train_data.sampling_weights(), num_samples=args.batch_size * args.iterations, replacement=True, generator=generator
    )
    handlers: list[Any] = [
        EpochSeeding(SEED, generator=generator, dataset=train_data, sampler=sampler),
        LrScheduleHandler(scheduler, epoch_level=False, print_lr=False),
    ]
    if validator is not None:
        handlers.append(ValidationHandler(validator=validator, interval=1, epoch_level=True))
    # after the validation, so each epoch's record holds its Dice
    handlers.append(
        TrainingLog(output_dir / "train_log.jsonl", optimizer=optimizer, validator=validator, max_minutes=max_minutes)
    )
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        epoch_length=args.iterations,
        train_data_loader=DataLoader(train_data, batch_size=args.batch_size, sampler=sampler, num_workers=0),
        network=network,
        optimizer=optimizer,
        loss_function=DiceCELoss(sigmoid=True),
        train_handlers=handlers,
        amp=False,
    )
    return trainer, exporter


def steady_epoch_seconds(
    train_data: ReferringDataset, val_data: ReferringDataset | None, args: argparse.Namespace, min_seconds: float
) -> float:
    """Mean seconds of an epoch (steps and validation) of a throw-away network, timed after a first untimed
    epoch (which pays one-off costs and would shorten the schedule) over at least :data:`PROBE_EPOCHS`
    epochs and ``min_seconds`` (a few short epochs are a noisy measure on a busy machine)."""
    from ignite.engine import Events

    with tempfile.TemporaryDirectory() as probe_dir:
        probe, _ = build_trainer(build_unet(args.channels), train_data, val_data, probe_dir, 1 + args.epochs, args, None)
        ends: list[float] = []

        def epoch_end(engine: Any) -> None:
            ends.append(time.perf_counter())
            if len(ends) > PROBE_EPOCHS and ends[-1] - ends[0] >= min_seconds:
                engine.terminate()

        # attached last: runs after the epoch's validation and log
        probe.add_event_handler(Events.EPOCH_COMPLETED, epoch_end)
        probe.run()
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def evaluate(
    bundle: Path, network: torch.nn.Module, datalist: Path, split: str, output_dir: Path, spatial_size: int, device: str
) -> dict[str, Any]:
    """Score ``network``'s ``output_dir/model.pt`` on ``split`` of ``datalist`` with ``bundle``'s evaluate.json.

    Returns:
        the ``metrics.json`` it writes to ``output_dir``.
    """
    parser = load_parser(
        bundle,
        "evaluate.json",
        device=device,
        overrides={
            "datalist": str(datalist),
            "split": split,
            "output_dir": str(output_dir),
            "network_def": network,
            "ckpt_path": str(output_dir / "model.pt"),
            "text_encoder": ConstantTextEncoder(),  # the UNet reads no text: nothing to load
            "image_size": spatial_size,
            "threshold": THRESHOLD,
            "min_component_fraction": 0.0,
            "test_time_augmentation": [],
        },
    )
    parser.get_parsed_content("initialize")  # loads model.pt into the network
    parser.get_parsed_content("evaluator").run()
    return json.loads((output_dir / "metrics.json").read_text())


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
    parser.add_argument("--warmup_iterations", type=int, default=50, help="linear warm-up steps before the cosine")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--fit_schedule", action="store_true", help="choose the epochs so training fills --minutes")
    parser.add_argument(
        "--spatial_augment",
        type=json.loads,
        default=None,
        help="JSON arguments of MONAI RandAffined for the training frames, as the bundles' train.json RandAffined "
        '(e.g. \'{"prob": 0.8, "rotate_range": 0.26, "scale_range": 0.15, "translate_range": 12}\')',
    )
    parser.add_argument(
        "--bundle",
        default="reclmis_language_guided_segmentation",
        help="the bundle whose train.json augmentation and evaluate.json scoring the baseline uses",
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "iterations", "batch_size", "spatial_size", "channels"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    set_determinism(seed=SEED)
    bundle = resolve_bundle(args.bundle)

    def pick(split: str) -> list[dict]:
        return [s for s in read_datalist(args.datalist, split) if s["target"] == args.target and s["dataset"] == args.dataset]

    train, val = pick("training"), pick("validation")
    if not train:
        print(f"no training samples of {args.dataset}/{args.target} in {args.datalist}", file=sys.stderr)
        return 2
    try:
        augmentation = training_augmentation(bundle, args.spatial_augment)
    except ValueError as e:
        parser.error(str(e))
    output_dir = Path(args.output_dir)
    # a run starts afresh (nothing resumes): an earlier run's log or model would mix with this one's
    earlier = [name for name in ("train_log.jsonl", "model.pt") if (output_dir / name).exists()]
    if earlier:
        print(f"{output_dir} holds an earlier run's {', '.join(earlier)}: choose another --output_dir", file=sys.stderr)
        return 2
    output_dir.mkdir(parents=True, exist_ok=True)
    datalist = output_dir / "datalist.json"
    datalist.write_text(json.dumps({"training": train, "validation": val, "test": []}, indent=1) + "\n")
    start = time.perf_counter()
    size = (args.spatial_size, args.spatial_size)
    encoder = ConstantTextEncoder()

    def prompts() -> ReferringPrompts:
        return ReferringPrompts(styles=("name",), foreign_negatives=0.0, seed=SEED)

    train_data = ReferringDataset(train, size, encoder, clip_length=1, prompts=prompts(), transform=augmentation, seed=SEED)
    val_data = None
    if val:
        squeeze = SqueezeDimd(keys=["image", "label"], dim=0)
        val_data = ReferringDataset(
            val, size, encoder, clip_length=1, prompts=prompts(), fixed_prompts=True, max_examples=VAL_MAX_EXAMPLES,
            transform=squeeze,
        )

    epochs = args.epochs
    if args.fit_schedule:
        epoch_seconds = steady_epoch_seconds(train_data, val_data, args, PROBE_SHARE * args.minutes * 60)
        left = args.minutes * 60 - (time.perf_counter() - start)
        epochs = max(1, min(args.epochs, int(FIT_MARGIN * left / epoch_seconds)))
        print(f"schedule fitted to {args.minutes} min: one epoch took {epoch_seconds:.2f} s -> {epochs} epochs")
    network = build_unet(args.channels)
    trainer, exporter = build_trainer(network, train_data, val_data, output_dir, epochs, args, args.minutes)
    trainer.run()
    if not exporter.path.is_file():  # no validation split, or never a validation Dice to rank by: the last weights
        exporter.save()
    result = evaluate(bundle, network, datalist, "validation" if val else "training", output_dir, args.spatial_size, args.device)
    summary = {
        "target": args.target,
        "dataset": args.dataset,
        "dice": result["dice"],
        "n_cases": result["n_cases"],
        "train_minutes": round((time.perf_counter() - start) / 60, 1),
        "epochs": trainer.state.epoch,
        "minutes_budget": args.minutes,
        "fit_schedule": bool(args.fit_schedule),
        "spatial_size": args.spatial_size,
        "spatial_augment": args.spatial_augment,
        "bundle": bundle.name,
    }
    print(json.dumps(summary))
    (output_dir / "baseline_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
