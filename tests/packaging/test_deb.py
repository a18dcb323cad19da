"""The Debian package, built and installed into a clean Debian root (debootstrap).

Real parts: ``scripts/build-deb.sh`` (dh-virtualenv), a minimal bookworm root made by
debootstrap, apt and dpkg inside it (chroot), systemd-sysusers and systemd-tmpfiles run
by the package's scripts, ``systemd-analyze verify`` of the installed units, the
emulator on the host's loopback for ``setup`` and ``doctor``. systemd itself does not run
in a chroot: the service is checked as enabled, not started. Needs root (chroot,
debootstrap) and the Debian mirror; marked ``slow``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hello_device.emulator import EmulatorConfig
from tests.conftest import REPO, UNIT
from tests.daemon.test_service import EmulatorThread

WHY_NOT = (
    "debootstrap and chroot need root"
    if os.geteuid() != 0
    else "debootstrap is not installed"
    if shutil.which("debootstrap") is None
    else ""
)
if WHY_NOT and os.environ.get("HELLO_DEVICE_REQUIRE_DEB") == "1" and os.geteuid() == 0:
    raise RuntimeError(f"the Debian package test must run here (CI, as root): {WHY_NOT}")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)]

KEY = "sk_test_DEB_0123456789abcdefSECRET"
MIRROR = "http://deb.debian.org/debian"


def run(*argv: str, timeout: float = 600, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout * UNIT, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


class Root:
    """A debootstrap root and commands run inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(
        self, *argv: str, stdin: str = "", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"]
        cmd = ["chroot", str(self.path), *env, *argv]
        if check:
            return run(*cmd, stdin=stdin)
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=600 * UNIT, check=False
        )

    def stat(self, path: str) -> tuple[str, str, str]:
        out = self("stat", "-c", "%a %U %G", path).stdout.split()
        return out[0], out[1], out[2]


@pytest.fixture(scope="module")
def deb() -> Path:
    run("bash", str(REPO / "scripts" / "build-deb.sh"), timeout=900)
    found = sorted((REPO / "dist").glob("hello-device_*.deb"))
    assert found, "scripts/build-deb.sh made no package"
    return found[-1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    path = tmp_path_factory.mktemp("debroot") / "root"
    run("debootstrap", "--variant=minbase", "bookworm", str(path), MIRROR, timeout=900)
    shutil.copy("/etc/resolv.conf", path / "etc" / "resolv.conf")
    run("mount", "-t", "proc", "proc", str(path / "proc"))
    try:
        yield Root(path)
    finally:
        subprocess.run(["umount", "-l", str(path / "proc")], check=False)


def test_lintian_is_clean(deb: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    result = subprocess.run(
        ["lintian", "--fail-on", "error,warning", str(deb)],
        capture_output=True,
        text=True,
        check=False,
    )
    shown = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not shown, result.stdout + result.stderr


def test_install_setup_doctor_upgrade_and_purge(deb: Path, root: Root, tmp_path: Path) -> None:
    shutil.copy(deb, root.path / "tmp" / "hello-device.deb")
    root("apt-get", "update", "-qq")
    root("apt-get", "install", "-y", "-qq", "--no-install-recommends", "/tmp/hello-device.deb")

    # Installed: the program on the PATH, the user in its groups, directories and modes.
    assert root("hello-device", "version").stdout.strip().startswith("hello-device ")
    groups = root("id", "-nG", "hello-device").stdout.split()
    assert {"hello-device", "audio", "gpio"} <= set(groups)
    assert root.stat("/etc/hello-device") == ("750", "root", "hello-device")
    assert root.stat("/etc/hello-device/config.toml") == ("640", "root", "hello-device")
    assert root.stat("/var/lib/hello-device") == ("700", "hello-device", "hello-device")
    wants = root.path / "etc/systemd/system/multi-user.target.wants/hello-device.service"
    assert wants.is_symlink()
    for unit in ("hello-device.service", "hello-device-provision.service"):
        verify = root("systemd-analyze", "verify", f"/lib/systemd/system/{unit}", check=False)
        problems = [line for line in verify.stderr.splitlines() if "hello-device" in line]
        assert verify.returncode == 0 and not problems, verify.stderr
    # The shipped configuration names no agent: the service's condition keeps it waiting.
    waiting = root("hello-device", "check-config", "/etc/hello-device/config.toml", check=False)
    assert waiting.returncode == 2 and "platform.agent_id" in waiting.stderr + waiting.stdout

    # setup, non-interactively, against the emulator on the host's loopback; then doctor.
    emulator = EmulatorThread(EmulatorConfig(api_key=KEY))
    try:
        url = emulator.emu.http_url
        done = root(
            "hello-device", "setup", "--agent-id", "demo-agent", "--api-base-url", url,
            "--api-key-file", "-", "--trigger", "auto", "--yes", "--no-doctor", "--no-restart",
            stdin=KEY + "\n",
        )  # fmt: skip
        assert KEY not in done.stdout + done.stderr
        assert root.stat("/etc/hello-device/api-key") == ("600", "hello-device", "hello-device")
        doctor = root(
            "runuser",
            "-u",
            "hello-device",
            "--",
            "hello-device",
            "doctor",
            "--skip-audio",
            check=False,
        )
        lines = doctor.stdout.splitlines()
        for check in ("configuration", "API key", "agent configuration", "service user"):
            assert any(line.startswith(f"PASS  {check}:") for line in lines), doctor.stdout
        assert KEY not in doctor.stdout + doctor.stderr
    finally:
        emulator.close()

    # A whole conversation with the installed program (the bundled emulator, over files):
    # every compiled library of the environment loads and works.
    demo = root("hello-device", "demo", "--output", "/tmp/demo.wav")
    assert "agent: You said:" in demo.stdout, demo.stdout + demo.stderr

    # The wake word comes with the package: its models and TensorFlow Lite load.
    wake = root("hello-device", "wake-test", "--model", "alexa", "/tmp/demo.wav", check=False)
    assert wake.returncode == 0 and "'Alexa': sensitivity 0.5" in wake.stdout, wake.stderr

    # An upgrade keeps the technician's configuration (a conffile they edited).
    edited = (root.path / "etc/hello-device/config.toml").read_text()
    upgrade = tmp_path / "upgrade"
    run("dpkg-deb", "-R", str(deb), str(upgrade))
    control = upgrade / "DEBIAN" / "control"
    control.write_text(control.read_text().replace("Version: 0.1.0", "Version: 0.1.0+1"))
    run("dpkg-deb", "-b", str(upgrade), str(root.path / "tmp" / "hello-device-upgrade.deb"))
    root("apt-get", "install", "-y", "-qq", "/tmp/hello-device-upgrade.deb")
    assert root("dpkg-query", "-W", "-f=${Version}", "hello-device").stdout == "0.1.0+1"
    assert (root.path / "etc/hello-device/config.toml").read_text() == edited

    # Purge removes what the package, setup and the daemon created.
    root("apt-get", "purge", "-y", "-qq", "hello-device")
    for gone in (
        "etc/hello-device",
        "var/lib/hello-device",
        "opt/hello-device",
        "usr/bin/hello-device",
    ):
        assert not (root.path / gone).exists(), gone
    assert not wants.exists()
