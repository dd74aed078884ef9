#!/usr/bin/env python
"""Average the weights of fine-tuned models of one lineage into one model.pt ("model soup").

    python tools/average_weights.py --out runs/soup/model.pt runs/stage2/model.pt runs/stage3/model.pt \
        [--weights 0.5 0.5]

The inputs are model.pt files of the same network (e.g. two training stages, the second
started from the first's checkpoint). Floating-point tensors are averaged with the given
weights (equal by default); the output is written atomically, so an existing file at
``--out`` is kept when anything fails. Choose between the inputs and their average on a
split that was not used to pick them (the bundles' docs use the test split for this).
"""

from __future__ import annotations

import argparse
import sys

import torch

from monai_ext.atomic import atomic_write
from monai_ext.engines.weight_averaging import average_state_dicts, load_state_dict_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="model.pt files of the same network")
    parser.add_argument("--out", required=True, help="where to write the averaged model.pt")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per input (default equal)")
    args = parser.parse_args(argv)
    try:
        states = [load_state_dict_file(p) for p in args.inputs]
        averaged = average_state_dicts(states, args.weights)
    except (FileNotFoundError, ValueError) as e:
        print(f"average_weights: {e}", file=sys.stderr)
        return 2
    atomic_write(args.out, lambda tmp: torch.save(averaged, tmp), suffix=".pt")
    print(f"averaged {len(states)} state dicts ({len(averaged)} tensors) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
