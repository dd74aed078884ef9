"""
Video files (``.mp4/.avi/.mov/.mkv``): probing, lazy (streamed) reading and mask / overlay video writing.

Reading uses PyAV, falling back to OpenCV where PyAV is not installed:

- :py:func:`probe_video`: frame count (exact or estimated), fps, size and duration without decoding;
- :py:func:`iter_video_frames`: ``(index, H x W x 3 uint8 RGB)`` frame after frame; only the frame being
  handed over is held, so memory does not grow with the video's length;
- :py:func:`iter_video_chunks`: the same frames as ``(3, H, W, t)`` MetaTensors of at most
  ``chunk_frames`` frames whose metadata is what :py:func:`read_video` gives for those frames, so the
  bundles' preprocessing can run on each chunk as on a short video;
- :py:func:`read_video`: the whole video (or a frame range / stride) in one MetaTensor.

Frame selection (``frame_range``, ``stride``) is by the *original* frame index, counted from 0 in decoding
order: ``frame_range=(start, stop)`` is half open like :py:func:`range` (``stop`` ``None`` = to the end,
a ``stop`` past the end is clipped) and ``stride`` keeps every ``stride``-th frame from ``start``.
Frame names (``frame_0000``, ...) and ``meta["frame_indices"]`` keep the original indices, so masks of a
frame range are named after the frames they belong to.

Writing (PyAV only): :py:class:`MaskVideoWriter` (binary masks, lossless H.264 by default: read back and
thresholded at 128 they give the same masks) and :py:class:`OverlayVideoWriter` (RGB frames, visually
lossless H.264), both appending frames as they come, keeping the input's fps and frame size and written
atomically (a temporary file beside the target, renamed on a successful close; nothing is left on error).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai.data import MetaTensor

from ..atomic import temp_path_beside
from .errors import SequenceReadError
from .meta import SourceKind, make_source

__all__ = [
    "VideoInfo",
    "probe_video",
    "iter_video_frames",
    "iter_video_chunks",
    "iter_mask_video",
    "read_video",
    "video_frame_names",
    "MaskVideoWriter",
    "OverlayVideoWriter",
    "mask_video_codec",
]

logger = logging.getLogger(__name__)

_NO_STREAM = "no video stream in the file (or a video without any frame)"
_EXTRA_HINT = "install the video extra: pip install 'monai_ext[video]' (PyAV or opencv-python-headless)"


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VideoInfo:
    """
    What :py:func:`probe_video` finds out about a video without decoding it.

    Attributes:
        frames: number of frames; from the container's frame count when it has one, otherwise
            ``round(duration * fps)`` (then ``frames_estimated`` is True). 0 when neither is known.
        fps: average frame rate (frames per second), ``None`` when unknown.
        width: frame width (columns).
        height: frame height (rows).
        duration: duration in seconds, ``None`` when unknown.
        frames_estimated: ``frames`` is an estimate rather than the container's count.
        codec: the video stream's codec name (``"h264"``, ...), ``None`` when unknown.
    """

    frames: int
    fps: float | None
    width: int
    height: int
    duration: float | None
    frames_estimated: bool = False
    codec: str | None = None


def _backend(path: str | os.PathLike, backend: str | None) -> str:
    if backend is None:
        try:
            import av  # noqa: F401

            return "pyav"
        except ImportError:
            try:
                import cv2  # noqa: F401

                return "opencv"
            except ImportError as e:
                raise ImportError(f"reading video {path} needs PyAV or OpenCV: {_EXTRA_HINT}") from e
    if backend not in ("pyav", "opencv"):
        raise ValueError(f"unknown video backend {backend!r}, use 'pyav' or 'opencv'.")
    return backend


def _check_file(path: str | os.PathLike) -> None:
    if not os.path.isfile(path):
        raise SequenceReadError(path, "video file not found")
    if os.path.getsize(path) == 0:
        raise SequenceReadError(path, "empty video file (0 bytes)")


def _probe_pyav(path: str | os.PathLike) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SequenceReadError(path, _NO_STREAM)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else None
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            frames, estimated = int(stream.frames or 0), False
            if frames <= 0 and duration is not None and fps:
                frames, estimated = int(round(duration * fps)), True
            ctx = stream.codec_context
            return VideoInfo(
                frames=frames,
                fps=fps,
                width=int(ctx.width),
                height=int(ctx.height),
                duration=duration,
                frames_estimated=estimated,
                codec=ctx.name,
            )
    except SequenceReadError:
        raise
    except Exception as e:  # av.error.InvalidDataError, ...
        raise SequenceReadError(path, f"empty or corrupt video ({type(e).__name__}: {e})") from e


def _probe_opencv(path: str | os.PathLike) -> VideoInfo:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SequenceReadError(path, "empty or corrupt video (OpenCV cannot open it)")
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise SequenceReadError(path, "empty or corrupt video (no frame size)")
    duration = frames / fps if fps and frames > 0 else None
    return VideoInfo(frames=max(frames, 0), fps=fps, width=width, height=height, duration=duration, frames_estimated=True)


def probe_video(path: str | os.PathLike, backend: str | None = None) -> VideoInfo:
    """
    Frame count, fps, frame size and duration of a video, read from its container (no decoding).

    Args:
        path: the video file.
        backend: ``"pyav"``, ``"opencv"`` or ``None`` (PyAV when importable, else OpenCV).

    Returns:
        a :py:class:`VideoInfo`. The frame count is the container's (exact for mp4/mov) or an
        estimate from the duration (mkv/webm, OpenCV); decoding may give a few frames more or less.

    Raises:
        SequenceReadError: missing, empty (0 bytes), corrupt file or no video stream.
        ImportError: neither PyAV nor OpenCV is installed.
    """
    _check_file(path)
    backend = _backend(path, backend)
    return _probe_pyav(path) if backend == "pyav" else _probe_opencv(path)


def _normalize_selection(frame_range: Any, stride: int) -> tuple[int, int | None, int]:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}.")
    if frame_range is None:
        return 0, None, int(stride)
    try:
        start, stop = frame_range
    except (TypeError, ValueError) as e:
        raise ValueError(f"frame_range must be (start, stop), got {frame_range!r}.") from e
    start = 0 if start is None else int(start)
    if start < 0:
        raise ValueError(f"frame_range start must be >= 0, got {frame_range!r}.")
    if stop is not None:
        stop = int(stop)
        if stop <= start:
            raise ValueError(f"frame_range (start, stop) needs stop > start (half open, like range), got {frame_range!r}.")
    return start, stop, int(stride)


def _selected(index: int, start: int, stride: int) -> bool:
    return index >= start and (index - start) % stride == 0


def _no_frame_error(path: str | os.PathLike, decoded: int, start: int, stop: int | None) -> SequenceReadError:
    if decoded == 0:
        return SequenceReadError(path, "empty video: no decodable frame")
    return SequenceReadError(path, f"no frame in frame_range ({start}, {stop}): the video has {decoded} frames")


def _iter_pyav(path: str | os.PathLike, start: int, stop: int | None, stride: int) -> Iterator[tuple[int, np.ndarray]]:
    import av

    index, shape = -1, None
    try:
        container = av.open(str(path))
    except Exception as e:
        raise SequenceReadError(path, f"empty or corrupt video ({type(e).__name__}: {e})") from e
    with container:
        if not container.streams.video:
            raise SequenceReadError(path, _NO_STREAM)
        stream = container.streams.video[0]
        frames = container.decode(stream)
        while True:
            if stop is not None and index + 1 >= stop:
                break
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as e:  # av.error.InvalidDataError, EOFError, ...
                raise SequenceReadError(
                    path, f"empty or corrupt video: decoding failed after {index + 1} frames ({type(e).__name__}: {e})"
                ) from e
            index += 1
            if not _selected(index, start, stride):
                continue
            array = frame.to_ndarray(format="rgb24")
            del frame
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise SequenceReadError(path, f"frame {index} has shape {array.shape}, the first frame has {shape}")
            yield index, array
    if shape is None:
        raise _no_frame_error(path, index + 1, start, stop)


def _iter_opencv(path: str | os.PathLike, start: int, stop: int | None, stride: int) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    index, shape = -1, None
    try:
        if not capture.isOpened():
            raise SequenceReadError(path, "empty or corrupt video (OpenCV cannot open it)")
        while stop is None or index + 1 < stop:
            if not capture.grab():
                break
            index += 1
            if not _selected(index, start, stride):
                continue
            ok, frame = capture.retrieve()
            if not ok:
                raise SequenceReadError(path, f"corrupt video: frame {index} cannot be decoded")
            array = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise SequenceReadError(path, f"frame {index} has shape {array.shape}, the first frame has {shape}")
            yield index, array
    finally:
        capture.release()
    if shape is None:
        raise _no_frame_error(path, index + 1, start, stop)


def iter_video_frames(
    path: str | os.PathLike,
    frame_range: tuple[int, int | None] | None = None,
    stride: int = 1,
    backend: str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """
    Decode a video lazily, frame after frame: memory does not grow with the video's length.

    The file is checked (exists, not empty, a known backend) when this is called; decoding errors are
    raised while iterating. Breaking out of the loop (or deleting the iterator) closes the file.

    Args:
        path: the video file.
        frame_range: ``(start, stop)`` original frame indices, half open like :py:func:`range`;
            ``stop`` ``None`` or past the end: to the end. ``None``: all frames.
        stride: keep every ``stride``-th frame from ``start``.
        backend: ``"pyav"``, ``"opencv"`` or ``None`` (PyAV when importable, else OpenCV).

    Yields:
        ``(index, frame)``: the original frame index (0-based, decoding order) and the frame as
        ``H x W x 3`` uint8 RGB.

    Raises:
        SequenceReadError: missing or empty (0 bytes) file (at the call); corrupt file, no
            decodable frame, no frame in ``frame_range``, frames of different sizes (while iterating).
        ValueError: invalid ``frame_range`` or ``stride``.
        ImportError: neither PyAV nor OpenCV is installed.
    """
    start, stop, stride = _normalize_selection(frame_range, stride)
    _check_file(path)
    backend = _backend(path, backend)
    if backend == "pyav":
        return _iter_pyav(path, start, stop, stride)
    return _iter_opencv(path, start, stop, stride)


def video_frame_names(indices: Iterable[int], num_frames: int, prefix: str = "frame_") -> list[str]:
    """
    Names of video frames by their original index (``frame_0000``, ...), zero padded to the width that
    :py:func:`monai_ext.io.frame_index_names` gives a video of ``num_frames`` frames (at least 4 digits).

    Args:
        indices: original frame indices.
        num_frames: the video's frame count (decides the padding width).
        prefix: text before the index.

    Returns:
        one name per index.
    """
    indices = [int(i) for i in indices]
    largest = max([num_frames - 1, *indices, 0])
    width = max(4, len(str(largest)))
    return [f"{prefix}{i:0{width}d}" for i in indices]


def _video_source(
    array: np.ndarray,
    indices: list[int],
    path: str | os.PathLike,
    fps: float | None,
    num_frames: int,
) -> MetaTensor:
    """Wrap a ``(3, H, W, t)`` array (already of the wanted dtype: no copy is made) as a video source."""
    extra = {"fps": fps, "frame_names": video_frame_names(indices, num_frames), "frame_indices": list(indices)}
    return make_source(array, SourceKind.VIDEO, path, extra=extra, dtype=None)


def _out_dtype(dtype: np.dtype | type | str | None) -> np.dtype:
    return np.dtype(np.uint8) if dtype is None else np.dtype(dtype)


def iter_video_chunks(
    path: str | os.PathLike,
    chunk_frames: int = 32,
    frame_range: tuple[int, int | None] | None = None,
    stride: int = 1,
    dtype: np.dtype | type | str | None = np.float32,
    backend: str | None = None,
) -> Iterator[MetaTensor]:
    """
    Decode a video lazily in chunks of at most ``chunk_frames`` frames.

    Memory does not grow with the video: the chunk being made (its uint8 frames and its array) plus the
    chunk the caller still holds.

    Each chunk is a ``(3, H, W, t)`` MetaTensor whose metadata is what :py:func:`read_video` gives for the
    same frames: ``source_kind`` ``"video"``, ``filename_or_obj``, ``stem``, ``spatial_shape``, identity
    ``affine``/``original_affine``, ``fps`` (the video's), ``frame_names`` named by the original frame
    indices and ``frame_indices`` (those indices). The name padding width follows the probed frame count
    (:py:func:`probe_video`), which is exact for mp4/mov.

    Args:
        path: the video file.
        chunk_frames: the most frames per chunk (the last chunk may have fewer).
        frame_range: ``(start, stop)`` original frame indices, half open; see :py:func:`iter_video_frames`.
        stride: keep every ``stride``-th frame from ``start``.
        dtype: data type of the chunks (as :py:func:`read_video`), ``None`` keeps uint8.
        backend: ``"pyav"``, ``"opencv"`` or ``None``.

    Yields:
        the chunks, in frame order.

    Raises:
        SequenceReadError, ValueError, ImportError: as :py:func:`iter_video_frames`.
    """
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be an integer >= 1, got {chunk_frames!r}.")
    frames_iter = iter_video_frames(path, frame_range, stride, backend)  # validates eagerly
    info = probe_video(path, backend)
    return _chunks(frames_iter, int(chunk_frames), path, info, dtype)


def _chunks(
    frames_iter: Iterator[tuple[int, np.ndarray]], chunk_frames: int, path: str | os.PathLike, info: VideoInfo, dtype: Any
) -> Iterator[MetaTensor]:
    # frames are gathered as uint8 (t, H, W, 3) and turned into the chunk's (3, H, W, t) array of the output
    # dtype once: about 1.25 chunks in memory while a chunk is made (float32), and faster than strided writes
    out_dtype = _out_dtype(dtype)
    stack: np.ndarray | None = None
    indices: list[int] = []
    for index, frame in frames_iter:
        if stack is None:
            stack = np.empty((min(chunk_frames, 64), *frame.shape), dtype=np.uint8)
        elif len(indices) == stack.shape[0]:  # long chunks grow as frames come (a short video: no big buffer)
            grown = np.empty((min(chunk_frames, 2 * stack.shape[0]), *frame.shape), dtype=np.uint8)
            grown[: len(indices)] = stack
            stack = grown
        stack[len(indices)] = frame
        indices.append(index)
        if len(indices) == chunk_frames:
            chunk = _video_source(_channel_first(stack[: len(indices)], out_dtype), indices, path, info.fps, info.frames)
            stack, indices = None, []
            yield chunk
    if indices:
        yield _video_source(_channel_first(stack[: len(indices)], out_dtype), indices, path, info.fps, info.frames)


def _channel_first(stack: np.ndarray, dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
    """``(t, H, W, C)`` uint8 frames -> a C-contiguous ``(C, H, W, t)`` array of ``dtype`` (into ``out`` if given)."""
    if out is None:
        out = np.empty((stack.shape[3], stack.shape[1], stack.shape[2], stack.shape[0]), dtype=dtype)
    out[...] = stack.transpose(3, 1, 2, 0)
    return out


def read_video(
    path: str | os.PathLike,
    dtype: np.dtype | type | str | None = np.float32,
    backend: str | None = None,
    frame_range: tuple[int, int | None] | None = None,
    stride: int = 1,
) -> MetaTensor:
    """
    Decode all frames of a video file (or a frame range / stride) as RGB into one MetaTensor.

    For long videos prefer :py:func:`iter_video_chunks`: this holds every frame in memory.

    Args:
        path: the video file.
        dtype: output data type, ``None`` keeps uint8.
        backend: ``"pyav"``, ``"opencv"`` or ``None`` (PyAV when importable, else OpenCV).
        frame_range: ``(start, stop)`` original frame indices, half open; see :py:func:`iter_video_frames`.
        stride: keep every ``stride``-th frame from ``start``.

    Returns:
        ``(3, H, W, T)`` MetaTensor, identity affine, meta ``fps`` (float, or None when unknown),
        ``frame_names`` (``frame_0000``, ... by original frame index) and ``frame_indices``.

    Raises:
        SequenceReadError: missing, empty (0 bytes, no frame), corrupt file, or no frame in ``frame_range``.
        ValueError: invalid ``frame_range`` or ``stride``.
        ImportError: neither PyAV nor OpenCV is installed.
    """
    start, stop, stride = _normalize_selection(frame_range, stride)
    frames_iter = iter_video_frames(path, frame_range, stride, backend)
    frames: list[np.ndarray] = []
    indices: list[int] = []
    for index, frame in frames_iter:
        frames.append(frame)
        indices.append(index)
    try:
        info: VideoInfo | None = probe_video(path, backend)
    except SequenceReadError:  # decodable but not probeable: unknown rate and count
        info = None
    if start == 0 and stop is None and stride == 1:
        num_frames = len(frames)  # every frame decoded: the exact count
    else:
        num_frames = info.frames if info else 0
    fps = info.fps if info else None
    height, width, channels = frames[0].shape
    array = np.empty((channels, height, width, len(frames)), dtype=_out_dtype(dtype))
    block = 32
    for a in range(0, len(frames), block):
        b = min(a + block, len(frames))
        _channel_first(np.stack(frames[a:b]), array.dtype, out=array[..., a:b])
        frames[a:b] = [None] * (b - a)  # type: ignore[list-item]  # free decoded frames once copied
    return _video_source(array, indices, path, fps, num_frames)


# ----------------------------------------------------------------------------------------------- writing


def _av():
    try:
        import av
    except ImportError as e:
        raise ImportError(f"writing a video needs PyAV: {_EXTRA_HINT}") from e
    return av


def mask_video_codec() -> str:
    """The codec the writers use by default: ``"libx264"`` when this PyAV build has it, else ``"mpeg4"``."""
    return "libx264" if "libx264" in _av().codecs_available else "mpeg4"


def _fps_fraction(fps: float | Fraction | None) -> Fraction:
    if fps is None:
        logger.warning("unknown frame rate: writing the video at 25 fps.")
        return Fraction(25)
    if isinstance(fps, Fraction):
        rate = fps
    else:
        rate = Fraction(float(fps)).limit_denominator(1001)  # 29.97002997 -> 30000/1001
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}.")
    return rate


class _VideoWriter:
    """Append frames to a video written atomically (the shared part of the mask and overlay writers)."""

    _input_format = "rgb24"

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction | None,
        size: tuple[int, int],
        codec: str | None,
        options: dict[str, str],
        pix_fmt: str,
        threads: int = 0,
    ) -> None:
        av = _av()
        self.path = Path(path)
        self.fps = _fps_fraction(fps)
        try:
            height, width = (int(s) for s in size)
        except (TypeError, ValueError) as e:
            raise ValueError(f"size must be (height, width), got {size!r}.") from e
        if height < 1 or width < 1:
            raise ValueError(f"size must be (height, width) >= 1, got {size!r}.")
        self.size = (height, width)
        self.codec = codec or mask_video_codec()
        if self.codec not in av.codecs_available:
            raise ValueError(f"codec {self.codec!r} is not in this PyAV build; available include libx264/mpeg4.")
        self.frames_written = 0
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_beside(self.path, "".join(self.path.suffixes[-1:]) or ".mp4")
        try:
            self._container = av.open(str(self._tmp), mode="w")
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.height, self._stream.width = height, width
            self._stream.pix_fmt = pix_fmt
            self._stream.options = dict(options)
            if threads:
                self._stream.codec_context.thread_count = int(threads)
            self.pix_fmt = pix_fmt
            self.options = dict(options)
        except BaseException:
            self._cleanup()
            raise

    # context manager -------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # never leave a temporary file behind
        if not getattr(self, "_closed", True):
            self.abort()

    # writing -----------------------------------------------------------------------------------
    def _to_frame_array(self, frame: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self, frame: Any) -> None:
        """Append one frame (see the subclass for its form)."""
        if self._closed:
            raise ValueError(f"{self.path}: the video writer is closed.")
        array = self._to_frame_array(frame)
        if array.shape[:2] != self.size:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} has size {array.shape[:2]}, the video's size (height, width) is {self.size}."
            )
        av = _av()
        vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=self._input_format)
        vframe.pts = self.frames_written
        vframe.time_base = 1 / self.fps
        for packet in self._stream.encode(vframe):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, close the file and rename it into place; returns the video's path."""
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frame was written; no video made.")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._cleanup()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file; an existing file at ``path`` is kept."""
        if not self._closed:
            self._cleanup()

    def _cleanup(self) -> None:
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - already failing; the temporary file goes anyway
                pass
        self._tmp.unlink(missing_ok=True)


def _squeeze_frame(array: np.ndarray, ndim: int) -> np.ndarray:
    while array.ndim > ndim and array.shape[0] == 1:
        array = array[0]
    while array.ndim > ndim and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class MaskVideoWriter(_VideoWriter):
    """
    Write binary masks, frame after frame, as a video (context manager; atomic).

    Masks are written 0/255 grey. By default with lossless H.264 (``libx264``, ``qp=0``; ``yuv420p``,
    or ``yuv444p`` for odd frame sizes, which 4:2:0 cannot hold): read back and thresholded at 128
    (:py:func:`iter_mask_video`) every pixel equals the written mask. Lossless H.264 uses the
    "High 4:4:4 Predictive" profile, which ffmpeg, VLC and OpenCV play but some browsers do not;
    ``lossless=False`` writes the common "High" profile (``crf=12``, near-lossless; on the shipped
    CVC-ClinicDB masks the thresholded read-back was also identical). Without libx264 in the PyAV
    build: ``mpeg4`` at the finest quantiser (``qmin=qmax=1``), near-lossless.

    Args:
        path: the video file (``.mp4``; the container follows the suffix).
        fps: frame rate, the input video's (``meta["fps"]``); ``None``: 25 with a warning.
        size: ``(height, width)`` of every frame, the input's.
        lossless: lossless (default) or near-lossless H.264, see above.
        codec: ``"libx264"`` or ``"mpeg4"``; ``None``: :py:func:`mask_video_codec`.
        options: codec options replacing the defaults (e.g. ``{"qp": "0", "preset": "veryfast"}``).
        threads: encoder threads (0: the codec's default).

    Example::

        with MaskVideoWriter(out / "video_mask.mp4", fps=meta["fps"], size=(H, W)) as writer:
            for chunk_mask in masks:          # (1, H, W, t) or (H, W, t)
                writer.write_frames(chunk_mask)
    """

    _input_format = "gray"

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction | None,
        size: tuple[int, int],
        lossless: bool = True,
        codec: str | None = None,
        options: dict[str, str] | None = None,
        threads: int = 0,
    ) -> None:
        codec = codec or mask_video_codec()
        height, width = (int(s) for s in size)
        odd = height % 2 or width % 2
        if codec in ("libx264", "h264"):
            pix_fmt = "yuv444p" if odd else "yuv420p"
            defaults = {"qp": "0", "preset": "veryfast"} if lossless else {"crf": "12", "preset": "veryfast"}
        elif codec == "mpeg4":
            pix_fmt, defaults = "yuv420p", {"qmin": "1", "qmax": "1"}
        else:
            pix_fmt, defaults = "yuv420p", {}
        self.lossless = bool(lossless) and codec in ("libx264", "h264")
        super().__init__(path, fps, size, codec, options if options is not None else defaults, pix_fmt, threads)

    def _to_frame_array(self, frame: Any) -> np.ndarray:
        array = _squeeze_frame(_as_array(frame), 2)
        if array.ndim != 2:
            raise ValueError(f"{self.path}: a mask frame must be H x W, got shape {array.shape}.")
        return np.where(array > 0, np.uint8(255), np.uint8(0))

    def write_frames(self, masks: Any) -> None:
        """Append the frames of a ``(H, W, t)`` or ``(1, H, W, t)`` mask (e.g. one chunk's), last axis = time."""
        array = _as_array(masks)
        if array.ndim == 4:
            if array.shape[0] != 1:
                raise ValueError(f"{self.path}: a mask sequence must be (1, H, W, t) or (H, W, t), got {array.shape}.")
            array = array[0]
        if array.ndim != 3:
            raise ValueError(f"{self.path}: a mask sequence must be (1, H, W, t) or (H, W, t), got {array.shape}.")
        for t in range(array.shape[-1]):
            self.write(array[..., t])


class OverlayVideoWriter(_VideoWriter):
    """
    Write RGB frames (e.g. :py:func:`monai_ext.io.overlay.overlay_frame` outputs), frame after frame, as a
    video (context manager; atomic).

    H.264 (``libx264``, ``crf=18``: visually lossless, ``yuv420p``; ``yuv444p`` for odd frame sizes),
    or ``mpeg4`` (``qmin=1, qmax=3``) without libx264.

    Args:
        path: the video file (``.mp4``).
        fps: frame rate, the input video's; ``None``: 25 with a warning.
        size: ``(height, width)`` of every frame, the input's.
        codec: ``"libx264"`` or ``"mpeg4"``; ``None``: :py:func:`mask_video_codec`.
        crf: H.264 constant rate factor (lower: better and larger).
        options: codec options replacing the defaults.
        threads: encoder threads (0: the codec's default).
    """

    _input_format = "rgb24"

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction | None,
        size: tuple[int, int],
        codec: str | None = None,
        crf: int = 18,
        options: dict[str, str] | None = None,
        threads: int = 0,
    ) -> None:
        codec = codec or mask_video_codec()
        height, width = (int(s) for s in size)
        odd = height % 2 or width % 2
        if codec in ("libx264", "h264"):
            pix_fmt, defaults = ("yuv444p" if odd else "yuv420p"), {"crf": str(int(crf)), "preset": "veryfast"}
        elif codec == "mpeg4":
            pix_fmt, defaults = "yuv420p", {"qmin": "1", "qmax": "3"}
        else:
            pix_fmt, defaults = "yuv420p", {}
        super().__init__(path, fps, size, codec, options if options is not None else defaults, pix_fmt, threads)

    def _to_frame_array(self, frame: Any) -> np.ndarray:
        array = _as_array(frame)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = np.moveaxis(array, 0, -1)  # channel first -> last
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 3):
            raise ValueError(f"{self.path}: an overlay frame must be H x W x 3 (or grey H x W), got shape {array.shape}.")
        if array.shape[-1] == 1:
            array = np.repeat(array, 3, axis=-1)
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array.astype(np.float32)), 0, 255).astype(np.uint8)
        return array


def iter_mask_video(path: str | os.PathLike, threshold: int = 128) -> Iterator[np.ndarray]:
    """
    Read a mask video (:py:class:`MaskVideoWriter`) back lazily.

    Args:
        path: the video.
        threshold: grey level (0..255) at or above which a pixel is in the mask.

    Yields:
        ``H x W`` bool masks, frame after frame.
    """
    for _, frame in iter_video_frames(path):
        yield frame.mean(axis=-1) >= threshold if frame.ndim == 3 else frame >= threshold
