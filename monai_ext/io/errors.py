"""Exceptions raised by the :mod:`monai_ext.io` readers."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["SequenceReadError"]


class SequenceReadError(ValueError):
    """
    An input could not be read as a sequence source.

    The message always starts with the offending file (or folder) followed by the problem and what to do,
    e.g. ``"/data/ct.nii.gz: truncated or corrupt NIfTI file (...); copy or export it again"``, on one line
    (line breaks in the problem, e.g. from a library's exception, are folded into spaces).

    Args:
        path: the file, folder or list of files that failed.
        problem: a human readable description of what is wrong.

    """

    def __init__(self, path: str | os.PathLike | Sequence[str | os.PathLike] | None, problem: str) -> None:
        if path is None:
            where = "<unknown>"
        elif isinstance(path, (str, os.PathLike)):
            where = str(path)
        else:
            items = [str(p) for p in path]
            where = f"[{items[0]}, ... ({len(items)} files)]" if len(items) > 3 else str(items)
        problem = " ".join(str(problem).split()) if "\n" in str(problem) or "\r" in str(problem) else str(problem)
        self.path = path
        self.problem = problem
        super().__init__(f"{where}: {problem}")
