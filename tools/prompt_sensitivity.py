"""Does the text matter? Score a bundle with each sample's right prompt and with a wrong target's prompt.

    python tools/prompt_sensitivity.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --json OUT.json [--ckpt_path PATH]

Every labelled sample of ``--split`` goes through the bundle's ``evaluate.json`` pipeline (read
over its ``inference.json``, run with :class:`monai_ext.bundle.BundlePipeline`; no masks written):
its Dice with its own prompt is the one ``evaluate.json`` gives it (Dice over the whole sequence
or volume, in the input's geometry), and the share of its frames predicted empty when the prompt
names a target of another dataset (``WRONG_TARGETS`` below: e.g. "left ventricle" on colonoscopy
frames, "polyp" on cardiac MR) is measured on the same pipeline, the case's report left out.
Each dataset is asked with three wrong targets; the first is the one of the figures written
before there were three (``--wrong_prompts 1`` keeps to it; 0 asks none). Prints and writes per-dataset means:
``empty_frames_wrong_prompt`` / ``foreground_wrong_prompt`` over all wrong prompts asked, and the
same per prompt under ``per_wrong_prompt``.

``--paraphrases``: each case is also asked with the held-out paraphrases of its target
(:data:`monai_ext.prompts.HELD_OUT_PARAPHRASES`, sentences no training draw uses: "show me the
spleen", "please delineate the spleen", ...), its report kept; ``dice_paraphrases`` is their mean
Dice (over the whole sequence or volume, as above) beside ``dice_right_prompt`` (the canonical name),
and ``per_paraphrase`` each one's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

# targets that are never in the dataset's images, each from another modality or body part
WRONG_TARGETS = {
    "cvc_clinicdb": ("left ventricle", "liver", "common carotid artery"),
    "acdc": ("polyp", "common carotid artery", "left kidney"),
    "carotid_us": ("liver", "polyp", "left ventricle"),
    "busbra": ("left kidney", "polyp", "common carotid artery"),
    "totalseg": ("polyp", "common carotid artery", "breast lesion"),
    "brats": ("common carotid artery", "polyp", "liver"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--json", required=True)
    parser.add_argument("--wrong_prompts", type=int, default=3, help="wrong targets asked per sample (0-3)")
    parser.add_argument("--paraphrases", action="store_true", help="also ask each case with the held-out paraphrases of its target")
    args = parser.parse_args(argv)
    if not 0 <= args.wrong_prompts <= 3:
        parser.error(f"--wrong_prompts must be 0, 1, 2 or 3, got {args.wrong_prompts}")

    from monai_ext.bundle import BundlePipeline, load_parser, resolve_bundle
    from monai_ext.metrics import prediction_metrics
    from monai_ext.prompts import HELD_OUT_PARAPHRASES, fill_template

    # evaluate.json: inference.json's pipeline with the datalist's items and labels, and no masks written
    config = load_parser(resolve_bundle(args.bundle), "evaluate.json", overrides={"datalist": args.datalist, "split": args.split})
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    items = config.get_parsed_content("data")
    label_preprocessing = config.get_parsed_content("label_preprocessing")
    pipeline = BundlePipeline(config)

    per_dataset: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    per_prompt: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    per_paraphrase: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        right = pipeline(label_preprocessing(dict(item)))
        stats = per_dataset[item["dataset"]]
        # scored as evaluate.json's SourceMetricsSaver scores a case
        metrics = prediction_metrics(right["pred"], right["label"])
        stats["dice_right_prompt"].append(metrics["dice"])
        if args.paraphrases:
            dices = []
            for template in HELD_OUT_PARAPHRASES:
                said = pipeline(dict(item, prompt=fill_template(template, item["target"], item.get("modality"))))["pred"]
                dices.append(_dice(said, right["label"]))
                per_paraphrase[item["dataset"]][template].append(dices[-1])
            stats["dice_paraphrases"].append(float(np.mean(dices)))
        for wrong_target in WRONG_TARGETS[item["dataset"]][: args.wrong_prompts]:
            # the case's report describes its own target: the wrong prompt goes without it
            wrong = pipeline(dict(item, prompt=wrong_target, report=None))["pred"]
            wrong_t = torch.as_tensor(wrong)[0].movedim(-1, 0) > 0  # frames first (the last axis of the input's geometry)
            empty = float((~wrong_t.flatten(1).any(1)).float().mean())
            foreground = float(wrong_t.float().mean())
            stats["empty_frames_wrong_prompt"].append(empty)
            stats["foreground_wrong_prompt"].append(foreground)
            per_prompt[item["dataset"]][wrong_target]["empty_frames"].append(empty)
            per_prompt[item["dataset"]][wrong_target]["foreground"].append(foreground)
    result = {
        name: {k: float(np.mean(v)) for k, v in stats.items()}
        | {
            "n_cases": len(stats["dice_right_prompt"]),
            "wrong_prompts": list(WRONG_TARGETS[name][: args.wrong_prompts]),
            "per_wrong_prompt": {
                prompt: {k: float(np.mean(v)) for k, v in values.items()} for prompt, values in per_prompt[name].items()
            },
        }
        | ({"per_paraphrase": {t: float(np.mean(v)) for t, v in per_paraphrase[name].items()}} if args.paraphrases else {})
        for name, stats in sorted(per_dataset.items())
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result.items():
        wrong = "; ".join(
            f"'{prompt}' {v['empty_frames']:.1%} frames empty ({v['foreground']:.2%} px)"
            for prompt, v in r["per_wrong_prompt"].items()
        )
        said = f"; held-out paraphrases {r['dice_paraphrases']:.3f}" if args.paraphrases else ""
        print(f"{name} ({r['n_cases']} cases): dice right prompt {r['dice_right_prompt']:.3f}{said}; {wrong}")
    if args.paraphrases:
        right = np.mean([d for s in per_dataset.values() for d in s["dice_right_prompt"]])
        said = np.mean([d for s in per_dataset.values() for d in s["dice_paraphrases"]])
        print(f"all ({sum(len(s['dice_right_prompt']) for s in per_dataset.values())} cases): canonical name {right:.3f}, "
              f"held-out paraphrases {said:.3f}")
    return 0


def _dice(pred, label) -> float:
    """Dice of a prediction and its label pooled over the whole sequence or volume (both empty: 1); channel 0 of
    each, as :func:`monai_ext.metrics.prediction_metrics` reads them (a PNG label may carry three)."""
    p, g = torch.as_tensor(pred)[0] > 0, torch.as_tensor(label)[0] > 0
    total = int(p.sum() + g.sum())
    return 1.0 if total == 0 else 2.0 * int((p & g).sum()) / total


if __name__ == "__main__":
    sys.exit(main())
