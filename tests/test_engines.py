"""The inference pipeline the bundle configs assemble (transforms, inferers, post-processing, writer) and the
engines' helpers (test-time augmentation, starting weights), on real inputs with stand-in networks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_ext.bundle import BundlePipeline, load_parser
from monai_ext.data import read_datalist
from monai_ext.engines import AffineTTAInferer, FramewiseSequenceInferer, latest_checkpoint, load_init_weights
from monai_ext.io import SequenceReadError, load_source
from monai_ext.prompts import TextFeatures, UnknownPromptError, build_prompt
from monai_ext.sample import sample_path
from monai_ext.transforms import detect_modality, frame_preprocessing, target_mask

RECLMIS = Path(__file__).resolve().parents[1] / "bundles" / "reclmis_language_guided_segmentation"


class BrightnessNet(torch.nn.Module):
    """A deterministic 'network': logit = brightness - 0.5, so bright pixels are the mask."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, image, text_tokens, text_mask=None):
        return self.scale * (image.mean(1, keepdim=True) - 0.5)


class FixedTextEncoder:
    """Deterministic text features (one token per word) without loading a language model."""

    def encode(self, texts):
        n = len(texts)
        length = max(len(t.split()) for t in texts)
        tokens = torch.ones(n, length, 4)
        return TextFeatures(tokens=tokens, mask=torch.ones(n, length, dtype=torch.bool), pooled=tokens.mean(1))


def _overrides(network: torch.nn.Module, size: int = 64, **more) -> dict:
    """The RecLMIS bundle's inference.json with a stand-in network and text encoder, no weights to load."""
    return {
        "network_def": network,
        "text_encoder": FixedTextEncoder(),
        "image_size": size,
        "threshold": 0.5,
        "min_component_fraction": 0.0,
        "initialize": [],
        "device": torch.device("cpu"),
        **more,
    }


def pipeline(network: torch.nn.Module, size: int = 64, **more) -> BundlePipeline:
    return BundlePipeline(load_parser(RECLMIS, "inference.json", overrides=_overrides(network, size, **more)))


def run_inference(network, tmp_path, input, prompt, size: int = 64, **more) -> dict:
    """inference.json's evaluator run on one input; returns the written summary."""
    parser = load_parser(RECLMIS, "inference.json", overrides=_overrides(network, size, input=str(input), prompt=prompt, output_dir=str(tmp_path), **more))
    parser.get_parsed_content("evaluator").run()
    return json.loads(next(Path(tmp_path).glob("*_prediction.json")).read_text())


def test_detect_modality_on_real_inputs(shared_data):
    ct = load_source(shared_data / "totalseg/ct_small/ct.nii.gz")
    mr = load_source(shared_data / "totalseg/mr_small/mr.nii.gz")
    cvc = load_source(sample_path("cvc_frames"))
    us = load_source(shared_data / "carotid_us" / sorted(p.name for p in (shared_data / "carotid_us").iterdir() if p.is_dir())[0])
    assert detect_modality(ct, ct.meta) == "ct"
    assert detect_modality(mr, mr.meta) == "mr"
    assert detect_modality(cvc, cvc.meta) == "endoscopy"
    assert detect_modality(us, us.meta) == "ultrasound"
    # the prompt's modalities never override what the data say
    assert detect_modality(cvc, cvc.meta, hint=["ct", "mr"]) == "endoscopy"
    assert detect_modality(us, us.meta, hint=["mr"]) == "ultrasound"
    assert detect_modality(ct, ct.meta, hint=["mr"]) == "ct"  # Hounsfield values
    assert detect_modality(mr, mr.meta, hint=["ct", "mr"]) == "mr"
    # a volume without Hounsfield values is CT only when the target is described for CT and not MR
    assert detect_modality(mr, mr.meta, hint=["ct"]) == "ct"
    # a DICOM Modality tag wins
    assert detect_modality(cvc, dict(cvc.meta, Modality="US"), hint=["endoscopy"]) == "ultrasound"


def test_target_mask_binary_and_multilabel():
    png = torch.tensor([[[0.0, 128.0, 255.0, 100.0]]])
    assert target_mask(png, [255]).flatten().tolist() == [False, True, True, False]
    seg = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])
    assert target_mask(seg, [1]).flatten().tolist() == [False, True, False, False]
    assert target_mask(seg, [1, 3]).flatten().tolist() == [False, True, False, True]


def test_framewise_inferer_batches_equal_single_frames():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 1, 3, padding=1)
    wrapped = lambda x, t, m: net(x) + t.mean() * 0  # noqa: E731
    frames = torch.rand(7, 3, 16, 16)
    tokens, mask = torch.rand(1, 5, 4), torch.ones(1, 5, dtype=torch.bool)
    batched = FramewiseSequenceInferer(batch_size=3)(frames, wrapped, tokens, mask)
    single = torch.cat([wrapped(frames[i : i + 1], tokens, mask) for i in range(7)])
    assert batched.shape == (7, 1, 16, 16)
    torch.testing.assert_close(batched, single)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        FramewiseSequenceInferer()(frames[0], wrapped, tokens, mask)
    with pytest.raises(ValueError, match="batch_size"):
        FramewiseSequenceInferer(batch_size=0)


class PositionNet(torch.nn.Module):
    """Logits that depend on where a pixel is, not on the image: a moved copy predicts something else."""

    def forward(self, image, text_tokens, text_mask=None):
        h, w = image.shape[-2:]
        ramp = torch.linspace(-3, 3, w).expand(h, w) + torch.linspace(-1, 1, h)[:, None]
        return ramp.expand(image.shape[0], 1, h, w).clone()


def _cvc_frames(size: int = 64) -> torch.Tensor:
    return torch.as_tensor(frame_preprocessing("endoscopy", (size, size))(load_source(sample_path("cvc_frames"))))


def test_affine_tta_inferer_moves_predictions_back():
    frames, tokens = _cvc_frames(), torch.ones(1, 2, 4)
    inner = FramewiseSequenceInferer(batch_size=4)
    plain = inner(frames, BrightnessNet(), tokens)
    # no moves: the wrapped inferer's logits, unchanged
    torch.testing.assert_close(AffineTTAInferer(inner)(frames, BrightnessNet(), tokens), plain)
    # a network that moves with the image (pixel-wise): whole-pixel moves undone exactly, every pixel
    moves = [{"translate": [3, 0]}, {"translate": [0, -5]}, {"translate": [-2, 4]}]
    tta = AffineTTAInferer(inner, moves)(frames, BrightnessNet(), tokens)
    assert tta.shape == plain.shape == (10, 1, 64, 64)
    torch.testing.assert_close(torch.sigmoid(tta), torch.sigmoid(plain), atol=2e-4, rtol=0)
    # rotation and scale interpolate: the mask of the averaged probabilities stays the plain mask on
    # all but a thin rim of boundary pixels
    tta = AffineTTAInferer(inner, [{"rotate": 0.2}, {"scale": 0.9}, {"scale": [1.1, 1.0]}])(frames, BrightnessNet(), tokens)
    changed = ((tta > 0) != (plain > 0)).float().mean()
    assert 0 < changed < 0.03


def test_affine_tta_inferer_averages_only_where_a_moved_copy_saw_the_pixel():
    frames, tokens = torch.rand(2, 3, 16, 16), torch.ones(1, 2, 4)
    inner = FramewiseSequenceInferer()
    plain = torch.sigmoid(inner(frames, PositionNet(), tokens))
    got = torch.sigmoid(AffineTTAInferer(inner, [{"translate": [0, 2]}])(frames, PositionNet(), tokens))
    # the copy (frame content moved 2 columns towards column 0) predicts, moved back, at column c what
    # PositionNet gives at column c - 2; the 2 columns it never saw keep the plain prediction
    moved_back = torch.roll(plain, shifts=2, dims=-1)
    torch.testing.assert_close(got[..., 2:], ((plain + moved_back) / 2)[..., 2:], atol=1e-4, rtol=0)
    torch.testing.assert_close(got[..., :2], plain[..., :2], atol=1e-5, rtol=0)
    assert (got - plain).abs().max() > 0.01  # the average did change the interior


def test_affine_tta_inferer_rejects_bad_moves_and_lazy_frames():
    inner = FramewiseSequenceInferer()
    with pytest.raises(ValueError, match="unknown key.*flip"):
        AffineTTAInferer(inner, [{"flip": 1}])
    with pytest.raises(ValueError, match="scale must be positive"):
        AffineTTAInferer(inner, [{"scale": 0}])
    with pytest.raises(ValueError, match="1 or 2 values"):
        AffineTTAInferer(inner, [{"translate": [1, 2, 3]}])
    frames = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"one \(T, C, H, W\) tensor"):
        AffineTTAInferer(lambda f, n, t, m: torch.zeros(2, 1, 16, 16), [{"translate": 2}])(iter(frames), None, None)


def test_pipeline_reads_the_input_by_its_data_and_warns_of_a_target_not_described_for_it(tmp_path, caplog):
    # "liver" is described for CT and MR; the colonoscopy frames stay endoscopy (not CT-windowed)
    with caplog.at_level(logging.WARNING, logger="monai_ext.transforms.modality"):
        summary = run_inference(BrightnessNet(), tmp_path, sample_path("cvc_frames"), "liver")
    assert summary["modality"] == "endoscopy" and summary["target_described_for_modality"] is False
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "'liver' is described for ct/mr, not for this endoscopy input" in warning[0]
    # the text falls back to the first described modality's descriptions (as training's wrong-prompt examples)
    assert summary["prompt"] == build_prompt("liver", "ct")
    # a modality given by the user is used as it is
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_ext.transforms.modality"):
        data = pipeline(BrightnessNet()).preprocess({"image": sample_path("cvc_frames"), "prompt": "liver", "modality": "ct"})
    assert data["modality"] == "ct" and data["target_described_for_modality"] is True and not caplog.records


def test_pipeline_writes_frame_masks_in_input_geometry(tmp_path):
    summary = run_inference(BrightnessNet(), tmp_path, sample_path("cvc_frames"), "a polyp in the colon")
    pngs = sorted((tmp_path / "frames").glob("*_mask.png"))
    assert len(pngs) == 10 and summary["outputs"] == [str(tmp_path / "frames" / f"{i}_mask.png") for i in range(1, 11)]
    for p in pngs:
        with Image.open(p) as im:
            assert im.size == (384, 288)
            assert set(np.unique(np.asarray(im))) <= {0, 255}
    assert summary["target"] == "polyp" and summary["modality"] == "endoscopy" and summary["n_frames"] == 10
    assert summary["target_described_for_modality"] is True and summary["input"] == str(sample_path("cvc_frames"))
    # the brightness 'network' marks bright pixels: the written mask follows the input frame
    frame = np.asarray(Image.open(sample_path("cvc_frames") / "1.png").convert("L"), dtype=float)
    with Image.open(tmp_path / "frames" / "1_mask.png") as im:
        mask = np.asarray(im) > 0
    assert frame[mask].mean() > frame[~mask].mean()


class DiscNet(torch.nn.Module):
    """A 'network' whose logit is a smooth disc: positive inside radius 0.3 (of the frame) around the centre."""

    def forward(self, image, text_tokens, text_mask=None):
        h, w = image.shape[-2:]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h - 0.5
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w - 0.5
        radius = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
        return (40.0 * (0.3 - radius)).expand(image.shape[0], 1, h, w)


def _disc_dice(mask: np.ndarray) -> float:
    h, w = mask.shape
    ys = (np.arange(h) + 0.5) / h - 0.5
    xs = (np.arange(w) + 0.5) / w - 0.5
    disc = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2) < 0.3
    return 2 * float((mask & disc).sum()) / float(mask.sum() + disc.sum())


def test_pipeline_thresholds_probabilities_at_input_size():
    from monai.transforms import AsDiscreted

    pipe = pipeline(DiscNet(), size=16)
    data = pipe.predict(pipe.preprocess({"image": sample_path("cvc_frames"), "prompt": "polyp"}))  # 10 frames of 288 x 384
    assert data["pred"].shape == (10, 1, 16, 16)
    cut = pipe.index_of(AsDiscreted)
    probabilities = pipe.postprocess(data, stop=cut)["pred"]
    assert probabilities.shape == (1, 288, 384, 10) and probabilities.dtype == torch.float32
    assert 0.0 <= float(probabilities.min()) and float(probabilities.max()) <= 1.0
    mask = pipe.postprocess(data, stop=cut + 1)["pred"]
    assert mask.dtype == torch.uint8 and torch.equal(mask.as_tensor(), (probabilities.as_tensor() >= 0.5).to(torch.uint8))
    # the disc made on a 16x16 grid: resampling the probabilities recovers its round outline at 288 x 384
    assert _disc_dice(mask[0, :, :, 0].numpy() > 0) > 0.99


class BrightFrameNet(torch.nn.Module):
    """A 'network' marking whole frames whose mean intensity is at least ``level`` (logit 0, probability 0.5,
    at ``level``: MONAI's ``AsDiscrete`` keeps a probability equal to the threshold), and nothing else."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def forward(self, image, text_tokens, text_mask=None):
        means = image.mean((1, 2, 3), keepdim=True)
        return (40.0 * torch.sign(means - self.level)).expand(image.shape[0], 1, *image.shape[-2:])


def test_frames_with_target_follow_the_written_volume(tmp_path):
    """Frames with the target are counted on the written mask, in the model's (RAS axial) order."""
    source = load_source(sample_path("ct_small"))
    frames = frame_preprocessing("ct", (32, 32))(source)
    frame_means = frames.as_tensor().mean((1, 2, 3))
    level = float(frame_means.median())
    expected = [int(t) for t in torch.nonzero(frame_means >= level).flatten()]
    assert 0 < len(expected) < frames.shape[0]
    summary = run_inference(BrightFrameNet(level), tmp_path, sample_path("ct_small"), "spleen", size=32, modality="ct")
    assert summary["frames_with_target"] == expected and summary["n_frames"] == frames.shape[0]


def test_pipeline_writes_a_volume_mask_with_the_source_affine(tmp_path):
    summary = run_inference(BrightnessNet(), tmp_path, sample_path("ct_small"), "the spleen")
    src = load_source(sample_path("ct_small"))
    out = load_source(next(p for p in summary["outputs"] if p.endswith(".nii.gz")))
    assert out.shape == src.shape
    torch.testing.assert_close(out.affine, src.affine)
    assert summary["modality"] == "ct" and (tmp_path / "ct_prediction.json").is_file()


def _root_cause(error: BaseException) -> BaseException:
    """The error a transform raised, under MONAI's "applying transform ..." wrappers."""
    while isinstance(error, RuntimeError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def test_bad_inputs_write_nothing(tmp_path, shared_data):
    out = tmp_path / "out"
    pipe = pipeline(BrightnessNet(), output_dir=str(out))
    broken = tmp_path / "broken.nii.gz"
    data = (shared_data / "totalseg/ct_small/ct.nii.gz").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    cases = [
        ({"image": sample_path("cvc_frames"), "prompt": "flux capacitor"}, UnknownPromptError, "flux capacitor"),
        ({"image": sample_path("cvc_frames"), "prompt": "   "}, ValueError, "empty prompt"),
        ({"image": broken, "prompt": "spleen"}, SequenceReadError, "broken.nii.gz"),
    ]
    for item, error_type, message in cases:
        with pytest.raises(Exception) as info:
            pipe(item)
        cause = _root_cause(info.value)
        assert isinstance(cause, error_type) and message in str(cause), repr(cause)
    assert not out.exists() or not any(out.iterdir())


class DiscAndSpeckNet(torch.nn.Module):
    """A disc of radius 0.3 (of the frame) in the centre and, with ``speck``, a small square in a corner."""

    def __init__(self, speck: bool) -> None:
        super().__init__()
        self.speck = speck

    def forward(self, image, text_tokens, text_mask=None):
        logits = DiscNet()(image, text_tokens).clone()
        if self.speck:
            logits[..., 1:3, 1:3] = 40.0
        return logits


def test_postprocessing_runs_on_frames_at_input_size():
    """The frame-wise clean-up runs on each frame of the mask at the input's resolution, before it is written."""
    item = {"image": sample_path("ct_small"), "prompt": "spleen", "modality": "ct"}
    masks = {}
    for name, speck, fraction in (("disc", False, 0.0), ("speck", True, 0.0), ("cleaned", True, 0.1)):
        pipe = pipeline(DiscAndSpeckNet(speck), size=32, min_component_fraction=fraction, save_masks=False)
        masks[name] = pipe(item)["pred"]
    source = load_source(sample_path("ct_small"))
    assert int(masks["speck"].sum()) > int(masks["disc"].sum()) > 0
    assert masks["cleaned"].shape == source.shape and masks["cleaned"].dtype == torch.uint8
    torch.testing.assert_close(masks["cleaned"].as_tensor(), masks["disc"].as_tensor())
    torch.testing.assert_close(masks["cleaned"].affine, source.affine)


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    from monai_ext.networks import load_checkpoint

    with pytest.raises(FileNotFoundError, match="train one with"):
        load_checkpoint(BrightnessNet(), tmp_path / "none.pt")


class TwoPartNet(torch.nn.Module):
    """An inference part plus a training-only part, like RecLMIS and its reconstruction branches."""

    def __init__(self) -> None:
        super().__init__()
        self.segmenter = BrightnessNet()
        self.training_only = torch.nn.Linear(2, 2)

    def forward(self, image, text_tokens, text_mask=None):
        return self.segmenter(image, text_tokens, text_mask)


def test_init_weights_fine_tune_from_an_earlier_run_or_the_shipped_model(tmp_path):
    export = lambda net: net.segmenter  # noqa: E731
    first = TwoPartNet()
    with torch.no_grad():
        first.segmenter.scale.fill_(3.0)
        first.training_only.weight.fill_(0.25)
    # a training checkpoint as MONAI's CheckpointSaver writes it (the network under "network")
    torch.save({"network": first.state_dict(), "optimizer": {}, "trainer": {}}, tmp_path / "checkpoint_epoch=3.pt")
    net = TwoPartNet()
    assert load_init_weights(net, tmp_path / "checkpoint_epoch=3.pt", export) == []
    assert net.segmenter.scale.item() == 3.0 and net.training_only.weight[0, 0].item() == 0.25
    # an exported (inference-only, float16) model.pt: the training-only part keeps its initialisation
    torch.save({"scale": torch.tensor(5.0, dtype=torch.float16)}, tmp_path / "inference.pt")
    net = TwoPartNet()
    assert load_init_weights(net, tmp_path / "inference.pt", export) == ["training_only.bias", "training_only.weight"]
    assert net.segmenter.scale.item() == 5.0 and net.segmenter.scale.dtype == torch.float32
    # a list is applied in order, the later file winning
    net = TwoPartNet()
    assert load_init_weights(net, [tmp_path / "checkpoint_epoch=3.pt", tmp_path / "inference.pt"], export) == []
    assert net.segmenter.scale.item() == 5.0 and net.training_only.weight[0, 0].item() == 0.25
    net = TwoPartNet()
    load_init_weights(net, [str(tmp_path / "inference.pt"), str(tmp_path / "checkpoint_epoch=3.pt")], export)
    assert net.segmenter.scale.item() == 3.0
    assert load_init_weights(TwoPartNet(), "") == [] and load_init_weights(TwoPartNet(), None) == []
    # errors name the problem, and a bad file anywhere in the list leaves the network untouched
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_init_weights(TwoPartNet(), [tmp_path / "inference.pt", tmp_path / "missing.pt"], export)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="lacks"):
        load_init_weights(TwoPartNet(), tmp_path / "foreign.pt", export)
    torch.save({"segmenter.scale": torch.zeros(3)}, tmp_path / "shape.pt")
    untouched = TwoPartNet()
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    with pytest.raises(ValueError, match="shape.pt: shape mismatch"):
        load_init_weights(untouched, [tmp_path / "inference.pt", tmp_path / "shape.pt"], export)
    for key, value in untouched.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    # the newest checkpoint of a run is the one a resumed run loads
    torch.save({}, tmp_path / "checkpoint_epoch=12.pt")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=12.pt"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_init_weights_of_another_image_size_resample_the_position_grid(tmp_path):
    from monai_ext.networks.nets.reclmis import RecLMIS, RecLMISSegmenter, resample_position_grid

    torch.manual_seed(0)
    exported_128 = RecLMISSegmenter(channels=(8, 16, 32, 64, 64), embed_dim=32, num_heads=4, image_size=128)
    torch.save(exported_128.state_dict(), tmp_path / "model_128.pt")
    network_160 = RecLMIS(base_channels=8, embed_dim=32, num_heads=4, num_recon_layers=2, image_size=160)
    export = lambda net: net.inference_network()  # noqa: E731
    missing = load_init_weights(network_160, tmp_path / "model_128.pt", export)
    assert missing and not any(k.startswith("segmenter.") for k in missing)  # only training-only parts kept theirs
    torch.testing.assert_close(
        network_160.segmenter.tokens.pos_embed, resample_position_grid(exported_128.tokens.pos_embed, 8, 10, 10)
    )
    # a tensor no module resamples still fails, naming the file, with the network untouched
    bad = {**exported_128.state_dict(), "tokens.text_proj.bias": torch.zeros(7)}
    torch.save(bad, tmp_path / "bad.pt")
    before = network_160.segmenter.tokens.text_proj.bias.clone()
    with pytest.raises(ValueError, match="bad.pt: shape mismatch"):
        load_init_weights(network_160, tmp_path / "bad.pt", export)
    torch.testing.assert_close(network_160.segmenter.tokens.text_proj.bias, before)


def test_read_datalist_errors(tmp_path):
    with pytest.raises(ValueError, match="--datalist"):
        read_datalist(None)
    with pytest.raises(FileNotFoundError):
        read_datalist(tmp_path / "missing.json")
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"id": "a", "label": "x"}, {"id": "b", "label": None}], "validation": []}))
    with pytest.raises(ValueError, match="unknown split"):
        read_datalist(path, "train")
    assert [s["id"] for s in read_datalist(path)] == ["a", "b"]
    assert [s["id"] for s in read_datalist(path, "training", labelled=True)] == ["a"]
