"""tools/verify_bundles.py: every bundle in bundles/ passes; broken fixtures fail the right check."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from monai_ext.bundle import verify as bundle_verify
from monai_ext.bundle import SCHEMA_FILE, CheckResult, verify_bundle

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p for p in (REPO / "bundles").glob("*") if p.is_dir() and not p.name.startswith((".", "_")))


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # the fixture network is tests.fixtures.tiny_net


@pytest.fixture(scope="session")
def tiny_bundle_src(tmp_path_factory) -> Path:
    import sys

    sys.path.insert(0, str(REPO))
    from tests.fixtures import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny_bundle")


@pytest.fixture
def tiny_bundle(tiny_bundle_src, tmp_path) -> Path:
    """A fresh copy per test, free to break."""
    return Path(shutil.copytree(tiny_bundle_src, tmp_path / "tiny_bundle"))


def failed(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.message for r in results if not r.passed}


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _load_tool():
    spec = importlib.util.spec_from_file_location("verify_bundles_tool", REPO / "tools" / "verify_bundles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_project_bundle(bundle):
    results = verify_bundle(bundle)
    assert not failed(results), bundle_verify.format_report(bundle, results)


def test_schema_is_draft_2019_09():
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/draft/2019-09")
    jsonschema.Draft201909Validator.check_schema(schema)


def test_tiny_bundle_passes(tiny_bundle):
    results = verify_bundle(tiny_bundle)
    assert not failed(results), bundle_verify.format_report(tiny_bundle, results)
    names = {r.name for r in results}
    assert {"metadata schema", "network input/output", "export torchscript", "checkpoint loads"} <= names
    assert all(r.status == "PASS" for r in results)


def test_verify_metadata_offline(tiny_bundle, monkeypatch):
    """monai's verify_metadata uses the local schema file and never downloads."""
    import monai.apps.utils

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(monai.apps.utils, "urlretrieve", no_network)
    monkeypatch.setattr(monai.apps.utils, "urlopen", no_network)
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(tiny_bundle / "configs/metadata.json"), filepath=str(SCHEMA_FILE))


def test_missing_file_fails(tiny_bundle):
    (tiny_bundle / "docs" / "README.md").unlink()
    (tiny_bundle / "models" / "model.pt").unlink()
    bad = failed(verify_bundle(tiny_bundle))
    assert set(bad) == {"file docs/README.md", "file models/model.pt"}


def test_model_too_big_fails(tiny_bundle, monkeypatch):
    monkeypatch.setattr(bundle_verify, "MAX_MODEL_BYTES", 100)
    assert "model.pt size <= 50 MB" in failed(verify_bundle(tiny_bundle))


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.pop("task"),
        lambda m: m["network_data_format"]["inputs"]["image"].update(num_channels="three"),
        lambda m: m["network_data_format"].pop("outputs"),
        lambda m: m.update(references="not a list"),
        lambda m: m["network_data_format"]["inputs"]["text"].pop("value_range"),
    ],
    ids=["no_task", "channels_not_int", "no_outputs", "references_type", "text_no_value_range"],
)
def test_bad_metadata_fails(tiny_bundle, edit):
    _edit_json(tiny_bundle / "configs/metadata.json", edit)
    assert "metadata schema" in failed(verify_bundle(tiny_bundle))


def test_metadata_not_json_fails(tiny_bundle):
    (tiny_bundle / "configs/metadata.json").write_text("{not json")
    assert "metadata parses as JSON" in failed(verify_bundle(tiny_bundle))


def test_version_not_in_changelog_fails(tiny_bundle):
    _edit_json(tiny_bundle / "configs/metadata.json", lambda m: m.update(version="0.2.0"))
    bad = failed(verify_bundle(tiny_bundle))
    assert set(bad) == {"metadata version in changelog"}
    assert "0.2.0" in bad["metadata version in changelog"]


def test_config_not_parsing_fails(tiny_bundle):
    (tiny_bundle / "configs/evaluate.json").write_text('{"network_def": ')
    assert "config inference.json + evaluate.json parses" in failed(verify_bundle(tiny_bundle))


def test_config_undefined_reference_fails(tiny_bundle):
    _edit_json(tiny_bundle / "configs/train.json", lambda c: c.update(run=["$print(@no_such_id)"]))
    bad = failed(verify_bundle(tiny_bundle))
    assert "config train.json parses" in bad and "no_such_id" in bad["config train.json parses"]


def test_network_def_not_instantiating_fails(tiny_bundle):
    _edit_json(
        tiny_bundle / "configs/inference.json",
        lambda c: c["network_def"].update({"_target_": "tests.fixtures.tiny_net.NoSuchNet"}),
    )
    bad = failed(verify_bundle(tiny_bundle))
    assert "config inference.json network_def instantiates" in bad
    assert "network input/output" in bad


def test_output_channels_mismatch_fails(tiny_bundle):
    _edit_json(
        tiny_bundle / "configs/metadata.json",
        lambda m: m["network_data_format"]["outputs"]["pred"].update(num_channels=2),
    )
    bad = failed(verify_bundle(tiny_bundle))
    assert set(bad) == {"network input/output"}


def test_output_spatial_mismatch_fails(tiny_bundle):
    _edit_json(
        tiny_bundle / "configs/metadata.json",
        lambda m: m["network_data_format"]["outputs"]["pred"].update(spatial_shape=[16, 16]),
    )
    assert set(failed(verify_bundle(tiny_bundle))) == {"network input/output"}


def test_unknown_export_format_fails(tiny_bundle):
    _edit_json(tiny_bundle / "configs/inference.json", lambda c: c.update(export_formats=["tensorrt"]))
    assert "export formats declared" in failed(verify_bundle(tiny_bundle))


def test_checkpoint_mismatch_fails(tiny_bundle):
    import torch

    torch.save({"model": {"unrelated.weight": torch.zeros(1)}}, tiny_bundle / "models/model.pt")
    bad = failed(verify_bundle(tiny_bundle))
    assert "checkpoint loads" in bad and "export torchscript" in bad


def test_cli_exit_codes(tiny_bundle, tmp_path, capsys):
    tool = _load_tool()
    assert tool.main([str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    assert "PASS  metadata schema" in out and "1/1 bundles passed" in out
    (tiny_bundle / "LICENSE").unlink()
    assert tool.main([str(tiny_bundle)]) == 1
    assert "FAIL  file LICENSE: missing" in capsys.readouterr().out
    empty = tmp_path / "no_bundles"
    empty.mkdir()
    assert tool.main(["--bundles_dir", str(empty)]) == 1
    assert tool.main(["--bundles_dir", str(empty), "nonexistent"]) == 1


def test_onnx_export_declared(tiny_bundle):
    """``export_formats: ["onnx"]`` is checked when the exporter is installed, else reported as SKIP."""
    _edit_json(tiny_bundle / "configs/inference.json", lambda c: c.update(export_formats=["onnx"]))
    results = {r.name: r for r in verify_bundle(tiny_bundle)}
    assert "export torchscript" not in results
    onnx_check = results["export onnx"]
    if importlib.util.find_spec("onnx") is None:
        assert onnx_check.status == "SKIP" and "onnx" in onnx_check.message
    assert onnx_check.passed


def test_text_input_formats():
    import torch

    from monai_ext.bundle import make_image_input, make_text_input, register_text_format
    from monai_ext.prompts import TextFeatures

    meta = json.loads((REPO / "tests/fixtures/tiny_bundle/configs/metadata.json").read_text())
    assert make_image_input(meta, batch=2).shape == (2, 3, 32, 32)
    text = make_text_input(meta, batch=2)
    assert isinstance(text, TextFeatures)
    assert text.tokens.shape == (2, 16, 32) and text.mask.dtype == torch.bool and text.pooled.shape == (2, 32)
    meta["network_data_format"]["inputs"]["text"].update(format="token-features", spatial_shape=[7])
    assert make_text_input(meta, batch=1).shape == (1, 7, 32)
    register_text_format("test-ones", lambda b, n, d, dt, dev: torch.ones(b, d))
    meta["network_data_format"]["inputs"]["text"]["format"] = "test-ones"
    assert make_text_input(meta, batch=3).shape == (3, 32)
    meta["network_data_format"]["inputs"]["text"]["format"] = "no-such-format"
    with pytest.raises(ValueError, match="unknown text format"):
        make_text_input(meta)
    del meta["network_data_format"]["inputs"]["text"]
    assert make_text_input(meta) is None


def test_network_inputs_follow_the_declared_text_layout():
    """One ``text`` argument, or typed ``text_tokens`` / ``text_mask`` tensors, as metadata declares them."""
    import torch

    from monai_ext.bundle import make_network_inputs
    from monai_ext.prompts import TextFeatures

    meta = json.loads((REPO / "tests/fixtures/tiny_bundle/configs/metadata.json").read_text())
    image, text = make_network_inputs(meta, batch=2)
    assert image.shape == (2, 3, 32, 32) and isinstance(text, TextFeatures)
    inputs = meta["network_data_format"]["inputs"]
    spec = inputs.pop("text")
    inputs["text_tokens"] = {**spec, "format": "token-features", "spatial_shape": [7]}
    inputs["text_mask"] = {**spec, "type": "mask", "format": "token-mask", "num_channels": 0, "dtype": "bool"}
    image, tokens, mask = make_network_inputs(meta, batch=2)
    assert tokens.shape == (2, 7, 32) and tokens.dtype == torch.float32
    assert mask.shape == (2, 7) and mask.dtype == torch.bool and bool(mask.all())
    del inputs["text_mask"]
    assert len(make_network_inputs(meta, batch=1)) == 2
    del inputs["text_tokens"]
    assert len(make_network_inputs(meta, batch=1)) == 1


def test_configs_that_disagree_on_a_shared_setting_fail(tiny_bundle):
    from monai_ext.bundle import config_disagreements

    assert config_disagreements(tiny_bundle) == []
    # a setting both configs define, with two values
    _edit_json(tiny_bundle / "configs/inference.json", lambda c: c.update(threshold=0.4))
    _edit_json(tiny_bundle / "configs/train.json", lambda c: c.update(threshold=0.5))
    bad = failed(verify_bundle(tiny_bundle))
    assert set(bad) == {"configs agree on shared settings"}
    assert "threshold: inference.json has 0.4, train.json 0.5" in bad["configs agree on shared settings"]
    # a trained network whose weights would not load into the inference network
    _edit_json(tiny_bundle / "configs/train.json", lambda c: c.update(threshold=0.4) or c["network_def"].update(features=16))
    assert [p.split(":")[0] for p in config_disagreements(tiny_bundle)] == ["network_def"]
