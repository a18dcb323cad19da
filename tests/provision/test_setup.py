"""``hello-device setup``: with flags against the emulator, idempotent, refusing a bad
answer, and interactive through a real pseudo-terminal (the key is never echoed)."""

from __future__ import annotations

import importlib.util
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hello_device.emulator import EmulatorConfig
from tests.conftest import REPO, UNIT
from tests.daemon.test_service import EmulatorThread

KEY = "sk_test_SETUP_0123456789abcdefSECRET"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    e = EmulatorThread(EmulatorConfig(api_key=KEY))
    yield e
    e.close()


def setup(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hello_device", "setup", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60 * UNIT,
        cwd=REPO,
        check=False,
    )


def read(config: Path) -> dict[str, dict[str, object]]:
    return tomllib.loads(config.read_text())


def test_flags_write_a_checked_config_and_the_key_then_doctor_runs(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "config.toml"
    flags = ["--agent-id", "demo-agent", "--api-base-url", emulator.emu.http_url]
    result = setup(
        config,
        *flags,
        "--api-key-file", "-", "--trigger", "auto", "--led-pins", "",
        "--yes", "--skip-audio", "--no-restart",
        stdin=KEY + "\n",
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: this machine has no unit installed
    data = read(config)
    assert data["platform"]["agent_id"] == "demo-agent"
    assert data["platform"]["api_key_file"] == str(config.parent / "api-key")
    assert data["conversation"]["start"] == "auto"
    key_file = config.parent / "api-key"
    assert key_file.read_text() == KEY + "\n" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    lines = result.stdout.splitlines()
    assert any(line.startswith("PASS  configuration:") for line in lines), result.stdout
    assert any(line.startswith("PASS  agent configuration:") for line in lines), result.stdout
    assert KEY not in result.stdout + result.stderr


def test_a_second_run_changes_only_what_it_is_given(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    first = setup(
        config, "--agent-id", "agent_1", "--api-key-file", "-", "--trigger", "button",
        "--button-pin", "17", "--yes", "--no-doctor", "--no-restart",
        stdin=KEY,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = read(config)
    second = setup(config, "--trigger", "voice", "--yes", "--no-doctor", "--no-restart")
    assert second.returncode == 0, second.stderr
    after = read(config)
    assert after["conversation"]["start"] == "voice"
    assert after["platform"] == before["platform"] and after["gpio"] == before["gpio"]
    assert (config.parent / "api-key").read_text() == KEY + "\n"
    assert read(config.with_name("config.toml.previous")) == before


@pytest.mark.skipif(
    importlib.util.find_spec("pymicro_wakeword") is None, reason="the wake extra is not installed"
)
def test_the_wake_word_trigger_with_its_model_and_a_model_that_does_not_exist(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nagent_id = "agent_ok"\n')
    result = setup(
        config, "--trigger", "wake_word", "--wake-word", "alexa",
        "--yes", "--no-doctor", "--no-restart",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = read(config)
    assert data["conversation"]["start"] == "wake_word"
    assert data["wake_word"]["model"] == "alexa"
    bad = setup(config, "--wake-word", "hey_computer", "--trigger", "wake_word", "--yes",
                "--no-doctor", "--no-restart")  # fmt: skip
    assert bad.returncode == 2
    assert f"config error: {config}" in bad.stderr and "wake_word.model" in bad.stderr
    assert read(config)["wake_word"]["model"] == "alexa"  # the running one kept


def test_a_bad_answer_is_refused_and_the_running_config_kept(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nagent_id = "agent_ok"\n')
    result = setup(config, "--agent-id", "not valid!", "--yes", "--no-doctor", "--no-restart")
    assert result.returncode == 2
    assert f"config error: {config}" in result.stderr and "platform.agent_id" in result.stderr
    assert read(config)["platform"]["agent_id"] == "agent_ok"
    assert not config.with_name("config.toml.new").exists()


class Terminal:
    """A child process on a real pseudo-terminal, read with bounded waits."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal is its controlling tty
            os.chdir(REPO)
            os.execv(argv[0], argv)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout * UNIT
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never came; the terminal shows:\n{self.seen}")
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout * UNIT
        while time.monotonic() < deadline:
            with_output = select.select([self.fd], [], [], 0.1)[0]
            if with_output:
                try:
                    self.seen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"setup did not end; the terminal shows:\n{self.seen}")


def test_interactive_on_a_real_terminal(emulator: EmulatorThread, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    url = emulator.emu.http_url
    config.write_text(f'[platform]\nagent_id = "agent_old"\napi_base_url = "{url}"\n')
    term = Terminal(
        [sys.executable, "-m", "hello_device", "setup", "--config", str(config),
         "--input-device", "default", "--output-device", "default", "--no-doctor",
         "--no-restart"]
    )  # fmt: skip
    term.expect("API key (hidden; Enter for none): ")
    term.send(KEY)
    term.expect("Agent id, ?word to search the platform, ? to list [agent_old]: ")
    term.send("?nothing-like-it")
    term.expect("no agent's name contains 'nothing-like-it'")
    term.send("?")  # every agent the key sees
    term.expect("1. hello-device emulator (demo-agent)")
    term.expect("Pick a number (Enter to search again): ")
    term.send("1")
    term.expect("Trigger: button, voice, wake_word or auto [button]: ")
    term.send("sometimes")
    term.expect("please answer one of: button, voice, wake_word, auto")
    term.send("")  # the default
    term.expect("Button GPIO pin (BCM number): ")
    term.send("17")
    term.expect("LED GPIO pins (comma-separated, empty for none): ")
    term.send("12")
    term.expect("Test the microphone and loudspeaker now (level meter, then a tone)? [y/N]: ")
    term.send("")  # no sound card here: the audio test has its own tests
    assert term.wait() == 0, term.seen
    assert KEY not in term.seen  # never echoed
    data = read(config)
    assert data["platform"]["agent_id"] == "demo-agent"
    assert data["conversation"]["start"] == "button"
    assert data["gpio"] == {"button_pin": 17, "led_pins": [12], "led_type": "led"}
    assert (tmp_path / "api-key").read_text() == KEY + "\n"


def test_a_key_that_cannot_be_one_is_refused_with_nothing_written(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    result = setup(
        config, "--agent-id", "agent_1", "--api-key-file", "-", "--yes", "--no-doctor",
        "--no-restart", stdin="two words\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert "API key: the key must be the API key alone on one line" in result.stderr
    assert "two words" not in result.stdout + result.stderr
    assert not config.exists() and not (tmp_path / "api-key").exists()
