"""Batch inference: ``monai-ext segment --datalist/--studies``, sharded by ``torchrun``, resumed after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_ext.bundle import SUMMARY_FILE, check_cases_per_process, pending_cases, read_cases
from monai_ext.cli import main
from monai_ext.sample import sample_path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "reclmis_language_guided_segmentation"


def _cases() -> list[dict]:
    """Twelve shipped-sample cases, cheap ones first (a run killed early has most of them left)."""
    lesions = [{"image": str(p), "prompt": "breast lesion"} for p in sorted(sample_path("busbra_images").glob("*.png"))]
    cvc = {"image": str(sample_path("cvc_frames")), "prompt": "polyp"}
    ct = str(sample_path("ct_small"))
    cases = lesions + [cvc] + lesions + [cvc]
    cases += [{"image": ct, "prompt": "liver"}, {"image": ct, "prompt": "the spleen"}] * 2
    return [dict(c, id=f"case{n:02d}") for n, c in enumerate(cases)]


@pytest.fixture(scope="module")
def datalist(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "cases.json"
    path.write_text(json.dumps(_cases()))
    return path


@pytest.fixture(scope="module")
def one_process(datalist, tmp_path_factory) -> Path:
    """The reference: the whole batch in this process."""
    out = tmp_path_factory.mktemp("one_process")
    assert main(["segment", "--datalist", str(datalist), "--output", str(out), "--bundle", BUNDLE, "--quiet"]) == 0
    return out


def _outputs(root: Path) -> dict:
    """Every case's masks as arrays and its summary without the output paths, by case id."""
    found = {}
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        arrays = {}
        for f in sorted(case.rglob("*")):
            rel = str(f.relative_to(case))
            if f.name.endswith(".nii.gz"):
                arrays[rel] = np.asarray(nib.load(f).dataobj)
            elif f.suffix == ".png":
                arrays[rel] = np.asarray(Image.open(f))
        (summary_file,) = case.glob("*_prediction.json")
        summary = json.loads(summary_file.read_text())
        summary["outputs"] = [str(Path(p).relative_to(case)) for p in summary["outputs"]]
        found[case.name] = (arrays, summary)
    return found


def _assert_same_outputs(a: Path, b: Path) -> None:
    first, second = _outputs(a), _outputs(b)
    assert sorted(first) == sorted(second)
    for case, (arrays, summary) in first.items():
        other_arrays, other_summary = second[case]
        # scores to float precision: one thread per process sums in another order than two threads
        np.testing.assert_allclose(summary.pop("frame_scores"), other_summary.pop("frame_scores"), rtol=1e-4, err_msg=case)
        assert summary == other_summary, case
        assert sorted(arrays) == sorted(other_arrays), case
        for name, array in arrays.items():
            np.testing.assert_array_equal(array, other_arrays[name], err_msg=f"{case}/{name}")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "monai_ext.cli", "segment", *args]


def test_read_cases_datalist_list_and_studies(tmp_path):
    with_splits = tmp_path / "datalist.json"
    with_splits.write_text(
        json.dumps(
            {
                "training": [{"id": "a", "image": "/x/a.nii.gz", "target": "liver"}],
                "validation": [
                    {"id": "b/../c", "image": "/x/b.nii.gz", "target": "spleen", "modality": "ct"},
                    {"id": "b/../c", "image": "/x/b.nii.gz", "target": "liver", "report": "r"},
                ],
            }
        )
    )
    cases = read_cases(with_splits, "validation")
    assert [c["id"] for c in cases] == ["b_.._c", "b_.._c_2"]  # no separators: a case cannot write outside the output
    assert [c["prompt"] for c in cases] == ["spleen", "liver"]
    assert cases[0]["modality"] == "ct" and cases[1]["report"] == "r"
    assert [c["prompt"] for c in read_cases(with_splits, prompt="kidney")] == ["kidney"] * 3

    studies = tmp_path / "studies"
    (studies / "patient1").mkdir(parents=True)
    (studies / "patient2.nii.gz").write_bytes(b"")
    (studies / ".hidden").write_bytes(b"")
    cases = read_cases(studies, prompt="liver")
    assert [(c["id"], Path(c["image"]).name) for c in cases] == [("patient1", "patient1"), ("patient2", "patient2.nii.gz")]

    with pytest.raises(ValueError, match="no prompt or target"):
        read_cases(studies)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no case"):
        read_cases(empty, prompt="liver")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not a JSON datalist"):
        read_cases(broken)
    with pytest.raises(FileNotFoundError):
        read_cases(tmp_path / "absent.json")


def test_pending_cases_skips_complete_ones(tmp_path):
    cases = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ct_prediction.json").write_text("{}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ct.nii.gz").write_bytes(b"")  # masks without their summary: killed mid-case, redone
    assert [c["id"] for c in pending_cases(cases, tmp_path)] == ["b", "c"]
    assert [c["id"] for c in pending_cases(cases, tmp_path, skip_done=False)] == ["a", "b", "c"]


def test_distributed_checks_on_a_one_process_group(tmp_path):
    import torch.distributed as dist

    assert check_cases_per_process(0) == 0  # not distributed: nothing to share
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="0 case"):
            check_cases_per_process(0)  # a process without a case would hang the others' metrics gathering
        assert check_cases_per_process(1) == 1
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "x_prediction.json").write_text("{}")
        assert [c["id"] for c in pending_cases([{"id": "a"}, {"id": "b"}], tmp_path)] == ["b"]  # decided by process 0
    finally:
        dist.destroy_process_group()


def test_batch_errors_are_one_line(tmp_path, capsys, datalist):
    assert main(["segment", "--output", str(tmp_path / "o")]) == 2
    assert "give one input" in capsys.readouterr().err
    assert main(["segment", "x.nii.gz", "--datalist", str(datalist), "--output", str(tmp_path / "o")]) == 2
    assert "got INPUT and --datalist" in capsys.readouterr().err
    assert main(["segment", "--studies", str(tmp_path / "absent"), "--prompt", "liver", "--output", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_batch_writes_every_case_and_a_summary(one_process, datalist, capsys):
    cases = json.loads(datalist.read_text())
    summary = json.loads((one_process / SUMMARY_FILE).read_text())
    assert summary["cases"] == summary["complete"] == len(cases) and summary["missing"] == []
    assert [r["id"] for r in summary["results"]] == [c["id"] for c in cases]
    assert {r["target"] for r in summary["results"]} == {"breast lesion", "polyp", "liver", "spleen"}
    for row in summary["results"]:
        assert Path(row["prediction"]).is_file()
    # run again: everything is written already, nothing is redone
    before = {p: p.stat().st_mtime_ns for p in one_process.rglob("*_prediction.json")}
    assert main(["segment", "--datalist", str(datalist), "--output", str(one_process), "--bundle", BUNDLE]) == 0
    assert f"{len(cases)} cases, {len(cases)} already written (skipped), 0 to segment" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in one_process.rglob("*_prediction.json")} == before


@pytest.mark.slow
def test_two_gloo_processes_give_the_one_process_outputs(one_process, datalist, tmp_path, free_port):
    out = tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
           "-m", "monai_ext.cli", "segment", "--datalist", str(datalist), "--output", str(out), "--bundle", BUNDLE]
    run = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on 2 processes" in run.stdout
    _assert_same_outputs(one_process, out)
    summary = json.loads((out / SUMMARY_FILE).read_text())
    reference = json.loads((one_process / SUMMARY_FILE).read_text())
    strip = lambda rows: [{k: v for k, v in r.items() if k != "prediction"} for r in rows]  # noqa: E731
    assert strip(summary["results"]) == strip(reference["results"])  # one summary, in the datalist's order


@pytest.mark.slow
def test_killed_batch_resumes_without_redoing_cases(one_process, datalist, tmp_path):
    out = tmp_path / "killed"
    cases = json.loads(datalist.read_text())
    proc = subprocess.Popen(_cli("--datalist", str(datalist), "--output", str(out), "--bundle", BUNDLE, "--quiet"),
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while len(list(out.glob("*/*_prediction.json"))) < 2:
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "no case written in 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = sorted(p.parent.name for p in out.glob("*/*_prediction.json"))
    assert 2 <= len(done) < len(cases)
    assert not (out / SUMMARY_FILE).exists()
    for summary_file in out.glob("*/*_prediction.json"):  # a case that looks complete is complete
        assert all(Path(p).is_file() for p in json.loads(summary_file.read_text())["outputs"])
    written = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}

    rerun = subprocess.run(_cli("--datalist", str(datalist), "--output", str(out), "--bundle", BUNDLE),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(cases)} cases, {len(done)} already written (skipped), {len(cases) - len(done)} to segment" in rerun.stdout
    for path, mtime in written.items():  # the cases done before the kill were not written again
        if path.parent.name in done:
            assert path.stat().st_mtime_ns == mtime, path
    _assert_same_outputs(one_process, out)
    assert json.loads((out / SUMMARY_FILE).read_text())["complete"] == len(cases)

