"""Configuration: the example is valid and complete; bad files are rejected clearly."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hello_device import settings as cfg
from hello_device.cli import main
from hello_device.errors import ConfigError, HelloDeviceError
from hello_device.settings import (
    Secret,
    load_settings,
)
from tests.conftest import REPO

EXAMPLE = REPO / "config.example.toml"
KEY = "sk_test_0123456789abcdefSECRETKEY"


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    code = main(["check-config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_example_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_example_lists_every_key() -> None:
    text = EXAMPLE.read_text()
    missing = []
    for section, cls in cfg.SECTIONS.items():
        assert re.search(rf"^\[{section}\]", text, re.M), f"[{section}] missing"
        for f in dataclasses.fields(cls):
            if f.name == "dynamic_variables":
                pattern = r"^\[conversation\.dynamic_variables\]"
            else:
                pattern = rf"^#? ?{f.name} ="
            if not re.search(pattern, text, re.M):
                missing.append(f"{section}.{f.name}")
    assert not missing, f"keys missing from config.example.toml: {missing}"


def test_every_field_has_a_docstring() -> None:
    docs = cfg.field_docs()
    for section, cls in cfg.SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert docs.get(f"{section}.{f.name}"), f"{section}.{f.name} has no docstring"


def test_defaults_and_types(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[platform]\nagent_id = "a1"\n[audio]\nframe_ms = 30\nvolume = 1\n')
    s = load_settings(path, env={})
    assert s.platform.api_base_url == "https://api.elevenlabs.io"
    assert s.audio.frame_ms == 30
    assert s.audio.volume == 1.0 and isinstance(s.audio.volume, float)
    assert s.state.dir == "/var/lib/hello-device"
    assert s.device.id  # the host name by default
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.audio.frame_ms = 10  # type: ignore[misc]


# Each bad file: (name, TOML text, the dotted key or phrase the error must name).
BAD_FILES = [
    ("wrong type", '[platform]\nagent_id = "a"\n[audio]\nframe_ms = "20"\n', "audio.frame_ms"),
    ("unknown key", '[platform]\nagent_id = "a"\n[audio]\nvolumme = 0.5\n', "audio.volumme"),
    ("unknown section", '[platform]\nagent_id = "a"\n[sound]\nx = 1\n', "sound"),
    ("bad enum", '[platform]\nagent_id = "a"\n[audio]\nbackend = "alsa"\n', "audio.backend"),
    (
        "frame_ms not allowed",
        '[platform]\nagent_id = "a"\n[audio]\nframe_ms = 25\n',
        "audio.frame_ms",
    ),
    ("out of range", '[platform]\nagent_id = "a"\n[audio]\nvolume = 1.5\n', "audio.volume"),
    ("negative", '[platform]\nagent_id = "a"\n[vad]\naggressiveness = -1\n', "vad.aggressiveness"),
    ("toml syntax", '[platform]\nagent_id = "a\n', "line 2"),
    ("missing agent id", "[device]\nname = 'x'\n", "platform.agent_id"),
    (
        "bool as string",
        '[platform]\nagent_id = "a"\nallow_insecure = "yes"\n',
        "platform.allow_insecure",
    ),
    (
        "insecure url",
        '[platform]\nagent_id = "a"\napi_base_url = "http://example.com"\n',
        "platform.api_base_url",
    ),
    ("not a url", '[platform]\nagent_id = "a"\nws_url = "example.com/ws"\n', "platform.ws_url"),
    (
        "bad list item",
        '[platform]\nagent_id = "a"\n[gpio]\nled_type = "led"\nled_pins = ["x"]\n',
        "gpio.led_pins[0]",
    ),
    (
        "rgb needs 3 pins",
        '[platform]\nagent_id = "a"\n[gpio]\nled_type = "rgb"\nled_pins = [1]\n',
        "gpio.led_pins",
    ),
    ("section not a table", 'audio = 3\n[platform]\nagent_id = "a"\n', "audio"),
    (
        "file backend needs files",
        '[platform]\nagent_id = "a"\n[audio]\nbackend = "file"\n',
        "audio.input_file",
    ),
    (
        "bad dynamic variable",
        '[platform]\nagent_id = "a"\n[conversation.dynamic_variables]\nx = [1]\n',
        "conversation.dynamic_variables.x",
    ),
    (
        "channel word",
        '[platform]\nagent_id = "a"\n[audio]\ninput_channel = "left"\n',
        "audio.input_channel",
    ),
    (
        "key and key file",
        f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\napi_key_file = "k"\n',
        "platform.api_key",
    ),
    ("key wrong type", '[platform]\nagent_id = "a"\napi_key = 1234567\n', "platform.api_key"),
]


@pytest.mark.parametrize(("name", "text", "key"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_rejected_naming_file_and_key(
    name: str, text: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, text, capsys)
    assert code == 2, out
    lines = [line for line in out.splitlines() if line.startswith("config error:")]
    assert lines, out
    assert all(str(tmp_path / "config.toml") in line for line in lines), out
    assert any(key in line for line in lines), out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert "nope.toml: no such file" in err


def test_all_problems_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        '[platform]\nagent_id = "a"\nauth_header = "basic"\n'
        "[audio]\nframe_ms = 25\nvolume = 2.0\nbogus = 1\n[vad]\nsend = 3\n"
    )
    code, out = check(tmp_path, text, capsys)
    assert code == 2
    for key in (
        "platform.auth_header",
        "audio.frame_ms",
        "audio.volume",
        "audio.bogus",
        "vad.send",
    ):
        assert key in out
    assert len([x for x in out.splitlines() if x.startswith("config error:")]) == 5


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[platform]\nagent_id = "a"\n[audio]\nvolumme = 0.5\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "did you mean audio.volume?" in str(info.value)


def test_error_classes_inherit_builtins() -> None:
    assert issubclass(ConfigError, HelloDeviceError) and issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- the API key


def test_api_key_sources_and_precedence(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY + "\n")
    keyfile.chmod(0o600)
    path = tmp_path / "c.toml"
    path.write_text('[platform]\nagent_id = "a"\napi_key_file = "key"\n')
    s = load_settings(path, env={})
    assert isinstance(s.platform.api_key, Secret)
    assert s.platform.api_key.reveal() == KEY and s.api_key_source == "key file"
    s = load_settings(path, env={"HELLO_DEVICE_API_KEY": "sk_env_key_123"})
    assert s.platform.api_key is not None
    assert s.platform.api_key.reveal() == "sk_env_key_123" and s.api_key_source == "environment"
    path.write_text(f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\n')
    s = load_settings(path, env={})
    assert s.api_key_source == "file"
    assert KEY not in repr(s) and KEY not in str(s.platform) and KEY not in f"{s.platform.api_key}"


def test_key_file_readable_by_others_warns(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY)
    keyfile.chmod(0o644)
    path = tmp_path / "c.toml"
    path.write_text(f'[platform]\nagent_id = "a"\napi_key_file = "{keyfile}"\n')
    warnings: list[str] = []
    load_settings(path, env={}, warn=warnings.append)
    assert len(warnings) == 1 and "chmod 600" in warnings[0]
    assert KEY not in warnings[0]
    keyfile.chmod(0o600)
    warnings.clear()
    load_settings(path, env={}, warn=warnings.append)
    assert warnings == []


LEAKY_FILES = [
    f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\nauth_header = "{KEY}"\n',
    f'[platform]\nagent_id = "{KEY}!"\napi_key = "{KEY}"\n',
    f'[platform]\nagent_id = "a"\napi_key = "{KEY} extra"\n',
    f'[platform]\nagent_id = "a"\napi_key = ["{KEY}"]\n',
    f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\n[device]\nname = "{KEY}" \nid = "{KEY}$"\n',
    f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\napi_base_url = "http://{KEY}.example.com"\n',
    f'[platform]\nagent_id = "a"\napi_key = "{KEY}\n',
    f'[platform]\nagent_id = "a"\n{KEY} = 1\n',
    f'[platform]\nagent_id = "a"\n[audio]\ninput_device = 1.5\noutput_device = "{KEY}"\nbackend = "{KEY}"\n',
    f'[platform]\nagent_id = "a"\n[conversation]\nstart = "{KEY}"\n',
]


@pytest.mark.parametrize("text", LEAKY_FILES)
def test_api_key_never_in_check_config_output(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, text, capsys)
    assert code == 2, out
    assert KEY not in out
    assert "SECRETKEY" not in out


def test_api_key_never_in_output_of_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\n', capsys)
    assert code == 0 and "API key set from file" in out and KEY not in out
