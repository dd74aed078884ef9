"""Video reading (PyAV and OpenCV backends) on a real mp4 made from CVC-ClinicDB frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_ext.io import SequenceReadError, load_source, read_video

import av  # noqa: E402  (the dev extra README installs: missing fails, never skips)

N_FRAMES = 12


@pytest.fixture(scope="module")
def cvc_frames(shared_data: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(shared_data / "cvc_clinicdb/Original" / f"{i}.png").convert("RGB")) for i in range(1, N_FRAMES + 1)]


@pytest.fixture(scope="module")
def cvc_mp4(cvc_frames, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "cvc_seq01.mp4"
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = cvc_frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in cvc_frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _check_video(img, cvc_frames) -> None:
    assert img.meta["source_kind"] == "video"
    assert img.shape == (3, 288, 384, N_FRAMES)
    assert img.meta["fps"] == pytest.approx(25.0)
    assert img.meta["frame_names"][:2] == ["frame_0000", "frame_0001"]
    assert len(img.meta["frame_names"]) == N_FRAMES
    np.testing.assert_allclose(img.affine.numpy(), np.eye(4))
    # lossy codec: close to the source frames, in order
    for t in (0, N_FRAMES - 1):
        decoded = img[..., t].numpy().transpose(1, 2, 0).astype(np.float32)
        assert np.abs(decoded - cvc_frames[t]).mean() < 12


def test_mp4_pyav(cvc_mp4, cvc_frames) -> None:
    img = load_source(cvc_mp4)
    _check_video(img, cvc_frames)


def test_mp4_opencv(cvc_mp4, cvc_frames) -> None:
    img = read_video(cvc_mp4, backend="opencv")
    _check_video(img, cvc_frames)


def test_empty_video(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SequenceReadError, match="empty.mp4.*empty"):
        load_source(tmp_path / "empty.mp4")


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_random_bytes_video(tmp_path: Path, backend: str) -> None:
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(SequenceReadError, match="noise.mp4"):
        read_video(tmp_path / "noise.mp4", backend=backend)


def test_truncated_video(cvc_mp4, tmp_path: Path) -> None:
    data = cvc_mp4.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(SequenceReadError, match="cut.mp4"):
        load_source(tmp_path / "cut.mp4")


# --------------------------------------------------------------------------- lazy reading, writers
# These use the shipped sample (monai_ext.sample): 10 CVC-ClinicDB frames and their masks.

import os  # noqa: E402
import tracemalloc  # noqa: E402
from fractions import Fraction  # noqa: E402

import torch  # noqa: E402

from monai_ext.io.video import (  # noqa: E402
    MaskVideoWriter,
    OverlayVideoWriter,
    iter_mask_video,
    iter_video_chunks,
    iter_video_frames,
    mask_video_codec,
    probe_video,
    video_frame_names,
)
from monai_ext.sample import sample_path  # noqa: E402

N_SAMPLE = 10


def _sample_images(name: str, mode: str) -> list[np.ndarray]:
    folder = sample_path(name)
    return [np.asarray(Image.open(folder / f"{i}.png").convert(mode)) for i in range(1, N_SAMPLE + 1)]


@pytest.fixture(scope="module")
def sample_frames() -> list[np.ndarray]:
    return _sample_images("cvc_frames", "RGB")


@pytest.fixture(scope="module")
def sample_masks() -> list[np.ndarray]:
    return [m > 127 for m in _sample_images("cvc_masks", "L")]


def _encode(path: Path, frames: list[np.ndarray], rate=25) -> Path:
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def sample_mp4(sample_frames, tmp_path_factory) -> Path:
    return _encode(tmp_path_factory.mktemp("sample_video") / "cvc_sample.mp4", sample_frames)


def test_probe_video(sample_mp4) -> None:
    info = probe_video(sample_mp4)
    assert (info.frames, info.width, info.height) == (N_SAMPLE, 384, 288)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(N_SAMPLE / 25.0)
    assert not info.frames_estimated


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_lazy_frames_equal_read_video(sample_mp4, backend: str) -> None:
    whole = read_video(sample_mp4, dtype=None, backend=backend)
    assert whole.meta["frame_indices"] == list(range(N_SAMPLE))
    frames = iter_video_frames(sample_mp4, backend=backend)
    assert not isinstance(frames, (list, tuple))  # an iterator, decoded as it is consumed
    seen = []
    for index, frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (288, 384, 3)
        np.testing.assert_array_equal(frame, whole[..., index].numpy().transpose(1, 2, 0))
        seen.append(index)
    assert seen == list(range(N_SAMPLE))


@pytest.mark.parametrize(
    "frame_range, stride, expected",
    [((2, 9), 3, [2, 5, 8]), ((7, None), 1, [7, 8, 9]), ((4, 1000), 2, [4, 6, 8]), (None, 4, [0, 4, 8]), ((0, 1), 1, [0])],
)
def test_frame_range_and_stride(sample_mp4, frame_range, stride, expected) -> None:
    whole = read_video(sample_mp4)
    part = read_video(sample_mp4, frame_range=frame_range, stride=stride)
    assert part.shape == (3, 288, 384, len(expected))
    assert part.meta["frame_indices"] == expected
    assert part.meta["frame_names"] == [f"frame_{i:04d}" for i in expected]
    assert part.meta["fps"] == pytest.approx(25.0)
    np.testing.assert_array_equal(part.numpy(), whole.numpy()[..., expected])
    assert [i for i, _ in iter_video_frames(sample_mp4, frame_range, stride)] == expected
    chunks = list(iter_video_chunks(sample_mp4, 2, frame_range, stride))
    assert sum((c.meta["frame_indices"] for c in chunks), []) == expected
    np.testing.assert_array_equal(torch.cat(chunks, dim=-1).numpy(), part.numpy())


def test_chunk_metas_match_read_video(sample_mp4) -> None:
    whole = read_video(sample_mp4)
    chunks = list(iter_video_chunks(sample_mp4, chunk_frames=4))
    assert [c.shape[-1] for c in chunks] == [4, 4, 2]
    for chunk in chunks:
        indices = chunk.meta["frame_indices"]
        same = read_video(sample_mp4, frame_range=(indices[0], indices[-1] + 1))
        assert set(chunk.meta) == set(same.meta) == set(whole.meta)
        for key in ("source_kind", "filename_or_obj", "stem", "fps", "frame_names", "frame_indices", "space", "original_channel_dim"):
            assert chunk.meta[key] == same.meta[key], key
        np.testing.assert_array_equal(chunk.meta["spatial_shape"], [288, 384, len(indices)])
        np.testing.assert_array_equal(chunk.meta["original_affine"], np.eye(4))
        np.testing.assert_array_equal(chunk.affine.numpy(), np.eye(4))
        assert chunk.dtype == torch.float32 and chunk.meta["source_kind"] == "video"
        assert chunk.meta["stem"] == "cvc_sample"
        np.testing.assert_array_equal(chunk.numpy(), whole.numpy()[..., indices])
    assert sum((c.meta["frame_names"] for c in chunks), []) == whole.meta["frame_names"]


def test_frame_names_width() -> None:
    assert video_frame_names([3, 12], 20) == ["frame_0003", "frame_0012"]
    assert video_frame_names([0, 10000], 15000) == ["frame_00000", "frame_10000"]


def test_lazy_reading_memory_does_not_grow(sample_frames, tmp_path: Path) -> None:
    """Iterating 60 frames holds about one frame, chunks about two chunks; read_video holds them all (tracemalloc sees numpy)."""
    path = _encode(tmp_path / "long.mp4", sample_frames * 6)
    frame_bytes = 288 * 384 * 3
    chunk_bytes = 8 * frame_bytes * 4  # 8 frames, float32
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_video_frames(path))
        lazy_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        n_chunks = sum(1 for _ in iter_video_chunks(path, chunk_frames=8))
        chunk_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        whole = read_video(path)
        eager_peak = tracemalloc.get_traced_memory()[1]
        del whole
    finally:
        tracemalloc.stop()
    assert count == 60 and n_chunks == 8
    assert lazy_peak < 4 * frame_bytes, lazy_peak
    # the chunk being made (its uint8 frames and the float32 array) and the previous one, still held by the caller
    assert chunk_peak < 2.5 * chunk_bytes, chunk_peak
    assert eager_peak > 60 * frame_bytes * 4, eager_peak  # for contrast: read_video holds every frame


def test_bad_selection(sample_mp4) -> None:
    for kwargs in ({"stride": 0}, {"frame_range": (5, 3)}, {"frame_range": (-1, 3)}, {"frame_range": 3}):
        with pytest.raises(ValueError):
            iter_video_frames(sample_mp4, **kwargs)
    with pytest.raises(ValueError):
        iter_video_chunks(sample_mp4, chunk_frames=0)
    with pytest.raises(SequenceReadError, match=r"cvc_sample.mp4: no frame in frame_range \(20, 30\): the video has 10 frames"):
        read_video(sample_mp4, frame_range=(20, 30))


def _zero_frame_video(path: Path) -> Path:
    """A valid container whose video stream has no frame (mp4 then lists no video stream at all)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.height, stream.width = 64, 64
        stream.pix_fmt = "yuv420p"
        container.start_encoding()  # header and trailer only
    assert path.stat().st_size > 0
    return path


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_zero_frame_video(tmp_path: Path, backend: str, suffix: str) -> None:
    path = _zero_frame_video(tmp_path / f"zero_frames{suffix}")
    problem = "(no decodable frame|no video stream|corrupt)"
    with pytest.raises(SequenceReadError, match=f"zero_frames{suffix}: .*{problem}"):
        read_video(path, backend=backend)
    with pytest.raises(SequenceReadError, match=f"zero_frames{suffix}: .*{problem}"):
        list(iter_video_frames(path, backend=backend))
    with pytest.raises(SequenceReadError, match=f"zero_frames{suffix}: .*{problem}"):
        list(iter_video_chunks(path, 4, backend=backend))
    if suffix == ".avi":  # the stream is there, with nothing in it
        with pytest.raises(SequenceReadError, match="zero_frames.avi: empty video: no decodable frame"):
            read_video(path, backend=backend)


def test_lazy_errors_name_the_file(sample_mp4, tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SequenceReadError, match="empty.mp4: empty video file"):
        iter_video_frames(tmp_path / "empty.mp4")  # raised at the call, before iterating
    with pytest.raises(SequenceReadError, match="missing.mp4: video file not found"):
        iter_video_chunks(tmp_path / "missing.mp4")
    with pytest.raises(SequenceReadError, match="empty.mp4"):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(SequenceReadError, match="noise.mp4.*corrupt"):
        list(iter_video_frames(tmp_path / "noise.mp4"))
    with pytest.raises(SequenceReadError, match="noise.mp4"):
        probe_video(tmp_path / "noise.mp4")
    data = sample_mp4.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(SequenceReadError, match="cut.mp4"):
        list(iter_video_chunks(tmp_path / "cut.mp4", 4))


@pytest.mark.parametrize(
    "codec, lossless, min_agreement",
    # measured on the 10 shipped masks: 1.0 (identical) in all three cases
    [("libx264", True, 1.0), ("libx264", False, 0.999), ("mpeg4", True, 0.999)],
)
def test_mask_video_round_trip(sample_masks, tmp_path: Path, codec: str, lossless: bool, min_agreement: float) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    path = tmp_path / "out" / "cvc_sample_mask.mp4"
    with MaskVideoWriter(path, fps=25.0, size=(288, 384), codec=codec, lossless=lossless) as writer:
        writer.write_frames(np.stack(sample_masks, axis=-1)[None].astype(np.uint8))  # (1, H, W, T) 0/1
    assert os.listdir(path.parent) == [path.name]  # no temporary file left
    info = probe_video(path)
    assert (info.frames, info.height, info.width) == (N_SAMPLE, 288, 384)
    assert info.fps == pytest.approx(25.0)
    back = list(iter_mask_video(path))
    assert len(back) == N_SAMPLE
    agreement = [float((b == m).mean()) for b, m in zip(back, sample_masks)]
    assert min(agreement) >= min_agreement, agreement
    dice = [2 * (b & m).sum() / (b.sum() + m.sum()) for b, m in zip(back, sample_masks)]
    assert min(dice) >= min_agreement, dice


def test_mask_video_default_is_lossless() -> None:
    assert mask_video_codec() in ("libx264", "mpeg4")
    if mask_video_codec() == "libx264":
        assert MaskVideoWriter.__init__.__defaults__[0] is True  # lossless=True


def test_mask_video_odd_size_and_ntsc_rate(sample_masks, tmp_path: Path) -> None:
    masks = [m[:287, :383] for m in sample_masks[:4]]
    path = tmp_path / "odd.mp4"
    with MaskVideoWriter(path, fps=30000 / 1001, size=(287, 383)) as writer:
        for m in masks:
            writer.write(torch.as_tensor(m))  # bool tensors are accepted too
    info = probe_video(path)
    assert (info.height, info.width, info.frames) == (287, 383, 4)
    assert Fraction(info.fps).limit_denominator(1001) == Fraction(30000, 1001)
    for b, m in zip(iter_mask_video(path), masks):
        np.testing.assert_array_equal(b, m)


def test_overlay_video(sample_frames, tmp_path: Path) -> None:
    path = tmp_path / "cvc_sample_overlay.mp4"
    with OverlayVideoWriter(path, fps=Fraction(25), size=(288, 384)) as writer:
        for frame in sample_frames:
            writer.write(frame)
    info = probe_video(path)
    assert (info.frames, info.height, info.width) == (N_SAMPLE, 288, 384)
    assert info.fps == pytest.approx(25.0)
    for (_, back), frame in zip(iter_video_frames(path), sample_frames):
        assert np.abs(back.astype(np.float32) - frame).mean() < 3  # crf 18: visually lossless


def test_video_writers_are_atomic(sample_masks, sample_frames, tmp_path: Path) -> None:
    target = tmp_path / "mask.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with MaskVideoWriter(target, 25, (288, 384)) as writer:
            writer.write(sample_masks[0])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # a wrong frame size fails before anything is written; an existing video is kept untouched
    target.write_bytes(b"previous good video")
    with pytest.raises(ValueError, match=r"size \(384, 288\).*\(288, 384\)"):
        with OverlayVideoWriter(target, 25, (288, 384)) as writer:
            writer.write(sample_frames[0])
            writer.write(sample_frames[1].transpose(1, 0, 2))
    assert os.listdir(tmp_path) == ["mask.mp4"] and target.read_bytes() == b"previous good video"
    # no frame: no video
    with pytest.raises(ValueError, match="no frame"):
        with MaskVideoWriter(tmp_path / "none.mp4", 25, (288, 384)):
            pass
    assert os.listdir(tmp_path) == ["mask.mp4"]
    # abandoned without closing: the temporary file goes with the writer
    writer = MaskVideoWriter(tmp_path / "abandoned.mp4", 25, (288, 384))
    writer.write(sample_masks[0])
    del writer
    assert os.listdir(tmp_path) == ["mask.mp4"]


def test_video_memory_tool(tmp_path: Path) -> None:
    """tools/video_memory.py: its synthetic video and its peak-RSS measurement of a command."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("video_memory", Path(__file__).resolve().parents[1] / "tools" / "video_memory.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    made = tool.make_synthetic_video(tmp_path / "synthetic.mp4", duration=0.4, fps=25, size=(48, 64))
    info = probe_video(made["path"])
    assert (info.frames, info.height, info.width, info.fps) == (10, 48, 64, 25.0)
    small = tool.peak_rss_of([sys.executable, "-c", "print('RESULT {\"ok\": 1}')"])
    big = tool.peak_rss_of([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small["returncode"] == 0 and small["result"] == {"ok": 1}
    assert big["peak_rss_mb"] > small["peak_rss_mb"] + 250
