"""The shared inference / evaluation / training engines, on real data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from monai_ext.engines import (
    AffineTTAInferer,
    DatalistEvaluator,
    FrameTrainer,
    FramewiseSequenceInferer,
    ReferringFrameBank,
    SequenceSegmentationRunner,
    detect_modality,
    read_datalist,
    target_mask,
)
from monai_ext.io import SequenceReadError, load_source
from monai_ext.prompts import TextFeatures, UnknownPromptError, build_prompt
from monai_ext.sample import sample_path


class BrightnessNet(torch.nn.Module):
    """A deterministic 'network': logit = brightness - 0.5, so bright pixels are the mask."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, image, text_tokens, text_mask=None):
        return self.scale * (image.mean(1, keepdim=True) - 0.5)


class FixedTextEncoder:
    """Deterministic text features (one token per word) without loading a language model."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        n = len(texts)
        length = max(len(t.split()) for t in texts)
        tokens = torch.ones(n, length, 4)
        return TextFeatures(tokens=tokens, mask=torch.ones(n, length, dtype=torch.bool), pooled=tokens.mean(1))


@pytest.fixture()
def runner():
    return SequenceSegmentationRunner(BrightnessNet(), FixedTextEncoder(), (64, 64), batch_size=3)


def test_detect_modality_on_real_inputs(shared_data):
    ct = load_source(shared_data / "totalseg/ct_small/ct.nii.gz")
    mr = load_source(shared_data / "totalseg/mr_small/mr.nii.gz")
    cvc = load_source(sample_path("cvc_frames"))
    us = load_source(sorted((shared_data / "carotid_us/US images").glob("*.png"))[:2])
    assert detect_modality(ct, ct.meta) == "ct"
    assert detect_modality(mr, mr.meta) == "mr"
    assert detect_modality(cvc, cvc.meta) == "endoscopy"
    assert detect_modality(us, us.meta) == "ultrasound"
    assert detect_modality(us, us.meta, hint=["ultrasound"]) == "ultrasound"
    # the prompt does not change how the data are read: "liver" (CT/MR) on a colonoscopy video
    # or an ultrasound stays endoscopy / ultrasound, "polyp" on a CT stays CT
    assert detect_modality(cvc, cvc.meta, hint=["ct", "mr"]) == "endoscopy"
    assert detect_modality(us, us.meta, hint=["ct", "mr"]) == "ultrasound"
    assert detect_modality(us, us.meta, hint=["mr"]) == "ultrasound"
    assert detect_modality(ct, ct.meta, hint=["endoscopy"]) == "ct"
    assert detect_modality(ct, ct.meta, hint=["mr"]) == "ct"  # Hounsfield values
    assert detect_modality(mr, mr.meta, hint=["ultrasound"]) == "mr"
    assert detect_modality(mr, mr.meta, hint=["ct", "mr"]) == "mr"
    # a volume without Hounsfield values: a CT-only target's hint reads it as CT stored without offset
    assert detect_modality(mr, mr.meta, hint=["ct"]) == "ct"
    # a DICOM tag decides over everything
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
    from monai_ext.engines import frame_preprocessing

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


def test_runner_reads_the_input_by_its_data_and_warns_of_a_target_not_described_for_it(runner, tmp_path, caplog):
    # "liver" is described for CT and MR; the colonoscopy frames stay endoscopy (not CT-windowed)
    with caplog.at_level(logging.WARNING, logger="monai_ext.engines.runner"):
        written = runner.run(sample_path("cvc_frames"), "liver", tmp_path)
    summary = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert summary["modality"] == "endoscopy" and summary["target_described_for_modality"] is False
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "'liver' is described for ct/mr, not for this endoscopy input" in warning[0]
    # the text falls back to the first described modality's descriptions (as training's wrong-prompt pairs)
    assert summary["prompt"] == build_prompt("liver", "ct")
    # a modality given by the user is used as it is
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_ext.engines.runner"):
        _, given = runner.predict(load_source(sample_path("cvc_frames")), "liver", modality="ct")
    assert given["modality"] == "ct" and given["target_described_for_modality"] is True and not caplog.records


def test_runner_writes_frame_masks_in_input_geometry(runner, tmp_path):
    written = runner.run(sample_path("cvc_frames"), "a polyp in the colon", tmp_path)
    pngs = sorted(p for p in written if p.suffix == ".png")
    assert len(pngs) == 10
    for p in pngs:
        with Image.open(p) as im:
            assert im.size == (384, 288)
            assert set(np.unique(np.asarray(im))) <= {0, 255}
    summary = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert summary["target"] == "polyp" and summary["modality"] == "endoscopy" and summary["n_frames"] == 10
    assert summary["target_described_for_modality"] is True
    stages = ["read", "to_frames", "text", "network", "to_input_geometry", "postprocessing", "write"]
    assert list(summary["seconds"]) == stages and all(summary["seconds"][k] >= 0.0 for k in stages)
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


def test_runner_thresholds_probabilities_at_input_size():
    source = load_source(sample_path("cvc_frames"))  # 10 frames of 288 x 384
    smooth = SequenceSegmentationRunner(DiscNet(), FixedTextEncoder(), (16, 16))
    blocky = SequenceSegmentationRunner(DiscNet(), FixedTextEncoder(), (16, 16), resample_probabilities=False)
    probabilities, info = smooth.predict_probabilities(source, "polyp")
    assert probabilities.shape == (1, 288, 384, 10) and probabilities.dtype == torch.float32
    assert 0.0 <= float(probabilities.min()) and float(probabilities.max()) <= 1.0 and info["n_frames"] == 10
    mask, summary = smooth.predict(source, "polyp")
    torch.testing.assert_close(mask.as_tensor(), (probabilities.as_tensor() > 0.5).to(torch.uint8))
    coarse, _ = blocky.predict(source, "polyp")
    assert mask.shape == coarse.shape == (1, 288, 384, 10)
    # the disc made on a 16x16 grid: resampling the probabilities recovers its round outline at
    # 288 x 384, thresholding at 16x16 gives a blocky one
    smooth_dice = _disc_dice(mask[0, :, :, 0].numpy() > 0)
    blocky_dice = _disc_dice(coarse[0, :, :, 0].numpy() > 0)
    assert smooth_dice > 0.99 and blocky_dice < smooth_dice - 0.02
    assert summary["frames_with_target"] == list(range(10)) and summary["n_frames"] == 10


class BrightFrameNet(torch.nn.Module):
    """A 'network' marking whole frames whose mean intensity is above ``level``, and nothing else."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def forward(self, image, text_tokens, text_mask=None):
        means = image.mean((1, 2, 3), keepdim=True)
        return (40.0 * torch.sign(means - self.level)).expand(image.shape[0], 1, *image.shape[-2:])


def test_runner_frames_with_target_follow_written_volume():
    """Frames with the target are counted on the written mask, in the model's (RAS axial) order."""
    from monai_ext.engines import frame_preprocessing

    source = load_source(sample_path("ct_small"))
    frames = frame_preprocessing("ct", (32, 32))(source)
    frame_means = frames.as_tensor().mean((1, 2, 3))
    level = float(frame_means.median())
    expected = [int(t) for t in torch.nonzero(frame_means > level).flatten()]
    assert 0 < len(expected) < frames.shape[0]
    for resample in (True, False):
        runner = SequenceSegmentationRunner(BrightFrameNet(level), FixedTextEncoder(), (32, 32), resample_probabilities=resample)
        mask, summary = runner.predict(source, "spleen", modality="ct")
        assert summary["frames_with_target"] == expected and summary["n_frames"] == frames.shape[0]
        assert mask.shape == source.shape


def test_runner_writes_volume_mask_with_source_affine(runner, tmp_path):
    written = runner.run(sample_path("ct_small"), "the spleen", tmp_path)
    src = load_source(sample_path("ct_small"))
    out = load_source(next(p for p in written if p.name.endswith(".nii.gz")))
    assert out.shape == src.shape
    torch.testing.assert_close(out.affine, src.affine)
    assert json.loads((tmp_path / "ct_prediction.json").read_text())["modality"] == "ct"


def test_runner_bad_inputs_write_nothing(runner, tmp_path, shared_data):
    out = tmp_path / "out"
    with pytest.raises(UnknownPromptError):
        runner.run(sample_path("cvc_frames"), "flux capacitor", out)
    with pytest.raises(ValueError, match="empty prompt"):
        runner.run(sample_path("cvc_frames"), "   ", out)
    broken = tmp_path / "broken.nii.gz"
    data = (shared_data / "totalseg/ct_small/ct.nii.gz").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(SequenceReadError, match="broken.nii.gz"):
        runner.run(broken, "spleen", out)
    assert not out.exists() or not any(out.iterdir())


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="train one with"):
        SequenceSegmentationRunner(BrightnessNet(), FixedTextEncoder(), (32, 32), checkpoint=tmp_path / "none.pt")


@pytest.fixture(scope="module")
def small_datalist(tmp_path_factory, shared_data):
    """A real datalist: 2 CVC-ClinicDB sequences (training), 1 ACDC patient frame (validation)."""
    from monai_ext.data.converters import prepare_dataset

    out = tmp_path_factory.mktemp("datalists")
    prepare_dataset("cvc-clinicdb", shared_data / "cvc_clinicdb", out / "cvc")
    prepare_dataset("acdc", shared_data / "acdc", out / "acdc")
    cvc = read_datalist(out / "cvc" / "datalist.json")
    acdc = [s for s in read_datalist(out / "acdc" / "datalist.json") if s["sequence_id"] == "acdc_patient001"]
    training = sorted(cvc, key=lambda s: len(s["image"]))[:2]
    for s in training:
        s["split"] = "training"
    for s in acdc:
        s["split"] = "validation"
    path = out / "small.json"
    path.write_text(json.dumps({"schema_version": 1, "training": training, "validation": acdc, "test": []}))
    return path


def test_frame_bank_pairs_and_balance(small_datalist):
    samples = read_datalist(small_datalist)
    bank = ReferringFrameBank(samples, (64, 64), prompt_style="name", foreign_negatives=1.0, seed=0)
    n_cvc = sum(len(s["image"]) for s in samples if s["dataset"] == "cvc_clinicdb")
    kinds = {k: sum(p.kind == k for p in bank.pairs) for k in ("positive", "absent", "foreign")}
    # every CVC frame shows a polyp; ACDC slices without a structure become 'absent' pairs
    assert sum(p.kind == "positive" and p.dataset == "cvc_clinicdb" for p in bank.pairs) == n_cvc
    expected_absent = 0
    for s in samples:
        if s["dataset"] == "acdc":
            present = target_mask(load_source(s["label"]), s["label_values"])[0].flatten(0, 1).any(0)
            expected_absent += int((~present).sum())
    assert kinds["absent"] == expected_absent
    assert kinds["foreign"] == len(bank.frames)
    bank.encode_prompts(FixedTextEncoder())
    item = bank.get(0)
    assert item["image"].shape == (3, 64, 64) and item["label"].shape == (1, 64, 64)
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    for pair_index, pair in enumerate(bank.pairs):
        if pair.kind != "positive":
            assert not bank.get(pair_index)["label"].any()
    weights = bank.sampling_weights()
    assert float(weights.sum()) == pytest.approx(1.0)
    share = {d: float(weights[[i for i, p in enumerate(bank.pairs) if p.dataset == d]].sum()) for d in ("acdc", "cvc_clinicdb")}
    assert share["acdc"] == pytest.approx(0.5) and share["cvc_clinicdb"] == pytest.approx(0.5)


def test_frame_bank_resamples_foreign_prompts(small_datalist):
    samples = read_datalist(small_datalist)
    fixed = ReferringFrameBank(samples, (32, 32), prompt_style="name", foreign_negatives=1.0, seed=0)
    bank = ReferringFrameBank(samples, (32, 32), prompt_style="name", foreign_negatives=1.0, seed=0, resample_foreign_prompts=True)
    assert bank.pairs == fixed.pairs  # same pairs; only the prompt of a training draw differs
    own = {d: {bank.prompts[p.prompt] for p in bank.pairs if p.dataset == d and p.kind != "foreign"} for d in ("acdc", "cvc_clinicdb")}
    # one list per other dataset (drawn first, then a target), never the frame's own dataset
    assert [{bank.prompts[i] for i in group} for group in bank.foreign_prompt_sampler.prompts_by_dataset["cvc_clinicdb"]] == [own["acdc"]]
    assert own["acdc"] == {"right ventricle", "myocardium", "left ventricle"}
    assert [{bank.prompts[i] for i in group} for group in bank.foreign_prompt_sampler.prompts_by_dataset["acdc"]] == [own["cvc_clinicdb"]] == [{"polyp"}]
    foreign = next(i for i, p in enumerate(bank.pairs) if p.kind == "foreign" and p.dataset == "cvc_clinicdb")
    positive = next(i for i, p in enumerate(bank.pairs) if p.kind == "positive")
    generator = torch.Generator().manual_seed(0)
    drawn = {bank.draw_prompt(foreign, generator) for _ in range(60)}
    assert drawn == set(bank.foreign_prompt_sampler.prompts_by_dataset["cvc_clinicdb"][0])  # every ACDC target meets this CVC frame
    assert {bank.draw_prompt(positive, generator) for _ in range(5)} == {bank.pairs[positive].prompt}
    # without resampling a draw keeps the build-time prompt and leaves the generator untouched
    state = generator.get_state()
    assert fixed.draw_prompt(foreign, generator) == fixed.pairs[foreign].prompt
    assert torch.equal(generator.get_state(), state)
    bank.encode_prompts(FixedTextEncoder())
    other = next(i for i in bank.foreign_prompt_sampler.prompts_by_dataset["cvc_clinicdb"][0] if i != bank.pairs[foreign].prompt)
    item = bank.get(foreign, other)
    assert torch.equal(item["text_tokens"], bank.text_features[0][other]) and not item["label"].any()
    batch = next(bank.batches(4, 1, torch.Generator().manual_seed(0)))
    assert batch["text_tokens"].shape[0] == 4


def test_trainer_resumes_and_evaluator_scores(small_datalist, tmp_path):
    samples = read_datalist(small_datalist)
    train = ReferringFrameBank([s for s in samples if s["split"] == "training"], (32, 32), prompt_style="name")
    val = ReferringFrameBank([s for s in samples if s["split"] == "validation"], (32, 32), prompt_style="name")
    encoder = FixedTextEncoder()

    def make(epochs):
        torch.manual_seed(0)
        net = BrightnessNet()
        loss = torch.nn.BCEWithLogitsLoss()
        return FrameTrainer(net, lambda out, y: loss(out, y), train, val, tmp_path, epochs=epochs, iterations=2, batch_size=2, text_encoder=encoder)

    first = make(1)
    first.run()
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "model.pt").is_file()
    second = make(2)
    record = second.run()
    assert record["epoch"] == 2 and len(second.history) == 1  # resumed: only epoch 2 ran
    lines = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and "val_dice" in lines[-1]

    runner = SequenceSegmentationRunner(BrightnessNet(), encoder, (32, 32), prompt_style="name")
    result = DatalistEvaluator(runner).evaluate(read_datalist(small_datalist, "validation"), tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_cases"] == 6 and set(metrics["per_dataset"]) == {"acdc"}
    assert {c["target"] for c in metrics["per_case"]} == {"right ventricle", "myocardium", "left ventricle"}
    assert result["dice"] == pytest.approx(metrics["dice"])


def test_dataset_weights_set_each_dataset_share():
    from monai_ext.engines.frame_bank import balanced_weights

    items = [("acdc", True)] * 3 + [("acdc", False)] * 5 + [("cvc_clinicdb", True)] * 4 + [("busbra", True)] * 2
    weights = balanced_weights(items, positive_share=0.75, dataset_weights={"acdc": 2.0, "busbra": 0.0})
    share = {d: float(sum(w for w, (name, _) in zip(weights, items) if name == d)) for d in ("acdc", "cvc_clinicdb", "busbra")}
    assert share == pytest.approx({"acdc": 2 / 3, "cvc_clinicdb": 1 / 3, "busbra": 0.0})
    acdc_positive = float(sum(w for w, item in zip(weights, items) if item == ("acdc", True)))
    assert acdc_positive == pytest.approx(0.75 * 2 / 3)
    assert torch.equal(balanced_weights(items, 0.75, None), balanced_weights(items, 0.75, {}))
    with pytest.raises(ValueError, match="not in the bank"):
        balanced_weights(items, 0.75, {"brats": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        balanced_weights(items, 0.75, {"acdc": -1.0})
    with pytest.raises(ValueError, match="no dataset"):
        balanced_weights(items, 0.75, {"acdc": 0.0, "cvc_clinicdb": 0.0, "busbra": 0.0})


def test_frame_bank_dataset_weights(small_datalist):
    samples = read_datalist(small_datalist)
    bank = ReferringFrameBank(samples, (32, 32), prompt_style="name", dataset_weights={"cvc_clinicdb": 3.0})
    weights = bank.sampling_weights()
    cvc = float(weights[[i for i, p in enumerate(bank.pairs) if p.dataset == "cvc_clinicdb"]].sum())
    assert cvc == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not in the bank"):
        ReferringFrameBank(samples, (32, 32), prompt_style="name", dataset_weights={"cvc": 3.0}).sampling_weights()


AFFINE = {"prob": 1.0, "rotate_range": 0.3, "scale_range": 0.15, "translate_range": 8}


def test_spatial_augment_moves_image_and_mask_together():
    from monai_ext.engines import spatial_augment, spatial_augment_transform

    images = torch.zeros(4, 3, 48, 48)
    images[:, :, 10:30, 14:26] = 1.0  # the object is the bright rectangle...
    labels = images[:, :1].clone()  # ...and its mask
    transform = spatial_augment_transform(AFFINE)
    moved_images, moved_labels = spatial_augment(transform, images, labels, torch.Generator().manual_seed(0))
    assert moved_images.shape == images.shape and moved_labels.shape == labels.shape
    assert type(moved_images) is torch.Tensor and type(moved_labels) is torch.Tensor
    assert set(moved_labels.unique().tolist()) <= {0.0, 1.0}  # nearest for the mask
    for image, label in zip(moved_images, moved_labels):
        assert not torch.equal(label, labels[0])  # every pair moved (prob 1)
        bright = image[0] > 0.5
        overlap = (bright & (label[0] > 0)).sum() / (bright | (label[0] > 0)).sum()
        assert overlap > 0.85  # still the same object: image and mask moved by the same transform
    assert not torch.equal(moved_labels[0], moved_labels[1])  # one draw per pair
    # the torch generator fixes the draws: same seed, same result; another seed, another one
    again = spatial_augment(transform, images, labels, torch.Generator().manual_seed(0))[1]
    other = spatial_augment(transform, images, labels, torch.Generator().manual_seed(1))[1]
    assert torch.equal(again, moved_labels) and not torch.equal(other, moved_labels)


def test_spatial_augment_rejects_bad_arguments():
    from monai_ext.engines import spatial_augment_transform

    with pytest.raises(ValueError, match="fixed"):
        spatial_augment_transform({"keys": ("image",), "prob": 1.0})
    with pytest.raises(ValueError, match="RandAffined"):
        spatial_augment_transform({"flip": True})


def test_frame_bank_spatial_augment(small_datalist):
    samples = read_datalist(small_datalist)
    plain = ReferringFrameBank(samples, (32, 32), prompt_style="name")
    moved = ReferringFrameBank(samples, (32, 32), prompt_style="name", spatial_augment=AFFINE)
    for bank in (plain, moved):
        bank.encode_prompts(FixedTextEncoder())
    a = next(plain.batches(6, 1, torch.Generator().manual_seed(0)))
    b = next(moved.batches(6, 1, torch.Generator().manual_seed(0)))
    assert torch.equal(a["text_tokens"], b["text_tokens"])  # same pairs drawn
    assert b["label"].shape == a["label"].shape and not torch.equal(a["label"], b["label"])
    # without augmentation (validation) the bank gives the stored pairs unchanged
    c = next(moved.batches(6, 1, torch.Generator().manual_seed(0), augment=False))
    d = next(plain.batches(6, 1, torch.Generator().manual_seed(0), augment=False))
    assert torch.equal(c["label"], d["label"]) and torch.equal(c["image"], d["image"])


class TwoPartNet(torch.nn.Module):
    """An inference part plus a training-only part, like RecLMIS and its reconstruction branches."""

    def __init__(self) -> None:
        super().__init__()
        self.segmenter = BrightnessNet()
        self.training_only = torch.nn.Linear(2, 2)

    @property
    def scale(self) -> torch.nn.Parameter:
        return self.segmenter.scale

    def forward(self, image, text_tokens, text_mask=None):
        return self.segmenter(image, text_tokens, text_mask)


def test_trainer_init_weights_fine_tunes_from_earlier_run(small_datalist, tmp_path):
    samples = read_datalist(small_datalist)
    train = ReferringFrameBank([s for s in samples if s["split"] == "training"], (32, 32), prompt_style="name")
    encoder = FixedTextEncoder()
    loss = torch.nn.BCEWithLogitsLoss()

    def make(output_dir, init_weights=None):
        torch.manual_seed(0)
        return FrameTrainer(
            TwoPartNet(), lambda out, y: loss(out, y), train, None, output_dir, epochs=1, iterations=2,
            batch_size=2, text_encoder=encoder, init_weights=init_weights, export_model=lambda net: net.segmenter,
        )

    first = make(tmp_path / "first")
    with torch.no_grad():
        first.network.segmenter.scale.fill_(3.0)
        first.network.training_only.weight.fill_(0.25)
    torch.save(first._state(), tmp_path / "first_checkpoint.pt")
    # from a checkpoint: every network tensor taken, optimiser and epoch start afresh
    second = make(tmp_path / "second", tmp_path / "first_checkpoint.pt")
    assert second.load_init_weights() == []
    assert second.network.scale.item() == 3.0 and second.network.training_only.weight[0, 0].item() == 0.25
    record = second.run()
    assert record["epoch"] == 1 and second.network.scale.item() != 3.0  # it trained on from there
    # from an exported (inference-only) model.pt: the training-only part keeps its initialisation
    torch.save({"scale": torch.tensor(5.0, dtype=torch.float16)}, tmp_path / "inference.pt")
    third = make(tmp_path / "third", tmp_path / "inference.pt")
    assert third.load_init_weights() == ["training_only.bias", "training_only.weight"]
    assert third.network.scale.item() == 5.0 and third.network.scale.dtype == torch.float32
    # an existing checkpoint in output_dir wins over init_weights (resume, not restart)
    resumed = make(tmp_path / "second", tmp_path / "inference.pt")
    resumed.epochs = 2
    resumed.run()
    assert resumed.network.scale.item() != 5.0 and len(resumed.history) == 1
    # a list is applied in order: the run's checkpoint, then an exported model.pt over its inference part
    both = make(tmp_path / "both", [tmp_path / "first_checkpoint.pt", tmp_path / "inference.pt"])
    assert both.load_init_weights() == []
    assert both.network.scale.item() == 5.0 and both.network.training_only.weight[0, 0].item() == 0.25
    reverse = make(tmp_path / "reverse", [str(tmp_path / "inference.pt"), str(tmp_path / "first_checkpoint.pt")])
    assert reverse.load_init_weights() == [] and reverse.network.scale.item() == 3.0  # the later file wins
    assert make(tmp_path / "none", "").load_init_weights() == [] and make(tmp_path / "none", []).init_weights == []
    # errors name the problem
    with pytest.raises(FileNotFoundError, match="init_weights"):
        make(tmp_path / "x", tmp_path / "missing.pt").load_init_weights()
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        make(tmp_path / "x", [tmp_path / "inference.pt", tmp_path / "missing.pt"]).load_init_weights()
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="lacks"):
        make(tmp_path / "x", tmp_path / "foreign.pt").load_init_weights()
    torch.save({"segmenter.scale": torch.zeros(3)}, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="shape mismatch"):
        make(tmp_path / "x", tmp_path / "shape.pt").load_init_weights()
    # a bad file anywhere in the list leaves the network untouched (all files are checked first)
    untouched = make(tmp_path / "x", [tmp_path / "inference.pt", tmp_path / "shape.pt"])
    before = {k: v.clone() for k, v in untouched.network.state_dict().items()}
    with pytest.raises(ValueError, match="shape.pt: shape mismatch"):
        untouched.load_init_weights()
    for key, value in untouched.network.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)


def test_trainer_init_weights_of_another_image_size_resample_the_position_grid(small_datalist, tmp_path):
    from monai_ext.networks.nets.reclmis import RecLMIS, RecLMISSegmenter, resample_position_grid

    samples = read_datalist(small_datalist)
    train = ReferringFrameBank([s for s in samples if s["split"] == "training"], (32, 32), prompt_style="name")
    torch.manual_seed(0)
    exported_128 = RecLMISSegmenter(channels=(8, 16, 32, 64, 64), embed_dim=32, num_heads=4, image_size=128)
    torch.save(exported_128.state_dict(), tmp_path / "model_128.pt")
    network_160 = RecLMIS(base_channels=8, embed_dim=32, num_heads=4, num_recon_layers=2, image_size=160)
    trainer = FrameTrainer(
        network_160, lambda out, y: out.logits.mean(), train, None, tmp_path / "run", epochs=1, iterations=1,
        batch_size=2, text_encoder=FixedTextEncoder(), init_weights=tmp_path / "model_128.pt",
        export_model=lambda net: net.inference_network(),
    )
    missing = trainer.load_init_weights()
    assert missing and not any(k.startswith("segmenter.") for k in missing)  # only training-only parts kept theirs
    torch.testing.assert_close(
        network_160.segmenter.tokens.pos_embed, resample_position_grid(exported_128.tokens.pos_embed, 8, 10, 10)
    )
    # a tensor no module resamples still fails, naming the file, with the network untouched
    bad = {**exported_128.state_dict(), "tokens.text_proj.bias": torch.zeros(7)}
    torch.save(bad, tmp_path / "bad.pt")
    before = network_160.segmenter.tokens.text_proj.bias.clone()
    trainer.init_weights = [tmp_path / "bad.pt"]
    with pytest.raises(ValueError, match="bad.pt: shape mismatch"):
        trainer.load_init_weights()
    torch.testing.assert_close(network_160.segmenter.tokens.text_proj.bias, before)


def test_read_datalist_errors(tmp_path, small_datalist):
    with pytest.raises(ValueError, match="--datalist"):
        read_datalist(None)
    with pytest.raises(FileNotFoundError):
        read_datalist(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown split"):
        read_datalist(small_datalist, "train")


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


def test_runner_postprocessing_runs_on_frames_at_input_size():
    """Post-processing cleans each frame of the mask at the input's resolution, before it is written."""
    from monai_ext.transforms import RemoveMinorComponents

    source = load_source(sample_path("ct_small"))
    disc_only, _ = SequenceSegmentationRunner(DiscAndSpeckNet(False), FixedTextEncoder(), (32, 32)).predict(source, "spleen", modality="ct")
    with_speck, _ = SequenceSegmentationRunner(DiscAndSpeckNet(True), FixedTextEncoder(), (32, 32)).predict(source, "spleen", modality="ct")
    cleaner = SequenceSegmentationRunner(
        DiscAndSpeckNet(True), FixedTextEncoder(), (32, 32), postprocessing=RemoveMinorComponents(min_fraction=0.1)
    )
    cleaned, summary = cleaner.predict(source, "spleen", modality="ct")
    assert int(with_speck.sum()) > int(disc_only.sum()) > 0
    assert cleaned.shape == source.shape and cleaned.dtype == torch.uint8
    torch.testing.assert_close(cleaned.as_tensor(), disc_only.as_tensor())
    torch.testing.assert_close(cleaned.affine, source.affine)
    assert summary["seconds"]["postprocessing"] >= 0.0
