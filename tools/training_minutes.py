"""Minutes of training steps each dataset received over one or more training runs.

    python tools/training_minutes.py --datalist runs/data/all/datalist.json \
        --stage runs/train_full/train_log.jsonl "{}" \
        --stage runs/reclmis_stage2/train_log.jsonl "{'cvc_clinicdb': 2.0, 'acdc': 2.0}"

A run's minutes are the sum of ``epoch_seconds`` over its ``train_log.jsonl``
(:class:`monai_ext.handlers.TrainingLog`: the training steps of each epoch, without validation,
which is ``validation_seconds``, nor checkpointing, as the 0.x trainer's logs counted them). Each dataset of the
datalist's training split gets its sampling share of those minutes, computed with the training
sampler's own weighting (:func:`monai_ext.data.balanced_weights`, which
``ReferringDataset.sampling_weights`` uses) from the run's ``dataset_weights`` (unnamed datasets
weigh 1; ``{}`` for equal shares). Prints ``{dataset: minutes}`` as JSON, summed over
the stages. This is how the bundles' docs give the UNet baseline the same time per dataset
(``tools/train_unet_baseline.py --minutes``).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

from monai_ext.data import balanced_weights, read_datalist


def run_minutes(train_log: str | Path) -> float:
    """Minutes of training in a ``train_log.jsonl`` (sum of its ``epoch_seconds``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not JSON, or the log holds no ``epoch_seconds``.
    """
    seconds, found = 0.0, False
    for number, line in enumerate(Path(train_log).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{train_log} line {number} is not JSON: {error}") from error
        if "epoch_seconds" in record:
            seconds, found = seconds + float(record["epoch_seconds"]), True
    if not found:
        raise ValueError(f"{train_log} has no epoch_seconds records (not a TrainingLog train_log.jsonl?)")
    return seconds / 60


def dataset_minutes(datasets: list[str], stages: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Minutes per dataset: each stage's ``(minutes, dataset_weights)`` split by the sampling shares.

    Raises:
        ValueError: a weight names a dataset not in ``datasets``, or is negative (from ``balanced_weights``).
    """
    names = sorted(set(datasets))
    totals = dict.fromkeys(names, 0.0)
    for minutes, weights in stages:
        shares = balanced_weights([(d, True) for d in names], dataset_weights=weights)
        for name, share in zip(names, shares.tolist()):
            totals[name] += minutes * share
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", required=True, help="datalist whose training split the runs sampled")
    parser.add_argument(
        "--stage", nargs=2, action="append", required=True, metavar=("TRAIN_LOG", "DATASET_WEIGHTS"),
        help="a run's train_log.jsonl and its dataset_weights as a Python/JSON dict ('{}' for equal shares); repeat per run",
    )
    args = parser.parse_args(argv)
    try:
        datasets = [s["dataset"] for s in read_datalist(args.datalist, "training")]
        if not datasets:
            raise ValueError(f"{args.datalist} has no training samples")
        stages = []
        for log, weights in args.stage:
            try:
                parsed = ast.literal_eval(weights)
            except (ValueError, SyntaxError) as error:
                raise ValueError(f"dataset weights for {log} are not a dict literal: {weights!r}") from error
            if not isinstance(parsed, dict):
                raise ValueError(f"dataset weights for {log} are not a dict: {weights!r}")
            stages.append((run_minutes(log), parsed))
        totals = dataset_minutes(datasets, stages)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: round(minutes, 1) for name, minutes in totals.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
