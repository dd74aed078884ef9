"""Running a bundle through its command-line contract (docs/BUNDLES.md), shared by the bundle tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from monai_ext.bundle import config_files


def bundle_run(
    bundle: Path, *args: str, config: str | Sequence[str] = "inference.json", timeout: int = 900, torchrun: bool = False
) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` (or 2-process torchrun) of ``bundle``'s ``config``; fails the test on a non-zero exit.

    ``config`` names files in ``bundle/configs``: an overlay comes with its base (``"evaluate.json"`` runs
    ``--config_file "['.../inference.json','.../evaluate.json']"``, the model-zoo way), a list is merged in order.
    """
    files = [str(bundle / "configs" / name) for name in config_files(config)]
    config_file = files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "monai.bundle", "run"]
    else:
        cmd = [sys.executable, "-m", "monai.bundle", "run"]
    cmd += ["--config_file", config_file, "--bundle_root", str(bundle), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1" if torchrun else os.environ.get("OMP_NUM_THREADS", "2"))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def small_cvc_datalist(shared_data: Path, out: Path) -> Path:
    """Real CVC-ClinicDB datalist: the two shortest sequences for training, the next one for validation."""
    from monai_ext.data import read_datalist
    from monai_ext.data.converters import prepare_dataset

    prepare_dataset("cvc-clinicdb", shared_data / "cvc_clinicdb", out)
    samples = sorted(read_datalist(out / "datalist.json"), key=lambda s: len(s["image"]))[:3]
    for s, split in zip(samples, ("training", "training", "validation")):
        s["split"] = split
    path = out / "small.json"
    path.write_text(json.dumps({"training": samples[:2], "validation": samples[2:], "test": []}))
    return path


def shipped_sample_dices(output_dir: Path) -> list[float]:
    """Per-frame Dice of a no-argument inference run's masks in ``output_dir`` against the shipped
    sample's ground truth (10 CVC-ClinicDB frames, prompt "polyp"); checks the output layout."""
    import numpy as np
    from PIL import Image

    from monai_ext.sample import sample_path

    masks = sorted((output_dir / "frames").glob("*_mask.png"))
    assert len(masks) == 10
    dices = []
    for m in masks:
        idx = m.name.split("_")[0]
        pred = np.asarray(Image.open(m)) > 0
        gt = np.asarray(Image.open(sample_path("cvc_masks") / f"{idx}.png").convert("L")) > 127
        assert pred.shape == gt.shape == (288, 384)
        dices.append(2 * float((pred & gt).sum()) / max(1.0, float(pred.sum() + gt.sum())))
    summary = json.loads((output_dir / "frames_prediction.json").read_text())
    assert summary["target"] == "polyp" and summary["n_frames"] == 10
    return dices


def right_and_wrong_prompt_fractions(bundle: Path) -> tuple[float, float]:
    """Fractions of the shipped sample's pixels the bundle marks for "polyp" and for "left ventricle" (absent)."""
    from monai_ext.bundle import BundlePipeline
    from monai_ext.sample import sample_path

    pipeline = BundlePipeline.from_bundle(bundle, overrides={"save_masks": False})
    fractions = [
        float(pipeline({"image": sample_path("cvc_frames"), "prompt": prompt})["pred"].float().mean())
        for prompt in ("polyp", "left ventricle")
    ]
    return fractions[0], fractions[1]


def assert_unknown_prompt_writes_nothing(bundle: Path, tmp_path: Path) -> None:
    """An unknown prompt makes inference.json fail with an error naming it, before anything is written."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
           "--bundle_root", str(bundle), "--prompt", "flux capacitor", "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "flux capacitor" in result.stderr and "UnknownPromptError" in result.stderr
    assert not (tmp_path / "out").exists()
