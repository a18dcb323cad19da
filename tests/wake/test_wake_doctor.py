"""``doctor`` on a device that starts conversations with the wake word."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hello_device import doctor
from hello_device.doctor import Status
from tests.doctor.support import context, make_probes, write_config


def with_start(path: Path, start: str, model: str = "okay_nabu") -> Path:
    path.write_text(
        path.read_text() + f'\n[conversation]\nstart = "{start}"\n[wake_word]\nmodel = "{model}"\n'
    )
    return path


@pytest.mark.skipif(
    importlib.util.find_spec("pymicro_wakeword") is None, reason="the wake extra is not installed"
)
def test_the_configured_model_loads_and_its_cutoff_is_shown(tmp_path: Path) -> None:
    path = with_start(write_config(tmp_path), "wake_word", "alexa")
    result = doctor.check_wake_word(context(path, make_probes(tmp_path)))
    assert result is not None and result.status is Status.PASS
    assert result.detail.startswith("alexa ('Alexa') loads; probability cutoff 0.")
    assert "hello-device wake-test" in result.detail


def test_not_reported_where_it_is_not_used(tmp_path: Path) -> None:
    path = with_start(write_config(tmp_path), "voice")
    assert doctor.check_wake_word(context(path, make_probes(tmp_path))) is None
