#!/usr/bin/env python
"""Check bundles the way the Project-MONAI model-zoo CI does, offline.

    python tools/verify_bundles.py            # every folder in bundles/
    python tools/verify_bundles.py NAME ...   # bundle names under bundles/ or bundle paths

Prints a PASS/FAIL/SKIP line per check and exits non-zero when any check fails (or no
bundle is found). The checks are :func:`monai_ext.bundle.verify_bundle`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from monai_ext.bundle import format_report, resolve_bundle, verify_bundle  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*", help="bundle names under --bundles_dir, or bundle folders")
    ap.add_argument("--bundles_dir", default=str(REPO_ROOT / "bundles"), help="where bundle names are looked up")
    ap.add_argument("--schema", default=None, help="metadata schema file (default: the packaged copy)")
    ap.add_argument("--device", default="cpu", help="device for the forward/export checks")
    args = ap.parse_args(argv)

    bundles_dir = Path(args.bundles_dir)
    if args.bundles:
        targets = []
        for name in args.bundles:
            try:
                targets.append(resolve_bundle(name, bundles_dir))
            except FileNotFoundError as e:
                print(f"FAIL  {name}: {e}")
                return 1
    else:
        targets = sorted(p for p in bundles_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) if bundles_dir.is_dir() else []
    if not targets:
        print(f"FAIL  no bundle found in {bundles_dir}")
        return 1

    failed = []
    for bundle in targets:
        results = verify_bundle(bundle, schema_file=args.schema, device=args.device)
        print(format_report(bundle, results), flush=True)
        if not all(r.passed for r in results):
            failed.append(bundle.name)
    print(f"\n{len(targets) - len(failed)}/{len(targets)} bundles passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
