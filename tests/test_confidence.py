"""Per-frame target scores from the inferers and the present/absent decision (monai_ext.transforms.confidence)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Activationsd

from monai_ext.bundle import BundlePipeline, load_parser
from monai_ext.engines import AffineTTAInferer, FramewiseSequenceInferer, StreamingSequenceInferer, affine_tta_matrix
from monai_ext.engines.test_time_augmentation import _apply
from monai_ext.io import frames_with_target, load_source
from monai_ext.networks.nets.tgsam2 import tgsam2_litemedsam
from monai_ext.sample import sample_path
from monai_ext.transforms import FrameScoresd, TargetPresenced, frame_scores, target_present

TGSAM2_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "tgsam2_text_guided_sequence_segmentation"
S = 64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class _Tracker:
    """A stand-in sequence network: logit = 100 * (frames in memory) + frame value; object score = frame value
    + 0.01 * (frames in memory), so each pass gives each frame its own score."""

    def encode_text(self, tokens, mask=None):
        return "prompt"

    def init_state(self, prompt):
        return []

    def encode_image(self, frames):
        return frames.mean((1, 2, 3)), None

    def track_step(self, features, state, high_res=None):
        value = float(features[0])
        logits = torch.full((1, 1, 2, 2), 100.0 * len(state) + value)
        obj = torch.tensor([[value + 0.01 * len(state)]])
        state.append(value)
        return logits, obj


# -- the inferers' scores --------------------------------------------------------------------------
def test_streaming_scores_are_track_steps_object_logits():
    torch.manual_seed(0)
    net = tgsam2_litemedsam(image_size=S, pretrained=False).eval()
    frames = torch.rand(5, 3, S, S)
    tokens, mask = torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool)
    inferer = StreamingSequenceInferer(batch_size=2)
    assert inferer.last_scores is None
    with torch.no_grad():
        logits = inferer(frames, net, tokens, mask)
        state = net.init_state(net.encode_text(tokens, mask))
        manual_logits, manual_scores = [], []
        for frame in frames:
            features, high_res = net.encode_image(frame[None])
            lg, obj = net.track_step(features, state, high_res)
            manual_logits.append(lg)
            manual_scores.append(obj.reshape(-1))
    assert inferer.last_scores.shape == (5,) and inferer.last_scores.dtype == torch.float32
    torch.testing.assert_close(inferer.last_scores, torch.cat(manual_scores), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, torch.cat(manual_logits), atol=1e-5, rtol=0)  # the logits are what they were
    assert inferer.last_scores.std() > 0  # not vacuous: frames differ


def test_streaming_scores_of_the_kept_passes_and_reset():
    values = [0.1, 0.3, 0.9, 0.2, 0.4]  # the clearest view is frame 2
    frames = torch.tensor(values).view(5, 1, 1, 1).expand(5, 3, 2, 2).clone()
    tokens = torch.zeros(1, 2, 4)
    inferer = StreamingSequenceInferer(batch_size=2)
    inferer(frames, _Tracker(), tokens)
    torch.testing.assert_close(inferer.last_scores, torch.tensor([v + 0.01 * i for i, v in enumerate(values)]))
    bidirectional = StreamingSequenceInferer(batch_size=2, bidirectional=True)
    out = bidirectional(frames, _Tracker(), tokens)
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([200.1, 100.3, 0.9, 100.2, 200.4]))
    # forward from frame 2 with a fresh memory (0.9, 0.2 + 0.01, 0.4 + 0.02), backwards from it (0.3 + 0.01, 0.1 + 0.02)
    torch.testing.assert_close(bidirectional.last_scores, torch.tensor([0.12, 0.31, 0.9, 0.21, 0.42]))
    with pytest.raises(ValueError, match="empty sequence"):
        inferer(iter([]), _Tracker(), tokens)
    assert inferer.last_scores is None  # a failed call leaves no stale scores


class _ScoringInferer:
    """Logits zero; object scores = each frame's mean (so moved copies score differently)."""

    def __init__(self) -> None:
        self.last_scores = None

    def __call__(self, frames, network, text_tokens, text_mask=None):
        self.last_scores = frames.mean((1, 2, 3)) * 4 - 2
        return torch.zeros(frames.shape[0], 1, *frames.shape[2:])


def test_tta_passes_the_scores_through_or_averages_them():
    frames = torch.rand(3, 3, 16, 16)
    tokens = torch.zeros(1, 2, 4)
    inner = _ScoringInferer()
    plain = AffineTTAInferer(inner)
    plain(frames, None, tokens)
    assert plain.last_scores is inner.last_scores  # no moves: the wrapped inferer's scores unchanged
    moves = [{"translate": [4, 0]}, {"scale": 0.8}]
    tta = AffineTTAInferer(_ScoringInferer(), moves=moves)
    tta(frames, None, tokens)
    copies = [frames] + [_apply(affine_tta_matrix(m), frames) for m in moves]
    expected = torch.logit(torch.stack([torch.sigmoid(c.mean((1, 2, 3)) * 4 - 2) for c in copies]).mean(0), eps=1e-6)
    torch.testing.assert_close(tta.last_scores, expected)
    # a frame-wise network has no object score: none passes through
    framewise = AffineTTAInferer(FramewiseSequenceInferer(), moves=moves)
    framewise(frames, lambda x, t, m: x[:, :1] - 0.5, tokens)
    assert framewise.last_scores is None and FramewiseSequenceInferer().last_scores is None


# -- FrameScoresd / TargetPresenced -------------------------------------------------------------------
def test_frame_scores_are_object_scores_or_the_maximum_probability():
    probabilities = torch.zeros(3, 1, 4, 4)
    probabilities[0, 0, 1, 1] = 0.9
    probabilities[2] = 0.3
    data = FrameScoresd(keys="pred")({"pred": probabilities})
    assert data["frame_scores"] == pytest.approx([0.9, 0.0, 0.3]) and data["frame_score_kind"] == "max_probability"
    # a source without object scores (a frame-wise inferer) gives the same
    assert FrameScoresd(scores_source=FramewiseSequenceInferer())({"pred": probabilities})["frame_scores"] == data["frame_scores"]
    source = SimpleNamespace(last_scores=torch.tensor([2.0, -3.0, 0.0]))
    data = FrameScoresd(keys="pred", scores_source=source)({"pred": probabilities})
    assert data["frame_scores"] == pytest.approx([1 / (1 + math.exp(-2)), 1 / (1 + math.exp(3)), 0.5])
    assert data["frame_score_kind"] == "object_score" and all(isinstance(s, float) for s in data["frame_scores"])
    with pytest.raises(ValueError, match="2 object scores for 3 frames"):
        FrameScoresd(scores_source=SimpleNamespace(last_scores=torch.zeros(2)))({"pred": probabilities})
    with pytest.raises(ValueError, match="after Activationsd"):
        frame_scores(probabilities * 10 - 5)


def test_target_present_needs_a_scored_frame_with_foreground():
    empty = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    assert TargetPresenced(sequence=True)({"pred": empty, "frame_scores": [0.9] * 4})["target_present"] is False
    one = empty.clone()
    one[2, 0, 3, 3] = 1
    present = TargetPresenced(sequence=True, threshold=0.5)
    assert present({"pred": one, "frame_scores": [0.0, 0.0, 0.7, 0.0]})["target_present"] is True
    assert present({"pred": one, "frame_scores": [0.9, 0.9, 0.4, 0.9]})["target_present"] is False  # foreground, too low a score
    assert TargetPresenced(sequence=True, min_frames=2)({"pred": one, "frame_scores": [0.9] * 4})["target_present"] is False
    assert target_present([0.9], [True], min_frames=3)  # capped at the number of frames
    assert not target_present([], [])
    with pytest.raises(ValueError, match="3 frame scores for a mask of 4 frames"):
        present({"pred": one, "frame_scores": [0.9] * 3})


def test_target_present_cuts_a_mask_in_the_source_geometry_as_the_summary_does():
    source = load_source(sample_path("cvc_frames"))  # (3, H, W, 10) frames
    mask = MetaTensor(torch.zeros(1, *source.shape[1:], dtype=torch.uint8), meta=dict(source.meta))
    scores = [0.9] * source.shape[-1]
    assert TargetPresenced()({"pred": mask, "frame_scores": scores})["target_present"] is False
    mask[0, 10:20, 10:20, 7] = 1
    assert frames_with_target(mask) == [7]
    transform = TargetPresenced(threshold=0.5)
    assert transform.frames_with_foreground(mask) == [i == 7 for i in range(10)]
    assert transform({"pred": mask, "frame_scores": scores})["target_present"] is True
    assert transform({"pred": mask, "frame_scores": [0.9] * 7 + [0.1] + [0.9] * 2})["target_present"] is False


# -- the shipped TGSAM-2 bundle on the shipped CVC sample ------------------------------------------
@pytest.fixture(scope="module")
def tgsam2_pipeline() -> BundlePipeline:
    """The shipped bundle's inference.json with the two transforms where the bundles put them."""
    parser = load_parser(TGSAM2_BUNDLE, "inference.json", overrides={"save_masks": False})
    transforms = parser["postprocessing"]["transforms"]
    targets = [t.get("_target_", "") for t in transforms]
    if not any(t.endswith("FrameScoresd") for t in targets):
        at = next(i for i, t in enumerate(targets) if t == "Activationsd") + 1
        transforms.insert(at, {"_target_": "monai_ext.transforms.FrameScoresd", "keys": "pred", "scores_source": "@inferer"})
    if not any(t.endswith("TargetPresenced") for t in targets):
        at = next(i for i, t in enumerate(transforms) if t.get("_target_", "").endswith("SavePredictiond"))
        transforms.insert(at, {"_target_": "monai_ext.transforms.TargetPresenced", "keys": "pred", "threshold": "@threshold"})
    return BundlePipeline(parser)


def test_shipped_tgsam2_tells_a_present_target_from_an_absent_one(tgsam2_pipeline):
    pipeline = tgsam2_pipeline
    scorer = next(t for t in pipeline.postprocessing.transforms if isinstance(t, FrameScoresd))
    assert scorer.scores_source is pipeline.inferer  # the config's "@inferer" is the very inferer that ran
    assert pipeline.postprocessing.transforms.index(scorer) == pipeline.index_of(Activationsd) + 1
    item = {"image": str(sample_path("cvc_frames")), "input": "cvc", "report": None, "modality": None}
    polyp = pipeline({**item, "prompt": "polyp"})
    absent = pipeline({**item, "prompt": "left ventricle"})
    threshold = pipeline.parser.get_parsed_content("threshold")
    for out in (polyp, absent):
        assert out["frame_score_kind"] == "object_score" and len(out["frame_scores"]) == 10
        assert all(0.0 <= s <= 1.0 for s in out["frame_scores"])
    assert polyp["target_present"] is True
    assert min(polyp["frame_scores"]) > 0.99 and len(frames_with_target(polyp["pred"])) == 10
    # the wrong target scores far lower on every frame but its first (no memory yet: 0.97 with a 0.3 % mask
    # with the 0.6.3 weights), so "any frame" calls it present; two frames (min_frames=2) call it absent
    passing = [i for i, s in enumerate(absent["frame_scores"]) if s >= threshold]
    assert len(passing) <= 1 and sum(absent["frame_scores"]) / 10 < 0.2
    assert max(absent["frame_scores"][1:]) < min(polyp["frame_scores"])
    decide = TargetPresenced(threshold=threshold, min_frames=2)
    assert decide(polyp)["target_present"] is True and decide(absent)["target_present"] is False
