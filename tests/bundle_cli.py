"""Running a bundle through its command-line contract (docs/BUNDLES.md), shared by the bundle tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from monai.bundle import ConfigParser


def bundle_run(bundle: Path, *args: str, config: str = "inference.json", timeout: int = 900, torchrun: bool = False) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` (or 2-process torchrun) of ``bundle``; fails the test on a non-zero exit."""
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "monai.bundle", "run"]
    else:
        cmd = [sys.executable, "-m", "monai.bundle", "run"]
    cmd += ["--config_file", config, "--bundle_root", str(bundle), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1" if torchrun else os.environ.get("OMP_NUM_THREADS", "2"))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def bundle_parser(bundle: Path, name: str, **overrides) -> ConfigParser:
    """A parser of ``bundle/configs/name`` with the metadata and ``bundle_root`` set, plus ``overrides``."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / name))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    for k, v in overrides.items():
        parser[k] = v
    return parser


def small_cvc_datalist(shared_data: Path, out: Path) -> Path:
    """Real CVC-ClinicDB datalist: the two shortest sequences for training, the next one for validation."""
    from monai_ext.data.converters import prepare_dataset
    from monai_ext.engines import read_datalist

    prepare_dataset("cvc-clinicdb", shared_data / "cvc_clinicdb", out)
    samples = sorted(read_datalist(out / "datalist.json"), key=lambda s: len(s["image"]))[:3]
    for s, split in zip(samples, ("training", "training", "validation")):
        s["split"] = split
    path = out / "small.json"
    path.write_text(json.dumps({"training": samples[:2], "validation": samples[2:], "test": []}))
    return path
