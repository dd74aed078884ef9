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
