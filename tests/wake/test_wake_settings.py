"""``[conversation] start = "wake_word"`` in the configuration: the package and the model
are checked when the file is loaded (``check-config`` and the unit's ExecCondition say
what is wrong, naming the file and the key)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from hello_device.cli import main
from hello_device.errors import ConfigError
from hello_device.settings import load_settings

HEAD_START = {"start": "wake_word"}
HEAD = '[platform]\nagent_id = "agent_1"\n[conversation]\nstart = "wake_word"\n'
needs_wake = pytest.mark.skipif(
    importlib.util.find_spec("pymicro_wakeword") is None, reason="the wake extra is not installed"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_without_the_package_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stand-in for a device without the extra: the package is found or not by
    # importlib's finder, which is made to miss it here.
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pymicro_wakeword" else real(name, *a),
    )
    path = write(tmp_path, HEAD)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "conversation.start" in err
    assert "pip install 'hello-device[wake]'" in err


@needs_wake
def test_a_model_that_is_neither_built_in_nor_a_manifest_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '[wake_word]\nmodel = "hey_computer"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    assert str(path) in str(caught.value) and "wake_word.model" in str(caught.value)


@needs_wake
def test_a_custom_manifest_is_found_next_to_the_configuration(tmp_path: Path) -> None:
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    for name in ("alexa.json", "alexa.tflite"):  # a "custom" word: a copy of a built-in
        shutil.copy(models / name, tmp_path / name)
    path = write(tmp_path, HEAD + '[wake_word]\nmodel = "alexa.json"\n')
    settings = load_settings(str(path))
    assert settings.wake_word.model == str(tmp_path / "alexa.json")
    from hello_device.wake.detector import WakeWordDetector

    detector = WakeWordDetector(settings.wake_word)
    assert detector.model_id == "alexa" and detector.wake_word == "Alexa"


def test_the_wake_settings_are_not_checked_when_the_word_is_not_used(tmp_path: Path) -> None:
    path = write(tmp_path, '[platform]\nagent_id = "a"\n[wake_word]\nmodel = "hey_computer"\n')
    assert load_settings(str(path)).conversation.start == "button"


@needs_wake
def test_a_reload_with_a_model_that_does_not_load_keeps_the_running_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The manifest exists (the check passes) but its model is broken: the reload is
    refused at the boundary and the running word goes on."""
    import asyncio
    import logging

    from hello_device.daemon import Daemon
    from hello_device.emulator import Emulator
    from hello_device.testing import virtual_time
    from tests.e2e import active, run_with_emulator, silence_wav

    caplog.set_level(logging.ERROR)
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "micro", "wake_word": "Broken", "model": "missing.tflite"}')
    config = tmp_path / "config.toml"
    models: list[str] = []

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await asyncio.wait_for(daemon.ready.wait(), 10)
        url = emu.http_url
        config.write_text(
            f'[platform]\nagent_id = "demo-agent"\napi_base_url = "{url}"\n'
            f'[conversation]\nstart = "wake_word"\n[wake_word]\nmodel = "{broken}"\n'
        )
        daemon.config_path = str(config)
        daemon.request_reload()
        daemon.start_conversation()  # the boundary applies the reload
        await active(emu, 1)
        models.append(daemon.settings.wake_word.model)

    run = virtual_time.run(
        run_with_emulator(
            tmp_path, silence_wav(tmp_path / "s.wav", 3.0), during=during, conversation=HEAD_START
        )
    )
    assert run.code == 0
    assert models == ["okay_nabu"]
    assert any("reload refused" in r.getMessage() for r in caplog.records)
