"""Score a bundle at several probability thresholds from one forward pass per sample.

    python tools/threshold_sweep.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --thresholds 0.3 0.4 0.5 0.6 0.7 --json OUT.json [--ckpt_path PATH]

Every sample is segmented once with the bundle's ``evaluate.json`` runner
(:meth:`SequenceSegmentationRunner.predict_probabilities`: probabilities mapped back to the
input's geometry); each threshold is then applied to the same probabilities and scored
as ``evaluate.json`` scores a mask (Dice / IoU / HD95 over the whole sequence, case means per
dataset and over all cases). Choose a bundle's ``threshold`` on the validation split only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--split", nargs="+", default=["validation"], help="split(s) of the datalist to score")
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    bad = [t for t in args.thresholds if not 0.0 < t < 1.0]
    if bad:
        parser.error(f"thresholds must lie strictly between 0 and 1, got {bad}")

    from monai_ext.bundle_utils import load_parser
    from monai_ext.engines import read_datalist
    from monai_ext.engines.evaluator import labelled_sources, score_in_source
    from monai_ext.metrics import MetricsAccumulator

    config = load_parser(Path(args.bundle), "evaluate.json")
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    runner = config.get_parsed_content("runner")

    samples = [s for s in read_datalist(args.datalist, args.split) if s.get("label") is not None]
    if not samples:
        raise SystemExit(f"no labelled samples in split {args.split!r} of {args.datalist}")
    accumulators = {t: MetricsAccumulator() for t in args.thresholds}
    for sample, source, gt in labelled_sources(samples):
        probabilities, _ = runner.predict_probabilities(
            source, sample["target"], modality=sample["modality"], report=sample.get("report")
        )
        dices = []
        for t, acc in accumulators.items():
            metrics = score_in_source(probabilities.as_tensor()[0] > t, gt, source.meta)
            acc.add(sample["id"], metrics, target=sample["target"], dataset=sample.get("dataset"), split=sample.get("split"))
            dices.append(f"{t:g} {metrics['dice']:.3f}")
        print(f"{sample['id']}: " + ", ".join(dices), flush=True)

    result = {f"{t:g}": acc.aggregate() for t, acc in accumulators.items()}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for t, r in result.items():
        parts = ", ".join(f"{name} {d['dice']:.3f}" for name, d in r["per_dataset"].items())
        print(f"threshold {t}: dice {r['dice']:.4f} over {r['n_cases']} cases ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
