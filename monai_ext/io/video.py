"""Reader of video files (``.mp4/.avi/.mov/.mkv``) with PyAV, falling back to OpenCV."""

from __future__ import annotations

import os

import numpy as np

from monai.data import MetaTensor

from .errors import SequenceReadError
from .meta import SourceKind, frame_index_names, make_source

__all__ = ["read_video"]

_EXTRA_HINT = "install the video extra: pip install 'monai_ext[video]' (PyAV or opencv-python-headless)"


def _read_pyav(path: str | os.PathLike) -> tuple[list[np.ndarray], float | None]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SequenceReadError(path, "no video stream in the file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except SequenceReadError:
        raise
    except Exception as e:  # av.error.InvalidDataError, EOFError, ...
        raise SequenceReadError(path, f"empty or corrupt video ({type(e).__name__}: {e})") from e
    return frames, (float(rate) if rate else None)


def _read_opencv(path: str | os.PathLike) -> tuple[list[np.ndarray], float | None]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SequenceReadError(path, "empty or corrupt video (OpenCV cannot open it)")
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return frames, fps


def read_video(
    path: str | os.PathLike, dtype: np.dtype | type | str | None = np.float32, backend: str | None = None
) -> MetaTensor:
    """
    Decode all frames of a video file as RGB.

    Args:
        path: the video file.
        dtype: output data type, ``None`` keeps uint8.
        backend: ``"pyav"``, ``"opencv"`` or ``None`` (PyAV when importable, else OpenCV).

    Returns:
        ``(3, H, W, T)`` MetaTensor, identity affine, meta ``fps`` (float, or None when unknown)
        and ``frame_names`` (``frame_0000``, ...).

    Raises:
        SequenceReadError: missing, empty (0 bytes, no frame) or corrupt file.
        ImportError: neither PyAV nor OpenCV is installed.
    """
    if not os.path.isfile(path):
        raise SequenceReadError(path, "video file not found")
    if os.path.getsize(path) == 0:
        raise SequenceReadError(path, "empty video file (0 bytes)")
    if backend is None:
        try:
            import av  # noqa: F401

            backend = "pyav"
        except ImportError:
            try:
                import cv2  # noqa: F401

                backend = "opencv"
            except ImportError as e:
                raise ImportError(f"reading video {path} needs PyAV or OpenCV: {_EXTRA_HINT}") from e
    if backend == "pyav":
        frames, fps = _read_pyav(path)
    elif backend == "opencv":
        frames, fps = _read_opencv(path)
    else:
        raise ValueError(f"unknown video backend {backend!r}, use 'pyav' or 'opencv'.")
    if not frames:
        raise SequenceReadError(path, "empty video: no decodable frame")
    shape = frames[0].shape
    for t, f in enumerate(frames):
        if f.shape != shape:
            raise SequenceReadError(path, f"frame {t} has shape {f.shape}, frame 0 has {shape}")
    array = np.stack(frames, axis=-1)  # (H, W, 3, T)
    array = np.moveaxis(array, 2, 0)  # (3, H, W, T)
    extra = {"fps": fps, "frame_names": frame_index_names(array.shape[-1])}
    return make_source(array, SourceKind.VIDEO, path, extra=extra, dtype=dtype)
