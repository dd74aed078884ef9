"""Score a bundle at several probability thresholds from one forward pass per sample.

    python tools/threshold_sweep.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --thresholds 0.3 0.4 0.5 0.6 0.7 --json OUT.json [--ckpt_path PATH] \
        [--min_component_fractions 0 0.05 0.1 0.2] [--override ID=VALUE ...]

The bundle's ``evaluate.json`` (read over its ``inference.json``) is run step by step with
:class:`monai_ext.bundle.BundlePipeline` on its evaluation items (the config's ``data`` for
``--datalist`` / ``--split``, labels read by its ``label_preprocessing``): preprocessing and the
inferer once per sample, then the post-processing up to its ``AsDiscreted`` (probabilities mapped
back to the input's geometry). Each threshold then runs the rest of the post-processing, built from
the config with ``threshold`` (and, with ``--min_component_fractions``, ``min_component_fraction``:
the frame-wise ``RemoveMinorComponents`` inside ``ApplyToFramesd``, 0 = none) set, on the same
probabilities; results are keyed ``"threshold"`` or ``"threshold/fraction"``. Every variant is
scored as ``evaluate.json``'s ``SourceMetricsSaver`` scores (:func:`monai_ext.metrics.prediction_metrics`
in the input's geometry; case means per dataset and over all cases), so the bundle's own settings
give the figures of its ``metrics.json``.

``--override`` sets ``evaluate.json`` ids as the bundle command line would (``--override
"test_time_augmentation=[{'translate': [4, 0]}]"``; values are read as Python literals, anything
else as a string). With ``--override refine_with_box_prompt=True`` the post-processing holds
``BoxPromptRefined``, which redraws each variant's mask with LiteMedSAM and cleans it again with
that variant's ``RemoveMinorComponents``. Choose a bundle's ``threshold`` and post-processing on
the validation split only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: config ids whose built objects every post-processing variant shares with the pipeline: ``Invertd``
#: must invert with the very preprocessing objects that moved the input (MONAI matches transforms by
#: object id), and the LiteMedSAM refiner is loaded once (it also keeps the last input's frames)
SHARED_IDS = ("preprocessing", "box_refiner")


def postprocessing_variants(
    parser: Any, settings: Sequence[tuple[str, Mapping[str, Any]]], shared: Mapping[str, Any]
) -> dict[str, Any]:
    """The config's ``postprocessing`` rebuilt once per variant.

    Args:
        parser: the parsed bundle config the pipeline was built from; its ids are set here.
        settings: ``(result key, {config id: value})`` per variant, e.g. ``("0.4/0.1", {"threshold": 0.4,
            "min_component_fraction": 0.1})``.
        shared: ``{config id: built object}`` taken as they are instead of being built again.

    Returns:
        ``{result key: Compose}``.
    """
    variants = {}
    for key, values in settings:
        for name, value in {**shared, **values}.items():
            parser[name] = value
        variants[key] = parser.get_parsed_content("postprocessing")
    return variants


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
        help="post-processings to compare: the bundle's RemoveMinorComponents with min_fraction set to each value, "
        "0 = none (default: the bundle's own min_component_fraction)",
    )
    parser.add_argument(
        "--override",
        nargs="+",
        default=[],
        metavar="ID=VALUE",
        help="evaluate.json ids to set before the pipeline is built (values as Python literals)",
    )
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    from monai_ext.bundle import apply_config_overrides, parse_config_overrides

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

    from monai.transforms import AsDiscreted, Compose

    from monai_ext.bundle import BundlePipeline, load_parser, resolve_bundle
    from monai_ext.metrics import MetricsAccumulator, prediction_metrics

    config = load_parser(resolve_bundle(args.bundle), "evaluate.json", overrides={"datalist": args.datalist, "split": args.split})
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    apply_config_overrides(config, overrides, f"{args.bundle}'s evaluate.json")
    items = config.get_parsed_content("data")
    if not items:
        raise SystemExit(f"no labelled samples in split {args.split!r} of {args.datalist}")
    label_preprocessing = config.get_parsed_content("label_preprocessing")
    pipeline = BundlePipeline(config)
    shared = {name: config.get_parsed_content(name) for name in SHARED_IDS if name in config}
    start = pipeline.index_of(AsDiscreted)  # the probabilities, in the input's geometry, come before it
    if args.min_component_fractions is None:
        settings = [(f"{t:g}", {"threshold": t}) for t in args.thresholds]
    else:
        settings = [
            (f"{t:g}/{f:g}", {"threshold": t, "min_component_fraction": f})
            for t in args.thresholds
            for f in args.min_component_fractions
        ]
    tails = {key: Compose(post.transforms[start:]) for key, post in postprocessing_variants(config, settings, shared).items()}

    accumulators = {key: MetricsAccumulator() for key in tails}
    for item in items:
        data = pipeline.preprocess(label_preprocessing(dict(item)))
        probabilities = pipeline.postprocess(pipeline.predict(data), 0, start)
        dices = []
        for key, tail in tails.items():
            out = tail(dict(probabilities))
            # as evaluate.json's SourceMetricsSaver scores a case
            metrics = prediction_metrics(out["pred"], out["label"])
            extra = {k: out[k] for k in ("split",) if k in out}
            accumulators[key].add(out["id"], metrics, target=out.get("target"), dataset=out.get("dataset"), **extra)
            dices.append(f"{key} {metrics['dice']:.3f}")
        print(f"{item['id']}: " + ", ".join(dices), flush=True)

    result = {key: acc.aggregate() for key, acc in accumulators.items()}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for t, r in result.items():
        parts = ", ".join(f"{name} {d['dice']:.3f}" for name, d in r["per_dataset"].items())
        print(f"threshold {t}: dice {r['dice']:.4f} over {r['n_cases']} cases ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
