"""Atomic writes: nothing partial on error, and the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from monai_ext.atomic import atomic_write, atomic_write_json


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    import torch

    from monai_ext.io import load_source, write_mask
    from monai_ext.sample import sample_path

    source = load_source(sample_path("cvc_frames"))
    old = os.umask(umask)
    try:
        paths = [atomic_write_json(tmp_path / "a" / "summary.json", {"x": 1})]
        paths += write_mask(torch.zeros(1, *source.shape[1:], dtype=torch.uint8), source.meta, tmp_path / "masks")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert plain == 0o666 & ~umask and len(paths) == 11
    assert all(stat.S_IMODE(p.stat().st_mode) == plain for p in paths)


def test_an_error_leaves_neither_a_partial_file_nor_a_changed_target(tmp_path):
    target = tmp_path / "mask.txt"
    target.write_text("good")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["mask.txt"]
