"""Shared test fixtures.

The speech and noise recordings the tests use, and the platform's AsyncAPI contract, are
copied into ``tests/data`` (see its README): a clean clone runs its tests on its own.
Timeouts in tests are multiples of :data:`UNIT` seconds, which ``HELLO_DEVICE_TEST_UNIT``
scales for slow machines.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
UNIT = float(os.environ.get("HELLO_DEVICE_TEST_UNIT", "1.0"))


def needs_tool(name: str, package: str) -> str:
    """The path of a program the test drives; skipped where it is not installed, but a
    failure in CI (``CI=true``), where scripts/dev.sh installs it."""
    # Daemons such as mosquitto live in /usr/sbin, outside a normal user's PATH.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing in CI: scripts/dev.sh installs {package}")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return path


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """Folder of the test recordings (``tests/data/audio``; see its README)."""
    return DATA / "audio"


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test inherits the developer's proxy variables: the REST client and websockets
    both honour them, and the tests' servers are on loopback. The proxy tests set their
    own (tests/test_proxy.py)."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that call ``setup_logging`` (which replaces the root logger's handlers):
    put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
