"""No API key from the environment; the private PulseAudio server for ``sound`` tests."""

import pytest

from tests.soundserver import sound_server

__all__ = ["sound_server"]


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)
