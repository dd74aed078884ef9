"""Does the text matter? Score a bundle with each sample's right prompt and with a wrong target's prompt.

    python tools/prompt_sensitivity.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --json OUT.json [--ckpt_path PATH]

For every sample: Dice with its own prompt (over the whole sequence, in the input's geometry),
and the share of its frames predicted empty when the prompt names a target of another dataset
(``WRONG_TARGETS`` below: e.g. "left ventricle" on colonoscopy frames, "polyp" on cardiac MR).
Each dataset is asked with three wrong targets; the first is the one of the figures written
before there were three (``--wrong_prompts 1`` keeps to it). Prints and writes per-dataset means:
``empty_frames_wrong_prompt`` / ``foreground_wrong_prompt`` over all wrong prompts asked, and the
same per prompt under ``per_wrong_prompt``.
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
    parser.add_argument("--wrong_prompts", type=int, default=3, help="wrong targets asked per sample (1-3)")
    args = parser.parse_args(argv)
    if not 1 <= args.wrong_prompts <= 3:
        parser.error(f"--wrong_prompts must be 1, 2 or 3, got {args.wrong_prompts}")

    from monai_ext.bundle_utils import load_parser
    from monai_ext.engines import read_datalist
    from monai_ext.engines.evaluator import labelled_sources
    from monai_ext.metrics import sequence_metrics

    config = load_parser(Path(args.bundle), "inference.json")
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    runner = config.get_parsed_content("runner")

    per_dataset: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    per_prompt: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for sample, source, gt in labelled_sources(read_datalist(args.datalist, args.split)):
        gt = gt.movedim(-1, 0)
        right, _ = runner.predict(source, sample["target"], modality=sample["modality"], report=sample.get("report"))
        right_t = torch.as_tensor(right)[0].movedim(-1, 0) > 0
        stats = per_dataset[sample["dataset"]]
        stats["dice_right_prompt"].append(sequence_metrics(right_t, gt)["dice"])
        for wrong_target in WRONG_TARGETS[sample["dataset"]][: args.wrong_prompts]:
            wrong, _ = runner.predict(source, wrong_target, modality=sample["modality"])
            wrong_t = torch.as_tensor(wrong)[0].movedim(-1, 0) > 0
            empty = float((~wrong_t.flatten(1).any(1)).float().mean())
            foreground = float(wrong_t.float().mean())
            stats["empty_frames_wrong_prompt"].append(empty)
            stats["foreground_wrong_prompt"].append(foreground)
            per_prompt[sample["dataset"]][wrong_target]["empty_frames"].append(empty)
            per_prompt[sample["dataset"]][wrong_target]["foreground"].append(foreground)
    result = {
        name: {k: float(np.mean(v)) for k, v in stats.items()}
        | {
            "n_cases": len(stats["dice_right_prompt"]),
            "wrong_prompts": list(WRONG_TARGETS[name][: args.wrong_prompts]),
            "per_wrong_prompt": {
                prompt: {k: float(np.mean(v)) for k, v in values.items()} for prompt, values in per_prompt[name].items()
            },
        }
        for name, stats in sorted(per_dataset.items())
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result.items():
        wrong = "; ".join(
            f"'{prompt}' {v['empty_frames']:.1%} frames empty ({v['foreground']:.2%} px)" for prompt, v in r["per_wrong_prompt"].items()
        )
        print(f"{name} ({r['n_cases']} cases): dice right prompt {r['dice_right_prompt']:.3f}; {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
