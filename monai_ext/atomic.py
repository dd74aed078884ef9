"""Atomic file writes: a temporary file in the target's folder, renamed into place.

An error while writing leaves no partial file and never replaces an existing good one.
Dependency-free so that light tools (dataset converters) can use it without importing MONAI.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_pngs", "temp_path_beside"]


def atomic_write(target: str | os.PathLike, write_fn: Callable[[Path], Any], suffix: str = "") -> Path:
    """
    Write ``target`` through a temporary file in the same folder, then rename it into place.

    Args:
        target: the final path.
        write_fn: called with the temporary path; must write the whole file there.
        suffix: suffix of the temporary file (writers that infer the format from it need it).

    Returns:
        the target path, with the permissions a plain ``open(target, "w")`` would give
        (:func:`temp_path_beside`). On error the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(target, suffix)
    try:
        write_fn(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_json(target: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``target`` atomically."""

    def _write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")

    return atomic_write(target, _write)


def atomic_write_pngs(paths: Sequence[Path], images: Iterable[Any]) -> list[Path]:
    """Write one PNG per path from ``images`` (uint8 arrays), all or none: every image goes to a temporary
    file beside its target first, then all are renamed; an error removes the temporary files."""
    from PIL import Image

    temps: list[Path] = []
    try:
        for path, image in zip(paths, images):
            tmp = temp_path_beside(path, ".png")
            temps.append(tmp)
            Image.fromarray(image).save(tmp, format="PNG")
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return list(paths)


def _umask() -> int:
    """The process umask (read by setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_beside(target: Path, suffix: str = "") -> Path:
    """Create and return an empty temporary file in ``target``'s folder (same file system: rename is atomic).

    Its permissions are those a plain ``open(target, "w")`` would give (0666 less the umask), not
    ``mkstemp``'s 0600, so that the file renamed into place can be read by whoever could read a normal one.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)
