"""Whole doctor runs, a crashing check, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hello_device import doctor
from hello_device.doctor import (
    CheckResult,
    Context,
    runner,
)
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import REPO, UNIT
from tests.doctor.support import (
    AGENT,
    EXAMPLE_WAV,
    KEY,
    FakeCommands,
    install_unit,
    line_of,
    make_probes,
    needs_root,
    run,
    with_emulator,
    with_service,
    write_config,
)
from tests.doctor.test_gpio_and_systemd import GPIO_ALL

# --------------------------------------------------------------------------- whole runs


@needs_root
def test_everything_green_exits_0(tmp_path: Path) -> None:
    def go(emu: Emulator) -> tuple[int, list[str]]:
        path = write_config(tmp_path, platform=f'api_base_url = "{emu.http_url}"', gpio=GPIO_ALL)
        now = time.time()
        probes = make_probes(
            tmp_path,
            accounts=with_service(),
            run=FakeCommands(
                systemctl="ActiveState=inactive\nSubState=dead\nNeedDaemonReload=no\n",
                timedatectl="yes\n",
            ),
            clock=lambda: now,
            installed_at=lambda: now - 3600,
        )
        install_unit(probes.root, config=path, extra=f"ReadWritePaths={tmp_path}\n")
        sysusers = probes.root / doctor.SYSUSERS_FILE
        sysusers.parent.mkdir(parents=True)
        sysusers.write_text((REPO / "systemd" / "hello-device.sysusers").read_text())
        return run(path, probes)

    code, lines = with_emulator(EmulatorConfig(agent_id=AGENT, api_key=KEY, private=True), go)
    assert code == 0, "\n".join(lines)
    assert [line[:4] for line in lines[1:-1]] == ["PASS"] * 13, "\n".join(lines)
    assert [line[6:].split(":")[0] for line in lines[1:-1]] == [
        "configuration",
        "API key",
        "clock",
        "state directory",
        "DNS",
        "HTTP",
        "agent configuration",
        "signed URL",
        "microphone",
        "loudspeaker",
        "GPIO",
        "systemd unit",
        "service user",
    ]
    assert lines[0].startswith("hello-device ") and lines[0].endswith(", as user root")
    assert lines[-1] == "doctor: 13 PASS, 0 WARN, 0 FAIL, 0 SKIP; exit code 0"


def test_a_check_that_crashes_is_one_fail_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: Context) -> CheckResult:
        raise RuntimeError("boom")

    checks = tuple((broken if c is doctor.check_clock else c, n) for c, n in runner.CHECKS)
    monkeypatch.setattr(runner, "CHECKS", checks)
    monkeypatch.setitem(runner.NAMES, broken, "clock")
    code, lines = run(write_config(tmp_path), make_probes(tmp_path), skip_network=True)
    assert code == 1
    assert line_of(lines, "clock") == "FAIL  clock: the check itself failed: RuntimeError: boom"


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HELLO_DEVICE_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "hello_device", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout * UNIT,
        check=False,
    )


def unit_installed_here() -> bool:
    return any((Path("/") / d / doctor.UNIT_NAME).exists() for d in doctor.UNIT_DIRS)


def test_cli_skip_network(tmp_path: Path) -> None:
    path = write_config(tmp_path, gpio=GPIO_ALL)
    done = cli("doctor", "--config", str(path), "--skip-network")
    assert KEY not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hello-device ") and f" doctor: {path}, as user " in lines[0]
    assert line_of(lines, "configuration") == (
        f"PASS  configuration: {path} is valid (agent {AGENT}, audio file, start button)"
    )
    assert line_of(lines, "API key").startswith(
        f"PASS  API key: set, from the key file {tmp_path / 'etc' / 'api-key'} (mode 0600, owner "
    )
    assert line_of(lines, "clock")[:4] in ("PASS", "WARN")
    assert line_of(lines, "state directory").startswith(
        f"PASS  state directory: {tmp_path / 'state'} is writable by "
    )
    for check in ("DNS", "HTTPS", "agent configuration", "signed URL"):
        assert line_of(lines, check) == f"SKIP  {check}: --skip-network"
    assert line_of(lines, "microphone") == (
        f"PASS  microphone: file backend: {EXAMPLE_WAV} reads (6.2 s, 16000 Hz, 1 channel)"
    )
    assert line_of(lines, "loudspeaker") == (
        f"PASS  loudspeaker: file backend: {tmp_path / 'out' / 'speaker.wav'} can be written"
    )
    assert line_of(lines, "GPIO") == (
        "PASS  GPIO: MockFactory: button GPIO17, mute switch GPIO27, rgb LED GPIO12/13/19 "
        "claimed and released"
    )
    unit = line_of(lines, "systemd unit")
    if not unit_installed_here():
        assert unit == "FAIL  systemd unit: hello-device.service is not installed"
    assert line_of(lines, "service user")[:4] in ("PASS", "WARN", "FAIL")
    failed = any(line.startswith("FAIL") for line in lines)
    assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    assert lines[-1].endswith(f"; exit code {done.returncode}")
    assert done.stderr == ""


def test_cli_broken_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[platform]\napi_key = "{KEY}"\nagent_id = "has spaces"\n')
    done = cli("doctor", "--config", str(path), "--skip-network", "--skip-audio")
    assert done.returncode == 2, done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == f"FAIL  configuration: {path} has 1 problem"
    assert lines[2].startswith('      - platform.agent_id: "has spaces" is not valid')
    assert lines[-1].endswith("; exit code 2")
