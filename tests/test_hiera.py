"""SAM-2's Hiera image encoder (transformers' Sam2VisionModel) and the official-checkpoint loader.

No test here is skipped: if a transformers release renames the modules of its SAM-2 port or changes
what they compute, the loader's strict key check or the recorded reference outputs fail.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from monai_ext.networks.blocks.hiera import HIERA_VARIANTS, HieraImageEncoder
from monai_ext.networks.nets.tgsam2 import ImageEncoder
from monai_ext.networks.pretrained import load_sam2_image_encoder, sam2_checkpoint_key

# A miniature of hiera-small with the same structure (4 stages, 3 pooling transitions, a global block,
# windowed blocks with padding): fast enough for forward passes and checkpoint files in tests.
TINY = {
    "embed_dim": 16,
    "num_heads": 1,
    "stages": (1, 1, 2, 1),
    "global_att_blocks": (3,),
    "window_spec": (8, 4, 6, 2),
    "window_pos_embed_bkg_spatial_size": (4, 4),
}
TINY_NECK = 32

# Measured on the SAM-2.1 hiera-small configuration (the official release's figures).
HIERA_SMALL_TRUNK_PARAMS = 33_947_328
HIERA_SMALL_NECK_PARAMS = 369_664

# Keys of other SAM-2 modules found in official checkpoints; the loader must ignore them.
UNRELATED_KEYS = {
    "memory_attention.layers.0.self_attn.q_proj.weight": torch.zeros(256, 256),
    "sam_mask_decoder.iou_token.weight": torch.zeros(1, 256),
    "sam_prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 256),
    "maskmem_tpos_enc": torch.zeros(7, 1, 1, 64),
}

# The neck's three levels (strides 4, 8, 16) for official_layout(TINY, TINY_NECK, seed=0) on
# randn(1, 3, 64, 96) (generator seed 1), computed with the SAM-2 reference implementation of the
# Hiera trunk and FPN neck: per level the L2 norm, then channels 0-3 at the first and at the last position.
REFERENCE_LEVELS = [
    [136.450256, 0.504756, -0.377721, -1.906649, -0.125383, -0.106269, -0.065972, -3.545671, -0.667942],
    [68.419029, 2.171537, 0.488759, 0.390835, -0.413013, -0.461111, 1.180896, -0.865614, -0.210822],
    [53.098526, 0.010436, 1.191653, 1.367863, -1.705622, 1.461983, 0.957072, 1.436915, -1.711463],
]


def official_layout(trunk: dict, d_model: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The image-encoder part of an official SAM-2 checkpoint (plus the decoder's ``conv_s0`` / ``conv_s1``),
    written from the SAM-2 release's names and shapes alone, filled with seeded random values."""
    e, stages = trunk["embed_dim"], trunk["stages"]
    dims = [e * 2**i for i in range(len(stages))]
    window0 = trunk["window_spec"][0]
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("image_encoder.trunk.patch_embed.proj.weight", (e, 3, 7, 7)),
        ("image_encoder.trunk.patch_embed.proj.bias", (e,)),
        ("image_encoder.trunk.pos_embed", (1, e, *trunk["window_pos_embed_bkg_spatial_size"])),
        ("image_encoder.trunk.pos_embed_window", (1, e, window0, window0)),
    ]
    block = 0
    for stage, depth in enumerate(stages):
        for j in range(depth):
            d_in, d = (dims[stage - 1] if stage and not j else dims[stage]), dims[stage]
            p = f"image_encoder.trunk.blocks.{block}."
            shapes += [
                (p + "norm1.weight", (d_in,)), (p + "norm1.bias", (d_in,)),
                (p + "attn.qkv.weight", (3 * d, d_in)), (p + "attn.qkv.bias", (3 * d,)),
                (p + "attn.proj.weight", (d, d)), (p + "attn.proj.bias", (d,)),
                (p + "norm2.weight", (d,)), (p + "norm2.bias", (d,)),
                (p + "mlp.layers.0.weight", (4 * d, d)), (p + "mlp.layers.0.bias", (4 * d,)),
                (p + "mlp.layers.1.weight", (d, 4 * d)), (p + "mlp.layers.1.bias", (d,)),
            ]
            if d_in != d:  # the shortcut projection where the width changes
                shapes += [(p + "proj.weight", (d, d_in)), (p + "proj.bias", (d,))]
            block += 1
    for level, channels in enumerate(dims[::-1]):  # neck level 0 is the coarsest
        shapes += [(f"image_encoder.neck.convs.{level}.conv.weight", (d_model, channels, 1, 1)),
                   (f"image_encoder.neck.convs.{level}.conv.bias", (d_model,))]
    for name, out in (("conv_s0", d_model // 8), ("conv_s1", d_model // 4)):
        shapes += [(f"sam_mask_decoder.{name}.weight", (out, d_model, 1, 1)), (f"sam_mask_decoder.{name}.bias", (out,))]
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes:
        x = torch.randn(shape, generator=g)
        if "norm" in name and name.endswith("weight"):
            x = 1 + 0.1 * x
        elif len(shape) > 1 and "pos_embed" not in name:
            x = x / math.sqrt(math.prod(shape[1:]))
        else:
            x = 0.02 * x
        state[name] = x
    return state


def _save(tmp_path: Path, state: dict, wrap: bool = True, name: str = "sam2.1_hiera_test.pt") -> Path:
    path = tmp_path / name
    torch.save({"model": state} if wrap else state, path)
    return path


def _tiny(seed: int = 0) -> HieraImageEncoder:
    torch.manual_seed(seed)
    return HieraImageEncoder(out_channels=TINY_NECK, **TINY).eval()


@pytest.fixture(scope="module")
def hiera_small() -> HieraImageEncoder:
    torch.manual_seed(0)
    return HieraImageEncoder("small").eval()


def test_hiera_small_shapes_256(hiera_small: HieraImageEncoder) -> None:
    assert isinstance(hiera_small, ImageEncoder)
    assert hiera_small.out_channels == 256 and hiera_small.stride == 16 and hiera_small.high_res_channels == (32, 64)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        trunk = hiera_small.trunk(pixel_values=x).intermediate_hidden_states
        levels = hiera_small.pyramid(x)
        features, high_res = hiera_small.encode(x)
    assert [tuple(f.shape) for f in trunk] == [(1, 64, 64, 96), (1, 32, 32, 192), (1, 16, 16, 384), (1, 8, 8, 768)]
    assert [tuple(f.shape) for f in levels] == [(1, 256, 64, 64), (1, 256, 32, 32), (1, 256, 16, 16)]
    assert features.shape == (1, 256, 16, 16)
    assert [tuple(h.shape) for h in high_res] == [(1, 32, 64, 64), (1, 64, 32, 32)]
    assert all(torch.isfinite(f).all() for f in (features, *high_res))


def test_encode_normalises_like_sam2() -> None:
    encoder = _tiny()
    x = torch.rand(1, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        s4, s8, s16 = encoder.pyramid((x - mean) / std)
        features, (h0, h1) = encoder(x)
    torch.testing.assert_close(features, s16)
    torch.testing.assert_close(h0, encoder.conv_s0(s4))
    torch.testing.assert_close(h1, encoder.conv_s1(s8))
    assert "pixel_mean" not in encoder.state_dict()  # constants, not weights


def test_tiny_non_square_and_512() -> None:
    encoder = _tiny()
    with torch.no_grad():
        non_square = encoder.pyramid(torch.randn(1, 3, 256, 320))
        large = encoder.pyramid(torch.randn(2, 3, 512, 512))
    assert [tuple(f.shape) for f in non_square] == [(1, 32, 64, 80), (1, 32, 32, 40), (1, 32, 16, 20)]
    assert [tuple(f.shape) for f in large] == [(2, 32, 128, 128), (2, 32, 64, 64), (2, 32, 32, 32)]


def test_input_size_must_be_multiple_of_32() -> None:
    assert HieraImageEncoder.size_divisor == 32
    with pytest.raises(ValueError, match="multiples of 32"):
        _tiny().encode(torch.rand(1, 3, 100, 100))


def test_hiera_small_parameter_count(hiera_small: HieraImageEncoder) -> None:
    n_trunk = sum(p.numel() for p in hiera_small.trunk.parameters())
    n_neck = sum(p.numel() for p in hiera_small.neck.parameters())
    print(f"hiera-small trunk {n_trunk:,} + neck {n_neck:,} = {n_trunk + n_neck:,} parameters")
    assert n_trunk == HIERA_SMALL_TRUNK_PARAMS
    assert n_neck == HIERA_SMALL_NECK_PARAMS


def test_variants_and_bad_config() -> None:
    assert set(HIERA_VARIANTS) == {"tiny", "small", "base_plus", "large"}
    assert HIERA_VARIANTS["base_plus"]["embed_dim"] == 112 and HIERA_VARIANTS["tiny"]["stages"] == (1, 2, 7, 2)
    with pytest.raises(ValueError, match="unknown Hiera variant 'huge'"):
        HieraImageEncoder("huge")
    with pytest.raises(ValueError, match=r"unknown Hiera trunk settings \['depth'\]"):
        HieraImageEncoder(depth=3)
    with pytest.raises(ValueError, match="differ in length"):
        HieraImageEncoder(stages=(1, 2, 11, 2), window_spec=(8, 4, 14))


def test_hiera_small_official_layout_loads(tmp_path: Path, hiera_small: HieraImageEncoder) -> None:
    """The official key set of sam2.1_hiera_small (210 image-encoder tensors and the decoder's two
    projections) fills the encoder exactly; the shortcut projections are those of blocks 1, 3 and 14."""
    state = official_layout(HIERA_VARIANTS["small"], 256)
    assert sum(k.startswith("image_encoder.") for k in state) == 2 + 2 + 16 * 12 + 3 * 2 + 4 * 2
    assert sorted(int(k.split(".")[3]) for k in state if k.endswith(".proj.weight") and "attn" not in k and "patch" not in k) == [1, 3, 14]
    encoder = HieraImageEncoder("small")
    report = load_sam2_image_encoder(encoder, _save(tmp_path, state))
    assert report["loaded"] == len(state) == len(encoder.state_dict()) == 214
    for key, value in state.items():
        assert torch.equal(encoder.state_dict()[sam2_checkpoint_key(key)], value), key


def test_key_mapping_names() -> None:
    assert sam2_checkpoint_key("image_encoder.trunk.patch_embed.proj.weight") == "vision_encoder.backbone.patch_embed.projection.weight"
    assert sam2_checkpoint_key("image_encoder.trunk.blocks.15.norm2.bias") == "vision_encoder.backbone.blocks.15.layer_norm2.bias"
    assert sam2_checkpoint_key("image_encoder.trunk.blocks.3.mlp.layers.1.weight") == "vision_encoder.backbone.blocks.3.mlp.proj_out.weight"
    assert sam2_checkpoint_key("image_encoder.trunk.blocks.1.proj.bias") == "vision_encoder.backbone.blocks.1.proj.bias"
    assert sam2_checkpoint_key("image_encoder.neck.convs.0.conv.weight") == "vision_encoder.neck.convs.0.weight"
    assert sam2_checkpoint_key("sam_mask_decoder.conv_s1.weight") == "conv_s1.weight"
    assert sam2_checkpoint_key("sam_mask_decoder.iou_token.weight") is None
    assert sam2_checkpoint_key("maskmem_tpos_enc") is None


@pytest.mark.parametrize("wrap", [True, False], ids=["model-dict", "bare-state-dict"])
def test_loader_round_trip(tmp_path: Path, wrap: bool) -> None:
    """Every tensor of the official layout lands on exactly one encoder tensor, bit for bit, and fills all of them."""
    state = official_layout(TINY, TINY_NECK, seed=1)
    encoder = _tiny(seed=2)
    report = load_sam2_image_encoder(encoder, _save(tmp_path, {**state, **UNRELATED_KEYS}, wrap=wrap))
    assert report["loaded"] == len(state) == len(encoder.state_dict())
    assert report["ignored_prefixes"] == ["maskmem_tpos_enc", "memory_attention", "sam_mask_decoder", "sam_prompt_encoder"]
    loaded = encoder.state_dict()
    for key, value in state.items():
        matches = [name for name, tensor in loaded.items() if tensor.shape == value.shape and torch.equal(tensor, value)]
        assert matches == [sam2_checkpoint_key(key)], key


def test_loaded_encoder_reproduces_the_sam2_reference(tmp_path: Path) -> None:
    """Binding equivalence with SAM-2: the official-layout weights, loaded into transformers' port, give the
    feature pyramid the SAM-2 reference implementation computes from them."""
    encoder = _tiny(seed=5)
    load_sam2_image_encoder(encoder, _save(tmp_path, official_layout(TINY, TINY_NECK, seed=0)))
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        levels = encoder.pyramid(x)
    assert [tuple(f.shape) for f in levels] == [(1, 32, 16, 24), (1, 32, 8, 12), (1, 32, 4, 6)]
    for f, ref in zip(levels, REFERENCE_LEVELS, strict=True):
        got = [float(f.norm())] + f[0, :4, 0, 0].tolist() + f[0, :4, -1, -1].tolist()
        torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), rtol=1e-4, atol=1e-4)


def test_pretrained_constructor_loads(tmp_path: Path) -> None:
    path = _save(tmp_path, official_layout(TINY, TINY_NECK, seed=3))
    a = HieraImageEncoder(out_channels=TINY_NECK, pretrained=True, checkpoint=path, **TINY)
    b = _tiny(seed=4)
    load_sam2_image_encoder(b, path)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_loader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"sam2\.1_hiera_small\.pt.*nothing is downloaded"):
        load_sam2_image_encoder(_tiny(), tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        HieraImageEncoder(out_channels=TINY_NECK, pretrained=True, checkpoint=tmp_path / "absent.pt", **TINY)


def test_loader_shape_mismatch(tmp_path: Path) -> None:
    state = official_layout(TINY, TINY_NECK)
    state["image_encoder.trunk.pos_embed"] = torch.zeros(1, 16, 7, 7)
    with pytest.raises(
        ValueError, match=r"image_encoder\.trunk\.pos_embed: checkpoint \(1, 16, 7, 7\) vs encoder \(1, 16, 4, 4\)"
    ):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, state))


def test_loader_no_image_encoder_keys(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="image_encoder"):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, dict(UNRELATED_KEYS)))


def test_loader_strict_key_sets(tmp_path: Path) -> None:
    """A missing tensor, a tensor without a place, or another variant's checkpoint is an error naming the keys."""
    state = official_layout(TINY, TINY_NECK)
    del state["image_encoder.neck.convs.3.conv.bias"]
    with pytest.raises(KeyError, match=r"vision_encoder\.neck\.convs\.3\.bias"):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, state))
    state = official_layout(TINY, TINY_NECK)
    del state["sam_mask_decoder.conv_s0.weight"]
    with pytest.raises(KeyError, match=r"conv_s0\.weight"):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, state))
    state = official_layout(TINY, TINY_NECK)
    state["image_encoder.trunk.blocks.9.norm1.weight"] = torch.ones(16)
    with pytest.raises(KeyError, match=r"image_encoder\.trunk\.blocks\.9\.norm1\.weight"):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, state))
    other_variant = official_layout({**TINY, "stages": (1, 1, 3, 1)}, TINY_NECK)
    with pytest.raises(KeyError, match="another Hiera variant"):
        load_sam2_image_encoder(_tiny(), _save(tmp_path, other_variant))
