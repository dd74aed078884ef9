"""Overlay frames and slice mosaics (monai_ext.io.overlay) on the shipped samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai.data import MetaTensor
from monai_ext.io import load_source, mask_output_paths, read_frames
from monai_ext.io.meta import SourceKind, make_source
from monai_ext.io.overlay import (
    iter_overlay_frames,
    make_mosaic,
    overlay_frame,
    overlay_output_paths,
    to_display_uint8,
    write_mosaic,
    write_overlay_frames,
)
from monai_ext.sample import sample_path

RED = np.array([255, 0, 0], np.uint8)


@pytest.fixture(scope="module")
def cvc():
    frames = read_frames(sample_path("cvc_frames"))  # (3, 288, 384, 10), natural order 1..10
    masks = read_frames(sample_path("cvc_masks"))
    return frames, (masks[:1] > 127).to(torch.uint8)


@pytest.fixture(scope="module")
def ct():
    volume = load_source(sample_path("ct_small"))  # (1, 122, 101, 30), RAS, 3 mm
    seg = load_source(sample_path("ct_small_seg"))
    return volume, seg


def _blend(rgb: np.ndarray, alpha: float) -> np.ndarray:
    return np.clip(np.rint(rgb.astype(np.float32) * (1 - alpha) + RED.astype(np.float32) * alpha), 0, 255).astype(np.uint8)


def test_overlay_frame_colours(cvc) -> None:
    frames, masks = cvc
    rgb = frames[..., 0].numpy().transpose(1, 2, 0).astype(np.uint8)
    mask = masks[0, ..., 0].numpy() > 0
    out = overlay_frame(rgb, mask, colour=(255, 0, 0), alpha=0.4, outline=True, outline_width=2)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], rgb[~mask])  # untouched outside the mask
    outline = (out == RED).all(axis=-1) & mask
    fill = mask & ~outline
    assert outline.sum() > 0 and fill.sum() > 0.5 * mask.sum()
    np.testing.assert_array_equal(out[fill], _blend(rgb[fill], 0.4))
    assert (out[mask][:, 0].astype(int) >= rgb[mask][:, 0]).all()  # redder everywhere in the mask
    # the outline is the mask's inner boundary: every outline pixel touches the background within 2 px
    padded = np.pad(mask, 2)
    near_background = np.zeros_like(mask)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if abs(dy) + abs(dx) <= 2:
                near_background |= ~padded[2 + dy : 2 + dy + mask.shape[0], 2 + dx : 2 + dx + mask.shape[1]]
    assert (near_background[outline]).all()
    # without the outline every mask pixel is blended
    plain = overlay_frame(rgb, mask, alpha=0.4, outline=False)
    np.testing.assert_array_equal(plain[mask], _blend(rgb[mask], 0.4))
    np.testing.assert_array_equal(plain[~mask], rgb[~mask])
    # an empty mask changes nothing
    np.testing.assert_array_equal(overlay_frame(rgb, np.zeros_like(mask)), rgb)


def test_overlay_frame_grey_and_checks() -> None:
    grey = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (50, 1))  # 50 x 100
    mask = np.zeros((50, 100), np.uint8)
    mask[10:30, 20:60] = 255
    out = overlay_frame(grey, mask, colour=(0, 255, 0), alpha=0.5)
    assert out.shape == (50, 100, 3)
    outside = mask == 0
    for c in range(3):
        np.testing.assert_array_equal(out[..., c][outside], grey[outside])  # grey shown as RGB
    assert (out[15, 30] == np.rint(np.array([grey[15, 30]] * 3) * 0.5 + np.array([0, 255, 0]) * 0.5)).all()
    np.testing.assert_array_equal(out[10, 30], [0, 255, 0])  # the outline
    np.testing.assert_array_equal(overlay_frame(grey[..., None], mask[None]), overlay_frame(grey, mask))
    with pytest.raises(ValueError, match="does not match"):
        overlay_frame(grey, mask[:10])
    with pytest.raises(ValueError, match="alpha"):
        overlay_frame(grey, mask, alpha=2)


def test_to_display_uint8() -> None:
    np.testing.assert_array_equal(to_display_uint8(np.array([0.0, 127.6, 255.0])), [0, 128, 255])
    np.testing.assert_array_equal(to_display_uint8(np.array([-160.0, 40.0, 240.0, 1000.0]), window=(40, 400)), [0, 128, 255, 255])
    np.testing.assert_array_equal(to_display_uint8(np.array([-160.0, 240.0]), window="abdomen"), [0, 255])
    scaled = to_display_uint8(np.linspace(0, 4000, 1001))  # 12-bit data: percentile scaling
    assert scaled.min() == 0 and scaled.max() == 255
    assert to_display_uint8(np.array([0.0, 100.0]), keep_8bit=False).tolist() == [0, 255]  # volumes: scaled


def test_write_overlay_frames(cvc, tmp_path: Path) -> None:
    frames, masks = cvc
    paths = write_overlay_frames(frames, masks, tmp_path)
    mask_paths = mask_output_paths(frames.meta, tmp_path)
    assert paths == overlay_output_paths(frames.meta, tmp_path)
    assert [p.name.replace("_overlay.png", "") for p in paths] == [p.name.replace("_mask.png", "") for p in mask_paths]
    assert [p.parent for p in paths] == [p.parent for p in mask_paths]
    assert paths[0].name == "1_overlay.png" and paths[-1].name == "10_overlay.png"
    expected = list(iter_overlay_frames(frames, masks))
    for path, want, t in zip(paths, expected, range(10)):
        got = np.asarray(Image.open(path))
        assert got.shape == (288, 384, 3)
        np.testing.assert_array_equal(got, want)
        outside = masks[0, ..., t].numpy() == 0
        np.testing.assert_array_equal(got[outside], frames[..., t].numpy().transpose(1, 2, 0)[outside].astype(np.uint8))
    assert sorted(os.listdir(paths[0].parent)) == sorted(p.name for p in paths)


def test_write_overlay_frames_atomic(cvc, tmp_path: Path, monkeypatch) -> None:
    frames, masks = cvc
    real_save = Image.Image.save
    calls = []

    def failing_save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 4:
            raise OSError("disk full")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_overlay_frames(frames, masks, tmp_path)
    assert list((tmp_path / frames.meta["stem"]).iterdir()) == []  # no partial output, no temporary file
    with pytest.raises(ValueError, match="does not match"):
        write_overlay_frames(frames, masks[..., :3], tmp_path)
    with pytest.raises(ValueError, match="use write_mosaic"):
        overlay_output_paths({"source_kind": "volume", "stem": "ct"}, tmp_path)


def test_mosaic_of_the_ct_sample(ct, tmp_path: Path) -> None:
    volume, seg = ct
    liver = seg == 5
    path = write_mosaic(volume, liver, tmp_path / "ct_mosaic.png", title="the liver", window="abdomen", max_tiles=9)
    assert os.listdir(tmp_path) == ["ct_mosaic.png"]
    image = np.asarray(Image.open(path).convert("RGB"))
    pil, layout = make_mosaic(volume, liver, "the liver", max_tiles=9, window="abdomen")
    np.testing.assert_array_equal(image, np.asarray(pil))
    holding = int(liver[0].reshape(-1, 30).any(0).sum())
    assert layout["mask_slices"] == holding > 9
    assert len(layout["slices"]) == len(layout["boxes"]) == 9 and layout["grid"] == (3, 3)
    assert layout["slices"] == sorted(layout["slices"]) and all(liver[0, ..., z].any() for z in layout["slices"])
    # tiles are 256 px on their longer side: 122 x 101 voxels of 3 x 3 mm -> 256 wide, 212 high
    left, top, right, bottom = layout["boxes"][0]
    assert (right - left, bottom - top) == (256, 212)
    assert image.shape[0] == layout["title_height"] + 3 * 212 + 4 * 4
    # the title band holds text (non-background pixels), the tiles the red outline
    band = image[: layout["title_height"]]
    assert (band.max(axis=-1) > 100).sum() > 50
    longer, _ = make_mosaic(volume, liver, "the liver, the spleen and both kidneys", max_tiles=9, window="abdomen")
    first_line = slice(0, layout["title_height"] // 2)
    assert (np.asarray(longer)[first_line] > 100).sum() > (band[first_line] > 100).sum() > 50
    for left, top, right, bottom in layout["boxes"]:
        assert (image[top:bottom, left:right] == RED).all(axis=-1).sum() > 20


def test_mosaic_orientation_is_radiological(tmp_path: Path) -> None:
    """A marker at the patient's right-anterior side is drawn top-left; an LPS copy of the same data gives the same mosaic."""
    data = np.zeros((1, 40, 30, 6), np.float32)
    data[0, 30:38, 22:28, :] = 100.0  # high x (right), high y (anterior) in RAS
    mask = np.zeros((1, 40, 30, 6), np.uint8)
    mask[0, 30:38, 22:28, 2:4] = 1
    ras = make_source(data, SourceKind.VOLUME, "ras.nii.gz", affine=np.diag([1.0, 2.0, 3.0, 1.0]))
    image, layout = make_mosaic(ras, mask, "marker", tile_size=240)
    assert layout["slices"] == [2, 3]
    left, top, right, bottom = layout["boxes"][0]
    assert (right - left, bottom - top) == (160, 240)  # 40 x 1 mm wide, 30 x 2 mm high -> 2:3
    tile = np.asarray(image)[top:bottom, left:right]
    bright = np.argwhere(tile[..., 2] > 150)  # the marker (labels are yellow and the outline red: no blue)
    assert bright[:, 0].max() < tile.shape[0] / 2 and bright[:, 1].max() < tile.shape[1] / 2  # top-left
    # the same physical volume stored LPS (x and y reversed, affine flipped) shows the same
    lps_affine = np.diag([-1.0, -2.0, 3.0, 1.0])
    lps_affine[:3, 3] = [39.0, 58.0, 0.0]
    lps = make_source(data[:, ::-1, ::-1].copy(), SourceKind.VOLUME, "lps.nii.gz", affine=lps_affine)
    image_lps, layout_lps = make_mosaic(lps, mask[:, ::-1, ::-1].copy(), "marker", tile_size=240)
    assert layout_lps["slices"] == [2, 3]
    np.testing.assert_array_equal(np.asarray(image_lps), np.asarray(image))


def test_mosaic_empty_mask_and_frames(ct, cvc, tmp_path: Path) -> None:
    volume, _ = ct
    _, layout = make_mosaic(volume, torch.zeros((1, 122, 101, 30)), "nothing here", max_tiles=4)
    assert layout["mask_slices"] == 0 and layout["slices"] == [0, 10, 19, 29]
    frames, masks = cvc
    _, layout = make_mosaic(frames, masks, "a polyp in the colon", max_tiles=16)
    assert layout["slices"] == list(range(10)) and layout["grid"] == (3, 4)
    left, top, right, bottom = layout["boxes"][0]
    assert (right - left, bottom - top) == (256, 192)  # frames as they are: 384 x 288


def test_write_mosaic_atomic(ct, tmp_path: Path, monkeypatch) -> None:
    volume, seg = ct
    target = tmp_path / "mosaic.png"
    target.write_bytes(b"previous mosaic")

    def failing_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_mosaic(volume, seg == 1, target, "the spleen")
    assert os.listdir(tmp_path) == ["mosaic.png"] and target.read_bytes() == b"previous mosaic"
    with pytest.raises(ValueError, match="does not match"):
        write_mosaic(volume, MetaTensor(torch.zeros(1, 10, 10, 10)), tmp_path / "bad.png", "x")
