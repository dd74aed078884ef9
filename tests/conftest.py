"""Shared fixtures and markers: the real datasets in ../shared/data (never copied into the project).

Markers (registered in setup.cfg): ``data`` - the test reads ``../shared/data``; every test that
uses the ``shared_data`` fixture gets it automatically. Where the data are absent (a user's clone)
those tests are skipped with a message; CI sets ``MONAI_EXT_REQUIRE_DATA=1`` (``.ci/run``) and then
they fail instead, so CI cannot pass without them. ``slow`` - longer than about 30 s (training
runs, DDP, whole evaluations): ``pytest -m "not slow"`` for a quick check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONAI_EXT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
REQUIRE_DATA = os.environ.get("MONAI_EXT_REQUIRE_DATA", "") == "1"
MISSING_DATA = (
    f"needs the real datasets at {SHARED_DATA} (../shared/data beside the checkout, or set MONAI_EXT_SHARED_DATA)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)
        if item.get_closest_marker("data") is not None and not SHARED_DATA.is_dir() and not REQUIRE_DATA:
            item.add_marker(pytest.mark.skip(reason=MISSING_DATA + "; skipped here, required in CI"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real datasets (``../shared/data`` beside the checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(MISSING_DATA + " (MONAI_EXT_REQUIRE_DATA=1: required here)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server or a torchrun rendezvous the test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
