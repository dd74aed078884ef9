"""The dictionary transforms the bundles' pipelines list: prompt, modality, frame-wise post-processing, writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_ext.io import SavePredictiond, frames_with_target, load_source
from monai_ext.prompts import CompoundPromptError, NegatedPromptError, TextFeatures, UnknownPromptError, build_prompt, default_library
from monai_ext.sample import sample_path
from monai_ext.transforms import (
    ApplyToFrames,
    ApplyToFramesd,
    BuildPromptd,
    DetectModalityd,
    EncodeTextd,
    LookupTargetd,
    ModalityIntensityd,
    RemoveMinorComponents,
    TargetMaskd,
    intensity_preset_for,
)


class WordCountEncoder:
    def encode(self, texts):
        length = max(len(t.split()) for t in texts)
        tokens = torch.arange(len(texts) * length * 2, dtype=torch.float32).reshape(len(texts), length, 2)
        return TextFeatures(tokens, torch.ones(len(texts), length, dtype=torch.bool), tokens.mean(1))


def test_prompt_transforms_resolve_build_and_encode_the_text():
    data = LookupTargetd(keys="prompt")({"prompt": "A Polyp in the colon"})
    assert data["target"] == "polyp" and data["typed_prompt"] == "A Polyp in the colon"
    assert data["target_similarity"] == 1.0  # "polyp in colon" is a synonym of polyp
    # the typed sentence leads the model's text, then the target's descriptions for the modality
    built = BuildPromptd(keys="target")({**data, "modality": "endoscopy", "report": None})
    assert built["prompt_text"] == "A Polyp in the colon. " + " ".join(default_library().lookup("polyp").prompts("endoscopy"))
    canonical = BuildPromptd(keys="target")({**LookupTargetd(keys="prompt")({"prompt": "polyp"}), "modality": "endoscopy"})
    assert canonical["prompt_text"] == build_prompt("polyp", "endoscopy")  # a canonical name: the text is unchanged
    with pytest.raises(CompoundPromptError, match="one target per prompt: 'the left kidney and the spleen' names left kidney and spleen"):
        LookupTargetd(keys="prompt")({"prompt": "the left kidney and the spleen"})
    with pytest.raises(NegatedPromptError, match="not the liver"):
        LookupTargetd(keys="prompt")({"prompt": "not the liver"})
    with pytest.raises(UnknownPromptError, match="flux capacitor"):
        LookupTargetd(keys="prompt")({"prompt": "flux capacitor"})
    with pytest.raises(ValueError, match="empty prompt"):
        LookupTargetd(keys="prompt")({"prompt": "  "})
    report = {"histology": "fibroadenoma", "BI-RADS": 3}
    built = BuildPromptd(keys="target")({"target": "breast lesion", "modality": "ultrasound", "report": report})
    assert built["prompt_text"] == build_prompt("breast lesion", "ultrasound", report=report)
    assert "fibroadenoma" in built["prompt_text"]
    assert BuildPromptd(keys="target", style="name")({"target": "spleen", "modality": "ct"})["prompt_text"] == "spleen"
    encoded = EncodeTextd(keys="prompt_text", encoder=WordCountEncoder())({"prompt_text": "left kidney"})
    assert encoded["text_tokens"].shape == (2, 2) and encoded["text_mask"].tolist() == [True, True]


def test_modality_transforms_detect_or_take_the_modality_and_apply_its_preset():
    ct = load_source(sample_path("ct_small"))
    detected = DetectModalityd(keys="image")({"image": ct, "target": "spleen", "modality": None})
    assert detected["modality"] == "ct" and detected["target_described_for_modality"] is True
    frames = load_source(sample_path("cvc_frames"))
    given = DetectModalityd(keys="image")({"image": frames, "target": "liver", "modality": "mr"})
    assert given["modality"] == "mr" and given["target_described_for_modality"] is True
    with pytest.raises(ValueError, match="unknown modality 'xray'"):
        DetectModalityd(keys="image")({"image": frames, "target": "liver", "modality": "xray"})
    out = ModalityIntensityd(keys="image")({"image": ct, "modality": "ct"})["image"]
    torch.testing.assert_close(out, intensity_preset_for("ct")(ct))
    assert out.shape[0] == 3 and 0 <= float(out.min()) and float(out.max()) <= 1


def test_target_mask_keeps_the_label_geometry():
    seg = load_source(sample_path("ct_small").parent / "seg.nii.gz")
    spleen = json.loads((sample_path("ct_small").parent / "labels_total.json").read_text())
    values = [int(k) for k, v in spleen.items() if v == "spleen"] if isinstance(spleen, dict) else [1]
    out = TargetMaskd(keys="label")({"label": seg, "label_values": values})["label"]
    assert out.dtype == torch.bool and out.shape == seg.shape and int(out.sum()) == int(torch.isin(seg.round().long(), torch.tensor(values)).sum())
    torch.testing.assert_close(out.affine, seg.affine)


def test_apply_to_frames_cleans_each_frame_at_the_input_resolution_and_maps_back():
    source = load_source(sample_path("ct_small"))
    mask = MetaTensor(torch.zeros(1, *source.shape[1:], dtype=torch.uint8), meta=dict(source.meta))
    mask[0, 20:40, 20:40, 5] = 1  # a big square on slice 5
    mask[0, 60:62, 60:62, 5] = 1  # a speck on the same slice
    mask[0, 70:72, 70:72, 9] = 1  # a speck alone on slice 9: the largest there, kept
    identity = ApplyToFrames(lambda frames: frames)(mask)
    assert torch.equal(identity.as_tensor(), mask.as_tensor()) and identity.dtype == torch.uint8
    cleaned = ApplyToFramesd(keys="pred", transform=RemoveMinorComponents(0.1))({"pred": mask})["pred"]
    expected = mask.clone()
    expected[0, 60:62, 60:62, 5] = 0
    assert torch.equal(cleaned.as_tensor(), expected.as_tensor())
    torch.testing.assert_close(cleaned.affine, source.affine)
    # frames are counted in the bundles' (RAS axial) order, whatever the stored axis order
    ras = frames_with_target(mask)
    assert len(ras) == 2 and set(ras) <= set(range(source.shape[-1]))


def test_save_prediction_writes_masks_and_a_summary(tmp_path):
    source = load_source(sample_path("cvc_frames"))
    mask = MetaTensor(torch.zeros(1, *source.shape[1:], dtype=torch.uint8), meta=dict(source.meta))
    mask[0, 100:150, 100:200, 3] = 1
    data = {"pred": mask, "image": torch.zeros(10, 3, 8, 8), "target": "polyp", "prompt_text": "polyp.", "modality": "endoscopy",
            "input": str(sample_path("cvc_frames")), "id": "case_7"}
    out = SavePredictiond(keys="pred", output_dir=tmp_path, folder_key="id")(data)
    summary = json.loads((tmp_path / "case_7" / "frames_prediction.json").read_text())
    assert summary == {
        "target": "polyp", "prompt": "polyp.", "modality": "endoscopy", "n_frames": 10, "frames_with_target": [3],
        "input": str(sample_path("cvc_frames")), "outputs": [str(tmp_path / "case_7" / "frames" / f"{i}_mask.png") for i in range(1, 11)],
    }
    assert out["pred_files"][-1] == str(tmp_path / "case_7" / "frames_prediction.json")
    written = np.asarray(Image.open(tmp_path / "case_7" / "frames" / "4_mask.png"))
    assert written.shape == (288, 384) and int((written > 0).sum()) == 50 * 100
