"""monai_ext.io works without the optional extras (PyAV, OpenCV, highdicom)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import monai_ext.io as mio

OPTIONAL = {"av", "cv2", "highdicom"}


def test_optional_packages_not_imported_at_module_level() -> None:
    package = Path(mio.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in tree.body:  # module level only: function bodies import lazily
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not OPTIONAL.intersection(names), f"{source.name} imports {names} at module level"


def test_public_api_exported() -> None:
    for name in ("load_source", "LoadSequence", "LoadSequenced", "SequenceReadError", "write_mask",
                 "SaveSequenceMask", "SaveSequenceMaskd", "write_dicom_series"):
        assert name in mio.__all__ and hasattr(mio, name)


def test_video_without_backends_names_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    monkeypatch.setitem(sys.modules, "cv2", None)
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ImportError, match=r"monai_ext\[video\]"):
        mio.load_source(tmp_path / "clip.mp4")


def test_video_falls_back_to_opencv(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    (tmp_path / "noise.avi").write_bytes(b"\x01" * 2048)
    with pytest.raises(mio.SequenceReadError, match="OpenCV"):  # the OpenCV path was taken
        mio.load_source(tmp_path / "noise.avi")
