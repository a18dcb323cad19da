"""The entry point: ``python -m hello_device``, ``--help`` of every command, the lazy
registry (a command imports only its own module), and the exit codes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hello_device.cli.main import COMMANDS, build_parser
from tests.conftest import REPO, UNIT

KEY = "sk_test_0123456789abcdefSECRETKEY"


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hello_device", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_python_dash_m_and_version() -> None:
    result = _run_cli("version")
    assert result.returncode == 0 and result.stdout.startswith("hello-device ")


def test_help_on_every_subcommand() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    names = list(subparsers.choices or ())
    assert {"run", "check-config", "version"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, "--help"])
        assert info.value.code == 0


def test_run_with_bad_config_exits_2_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[platform]\nagent_id = "a"\napi_key = "{KEY}"\n[audio]\nframe_ms = 7\n')
    result = _run_cli("run", "--config", str(path), env={"HELLO_DEVICE_API_KEY": KEY})
    assert result.returncode == 2
    assert "audio.frame_ms" in result.stderr
    assert KEY not in result.stdout + result.stderr


def _choices(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    action = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(action, argparse._SubParsersAction)
    return action


def test_every_registered_command_is_built_with_the_help_of_the_registry() -> None:
    """``--help`` (everything built) and a stub (``hello-device -h run``) say the same."""
    helps = {a.dest: a.help for a in _choices(build_parser())._choices_actions}
    assert helps == {name: help_text for name, (help_text, _) in COMMANDS.items()}
    stubs = {a.dest: a.help for a in _choices(build_parser("version"))._choices_actions}
    assert stubs == helps


# A command line parsed in a fresh interpreter; prints the hello_device modules loaded.
PARSE_CHILD = """
import sys
from hello_device.cli.main import _command_of, build_parser

argv = sys.argv[1:]
args = build_parser(_command_of(argv)).parse_args(argv)
assert callable(args.func)
print(" ".join(sorted(m for m in sys.modules if m.startswith("hello_device"))))
"""

COMMAND_LINES = {
    "run": ["run"],
    "check-config": ["check-config", "x.toml"],
    "version": ["--log-level", "debug", "version"],
    "emulator": ["emulator"],
    "demo": ["demo"],
    "doctor": ["doctor"],
    "setup": ["setup", "--yes"],
    "provision": ["provision", "--boot-dir", "/nonexistent"],
    "devices": ["devices"],
    "audio-test": ["audio-test"],
    "wake-test": ["wake-test", "x.wav"],
    "config": ["config", "show"],
    "fetch-config": ["fetch-config", "-c", "x.toml"],
    "agents": ["agents", "--search", "lobby"],
    "conversations": ["conversations", "show", "conv_1"],
    "tools": ["tools", "sync", "--dry-run"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_imports_only_its_own_module(name: str) -> None:
    """``hello-device run`` on a Pi Zero pays for no other command (nor the daemon,
    before it runs)."""
    done = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, *COMMAND_LINES[name]],
        capture_output=True,
        text=True,
        timeout=60 * UNIT,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    own = COMMANDS[name][1]
    assert own in loaded
    others = {module for _, module in COMMANDS.values()} - {own}
    assert not others & loaded, f"{name} imported {sorted(others & loaded)}"
    if name not in ("demo", "doctor", "emulator"):
        assert "hello_device.daemon" not in loaded and "hello_device.emulator" not in loaded


def test_every_command_line_above_names_its_command() -> None:
    assert set(COMMAND_LINES) == set(COMMANDS)
