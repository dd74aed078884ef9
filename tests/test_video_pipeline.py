"""A bundle over a video streamed in chunks (monai_ext.bundle.segment_video, `monai-ext segment VIDEO`):
the same masks as the whole video at once, frame ranges and strides, mask and overlay videos."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from monai_ext.bundle import BundlePipeline, segment_video
from monai_ext.cli import main
from monai_ext.io import iter_mask_video, probe_video
from monai_ext.sample import sample_path

REPO = Path(__file__).resolve().parents[1]
TGSAM2 = REPO / "bundles" / "tgsam2_text_guided_sequence_segmentation"
RECLMIS = REPO / "bundles" / "reclmis_language_guided_segmentation"


@pytest.fixture(scope="module")
def cvc_video(tmp_path_factory) -> Path:
    """24 frames (the 10 shipped CVC-ClinicDB frames, cycled) as a lossless-enough mp4 at 25 fps."""
    frames = [np.asarray(Image.open(sample_path("cvc_frames") / f"{i}.png").convert("RGB")) for i in range(1, 11)]
    path = tmp_path_factory.mktemp("video") / "cvc.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 384, 288, "yuv444p"
    stream.options = {"qp": "0"}
    for k in range(24):
        for packet in stream.encode(av.VideoFrame.from_ndarray(frames[k % 10], format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_chunks_track_as_one_pass(cvc_video, tmp_path):
    """TGSAM-2 streamed in chunks of 8 frames (its memory carried across) writes the masks of one pass."""
    whole = BundlePipeline.from_bundle(TGSAM2, overrides={"save_masks": False})({"image": str(cvc_video), "prompt": "polyp"})
    expected = torch.as_tensor(whole["pred"])[0].numpy() > 0  # (H, W, T)
    pipeline = BundlePipeline.from_bundle(TGSAM2, overrides={"save_masks": False})
    summary = segment_video(pipeline, cvc_video, "polyp", tmp_path, formats=["video", "png"], chunk_frames=8, threshold=0.45)
    assert summary["n_frames"] == 24 and summary["target_present"] and len(summary["frame_scores"]) == 24
    assert summary["frames_with_target"] == [t for t in range(24) if expected[..., t].any()]
    pngs = [np.asarray(Image.open(tmp_path / "cvc" / f"frame_{t:04d}_mask.png")) > 0 for t in range(24)]
    assert all(np.array_equal(p, expected[..., t]) for t, p in enumerate(pngs))
    video = list(iter_mask_video(tmp_path / "cvc_mask.mp4"))
    assert len(video) == 24 and all(np.array_equal(v, expected[..., t]) for t, v in enumerate(video))
    assert not pipeline.inferer.inferer.keep_state  # left as the config made it


def test_cli_frame_range_stride_and_overlay_video(cvc_video, tmp_path, capsys):
    status = main(["segment", str(cvc_video), "--prompt", "a polyp", "--output", str(tmp_path), "--frame-range", "4:20",
                   "--stride", "3", "--overlay", "--format", "video", "png", "--quiet"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "cvc_prediction.json").read_text())
    kept = list(range(4, 20, 3))
    assert summary["n_frames"] == len(kept) and set(summary["frames_with_target"]) <= set(kept)
    assert summary["typed_prompt"] == "a polyp" and summary["target"] == "polyp" and summary["stride"] == 3
    assert sorted(p.name for p in (tmp_path / "cvc").glob("*_mask.png")) == [f"frame_{t:04d}_mask.png" for t in kept]
    assert len(list((tmp_path / "cvc").glob("*_overlay.png"))) == len(kept)
    for name in ("cvc_mask.mp4", "cvc_overlay.mp4"):
        info = probe_video(tmp_path / name)
        assert info.frames == len(kept) and (info.height, info.width) == (288, 384)
        assert info.fps == pytest.approx(25 / 3)  # the input's duration is kept


def test_overlays_for_frames_and_a_mosaic_for_a_volume(tmp_path):
    assert main(["segment", str(sample_path("cvc_frames")), "--prompt", "polyp", "--output", str(tmp_path / "f"), "--overlay", "--quiet"]) == 0
    overlays = sorted((tmp_path / "f" / "frames").glob("*_overlay.png"))
    assert len(overlays) == 10 and Image.open(overlays[0]).size == (384, 288)
    assert main(["segment", str(sample_path("ct_small")), "--prompt", "liver", "--output", str(tmp_path / "v"), "--overlay", "--quiet"]) == 0
    mosaic = Image.open(tmp_path / "v" / "ct_mosaic.png")
    summary = json.loads((tmp_path / "v" / "ct_prediction.json").read_text())
    assert mosaic.size[0] > 256 and str(tmp_path / "v" / "ct_mosaic.png") in summary["outputs"]


def test_video_options_are_checked_before_any_work(cvc_video, tmp_path, capsys):
    cases = [
        (["--frame-range", "5"], "expected START:STOP"),
        (["--frame-range", "9:3"], "STOP after START"),
        (["--stride", "0"], "at least 1"),
        (["--format", "dicom-seg"], "does not fit a video input"),
    ]
    for extra, words in cases:
        assert main(["segment", str(cvc_video), "--prompt", "polyp", "--output", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (extra, err)
    assert main(["segment", str(sample_path("ct_small")), "--prompt", "liver", "--stride", "2"]) == 2
    assert "for videos" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
