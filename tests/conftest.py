"""Shared test fixtures.

The speech and noise recordings live in ``shared/audio`` beside the repository (CI
clones the repository with ``shared/`` next to it). ``HELLO_DEVICE_SHARED`` overrides
the location. Timeouts in tests are multiples of :data:`UNIT` seconds, which
``HELLO_DEVICE_TEST_UNIT`` scales for slow machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = float(os.environ.get("HELLO_DEVICE_TEST_UNIT", "1.0"))


def shared_dir() -> Path:
    env = os.environ.get("HELLO_DEVICE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """Folder of the shared test recordings (see shared/audio/README.md)."""
    path = shared_dir() / "audio"
    if not (path / "utterance.wav").exists():
        pytest.fail(f"shared test audio not found at {path} (set HELLO_DEVICE_SHARED)")
    return path
