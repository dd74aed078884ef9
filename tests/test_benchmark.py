"""tools/benchmark.py on the tiny fixture bundle (short sequences)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.fixtures import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("bench") / "tiny_bundle")


def test_benchmark_cli(tiny_bundle, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), "--bundle", str(tiny_bundle), "--json", str(out),
         "--frames", "2", "4", "--threads", "1", "--warmup", "1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["bundle"] == "tiny_bundle" and rep["device"] == "cpu"
    assert rep["parameters"] == 761
    assert rep["frame_shape"] == [3, 32, 32]
    # conv 3->8 3x3 + conv 8->1 1x1 on 32x32, FiLM linear: 2 * MACs
    expected_flops = 2 * (32 * 32 * 8 * 3 * 9 + 32 * 32 * 8 + 32 * 16)
    assert rep["gflops_per_frame"] * 1e9 == pytest.approx(expected_flops, rel=0.01)
    assert rep["torch_threads"] == 1
    assert [r["frames"] for r in rep["runs"]] == [2, 4]
    for r in rep["runs"]:
        assert r["mode"] == "frame-wise" and r["batch_size"] == 2  # inference_batch_size of the config
        assert r["text_source"] == "random text features"
        assert r["per_frame_latency_ms"] > 0 and r["frames_per_s"] > 0 and r["sequence_s"] > 0
        assert r["peak_rss_mb"] >= r["peak_rss_load_mb"] > 50
        assert r["torch_threads"] == 1
    assert "ms/frame" in proc.stdout


@pytest.fixture(scope="module")
def tool():
    """tools/benchmark.py as a module (in-process workers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_tool", REPO / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sequence_inferer_and_text_encoder(tool, tiny_bundle, tmp_path, monkeypatch):
    """A streaming bundle: ``sequence_inferer`` and ``text_encoder`` ids are used (in-process worker); the
    sequence inferer gets the encoded prompt as token-feature and mask tensors."""
    import shutil

    monkeypatch.syspath_prepend(str(REPO))
    b = Path(shutil.copytree(tiny_bundle, tmp_path / "stream"))
    cfg = json.loads((b / "configs/inference.json").read_text())
    cfg["imports"].append("$import monai_ext")
    cfg["text_encoder"] = (
        "$lambda s: monai_ext.prompts.TextFeatures("
        "torch.ones(1, len(s), 32), torch.ones(1, len(s), dtype=torch.bool), torch.ones(1, 32))"
    )
    cfg["prompt"] = "left kidney"
    # called as StreamingSequenceInferer is: the token features and their mask, two tensors
    cfg["sequence_inferer"] = (
        "$lambda frames, text_tokens, text_mask: torch.cat("
        "[@network(f[None], {'tokens': text_tokens.float(), 'mask': text_mask.bool()}) for f in frames])"
    )
    (b / "configs/inference.json").write_text(json.dumps(cfg))
    res = tool.run_worker(b, 3, "cpu", 1, "inference.json", cost=True)
    assert res["cost"]["parameters"] == 761 and res["cost"]["gflops_per_frame"] > 0
    assert res["mode"] == "sequence_inferer" and res["frames"] == 3
    assert res["text_source"] == "text_encoder" and res["text_encode_s"] >= 0
    assert res["per_frame_latency_ms"] > 0
    import torch

    t = tool.expand_text({"tokens": torch.zeros(1, 4, 32), "mask": torch.ones(1, 4)}, 3)
    assert t["tokens"].shape == (3, 4, 32) and t["mask"].shape == (3, 4)
    from monai_ext.prompts import TextFeatures

    t = tool.expand_text(TextFeatures(torch.zeros(1, 4, 32), torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 32)), 3)
    assert isinstance(t, TextFeatures) and t.tokens.shape == (3, 4, 32) and t.pooled.shape == (3, 32)


@pytest.mark.parametrize(
    "bundle, mode",
    [("reclmis_language_guided_segmentation", "frame-wise"), ("tgsam2_text_guided_sequence_segmentation", "sequence_inferer")],
)
def test_shipped_bundles_get_typed_text_tensors(tool, bundle, mode):
    """The shipped bundles' networks take ``(image, text_tokens, text_mask)``: RecLMIS frame-wise with the encoded
    prompt's tensors; TGSAM-2 through the StreamingSequenceInferer of its config's ``inferer`` (in-process worker)."""
    from monai_ext.bundle import resolve_bundle

    res = tool.run_worker(resolve_bundle(bundle), 2, "cpu", 1, "inference.json")
    assert res["mode"] == mode and res["frames"] == 2 and res["text_source"] == "text_encoder"
    assert res["per_frame_latency_ms"] > 0 and res["sequence_s"] > 0


PREPROCESSING = [
    "LookupTargetd", "LoadSequenced", "DetectModalityd", "BuildPromptd", "EncodeTextd", "ModalityIntensityd", "ToSequenced"
]
POSTPROCESSING = ["ToDeviced", "Activationsd", "FrameScoresd", "Invertd", "AsDiscreted", "ApplyToFramesd"]


def test_end_to_end_benchmark_times_the_pipeline_stages(tmp_path):
    """--input/--prompt: the bundle's inference.json pipeline on a real input, transform by transform (RecLMIS,
    the shipped CVC-ClinicDB sample)."""
    from monai_ext.sample import sample_path

    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), "--bundle", "reclmis_language_guided_segmentation",
         "--input", str(sample_path("cvc_frames")), "--prompt", "polyp", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["target"] == "polyp" and rep["modality"] == "endoscopy" and rep["frames"] == 10
    # the transforms of the config's preprocessing, its inferer, the transforms of its postprocessing
    stages = PREPROCESSING + ["inferer"] + POSTPROCESSING + ["TargetPresenced", "SavePredictiond"]
    assert list(rep["seconds"]) == stages and all(v >= 0.0 for v in rep["seconds"].values())
    assert rep["seconds"]["inferer"] > 0.0 and rep["seconds"]["LoadSequenced"] > 0.0 and rep["seconds"]["SavePredictiond"] > 0.0
    # the stages are parts of the whole call (medians of one timed run)
    assert sum(rep["seconds"].values()) <= rep["total_s"]
    assert rep["ms_per_frame"] == pytest.approx(1000.0 * rep["total_s"] / 10)
    assert rep["peak_rss_mb"] >= rep["peak_rss_load_mb"] > 0 and rep["torch_threads"] == 1
    # nothing is left in the working folder: the masks went to a temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2e.json"]


@pytest.mark.slow
def test_end_to_end_benchmark_with_an_override_times_the_refinement(tmp_path):
    """--override: the optional LiteMedSAM box refinement shows as its own stage (and the copy of the loaded input it needs)."""
    from monai_ext.sample import sample_path

    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), "--bundle", "reclmis_language_guided_segmentation",
         "--input", str(sample_path("cvc_frames")), "--prompt", "polyp", "--threads", "1", "--json", str(out),
         "--override", "refine_with_box_prompt=True"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["overrides"] == ["refine_with_box_prompt=True"] and rep["frames"] == 10
    stages = PREPROCESSING[:2] + ["CopyItemsd"] + PREPROCESSING[2:] + ["inferer"] + POSTPROCESSING
    stages += ["BoxPromptRefined", "TargetPresenced", "SavePredictiond"]
    assert list(rep["seconds"]) == stages and rep["seconds"]["BoxPromptRefined"] > 0.0
    assert sum(rep["seconds"].values()) <= rep["total_s"]


def test_end_to_end_benchmark_bad_arguments(tool, tmp_path, capsys):
    bundle = ["--bundle", "reclmis_language_guided_segmentation"]
    # the command line itself once; the other refusals in-process (each new process spends seconds importing MONAI)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "benchmark.py"), *bundle, "--input", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--input and --prompt go together" in proc.stderr
    with pytest.raises(FileNotFoundError, match="benchmark input not found.*missing.nii.gz"):
        tool.main([*bundle, "--input", str(tmp_path / "missing.nii.gz"), "--prompt", "liver"])
    for args, message in (
        (["--override", "refine_with_box_prompt=True"], "--override applies to the end-to-end run"),
        (["--input", str(tmp_path), "--prompt", "polyp", "--override", "refine_with_box_prompt"], "ID=VALUE"),
    ):
        with pytest.raises(SystemExit) as raised:
            tool.main([*bundle, *args])
        assert raised.value.code == 2 and message in capsys.readouterr().err
