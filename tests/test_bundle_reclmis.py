"""The RecLMIS bundle through its command-line contract (docs/BUNDLES.md), on real data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_cli import (
    assert_unknown_prompt_writes_nothing,
    bundle_run,
    right_and_wrong_prompt_fractions,
    shipped_sample_dices,
    small_cvc_datalist,
)
from monai.bundle import ConfigParser
from monai.transforms import RandAffined

from monai_ext.bundle import load_parser
from monai_ext.engines import load_init_weights
from monai_ext.prompts import TextEncoder

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "reclmis_language_guided_segmentation"


def _bundle_run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return bundle_run(BUNDLE, *args, **kwargs)


def _parser(name: str, **overrides) -> ConfigParser:
    return load_parser(BUNDLE, name, overrides=overrides)


@pytest.fixture(scope="module")
def cvc_datalist(tmp_path_factory, shared_data) -> Path:
    """Real CVC-ClinicDB datalist: the two shortest sequences for training, the next one for validation."""
    return small_cvc_datalist(shared_data, tmp_path_factory.mktemp("cvc"))


@pytest.mark.parametrize("name", ["inference.json", "evaluate.json", "train.json"])
def test_configs_parse_and_build_the_network(name):
    parser = _parser(name)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, torch.nn.Module)
    assert parser.get_parsed_content("spatial_size") == [128, 128]
    if name != "train.json":
        # frames in batches of inference_batch_size; test-time augmentation off unless moves are given
        inferer = parser.get_parsed_content("inferer")
        assert inferer.moves == [] and inferer.inferer.batch_size == parser["inference_batch_size"]
        assert _parser(name, test_time_augmentation=[{"rotate": 0.1}]).get_parsed_content("inferer").moves == [{"rotate": 0.1}]
        # evaluate.json is inference.json's pipeline: the same transforms, no copy
        names = [type(t).__name__ for t in parser.get_parsed_content("preprocessing").transforms]
        assert names == ["LookupTargetd", "LoadSequenced", "DetectModalityd", "BuildPromptd", "EncodeTextd", "ModalityIntensityd", "ToSequenced"]


def test_inference_network_is_smaller_and_shipped_weights_load():
    from monai_ext.networks.nets.reclmis import count_parameters

    train_net = _parser("train.json").get_parsed_content("network_def")
    infer_net = _parser("inference.json").get_parsed_content("network_def")
    assert count_parameters(infer_net) < count_parameters(train_net)
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    infer_net.load_state_dict(state, strict=True)
    # the training network's inference path has exactly the shipped keys
    assert set(train_net.inference_network().state_dict()) == set(state)


@pytest.fixture(scope="module")
def shipped_network():
    parser = _parser("inference.json")
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True))
    return net.eval(), TextEncoder(max_length=64)


def test_forward_shapes_with_text_variants(shipped_network):
    net, encoder = shipped_network
    image = torch.rand(2, 3, 128, 128)
    short = encoder.encode(["polyp", "polyp"])
    long = encoder.encode(["a polyp in the colon, a raised lesion of the mucosa", "left ventricle"])
    with torch.no_grad():
        a = net(image, short.tokens, short.mask)
        b = net(image, long.tokens, long.mask)
        c = net(image, long)  # a TextFeatures object directly
        d = net(torch.rand(1, 3, 160, 160), encoder.encode(["spleen"]))
    assert a.shape == b.shape == (2, 1, 128, 128) and d.shape == (1, 1, 160, 160)
    torch.testing.assert_close(b, c)
    assert not torch.allclose(a[1], b[1]), "the prompt must change the prediction"
    with pytest.raises(ValueError):
        net(torch.rand(2, 3, 128), short.tokens, short.mask)


def test_inference_on_shipped_sample(tmp_path):
    _bundle_run("--output_dir", str(tmp_path))
    dices = shipped_sample_dices(tmp_path)
    # the sample is cvc_seq01, a validation sequence of the shipped weights: mean Dice 0.34 over
    # these 10 frames when measured (docs/README.md); guard against regressions well above chance
    assert np.mean(dices) > 0.3


def test_wrong_prompt_gives_a_near_empty_mask():
    right_fraction, wrong_fraction = right_and_wrong_prompt_fractions(BUNDLE)
    assert wrong_fraction < 0.01, f"'left ventricle' on colonoscopy frames marked {wrong_fraction:.3%} of pixels"
    assert right_fraction > 5 * wrong_fraction


def test_evaluate_writes_metrics_json(tmp_path, cvc_datalist):
    _bundle_run("--datalist", str(cvc_datalist), "--output_dir", str(tmp_path), config="evaluate.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_cases"] == 3
    assert set(metrics) >= {"dice", "iou", "hd95", "n_cases", "per_case", "per_dataset"}
    assert {c["dataset"] for c in metrics["per_case"]} == {"cvc_clinicdb"}
    for case in metrics["per_case"]:
        assert set(case) >= {"id", "target", "dataset", "dice", "iou", "hd95"} and 0 <= case["dice"] <= 1
    assert not (tmp_path / "masks").exists()  # masks only with --save_masks True


@pytest.mark.slow
def test_multi_gpu_evaluate_on_two_processes_gives_the_one_process_metrics(tmp_path, cvc_datalist):
    _bundle_run("--datalist", str(cvc_datalist), "--output_dir", str(tmp_path / "one"), config="evaluate.json")
    _bundle_run("--datalist", str(cvc_datalist), "--output_dir", str(tmp_path / "two"), config="multi_gpu_evaluate.json",
                torchrun=True)
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert two["n_cases"] == one["n_cases"] == 3  # 2 + 1 cases on the two processes, gathered into one file
    assert [c["id"] for c in two["per_case"]] == [c["id"] for c in one["per_case"]]
    for a, b in zip(one["per_case"], two["per_case"]):
        assert a["dice"] == pytest.approx(b["dice"], abs=1e-6) and a["hd95"] == pytest.approx(b["hd95"], abs=1e-4)


@pytest.mark.slow
def test_short_training_run_loss_falls_and_resumes(tmp_path, cvc_datalist):
    args = ["--datalist", str(cvc_datalist), "--output_dir", str(tmp_path), "--iterations", "8", "--val_interval", "1",
            "--val_max_examples", "8", "--learning_rate", "0.001", "--warmup_iterations", "2"]
    _bundle_run(*args, "--epochs", "2", config="train.json")
    _bundle_run(*args, "--epochs", "3", config="train.json")  # resumes from epoch 2
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[-1]["seg"] < log[0]["seg"], log
    assert all("val_mean_dice" in r and "val_empty_on_negative" in r for r in log)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_epoch=*.pt"))[-1] == "checkpoint_epoch=3.pt"
    # model.pt holds the inference network only
    infer_net = _parser("inference.json").get_parsed_content("network_def")
    infer_net.load_state_dict(torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True), strict=True)


def test_fine_tuning_starts_from_the_shipped_inference_weights(tmp_path, cvc_datalist):
    shipped = BUNDLE / "models" / "model.pt"
    state = torch.load(shipped, map_location="cpu", weights_only=True)
    parser = _parser("train.json", datalist=str(cvc_datalist), output_dir=str(tmp_path), init_weights=str(shipped))
    parser.get_parsed_content("training_setup")  # what the config's `initialize` runs before training
    network = parser.get_parsed_content("network_def")
    for key, value in network.segmenter.state_dict().items():
        torch.testing.assert_close(value, state[key].to(value.dtype), msg=key)
    # only the training-only parts (reconstruction, contrastive heads) start afresh
    export = parser.get_parsed_content("export_network")
    missing = load_init_weights(network, shipped, export)
    assert missing and not any(k.startswith("segmenter.") for k in missing)
    assert set(missing) == set(network.state_dict()) - {f"segmenter.{k}" for k in state}
    # train.json moves training examples (rotation/scale/shift, never flips); validation examples stay as stored
    train_steps = parser.get_parsed_content("train#augmentation").transforms
    assert any(isinstance(t, RandAffined) for t in train_steps)
    assert "flip" not in " ".join(type(t).__name__.lower() for t in train_steps)
    assert not any(isinstance(t, RandAffined) for t in parser.get_parsed_content("validate#dataset").transform.transforms)


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path, cvc_datalist):
    _bundle_run("--datalist", str(cvc_datalist), "--output_dir", str(tmp_path), "--epochs", "1", "--iterations", "3",
                "--val_max_examples", "4", config=["train.json", "multi_gpu_train.json"], torchrun=True)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]  # rank 0 alone logs and saves
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint_epoch=1.pt").is_file()


def test_unknown_prompt_fails_and_writes_nothing(tmp_path):
    assert_unknown_prompt_writes_nothing(BUNDLE, tmp_path)
