"""SAM-2 Hiera image encoder (trunk + FPN neck) and its official-checkpoint loader."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from monai_ext.networks.blocks.hiera import (
    Hiera,
    HieraImageEncoder,
    PositionEmbeddingSine,
)
from monai_ext.networks.pretrained import load_sam2_image_encoder

# A miniature of hiera-small with the same structure (4 stages, 3 pooling transitions, a global block,
# windowed blocks with padding): fast enough for forward passes and checkpoint files in tests.
TINY = {
    "embed_dim": 16,
    "num_heads": 1,
    "stages": (1, 1, 2, 1),
    "global_att_blocks": (3,),
    "window_spec": (8, 4, 6, 2),
    "window_pos_embed_bkg_spatial_size": (4, 4),
    "d_model": 32,
}

# Measured on the SAM-2.1 hiera-small configuration (the defaults).
HIERA_SMALL_TRUNK_PARAMS = 33_947_328
HIERA_SMALL_NECK_PARAMS = 369_664

# Keys of other SAM-2 modules found in official checkpoints; the loader must ignore them.
UNRELATED_KEYS = {
    "memory_attention.layers.0.self_attn.q_proj.weight": torch.zeros(256, 256),
    "sam_mask_decoder.iou_token.weight": torch.zeros(1, 256),
    "sam_prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 256),
    "maskmem_tpos_enc": torch.zeros(7, 1, 1, 64),
}


def _encoder(seed: int, **kwargs) -> HieraImageEncoder:
    torch.manual_seed(seed)
    return HieraImageEncoder(**kwargs).eval()


def _official_layout(encoder: HieraImageEncoder, wrap: bool = True) -> dict:
    state = {f"image_encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state.update(UNRELATED_KEYS)
    return {"model": state} if wrap else state


@pytest.fixture(scope="module")
def hiera_small() -> HieraImageEncoder:
    return _encoder(0)


def test_hiera_small_shapes_256(hiera_small: HieraImageEncoder) -> None:
    assert hiera_small.out_channels == 256 and hiera_small.stride == 16
    assert hiera_small.strides == [4, 8, 16]
    assert hiera_small.trunk.channel_list == [768, 384, 192, 96]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        trunk_feats = hiera_small.trunk(x)
        feats, pos = hiera_small.forward_with_pos(x)
    assert [tuple(f.shape) for f in trunk_feats] == [
        (1, 96, 64, 64),
        (1, 192, 32, 32),
        (1, 384, 16, 16),
        (1, 768, 8, 8),
    ]
    assert [tuple(f.shape) for f in feats] == [(1, 256, 64, 64), (1, 256, 32, 32), (1, 256, 16, 16)]
    assert [p.shape for p in pos] == [f.shape for f in feats]
    assert all(torch.isfinite(f).all() for f in feats)


def test_tiny_non_square() -> None:
    encoder = _encoder(0, **TINY)
    with torch.no_grad():
        feats = encoder(torch.randn(1, 3, 256, 320))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 64, 80), (1, 32, 32, 40), (1, 32, 16, 20)]


def test_tiny_shapes_512() -> None:
    encoder = _encoder(0, **TINY)
    with torch.no_grad():
        feats = encoder(torch.randn(2, 3, 512, 512))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 128, 128), (2, 32, 64, 64), (2, 32, 32, 32)]


def test_input_size_must_be_multiple_of_32(hiera_small: HieraImageEncoder) -> None:
    assert hiera_small.size_divisor == 32
    with pytest.raises(ValueError, match="multiple of 32"):
        hiera_small(torch.randn(1, 3, 100, 100))


def test_hiera_small_parameter_count(hiera_small: HieraImageEncoder) -> None:
    n_trunk = sum(p.numel() for p in hiera_small.trunk.parameters())
    n_neck = sum(p.numel() for p in hiera_small.neck.parameters())
    print(f"hiera-small trunk {n_trunk:,} + neck {n_neck:,} = {n_trunk + n_neck:,} parameters")
    assert n_trunk == HIERA_SMALL_TRUNK_PARAMS
    assert n_neck == HIERA_SMALL_NECK_PARAMS


def test_hiera_small_official_key_names(hiera_small: HieraImageEncoder) -> None:
    keys = set(hiera_small.state_dict())
    for key in (
        "trunk.patch_embed.proj.weight",
        "trunk.pos_embed",
        "trunk.pos_embed_window",
        "trunk.blocks.0.norm1.weight",
        "trunk.blocks.0.attn.qkv.weight",
        "trunk.blocks.0.attn.proj.bias",
        "trunk.blocks.15.norm2.bias",
        "trunk.blocks.15.mlp.layers.0.weight",
        "trunk.blocks.15.mlp.layers.1.bias",
        "neck.convs.0.conv.weight",
        "neck.convs.3.conv.bias",
    ):
        assert key in keys, key
    # the shortcut projection exists only where the width changes: first blocks of stages 2-4
    proj_blocks = sorted(int(m.group(1)) for k in keys if (m := re.match(r"trunk\.blocks\.(\d+)\.proj\.weight", k)))
    assert proj_blocks == [1, 3, 14]
    assert len(keys) == 2 + 2 + 16 * 12 + 3 * 2 + 4 * 2
    state = hiera_small.state_dict()
    assert state["trunk.pos_embed"].shape == (1, 96, 7, 7)
    assert state["trunk.pos_embed_window"].shape == (1, 96, 8, 8)
    assert state["neck.convs.0.conv.weight"].shape == (256, 768, 1, 1)  # level 0 of the neck is the coarsest
    windows = [b.window_size for b in hiera_small.trunk.blocks]
    assert windows == [8, 8, 4, 4, 14, 14, 14, 0, 14, 14, 0, 14, 14, 0, 14, 7]


@pytest.mark.parametrize("wrap", [True, False], ids=["model-dict", "bare-state-dict"])
def test_loader_round_trip(tmp_path: Path, wrap: bool) -> None:
    source = _encoder(1, **TINY)
    path = tmp_path / "sam2.1_hiera_tiny_test.pt"
    torch.save(_official_layout(source, wrap=wrap), path)

    target = _encoder(2, **TINY)
    assert not torch.equal(target.trunk.pos_embed, source.trunk.pos_embed)
    report = load_sam2_image_encoder(target, path)

    assert report["loaded"] == len(source.state_dict())
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["ignored_prefixes"] == [
        "maskmem_tpos_enc",
        "memory_attention",
        "sam_mask_decoder",
        "sam_prompt_encoder",
    ]
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(source(x), target(x)):
            assert torch.equal(a, b)


def test_loader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"sam2\.1_hiera_small\.pt.*nothing is downloaded"):
        load_sam2_image_encoder(_encoder(0, **TINY), tmp_path / "absent.pt")


def test_loader_shape_mismatch(tmp_path: Path) -> None:
    ckpt = _official_layout(_encoder(1, **TINY))
    ckpt["model"]["image_encoder.trunk.pos_embed"] = torch.zeros(1, 16, 7, 7)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(
        ValueError, match=r"image_encoder\.trunk\.pos_embed: checkpoint \(1, 16, 7, 7\) vs encoder \(1, 16, 4, 4\)"
    ):
        load_sam2_image_encoder(_encoder(2, **TINY), path)


def test_loader_no_image_encoder_keys(tmp_path: Path) -> None:
    path = tmp_path / "decoder_only.pt"
    torch.save({"model": dict(UNRELATED_KEYS)}, path)
    with pytest.raises(KeyError, match="image_encoder"):
        load_sam2_image_encoder(_encoder(0, **TINY), path)


def test_loader_strict_key_sets(tmp_path: Path) -> None:
    ckpt = _official_layout(_encoder(1, **TINY))
    del ckpt["model"]["image_encoder.neck.convs.3.conv.bias"]
    path = tmp_path / "partial.pt"
    torch.save(ckpt, path)
    with pytest.raises(KeyError, match=r"neck\.convs\.3\.conv\.bias"):
        load_sam2_image_encoder(_encoder(2, **TINY), path)
    report = load_sam2_image_encoder(_encoder(2, **TINY), path, strict=False)
    assert report["missing"] == ["neck.convs.3.conv.bias"]
    assert report["loaded"] == len(ckpt["model"]) - len(UNRELATED_KEYS)


def test_position_embedding_sine() -> None:
    pe = PositionEmbeddingSine(num_pos_feats=8)
    pos = pe(torch.zeros(2, 3, 4, 5))
    assert pos.shape == (2, 8, 4, 5)
    rows = (torch.arange(1, 5) / (4 + 1e-6) * 2 * math.pi)[:, None].expand(4, 5)
    cols = (torch.arange(1, 6) / (5 + 1e-6) * 2 * math.pi)[None, :].expand(4, 5)
    # first half encodes rows, second half columns; channels 0/1 share the lowest frequency (1)
    torch.testing.assert_close(pos[0, 0], rows.sin())
    torch.testing.assert_close(pos[1, 1], rows.cos())
    torch.testing.assert_close(pos[0, 4], cols.sin())
    torch.testing.assert_close(pos[0, 7], (cols / 10000 ** (2 / 4)).cos())


def test_trunk_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Hiera(stages=(1, 2, 11, 2), window_spec=(8, 4, 14))
    with pytest.raises(ValueError, match="divisible by the query stride"):
        Hiera(embed_dim=16, stages=(1, 1, 1, 1), window_spec=(7, 4, 4, 2), global_att_blocks=())


def test_matches_transformers_sam2_vision_model() -> None:
    """Cross-check against the independent SAM-2 port in ``transformers`` (same weights, renamed keys)."""
    sam2_config = pytest.importorskip("transformers.models.sam2.configuration_sam2")
    sam2_modeling = pytest.importorskip("transformers.models.sam2.modeling_sam2")
    encoder = _encoder(3, **TINY)
    dims = [16 * 2**i for i in range(4)]
    backbone = sam2_config.Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        blocks_per_stage=list(TINY["stages"]),
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[1, 2, 4, 8],
        window_size_per_stage=list(TINY["window_spec"]),
        global_attention_blocks=list(TINY["global_att_blocks"]),
        window_positional_embedding_background_size=list(TINY["window_pos_embed_bkg_spatial_size"]),
    )
    config = sam2_config.Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=32
    )
    reference = sam2_modeling.Sam2VisionModel(config).eval()
    renames = [
        (r"^trunk\.", "backbone."),
        (r"patch_embed\.proj\.", "patch_embed.projection."),
        (r"\.norm([12])\.", r".layer_norm\1."),
        (r"mlp\.layers\.0\.", "mlp.proj_in."),
        (r"mlp\.layers\.1\.", "mlp.proj_out."),
        (r"^neck\.convs\.(\d+)\.conv\.", r"neck.convs.\1."),
    ]
    state = {}
    for key, value in encoder.state_dict().items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        state[key] = value
    try:
        reference.load_state_dict(state, strict=True)
    except RuntimeError as err:  # a future transformers may rename its modules
        pytest.skip(f"transformers Sam2VisionModel layout changed: {err}")
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        feats, pos = encoder.forward_with_pos(x)
        out = reference(pixel_values=x)
    for ours, theirs in zip(feats, out.fpn_hidden_states, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(pos, out.fpn_position_encoding, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
