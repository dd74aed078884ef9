"""tools/threshold_sweep.py and tools/prompt_sensitivity.py with the shipped RecLMIS bundle, on real CVC-ClinicDB sequences."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import pytest
from bundle_cli import small_cvc_datalist

from monai_ext.bundle import load_parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import prompt_sensitivity  # noqa: E402
import threshold_sweep  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "reclmis_language_guided_segmentation"


@pytest.fixture(scope="module")
def cvc_datalist(tmp_path_factory, shared_data) -> Path:
    return small_cvc_datalist(shared_data, tmp_path_factory.mktemp("cvc"))


BUNDLE_THRESHOLD = load_parser(BUNDLE, "evaluate.json")["threshold"]


def evaluate(datalist: Path, split: str | list[str], output_dir: Path, **overrides) -> dict:
    """``metrics.json`` of an actual run of the bundle's evaluate.json (initialize, then the evaluator), as
    ``python -m monai.bundle run --config_file "['.../inference.json','.../evaluate.json']"`` does."""
    overrides = dict(datalist=str(datalist), split=split, output_dir=str(output_dir), **overrides)
    parser = load_parser(BUNDLE, "evaluate.json", overrides=overrides)
    parser.get_parsed_content("initialize")  # the weights
    parser.get_parsed_content("evaluator").run()
    return json.loads((output_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cvc_datalist) -> dict:
    out = tmp_path_factory.mktemp("sweep") / "sweep.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "training", "validation",
            "--thresholds", "0.3", str(BUNDLE_THRESHOLD), "0.9", "--json", str(out)]
    assert threshold_sweep.main(args) == 0
    return json.loads(out.read_text())


def test_sweep_at_the_bundle_threshold_equals_evaluate(sweep, cvc_datalist, tmp_path):
    expected = evaluate(cvc_datalist, ["training", "validation"], tmp_path)
    at_bundle = sweep[f"{BUNDLE_THRESHOLD:g}"]
    assert set(sweep) == {"0.3", f"{BUNDLE_THRESHOLD:g}", "0.9"} and at_bundle["n_cases"] == expected["n_cases"] == 3
    assert [c["id"] for c in at_bundle["per_case"]] == [c["id"] for c in expected["per_case"]]
    for got, want in zip(at_bundle["per_case"], expected["per_case"]):
        assert got.keys() == want.keys()
        for key in ("dice", "iou", "hd95"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), (got["id"], key)
    assert at_bundle["per_dataset"].keys() == expected["per_dataset"].keys()
    # each threshold is applied to the same probabilities: 0.3 and 0.9 give different masks
    assert sweep["0.3"]["dice"] != sweep["0.9"]["dice"]


def test_sweep_crosses_thresholds_with_minor_component_fractions(sweep, cvc_datalist, tmp_path):
    fraction = load_parser(BUNDLE, "evaluate.json")["min_component_fraction"]
    assert 0.0 < fraction < 1.0
    out = tmp_path / "fractions.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "validation",
            "--thresholds", str(BUNDLE_THRESHOLD), "--min_component_fractions", "0", str(fraction), "--json", str(out)]
    assert threshold_sweep.main(args) == 0
    result = json.loads(out.read_text())
    t = f"{BUNDLE_THRESHOLD:g}"
    assert set(result) == {f"{t}/0", f"{t}/{fraction:g}"} and result[f"{t}/0"]["n_cases"] == 1
    # the bundle's own fraction scores as the plain sweep (the bundle's post-processing) does
    plain = {case["id"]: case["dice"] for case in sweep[t]["per_case"]}
    for case in result[f"{t}/{fraction:g}"]["per_case"]:
        assert case["dice"] == pytest.approx(plain[case["id"]], abs=1e-6)
    # fraction 0 is no post-processing: evaluate.json with min_component_fraction 0
    expected = evaluate(cvc_datalist, "validation", tmp_path / "evaluate", min_component_fraction=0.0)
    assert [c["id"] for c in result[f"{t}/0"]["per_case"]] == [c["id"] for c in expected["per_case"]]
    for got, want in zip(result[f"{t}/0"]["per_case"], expected["per_case"]):
        assert got["dice"] == pytest.approx(want["dice"], abs=1e-6)


def test_sweep_overrides_evaluate_ids_such_as_test_time_augmentation(sweep, cvc_datalist, tmp_path, capsys):
    t = f"{BUNDLE_THRESHOLD:g}"
    moves = "[{'translate': [4, 0]}, {'scale': 0.9}]"
    out = tmp_path / "tta.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "validation", "--thresholds", t,
            "--override", f"test_time_augmentation={moves}", "--json", str(out)]
    assert threshold_sweep.main(args) == 0
    tta = json.loads(out.read_text())[t]["per_case"]
    plain = [c for c in sweep[t]["per_case"] if c["split"] == "validation"]
    assert [c["id"] for c in tta] == [c["id"] for c in plain]
    # the moved copies change the probabilities a little, not the verdict
    assert tta[0]["dice"] != pytest.approx(plain[0]["dice"], abs=1e-6)
    assert abs(tta[0]["dice"] - plain[0]["dice"]) < 0.1
    # the same override through evaluate.json gives the same Dice
    expected = evaluate(cvc_datalist, "validation", tmp_path / "evaluate",
                        test_time_augmentation=[{"translate": [4, 0]}, {"scale": 0.9}])
    assert tta[0]["dice"] == pytest.approx(expected["per_case"][0]["dice"], abs=1e-6)
    # an id evaluate.json does not have, or an item without '=', stops before anything is written
    with pytest.raises(SystemExit, match="no id 'test_time_augmentations'"):
        threshold_sweep.main(args[:-3] + ["test_time_augmentations=[]", "--json", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit) as raised:
        threshold_sweep.main(args[:-3] + ["test_time_augmentation", "--json", str(tmp_path / "x.json")])
    assert raised.value.code == 2 and "ID=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_sweep_with_the_box_refiner_equals_evaluate_with_it(sweep, cvc_datalist, tmp_path):
    t = f"{BUNDLE_THRESHOLD:g}"
    out = tmp_path / "refined.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "validation", "--thresholds", t,
            "--override", "refine_with_box_prompt=True", "--json", str(out)]
    assert threshold_sweep.main(args) == 0
    refined = json.loads(out.read_text())[t]["per_case"]
    plain = [c for c in sweep[t]["per_case"] if c["split"] == "validation"]
    assert [c["id"] for c in refined] == [c["id"] for c in plain]
    assert refined[0]["dice"] != pytest.approx(plain[0]["dice"], abs=1e-6)
    expected = evaluate(cvc_datalist, "validation", tmp_path / "evaluate", refine_with_box_prompt=True)
    assert refined[0]["dice"] == pytest.approx(expected["per_case"][0]["dice"], abs=1e-6)


def test_sweep_rejects_thresholds_outside_0_1(cvc_datalist, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        threshold_sweep.main(["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--thresholds", "0.5", "1.5",
                              "--json", str(tmp_path / "x.json")])
    assert raised.value.code == 2 and "1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        threshold_sweep.main(["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--min_component_fractions", "-0.1",
                              "--json", str(tmp_path / "x.json")])
    assert raised.value.code == 2 and "-0.1" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_prompt_sensitivity_asks_several_wrong_targets(sweep, cvc_datalist, tmp_path):
    out = tmp_path / "prompts.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "validation", "--wrong_prompts", "2",
            "--json", str(out)]
    assert prompt_sensitivity.main(args) == 0
    result = json.loads(out.read_text())["cvc_clinicdb"]
    assert result["n_cases"] == 1 and result["wrong_prompts"] == ["left ventricle", "liver"]
    per_prompt = result["per_wrong_prompt"]
    assert list(per_prompt) == ["left ventricle", "liver"]
    # the dataset figure is the mean over the prompts asked (one case: the mean of the two)
    assert result["empty_frames_wrong_prompt"] == pytest.approx(np.mean([v["empty_frames"] for v in per_prompt.values()]))
    assert result["foreground_wrong_prompt"] == pytest.approx(np.mean([v["foreground"] for v in per_prompt.values()]))
    for v in per_prompt.values():
        assert 0.0 <= v["empty_frames"] <= 1.0 and 0.0 <= v["foreground"] <= 1.0
    # the right prompt's Dice is the one evaluate.json gives the validation sequence
    validation = [c for c in sweep[f"{BUNDLE_THRESHOLD:g}"]["per_case"] if c["split"] == "validation"]
    assert result["dice_right_prompt"] == pytest.approx(validation[0]["dice"], abs=1e-6)


def test_prompt_sensitivity_scores_the_held_out_paraphrases(sweep, cvc_datalist, tmp_path):
    from monai_ext.prompts import HELD_OUT_PARAPHRASES

    out = tmp_path / "paraphrases.json"
    args = ["--bundle", str(BUNDLE), "--datalist", str(cvc_datalist), "--split", "validation", "--wrong_prompts", "0",
            "--paraphrases", "--json", str(out)]
    assert prompt_sensitivity.main(args) == 0
    result = json.loads(out.read_text())["cvc_clinicdb"]
    assert list(result["per_paraphrase"]) == list(HELD_OUT_PARAPHRASES) and result["per_wrong_prompt"] == {}
    # one case: the paraphrase figure is the mean of the five
    assert result["dice_paraphrases"] == pytest.approx(np.mean(list(result["per_paraphrase"].values())))
    assert all(0.0 <= d <= 1.0 for d in result["per_paraphrase"].values())
    # the canonical name's Dice (pooled over the sequence) is the one evaluate.json gives
    validation = [c for c in sweep[f"{BUNDLE_THRESHOLD:g}"]["per_case"] if c["split"] == "validation"]
    assert result["dice_right_prompt"] == pytest.approx(validation[0]["dice"], abs=1e-6)
    assert prompt_sensitivity._dice(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)) == 0.0
    assert prompt_sensitivity._dice(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)) == 1.0


def test_wrong_targets_are_never_the_dataset_own():
    from monai_ext.prompts import PromptLibrary

    library = PromptLibrary()
    own = {"cvc_clinicdb": {"polyp"}, "acdc": {"right ventricle", "myocardium", "left ventricle"},
           "carotid_us": {"common carotid artery"}, "busbra": {"breast lesion"}}
    for dataset, targets in prompt_sensitivity.WRONG_TARGETS.items():
        assert len(set(targets)) == 3, dataset
        for target in targets:
            assert library.lookup(target).name == target  # a known prompt, not a fallback
            assert target not in own.get(dataset, set()), (dataset, target)
    with pytest.raises(SystemExit):
        prompt_sensitivity.main(["--bundle", str(BUNDLE), "--datalist", "x.json", "--wrong_prompts", "4", "--json", "y.json"])
