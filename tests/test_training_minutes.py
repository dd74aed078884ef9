"""tools/training_minutes.py: minutes of training steps per dataset, split by the samplers' shares."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import training_minutes  # noqa: E402


@pytest.fixture()
def datalist(tmp_path) -> Path:
    samples = [{"id": f"{d}_{i}", "dataset": d, "split": "training"} for d in ("a", "b", "c") for i in range(2 if d == "a" else 1)]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": samples, "validation": [{"id": "v", "dataset": "z"}], "test": []}))
    return path


def _log(path: Path, seconds: list[float]) -> Path:
    records = [{"epoch": i + 1, "loss": 1.0, "epoch_seconds": s} for i, s in enumerate(seconds)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_minutes_split_by_dataset_weights(tmp_path, datalist, capsys):
    first = _log(tmp_path / "first.jsonl", [60.0, 120.0])  # 3 min, equal shares: 1 min each
    second = _log(tmp_path / "second.jsonl", [240.0])  # 4 min, a:b:c = 2:1:1 (c unnamed weighs 1)
    assert training_minutes.main(["--datalist", str(datalist), "--stage", str(first), "{}",
                                  "--stage", str(second), "{'a': 2.0, 'b': 1}"]) == 0
    # a dataset's share does not depend on how many samples it has (a has two, b and c one)
    assert json.loads(capsys.readouterr().out) == {"a": 3.0, "b": 2.0, "c": 2.0}
    # validation-only datasets are not sampled in training and get nothing
    assert "z" not in training_minutes.dataset_minutes(["a", "b"], [(1.0, {})])


def test_errors_name_the_problem(tmp_path, datalist, capsys):
    good = _log(tmp_path / "good.jsonl", [60.0])
    (tmp_path / "no_seconds.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    (tmp_path / "broken.jsonl").write_text('{"epoch": 1, "epoch_seconds": 6\n')
    cases = [
        (["--stage", str(tmp_path / "missing.jsonl"), "{}"], "missing.jsonl"),
        (["--stage", str(tmp_path / "no_seconds.jsonl"), "{}"], "no epoch_seconds"),
        (["--stage", str(tmp_path / "broken.jsonl"), "{}"], "line 1 is not JSON"),
        (["--stage", str(good), "{'unknown': 1.0}"], "names datasets not in the data"),
        (["--stage", str(good), "{'a': -1}"], ">= 0"),
        (["--stage", str(good), "[1, 2]"], "not a dict"),
        (["--stage", str(good), "{a: 1"], "not a dict literal"),
    ]
    for extra, message in cases:
        assert training_minutes.main(["--datalist", str(datalist), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
