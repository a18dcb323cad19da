"""The systemd unit verifies cleanly and is hardened (exposure score <= 2.0)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "hello-device.service"
PROVISION_UNIT = REPO / "systemd" / "hello-device-provision.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def _unit_for_this_machine(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit (and the one it pulls in) with ExecStart pointing at this environment's
    console script, since ``verify`` checks that the program exists."""
    exe = Path(sys.executable).with_name("hello-device")
    for source in (UNIT, PROVISION_UNIT):
        text = re.sub(
            r"^(ExecStart|ExecCondition)=(-?)\S+",
            rf"\g<1>=\g<2>{exe}",
            source.read_text(),
            flags=re.M,
        )
        (tmp_path / source.name).write_text(text)
    return tmp_path / unit.name


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in result.stderr.splitlines() if "hello-device.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_provision_unit_verifies_and_runs_before_the_daemon(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _unit_for_this_machine(tmp_path, PROVISION_UNIT)
    result = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in result.stderr.splitlines() if "provision" in line]
    assert result.returncode == 0 and not problems, result.stderr
    text = PROVISION_UNIT.read_text()
    assert "Type=oneshot" in text and "Before=hello-device.service" in text
    assert "ConditionPathExists=|/boot/firmware/hello-device.key" in text
    main = UNIT.read_text()
    assert re.search(r"^Wants=.*hello-device-provision\.service", main, flags=re.M)
    assert re.search(r"^After=.*hello-device-provision\.service", main, flags=re.M)


def test_unit_security_score_at_most_2(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_unit_essentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "DevicePolicy=closed",
        "SystemCallFilter=@system-service",
        "SupplementaryGroups=audio gpio",
        "RestartPreventExitStatus=2",
    ):
        assert line in text, line
    assert "PrivateUsers=yes" not in text  # it would hide the audio and gpio groups
