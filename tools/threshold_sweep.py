"""Score a bundle at several probability thresholds from one forward pass per sample.

    python tools/threshold_sweep.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --thresholds 0.3 0.4 0.5 0.6 0.7 --json OUT.json [--ckpt_path PATH] \
        [--min_component_fractions 0 0.05 0.1 0.2] [--override ID=VALUE ...]

Every sample is segmented once with the bundle's ``evaluate.json`` runner
(:meth:`SequenceSegmentationRunner.predict_probabilities`: probabilities mapped back to the
input's geometry); each threshold is then applied to the same probabilities and scored
as ``evaluate.json`` scores a mask (Dice / IoU / HD95 over the whole sequence, case means per
dataset and over all cases), after the bundle's ``postprocessing``. With
``--min_component_fractions`` every threshold is crossed with those post-processings instead:
:class:`~monai_ext.transforms.RemoveMinorComponents` with each ``min_fraction`` (0: none), results
keyed ``"threshold/fraction"``. ``--override`` sets ``evaluate.json`` ids as the bundle command line
would (``--override "test_time_augmentation=[{'translate': [4, 0]}]"``; values are read as Python
literals, anything else as a string). A runner with a ``refiner`` (``--override
refine_with_box_prompt=True``) redraws each variant's mask and cleans it again, as its ``predict``
does (both call ``SequenceSegmentationRunner.clean_and_refine``). Choose a bundle's ``threshold`` and post-processing on the validation split only.
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
    parser.add_argument(
        "--min_component_fractions",
        type=float,
        nargs="+",
        default=None,
        help="post-processings to compare: RemoveMinorComponents(min_fraction) per value, 0 = none "
        "(default: the bundle's own postprocessing)",
    )
    parser.add_argument(
        "--override",
        nargs="+",
        default=[],
        metavar="ID=VALUE",
        help="evaluate.json ids to set before the runner is built (values as Python literals)",
    )
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    from monai_ext.bundle_utils import apply_config_overrides, load_parser, parse_config_overrides

    try:
        overrides = parse_config_overrides(args.override)
    except ValueError as err:
        parser.error(str(err))
    bad = [t for t in args.thresholds if not 0.0 < t < 1.0]
    if bad:
        parser.error(f"thresholds must lie strictly between 0 and 1, got {bad}")
    bad = [f for f in args.min_component_fractions or [] if not 0.0 <= f <= 1.0]
    if bad:
        parser.error(f"min_component_fractions must lie in [0, 1], got {bad}")

    import torch
    from monai.data import MetaTensor

    from monai_ext.engines import read_datalist
    from monai_ext.engines.evaluator import labelled_sources, score_in_source
    from monai_ext.metrics import MetricsAccumulator
    from monai_ext.transforms import RemoveMinorComponents

    config = load_parser(Path(args.bundle), "evaluate.json")
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    apply_config_overrides(config, overrides, f"{args.bundle}'s evaluate.json")
    runner = config.get_parsed_content("runner")

    samples = [s for s in read_datalist(args.datalist, args.split) if s.get("label") is not None]
    if not samples:
        raise SystemExit(f"no labelled samples in split {args.split!r} of {args.datalist}")
    # (result key, threshold, post-processing of the binary mask's frames or None)
    if args.min_component_fractions is None:
        variants = [(f"{t:g}", t, runner.postprocessing) for t in args.thresholds]
    else:
        variants = [
            (f"{t:g}/{f:g}", t, RemoveMinorComponents(min_fraction=f) if f > 0 else None)
            for t in args.thresholds
            for f in args.min_component_fractions
        ]
    accumulators = {key: MetricsAccumulator() for key, _, _ in variants}
    for sample, source, gt in labelled_sources(samples):
        probabilities, info = runner.predict_probabilities(
            source, sample["target"], modality=sample["modality"], report=sample.get("report")
        )
        dices = []
        for key, t, postprocessing in variants:
            mask = MetaTensor((probabilities.as_tensor() > t).to(torch.uint8), meta=dict(source.meta))
            mask = runner.clean_and_refine(source, mask, info["modality"], postprocessing)[0]
            metrics = score_in_source(mask.as_tensor()[0] > 0, gt, source.meta)
            accumulators[key].add(
                sample["id"], metrics, target=sample["target"], dataset=sample.get("dataset"), split=sample.get("split")
            )
            dices.append(f"{key} {metrics['dice']:.3f}")
        print(f"{sample['id']}: " + ", ".join(dices), flush=True)

    result = {key: acc.aggregate() for key, acc in accumulators.items()}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for t, r in result.items():
        parts = ", ".join(f"{name} {d['dice']:.3f}" for name, d in r["per_dataset"].items())
        print(f"threshold {t}: dice {r['dice']:.4f} over {r['n_cases']} cases ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
