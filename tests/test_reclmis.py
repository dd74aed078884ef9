"""RecLMIS network, blocks and losses (synthetic tensors; shapes, gradients, switches, overfit)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from monai_ext.losses import ConditionedContrastiveLoss, RecLMISLoss, WeightedReconstructionLoss
from monai_ext.losses.reclmis import conditioned_similarity
from monai_ext.networks import get_network, list_networks
from monai_ext.networks.blocks import PixelLevelAttention, sample_interest_mask
from monai_ext.networks.nets.reclmis import (
    RecLMIS,
    RecLMISOutput,
    RecLMISSegmenter,
    count_parameters,
    resample_position_grid,
)

TINY = dict(base_channels=8, embed_dim=32, num_heads=4, num_recon_layers=2)


def _text(b: int, length: int, dim: int, valid: list[int] | None = None):
    tokens = torch.randn(b, length, dim)
    mask = torch.ones(b, length, dtype=torch.bool)
    for i, n in enumerate(valid or []):
        mask[i, n:] = False
    return tokens, mask


def _target(b: int, size: int, empty: tuple[int, ...] = ()) -> torch.Tensor:
    y = torch.zeros(b, 1, size, size)
    for i in range(b):
        if i not in empty:
            y[i, :, 4 + i : size // 2 + i, 8 : size // 2 + 4] = 1
    return y


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize(
    "size, image_size, text_dim, length, valid",
    [(224, 224, 384, 12, [12, 5]), (128, 224, 512, 7, [3, 7]), (128, 128, 768, 20, [20, 1])],
)
def test_forward_shapes_train_and_eval(size, image_size, text_dim, length, valid):
    net = RecLMIS(text_dim=text_dim, image_size=image_size, **TINY)
    x = torch.randn(2, 3, size, size)
    tokens, mask = _text(2, length, text_dim, valid)
    out = net(x, tokens, mask)
    assert isinstance(out, RecLMISOutput)
    n, d = (size // 16) ** 2, TINY["embed_dim"]
    assert out.logits.shape == (2, 1, size, size)
    assert out.vision.shape == out.vision_recon.shape == out.vision_target.shape == (2, n, d)
    assert out.text.shape == out.text_recon.shape == out.text_target.shape == (2, length, d)
    assert out.w_poi.shape == out.vision_masked.shape == (2, n)
    assert out.w_woi.shape == out.text_masked.shape == (2, length)
    torch.testing.assert_close(out.w_poi.sum(1), torch.ones(2))
    torch.testing.assert_close(out.w_woi.sum(1), torch.ones(2))
    assert (out.w_woi[~mask] == 0).all()
    # masking ratios: alpha_v of the patches, alpha_t of the valid words only
    assert out.vision_masked.sum(1).tolist() == [round(0.5 * n)] * 2
    assert not (out.text_masked & ~mask).any()
    assert out.text_masked.sum(1).tolist() == [max(1, round(0.3 * v)) for v in valid]
    assert not out.vision_target.requires_grad and not out.text_target.requires_grad
    net.eval()
    logits = net(x, tokens, mask)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1, size, size)


def test_text_features_like_inputs_and_out_channels():
    net = RecLMIS(out_channels=2, in_channels=1, **TINY).eval()
    x = torch.randn(2, 1, 64, 64)
    tokens, mask = _text(2, 6, 384, [6, 2])
    ref = net(x, tokens, mask)
    assert ref.shape == (2, 2, 64, 64)
    torch.testing.assert_close(net(x, SimpleNamespace(tokens=tokens, mask=mask)), ref)
    torch.testing.assert_close(net(x, {"tokens": tokens, "mask": mask}), ref)
    # padded token values do not matter
    tokens2 = tokens.clone()
    tokens2[1, 2:] = 100.0
    torch.testing.assert_close(net(x, tokens2, mask), ref)
    # the text changes the prediction
    assert not torch.allclose(net(x, torch.randn_like(tokens), mask), ref)
    # eval with return_aux gives the training output
    assert isinstance(net(x, tokens, mask, return_aux=True), RecLMISOutput)


def test_all_loss_terms_finite_and_every_parameter_gets_gradient():
    net = RecLMIS(**TINY)
    loss_fn = RecLMISLoss(learnable_temperature=True)
    x = torch.randn(4, 3, 64, 64)
    tokens, mask = _text(4, 9, 384, [9, 4, 6, 9])
    y = _target(4, 64, empty=(3,))
    loss = loss_fn(net(x, tokens, mask), y)
    assert set(loss_fn.last_terms) == {"seg", "v2t", "t2v", "ccl"}
    assert all(torch.isfinite(v) for v in loss_fn.last_terms.values())
    assert loss_fn.last_terms["ccl"] > 0
    expected = sum(w * loss_fn.last_terms[k] for k, w in zip(("v2t", "t2v", "ccl", "seg"), (1, 1, 0.2, 5)))
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.ndim > 1)
    assert loss_fn.contrastive.logit_scale.grad is not None


@pytest.mark.parametrize(
    "switch, gone_modules, gone_term",
    [
        ("use_cvr", ["vision_reconstructor"], "t2v"),
        ("use_clr", ["text_reconstructor"], "v2t"),
        ("use_interaction", ["vision_to_text", "poi_head", "woi_head"], None),
    ],
)
def test_network_switches_remove_parameters_and_terms(switch, gone_modules, gone_term):
    full = RecLMIS(**TINY)
    net = RecLMIS(**TINY, **{switch: False})
    assert count_parameters(net) < count_parameters(full)
    for name in gone_modules:
        assert getattr(net, name) is None
    loss_fn = RecLMISLoss()
    x = torch.randn(3, 3, 64, 64)
    tokens, mask = _text(3, 5, 384, [5, 3, 2])
    loss = loss_fn(net(x, tokens, mask), _target(3, 64))
    if gone_term:
        assert gone_term not in loss_fn.last_terms
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
    if switch == "use_interaction":
        seg = net.inference_network()
        assert seg.tokens is None and seg.text_to_vision is None
        net.eval()
        torch.testing.assert_close(net(x, tokens, mask), net(x, torch.randn_like(tokens), mask))
        assert count_parameters(seg) < count_parameters(full.inference_network())


@pytest.mark.parametrize(
    "switch, term", [("use_clr", "v2t"), ("use_cvr", "t2v"), ("use_contrastive", "ccl"), ("use_segmentation", "seg")]
)
def test_loss_switches_remove_terms(switch, term):
    net = RecLMIS(**TINY)
    x = torch.randn(2, 3, 64, 64)
    tokens, mask = _text(2, 5, 384)
    out = net(x, tokens, mask)
    loss_fn = RecLMISLoss(**{switch: False})
    loss_fn(out, _target(2, 64))
    assert term not in loss_fn.last_terms and len(loss_fn.last_terms) == 3
    # logits alone: the segmentation term only
    only_seg = RecLMISLoss()
    only_seg(out.logits, _target(2, 64))
    assert set(only_seg.last_terms) == {"seg"}


def test_inference_network_matches_full_model_and_is_smaller():
    net = RecLMIS(**TINY)
    x = torch.randn(2, 3, 96, 96)
    tokens, mask = _text(2, 8, 384, [8, 3])
    net(x, tokens, mask).logits.sum().backward()  # one training pass updates BN statistics
    net.eval()
    exported = net.inference_network(copy_weights=True)
    assert exported is not net.segmenter and isinstance(exported, RecLMISSegmenter)
    assert count_parameters(exported) < count_parameters(net)
    with torch.no_grad():
        torch.testing.assert_close(exported(x, tokens, mask), net(x, tokens, mask), rtol=0, atol=0)
        # its state dict stands alone
        fresh = RecLMISSegmenter(channels=(8, 16, 32, 64, 64), embed_dim=32, num_heads=4).eval()
        fresh.load_state_dict(exported.state_dict())
        torch.testing.assert_close(fresh(x, tokens, mask), net(x, tokens, mask), rtol=0, atol=0)


def test_weights_of_another_image_size_load_with_their_positions_resampled():
    small = RecLMISSegmenter(channels=(8, 16, 32, 64, 64), embed_dim=32, num_heads=4, image_size=128).eval()
    with torch.no_grad():
        small.tokens.pos_embed.normal_()  # a non-trivial grid, so resampling shows
    large = RecLMISSegmenter(channels=(8, 16, 32, 64, 64), embed_dim=32, num_heads=4, image_size=192).eval()
    state = small.state_dict()
    large.load_state_dict(state)
    assert large.tokens.pos_embed.shape == (1, 144, 32) and state["tokens.pos_embed"].shape == (1, 64, 32)
    x = torch.randn(2, 3, 192, 192)
    tokens, mask = _text(2, 8, 384, [8, 3])
    with torch.no_grad():
        # the 128 network interpolates its 8x8 grid at run time; the 192 one holds that grid
        torch.testing.assert_close(large(x, tokens, mask), small(x, tokens, mask), rtol=0, atol=1e-6)
    torch.testing.assert_close(large.tokens.pos_embed, resample_position_grid(state["tokens.pos_embed"], 8, 12, 12))
    large.load_state_dict({k: v.half() if v.is_floating_point() else v for k, v in state.items()})  # float16 files too
    torch.testing.assert_close(
        large.tokens.pos_embed, resample_position_grid(state["tokens.pos_embed"], 8, 12, 12), rtol=0, atol=5e-3
    )
    wrong_width = {**state, "tokens.pos_embed": torch.zeros(1, 64, 16)}
    with pytest.raises(RuntimeError, match="pos_embed"):
        large.load_state_dict(wrong_width)


def test_registry():
    assert "reclmis" in list_networks()
    net = get_network("reclmis", text_dim=512, image_size=128, **TINY)
    assert isinstance(net, RecLMIS) and net.segmenter.text_dim == 512
    assert net.segmenter.channels == (8, 16, 32, 64, 64)


@pytest.mark.parametrize(
    "image, tokens, mask, match",
    [
        (torch.randn(2, 3, 64, 64, 4), torch.randn(2, 5, 384), None, "4D"),
        (torch.randn(3, 64, 64), torch.randn(2, 5, 384), None, "4D"),
        (torch.randn(2, 3, 64, 64), torch.randn(3, 5, 384), None, "batch"),
        (torch.randn(2, 3, 64, 64), torch.randn(2, 5, 512), None, "text_dim"),
        (torch.randn(2, 3, 64, 64), torch.randn(2, 384), None, "3D"),
        (torch.randn(2, 1, 64, 64), torch.randn(2, 5, 384), None, "channels"),
        (torch.randn(2, 3, 72, 64), torch.randn(2, 5, 384), None, "multiples of 16"),
        (torch.randn(2, 3, 64, 64), torch.randn(2, 5, 384), torch.ones(2, 4, dtype=torch.bool), "text_mask"),
        (torch.randn(2, 3, 64, 64), torch.randn(2, 5, 384), torch.tensor([[1, 1, 0, 0, 0], [0] * 5]).bool(), "valid"),
    ],
)
def test_bad_inputs_raise_value_error(image, tokens, mask, match):
    net = RecLMIS(**TINY)
    with pytest.raises(ValueError, match=match):
        net(image, tokens, mask)


def test_conditioned_similarity_matches_equation_5():
    b, n, l, d = 3, 5, 4, 6
    v, e = torch.randn(b, n, d), torch.randn(b, l, d)
    wv = torch.softmax(torch.randn(b, n), 1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]).bool()
    we = torch.softmax(torch.randn(b, l).masked_fill(~mask, -1e9), 1)
    s = conditioned_similarity(v, e, wv, we, mask)
    for p in range(b):
        for q in range(b):
            valid = mask[q]
            a = torch.nn.functional.cosine_similarity(v[p][:, None], e[q][valid][None], dim=-1)  # (N, Lq)
            ref = 0.5 * ((wv[p] * a.max(1).values).sum() + (we[q][valid] * a.max(0).values).sum())
            torch.testing.assert_close(s[p, q], ref)


def test_contrastive_uses_positive_distinct_pairs_only():
    loss_fn = ConditionedContrastiveLoss()
    b, n, l, d = 4, 6, 3, 8
    v, e = torch.randn(b, n, d, requires_grad=True), torch.randn(b, l, d)
    wv, we = torch.full((b, n), 1 / n), torch.full((b, l), 1 / l)
    full = loss_fn(v, e, wv, we)
    assert full > 0 and torch.isfinite(full)
    # fewer than 2 positives -> 0
    assert loss_fn(v, e, wv, we, positive=torch.tensor([True, False, False, False])) == 0
    assert loss_fn(v, e, wv, we, positive=torch.zeros(b, dtype=torch.bool)) == 0
    # negatives are dropped: same as the loss on the positive subset
    pos = torch.tensor([True, False, True, True])
    torch.testing.assert_close(loss_fn(v, e, wv, we, positive=pos), loss_fn(v[pos], e[pos], wv[pos], we[pos]))
    # all texts identical -> no negatives -> 0
    assert loss_fn(v, e, wv, we, groups=torch.zeros(b, dtype=torch.long)) == 0
    # perfectly aligned pairs have a lower loss than shuffled ones
    aligned = loss_fn(e.repeat(1, 2, 1), e, torch.full((b, 2 * l), 1 / (2 * l)), we)
    shuffled = loss_fn(e.roll(1, 0).repeat(1, 2, 1), e, torch.full((b, 2 * l), 1 / (2 * l)), we)
    assert aligned < shuffled
    full.backward()
    assert v.grad is not None


def test_network_marks_identical_texts():
    net = RecLMIS(**TINY)
    tokens, mask = _text(3, 5, 384)
    tokens[2] = tokens[0]
    out = net(torch.randn(3, 3, 64, 64), tokens, mask)
    g = out.text_groups.tolist()
    assert g[0] == g[2] != g[1]


def test_weighted_reconstruction_loss():
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    pred[:, 0] = 1.0  # token 0 perfect
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    literal = WeightedReconstructionLoss(normalize_target=False)  # eq. 8 / 10 up to the constant 1/N
    torch.testing.assert_close(literal(pred, target, w), torch.tensor(0.5))  # sample 0: 0, sample 1: 1
    mask = torch.tensor([[True, True, True], [True, True, False]])
    uniform = torch.full((2, 3), 1 / 3)
    torch.testing.assert_close(literal(pred, target, uniform, mask), torch.tensor((2 / 3 + 1 / 2) / 2))
    # default: layer-normalised targets, invariant to the target scale
    target = torch.randn(2, 3, 4)
    normed = torch.nn.functional.layer_norm(target, (4,))
    loss_fn = WeightedReconstructionLoss()
    assert loss_fn(normed, target, w) < 1e-6
    torch.testing.assert_close(loss_fn(normed, 10 * target, w), loss_fn(normed, target, w))


def test_sample_interest_mask_follows_weights():
    w = torch.tensor([[0.7, 0.1, 0.1, 0.1, 0.0, 0.0]]).repeat(400, 1)
    chosen = sample_interest_mask(w, 0.25)  # 2 of 6 (round(1.5) = 2)
    assert chosen.sum(1).eq(2).all()
    assert chosen[:, 0].float().mean() > 0.9
    valid = torch.tensor([[True] * 4 + [False] * 2]).repeat(400, 1)
    chosen = sample_interest_mask(w, 0.5, valid)
    assert chosen.sum(1).eq(2).all() and not chosen[:, 4:].any()
    assert not sample_interest_mask(w, 0.0).any()
    with pytest.raises(ValueError):
        sample_interest_mask(w, 1.5)


def test_plam_gate_in_unit_interval():
    plam = PixelLevelAttention(2, 4)
    x = torch.randn(2, 4, 8, 8)
    gate = plam.attention_map(x)
    assert gate.shape == (2, 1, 8, 8) and ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(plam(x), x * gate)


def test_tiny_overfit_halves_the_loss():
    net = RecLMIS(base_channels=8, embed_dim=32, num_heads=4, num_recon_layers=1, image_size=64, dropout=0.0)
    loss_fn = RecLMISLoss()
    x = torch.randn(2, 3, 64, 64)
    y = torch.zeros(2, 1, 64, 64)
    y[0, :, 8:30, 10:40] = 1
    y[1, :, 30:60, 20:50] = 1
    x = x + 2 * y  # a visible target
    tokens, mask = _text(2, 6, 384, [6, 4])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(net(x, tokens, mask), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
