"""Does the text matter? Score a bundle with each sample's right prompt and with a wrong target's prompt.

    python tools/prompt_sensitivity.py --bundle bundles/B --datalist DIR/datalist.json --split validation \
        --json OUT.json [--ckpt_path PATH]

For every sample: Dice with its own prompt (over the whole sequence, in the input's geometry),
and the share of its frames predicted empty when the prompt names a target of another dataset
(``WRONG_TARGET`` below: e.g. "left ventricle" on colonoscopy frames, "polyp" on cardiac MR).
Prints and writes per-dataset means.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

# a target that is never in the dataset's images
WRONG_TARGET = {
    "cvc_clinicdb": "left ventricle",
    "acdc": "polyp",
    "carotid_us": "liver",
    "busbra": "left kidney",
    "totalseg": "polyp",
    "brats": "common carotid artery",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)

    from monai.bundle import ConfigParser

    from monai_ext.engines import read_datalist, target_mask
    from monai_ext.io import load_source
    from monai_ext.metrics import sequence_metrics

    bundle = Path(args.bundle)
    config = ConfigParser()
    config.read_config(str(bundle / "configs" / "inference.json"))
    config["bundle_root"] = str(bundle)
    if args.ckpt_path:
        config["ckpt_path"] = args.ckpt_path
    runner = config.get_parsed_content("runner")

    per_dataset: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in read_datalist(args.datalist, args.split):
        if sample.get("label") is None:
            continue
        source = load_source(sample["image"])
        gt = target_mask(load_source(sample["label"]), sample.get("label_values"))[0].movedim(-1, 0)
        right, _ = runner.predict(source, sample["target"], modality=sample["modality"], report=sample.get("report"))
        wrong, _ = runner.predict(source, WRONG_TARGET[sample["dataset"]], modality=sample["modality"])
        right_t = torch.as_tensor(right)[0].movedim(-1, 0) > 0
        wrong_t = torch.as_tensor(wrong)[0].movedim(-1, 0) > 0
        stats = per_dataset[sample["dataset"]]
        stats["dice_right_prompt"].append(sequence_metrics(right_t, gt)["dice"])
        stats["empty_frames_wrong_prompt"].append(float((~wrong_t.flatten(1).any(1)).float().mean()))
        stats["foreground_wrong_prompt"].append(float(wrong_t.float().mean()))
    result = {
        name: {k: float(np.mean(v)) for k, v in stats.items()} | {"n_cases": len(stats["dice_right_prompt"]), "wrong_prompt": WRONG_TARGET[name]}
        for name, stats in sorted(per_dataset.items())
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result.items():
        print(f"{name}: dice right prompt {r['dice_right_prompt']:.3f}; '{r['wrong_prompt']}': {r['empty_frames_wrong_prompt']:.1%} frames empty ({r['n_cases']} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
