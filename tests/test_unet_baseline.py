"""tools/train_unet_baseline.py: the time-fitted schedule of the same-budget UNet baseline, on real frames."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bundle_cli import small_cvc_datalist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import train_unet_baseline  # noqa: E402


def test_fit_schedule_sizes_the_epochs_to_the_budget(tmp_path, shared_data, capsys):
    datalist = small_cvc_datalist(shared_data, tmp_path / "cvc")
    common = ["--datalist", str(datalist), "--dataset", "cvc_clinicdb", "--target", "polyp", "--spatial_size", "32",
              "--iterations", "2", "--batch_size", "2", "--channels", "4"]
    assert train_unet_baseline.main([*common, "--minutes", "0.3", "--epochs", "500", "--fit_schedule",
                                     "--output_dir", str(tmp_path / "fitted")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("schedule fitted"))
    fitted = json.loads((tmp_path / "fitted" / "baseline_summary.json").read_text())
    planned = int(line.rsplit("->", 1)[1].split()[0])
    # the schedule has more than one epoch and ran to its end (the cosine finished inside the budget)
    assert 1 < planned < 500 and fitted["epochs"] == planned and fitted["fit_schedule"] is True
    assert fitted["minutes_budget"] == 0.3 and 0 <= fitted["dice"] <= 1
    # scored by the bundle's evaluate.json on the validation sequence: its metrics.json, in the input's geometry
    metrics = json.loads((tmp_path / "fitted" / "metrics.json").read_text())
    assert metrics["n_cases"] == fitted["n_cases"] == 1 and metrics["dice"] == fitted["dice"]
    assert metrics["per_case"][0]["split"] == "validation" and set(metrics["per_dataset"]) == {"cvc_clinicdb"}
    written = json.loads((tmp_path / "fitted" / "datalist.json").read_text())
    assert [s["id"] for s in written["validation"]] == [metrics["per_case"][0]["id"]] and len(written["training"]) == 2
    log = [json.loads(l) for l in (tmp_path / "fitted" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["lr"] < 1e-6
    # without --fit_schedule the given epochs are the schedule
    assert train_unet_baseline.main([*common, "--minutes", "5", "--epochs", "2", "--output_dir", str(tmp_path / "plain"),
                                     "--spatial_augment", '{"prob": 1.0, "rotate_range": 0.2}']) == 0
    plain = json.loads((tmp_path / "plain" / "baseline_summary.json").read_text())
    assert plain["epochs"] == 2 and plain["spatial_augment"] == {"prob": 1.0, "rotate_range": 0.2}
    plain_log = [json.loads(l) for l in (tmp_path / "plain" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in plain_log] == [1, 2] and all("val_mean_dice" in r for r in plain_log)  # validated every epoch
    assert fitted["spatial_augment"] is None
    # nothing resumes: an output folder with an earlier run is refused, not appended to
    assert train_unet_baseline.main([*common, "--output_dir", str(tmp_path / "plain")]) == 2
    assert "earlier run" in capsys.readouterr().err
    # RandAffined's own arguments only: keys and modes are fixed
    with pytest.raises(SystemExit):
        train_unet_baseline.main([*common, "--output_dir", str(tmp_path / "bad"), "--spatial_augment", '{"mode": "nearest"}'])
