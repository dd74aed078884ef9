"""
Pictures of a segmentation to look at: overlay frames and a slice mosaic.

- :py:func:`overlay_frame`: one frame with the mask filled translucently and its outline drawn;
- :py:func:`iter_overlay_frames` / :py:func:`write_overlay_frames`: every frame of a frame-like source
  (video, frames, image, DICOM cine) as overlay arrays or PNGs named like the mask PNGs
  (``<output_dir>/<stem>/<frame_name>_overlay.png``); the arrays feed
  :py:class:`monai_ext.io.video.OverlayVideoWriter`;
- :py:func:`make_mosaic` / :py:func:`write_mosaic`: a grid of a volume's axial slices (those holding the
  mask, evenly spaced through them) with the mask outlined and the prompt as title.

**Mosaic orientation.** Volumes are reoriented to RAS (from their affine, as the bundles'
``ToSequenced`` does) and axial slices (the last RAS axis, inferior to superior) are shown in the
radiological convention of common viewers (3D Slicer, ITK-SNAP, OHIF, PACS): the patient's right on
the image's left, anterior at the top, as seen from the feet. Pixels are drawn with the slice's in-plane
spacing (a 0.7 x 1.4 mm voxel is twice as tall as wide). Frame-like sources are tiled as they are
(rows down, columns across), one tile per frame.

All files are written atomically (:py:func:`monai_ext.atomic.atomic_write`): an error leaves no new file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai.utils import convert_to_numpy

from ..atomic import atomic_write, atomic_write_pngs
from .meta import FRAME_KINDS, mask_array, source_stem

__all__ = [
    "overlay_frame",
    "iter_overlay_frames",
    "overlay_output_paths",
    "write_overlay_frames",
    "make_mosaic",
    "write_mosaic",
    "to_display_uint8",
]

Colour = tuple[int, int, int]




def _resolve_window(window: Any) -> tuple[float, float] | None:
    if window is None:
        return None
    if isinstance(window, str):
        from ..transforms.intensity import CT_WINDOWS

        key = window.lower()
        if key not in CT_WINDOWS:
            raise ValueError(f"unknown CT window {window!r}; available windows: {', '.join(CT_WINDOWS)}.")
        return CT_WINDOWS[key]
    level, width = (float(v) for v in window)
    if width <= 0:
        raise ValueError(f"window width must be positive, got {window!r}.")
    return level, width


def _display_params(
    a: np.ndarray, window: Any, percentiles: tuple[float, float], keep_8bit: bool
) -> tuple[str, float, float]:
    """How :py:func:`to_display_uint8` maps ``a``: ``("keep", 0, 0)`` (as it is, rounded) or ``("scale", lo, hi)``."""
    resolved = _resolve_window(window)
    if resolved is not None:
        level, width = resolved
        return "scale", level - width / 2.0, level + width / 2.0
    if a.dtype == np.uint8:
        return "keep", 0.0, 0.0
    if a.dtype == bool:
        return "scale", 0.0, 1.0
    if a.size == 0:
        return "keep", 0.0, 0.0
    with np.errstate(invalid="ignore"):
        amin, amax = float(np.nanmin(a)), float(np.nanmax(a))  # no copy of the data
    if not np.isfinite(amin) or not np.isfinite(amax):
        finite = a[np.isfinite(a)]
        if finite.size == 0:
            return "scale", 0.0, 1.0
        amin, amax = float(finite.min()), float(finite.max())
    if keep_8bit and amin >= 0 and amax <= 255 and amax > 1:
        return "keep", 0.0, 0.0
    if amin >= 0 and amax <= 1 and np.issubdtype(a.dtype, np.floating):
        return "scale", 0.0, 1.0  # already scaled to [0, 1]
    lo, hi = (float(v) for v in np.nanpercentile(a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a, percentiles))
    return "scale", lo, hi


def _apply_display(a: np.ndarray, params: tuple[str, float, float]) -> np.ndarray:
    mode, lo, hi = params
    if mode == "keep":
        if a.dtype == np.uint8:
            return a
        out = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    else:
        if hi <= lo:
            hi = lo + 1.0
        out = np.nan_to_num(a.astype(np.float32), nan=lo, posinf=hi, neginf=lo)
        out -= lo
        out *= 255.0 / (hi - lo)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def to_display_uint8(
    array: Any,
    window: tuple[float, float] | str | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    keep_8bit: bool = True,
) -> np.ndarray:
    """
    Intensities to display grey levels (uint8).

    Args:
        array: any intensities.
        window: ``(level, width)`` (e.g. a CT window in HU) or a named CT window (``"abdomen"``, ...,
            :py:data:`monai_ext.transforms.intensity.CT_WINDOWS`): ``level - width/2 .. level + width/2``
            mapped to 0..255.
        percentiles: without a window, these percentiles map to 0..255, except for uint8 data, bool data
            (0/255), float data in 0..1 (mapped from 0..1) and, with ``keep_8bit``, data in 0..255 with values
            above 1 (8-bit frames read as float), kept as they are.
        keep_8bit: keep data in 0..255 as they are (frames); False for volumes, whose values are not grey levels.

    Returns:
        the uint8 array, same shape.
    """
    a = convert_to_numpy(array)
    return _apply_display(a, _display_params(a, window, percentiles, keep_8bit))


def _to_rgb(image: Any) -> np.ndarray:
    a = to_display_uint8(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=-1)
    if a.ndim == 3 and a.shape[-1] >= 3:
        return np.ascontiguousarray(a[..., :3])
    raise ValueError(f"an image frame must be H x W (grey) or H x W x 3 (RGB), got shape {a.shape}.")


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """4-neighbour binary erosion; outside the image counts as background."""
    out = mask.copy()
    for _ in range(iterations):
        padded = np.pad(out, 1, constant_values=False)
        out = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
        if not out.any():
            break
    return out


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's inner boundary, ``width`` pixels thick (always inside the mask)."""
    return mask & ~_erode(mask, width)


def _default_outline_width(shape: Sequence[int]) -> int:
    return max(1, int(round(min(shape[:2]) / 300)))


def overlay_frame(
    image: Any,
    mask: Any,
    colour: Colour = (255, 0, 0),
    alpha: float = 0.4,
    outline: bool = True,
    outline_width: int | None = None,
) -> np.ndarray:
    """
    One frame with its mask shown: filled translucently and outlined in ``colour``.

    Only pixels inside the mask change: the fill blends ``colour`` with weight ``alpha``, the outline (the
    mask's inner boundary, ``outline_width`` pixels thick) is ``colour`` itself.

    Args:
        image: ``H x W x 3`` RGB or ``H x W`` (or ``H x W x 1``) grey; uint8, or other intensities scaled by
            :py:func:`to_display_uint8`. Grey is shown as RGB.
        mask: ``H x W`` (bool, 0/1, 0/255; or with singleton axes): non-zero = in the mask.
        colour: RGB of the mask.
        alpha: fill opacity (0: outline only, 1: solid).
        outline: draw the outline.
        outline_width: outline thickness in pixels; ``None``: ``max(1, round(min(H, W) / 300))``.

    Returns:
        ``H x W x 3`` uint8 RGB (a new array).
    """
    rgb = _to_rgb(image).copy()
    m = convert_to_numpy(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    while m.ndim > 2 and m.shape[-1] == 1:
        m = m[..., 0]
    m = m > 0
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match the image's {rgb.shape[:2]}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    if not m.any():
        return rgb
    col = np.asarray(colour, dtype=np.float32).reshape(3)
    if alpha > 0:
        blended = rgb[m].astype(np.float32) * (1.0 - alpha) + col * alpha
        rgb[m] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if outline:
        edge = _outline(m, outline_width or _default_outline_width(m.shape))
        rgb[edge] = col.astype(np.uint8)
    return rgb


def _frames_and_mask(source: Any, mask: Any) -> tuple[np.ndarray, tuple[str, float, float], np.ndarray]:
    """``(C, H, W, T)`` source and ``(1, H, W, T)`` mask -> the source's display channels, their display
    mapping (one for the whole sequence) and the ``(H, W, T)`` bool mask."""
    src = convert_to_numpy(source)
    if src.ndim != 4:
        raise ValueError(f"the source must be (C, H, W, T), got shape {src.shape}.")
    m = mask_array(mask, src.shape[1:], "the source's spatial shape")
    src = src[: 3 if src.shape[0] >= 3 else 1]
    return src, _display_params(src, None, (0.5, 99.5), True), m > 0


def _display_frame(src: np.ndarray, params: tuple[str, float, float], t: int) -> np.ndarray:
    return np.moveaxis(_apply_display(src[..., t], params), 0, -1)  # (H, W, C), frame by frame: little memory


def iter_overlay_frames(
    source: Any,
    mask: Any,
    colour: Colour = (255, 0, 0),
    alpha: float = 0.4,
    outline: bool = True,
    outline_width: int | None = None,
) -> Iterator[np.ndarray]:
    """
    The overlay (:py:func:`overlay_frame`) of every frame of a frame-like source, in order.

    Args:
        source: ``(C, H, W, T)`` frames (a loaded ``video``/``frames``/``image``/``dicom_cine`` source or
            one chunk of :py:func:`monai_ext.io.video.iter_video_chunks`); C = 1 (grey) or 3 (RGB).
            8-bit data (uint8 or float 0..255) is shown as it is, other data percentile scaled (over the
            whole ``source``).
        mask: ``(1, H, W, T)`` or ``(H, W, T)`` mask in the source's geometry.
        colour, alpha, outline, outline_width: see :py:func:`overlay_frame`.

    Yields:
        ``H x W x 3`` uint8 RGB frames (for :py:class:`monai_ext.io.video.OverlayVideoWriter`).
    """
    src, params, m = _frames_and_mask(source, mask)
    for t in range(src.shape[-1]):
        yield overlay_frame(_display_frame(src, params, t), m[..., t], colour, alpha, outline, outline_width)




def overlay_output_paths(source_meta: Mapping[str, Any], output_dir: str | os.PathLike, stem: str | None = None) -> list[Path]:
    """
    Where :py:func:`write_overlay_frames` writes: ``<output_dir>/<stem>/<frame_name>_overlay.png`` per frame,
    beside the mask PNGs of :py:func:`monai_ext.io.write_mask` (``<frame_name>_mask.png``).
    """
    kind = source_meta.get("source_kind")
    if kind not in FRAME_KINDS:
        raise ValueError(f"overlay frames are for frame-like sources {FRAME_KINDS}, got {kind!r}; use write_mosaic for volumes.")
    stem = stem or source_stem(source_meta)
    return [Path(output_dir) / stem / f"{name}_overlay.png" for name in source_meta["frame_names"]]


def write_overlay_frames(
    source: Any,
    mask: Any,
    output_dir: str | os.PathLike,
    stem: str | None = None,
    source_meta: Mapping[str, Any] | None = None,
    colour: Colour = (255, 0, 0),
    alpha: float = 0.4,
    outline: bool = True,
    outline_width: int | None = None,
) -> list[Path]:
    """
    Write one overlay PNG per frame of a frame-like source, named like its mask PNGs.

    Args:
        source: ``(C, H, W, T)`` MetaTensor of a ``video``/``frames``/``image``/``dicom_cine`` source (or a
            chunk of :py:func:`monai_ext.io.video.iter_video_chunks`).
        mask: ``(1, H, W, T)`` mask in the source's geometry.
        output_dir: the output folder; files go to ``<output_dir>/<stem>/<frame_name>_overlay.png``.
        stem: base name instead of the source's ``meta["stem"]``.
        source_meta: the source's metadata when ``source`` is not a MetaTensor.
        colour, alpha, outline, outline_width: see :py:func:`overlay_frame`.

    Returns:
        the written paths, in frame order. All frames are written to temporary files first and then
        renamed, so an error leaves no new file.
    """
    meta = source_meta if source_meta is not None else getattr(source, "meta", None)
    if meta is None:
        raise ValueError("source has no metadata: pass a MetaTensor or source_meta.")
    paths = overlay_output_paths(meta, output_dir, stem)
    src, params, m = _frames_and_mask(source, mask)
    if len(paths) != src.shape[-1]:
        raise ValueError(f"{len(paths)} frame names for {src.shape[-1]} frames; nothing written.")
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    frames = (
        overlay_frame(_display_frame(src, params, t), m[..., t], colour, alpha, outline, outline_width) for t in range(len(paths))
    )
    return atomic_write_pngs(paths, frames)


# ------------------------------------------------------------------------------------------------ mosaic


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _ras_volume(volume: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorient ``(X, Y, Z)`` data and mask to RAS (views: flips and transposes); also returns the RAS spacing."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt("RAS"))
    ras_spacing = np.empty(3)
    for axis in range(3):
        ras_spacing[int(ornt[axis, 0])] = spacing[axis]
    return apply_orientation(volume, ornt), apply_orientation(mask, ornt), ras_spacing


def _pick(indices: np.ndarray, n: int) -> list[int]:
    if len(indices) <= n:
        return [int(i) for i in indices]
    positions = np.unique(np.rint(np.linspace(0, len(indices) - 1, n)).astype(int))
    return [int(indices[p]) for p in positions]


def make_mosaic(
    volume: Any,
    mask: Any,
    title: str,
    max_tiles: int = 16,
    window: tuple[float, float] | str | None = None,
    tile_size: int = 256,
    colour: Colour = (255, 0, 0),
    alpha: float = 0.25,
    affine: Any = None,
    source_kind: str | None = None,
):
    """
    Build the mosaic of :py:func:`write_mosaic` as a PIL image, with its layout.

    Returns:
        ``(image, layout)``: the RGB ``PIL.Image`` and a dict with ``title_height`` (pixels of the title
        band at the top), ``slices`` (slice or frame indices shown, in RAS order for volumes),
        ``boxes`` (each tile's ``(left, top, right, bottom)``), ``grid`` (``(rows, columns)``),
        ``mask_slices`` (how many slices hold the mask) and ``orientation`` (a description).
    """
    from PIL import Image, ImageDraw

    if max_tiles < 1:
        raise ValueError(f"max_tiles must be >= 1, got {max_tiles}.")
    meta = getattr(volume, "meta", None) or {}
    kind = source_kind or meta.get("source_kind")
    vol = convert_to_numpy(volume)
    if vol.ndim == 3:
        vol = vol[None]
    if vol.ndim != 4:
        raise ValueError(f"the volume must be (C, X, Y, Z), got shape {vol.shape}.")
    m = mask_array(mask, vol.shape[1:], "the volume's spatial shape") > 0

    frame_like = kind in FRAME_KINDS
    if frame_like:  # (C, H, W, T): tiles are frames as they are
        data = vol[: 3 if vol.shape[0] >= 3 else 1]
        spacing = np.ones(3)
        orientation = "frames as they are (rows down, columns across)"
    else:  # channel 0, reoriented to RAS (views: nothing of the volume is copied)
        if affine is None:
            affine = getattr(volume, "affine", None)
        aff = np.eye(4) if affine is None else convert_to_numpy(affine).astype(np.float64)
        data, m, spacing = _ras_volume(vol[0], m, aff)
        data = data[None]
        orientation = "axial, radiological: patient right on the left, anterior up"

    depth = m.shape[-1]
    holding = np.flatnonzero(m.reshape(-1, depth).any(axis=0))
    slices = _pick(holding if holding.size else np.arange(depth), max_tiles)
    # intensities of the slices shown only (a large volume is never converted as a whole)
    shown = np.stack([data[..., z] for z in slices], axis=-1)
    display = to_display_uint8(shown, window, keep_8bit=frame_like)

    def tile(z: int) -> np.ndarray:
        img = display[..., slices.index(z)]  # (C, A, B)
        mk = m[..., z]
        if frame_like:
            img = np.moveaxis(img, 0, -1)  # (H, W, C): rows, columns
            sy, sx = 1.0, 1.0
        else:
            # RAS slice [x, y] -> display[row, col] = slice[X-1-col, Y-1-row]: right on the left, anterior up
            img = np.moveaxis(img[:, ::-1, ::-1], 0, -1).transpose(1, 0, 2)
            mk = mk[::-1, ::-1].T
            sx, sy = spacing[0], spacing[1]
        rows, cols = img.shape[:2]
        height_mm, width_mm = rows * sy, cols * sx
        scale = tile_size / max(height_mm, width_mm)
        size = (max(1, int(round(width_mm * scale))), max(1, int(round(height_mm * scale))))
        pil = Image.fromarray(np.ascontiguousarray(img[..., 0] if img.shape[-1] == 1 else img))
        pil = pil.resize(size, Image.Resampling.BILINEAR)
        mk_big = np.asarray(Image.fromarray(np.ascontiguousarray(mk).astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 0
        return overlay_frame(np.asarray(pil), mk_big, colour, alpha, True, max(1, tile_size // 128))

    tiles = [tile(z) for z in slices]
    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    n = len(tiles)
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    gap = 4
    grid_w = ncols * tile_w + (ncols + 1) * gap
    width = max(grid_w, 320)

    title_font = _font(max(14, tile_size // 12))
    note_font = _font(max(11, tile_size // 20))
    label_font = _font(max(10, tile_size // 22))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap(scratch, title.strip() or "(no prompt)", title_font, width - 2 * gap)
    noun = "frames" if frame_like else "slices"
    if holding.size:
        note = f"{len(slices)} of {holding.size} {noun} holding the mask ({depth} in all); {orientation}"
    else:
        note = f"no {noun[:-1]} holds the mask: {len(slices)} of {depth} {noun} evenly spaced; {orientation}"
    note_lines = _wrap(scratch, note, note_font, width - 2 * gap)

    def line_height(font: Any) -> int:
        box = scratch.textbbox((0, 0), "Ag", font=font)
        return int(box[3] - box[1]) + 4

    title_height = gap + len(title_lines) * line_height(title_font) + len(note_lines) * line_height(note_font) + gap
    height = title_height + nrows * tile_h + (nrows + 1) * gap
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    y = gap
    for line in title_lines:
        draw.text((gap, y), line, fill=(255, 255, 255), font=title_font)
        y += line_height(title_font)
    for line in note_lines:
        draw.text((gap, y), line, fill=(170, 170, 170), font=note_font)
        y += line_height(note_font)

    names = meta.get("frame_names")
    if frame_like and names is not None and len(names) == depth:
        labels = [str(names[z]) for z in slices]
    else:
        labels = [f"{'t' if frame_like else 'z'}={z}" for z in slices]
    boxes = []
    x0 = (width - grid_w) // 2
    for i, (z, t) in enumerate(zip(slices, tiles)):
        r, c = divmod(i, ncols)
        left = x0 + gap + c * (tile_w + gap) + (tile_w - t.shape[1]) // 2
        top = title_height + gap + r * (tile_h + gap) + (tile_h - t.shape[0]) // 2
        canvas.paste(Image.fromarray(t), (left, top))
        boxes.append((left, top, left + t.shape[1], top + t.shape[0]))
        draw.text((left + 3, top + 2), labels[i], fill=(255, 255, 0), font=label_font)
        if not frame_like and i == 0:  # orientation letters on the first tile
            draw.text((left + 3, top + t.shape[0] // 2), "R", fill=(255, 255, 0), font=label_font)
            draw.text((left + t.shape[1] // 2, top + 2), "A", fill=(255, 255, 0), font=label_font)

    layout = {
        "title_height": title_height,
        "slices": slices,
        "boxes": boxes,
        "grid": (nrows, ncols),
        "mask_slices": int(holding.size),
        "orientation": orientation,
    }
    return canvas, layout


def write_mosaic(
    volume: Any,
    mask: Any,
    path: str | os.PathLike,
    title: str,
    max_tiles: int = 16,
    window: tuple[float, float] | str | None = None,
    tile_size: int = 256,
    colour: Colour = (255, 0, 0),
    alpha: float = 0.25,
    affine: Any = None,
) -> Path:
    """
    Write a PNG mosaic of a volume's axial slices with the mask outlined and the prompt as title.

    The slices shown are those holding the mask (all of them, or ``max_tiles`` evenly spaced through them
    when there are more), else (empty mask) ``max_tiles`` evenly spaced through the volume, in inferior to
    superior order, labelled ``z=<index>`` (the RAS slice index; frames by their ``frame_names``). Orientation: RAS axial slices in the
    radiological view (patient's right on the left, anterior up; see the module docstring); frame-like
    sources are tiled frame by frame as they are.

    Args:
        volume: ``(C, X, Y, Z)`` MetaTensor (its affine orients the slices; channel 0 is shown) or a
            frame-like ``(C, H, W, T)`` source.
        mask: ``(1, X, Y, Z)`` mask in the volume's geometry.
        path: the PNG to write.
        title: the prompt (wrapped to the mosaic's width), drawn at the top with a line saying which slices
            are shown and how they are oriented.
        max_tiles: the most slices shown.
        window: ``(level, width)`` or a named CT window (``"abdomen"``, ...); ``None``: 0.5/99.5 percentile
            scaling over the volume (8-bit data as it is).
        tile_size: the longer side of a tile in pixels (slices are resampled with their spacing's aspect).
        colour, alpha: the mask's colour and fill opacity (the outline is always drawn).
        affine: the volume's affine when ``volume`` is not a MetaTensor (identity otherwise).

    Returns:
        ``path``, written atomically.
    """
    image, _ = make_mosaic(volume, mask, title, max_tiles, window, tile_size, colour, alpha, affine)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"), suffix=".png")
