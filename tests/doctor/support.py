"""Fakes and helpers for the doctor tests: the user database, ``systemctl``, probes,
configuration files, the emulator, unit files (see ``tests/doctor/__init__.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hello_device import doctor
from hello_device.doctor import (
    Account,
    Context,
    Group,
    Limits,
    Probes,
)
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import load_settings
from tests.conftest import REPO, UNIT

T = TypeVar("T")

KEY = "sk_test_DOCTOR_0123456789abcdefSECRET"
AGENT = "doctor-agent"
EXAMPLE_WAV = REPO / "hello_device" / "examples" / "hello.wav"

SERVICE_UID = 4242
AUDIO_GID = 4243
GPIO_GID = 4244
SERVICE = Account("hello-device", SERVICE_UID, SERVICE_UID, frozenset({SERVICE_UID}))
GROUPS = {
    "hello-device": Group("hello-device", SERVICE_UID, ()),
    "audio": Group("audio", AUDIO_GID, ("hello-device",)),
    "gpio": Group("gpio", GPIO_GID, ("hello-device",)),
}
MEMBER = dataclasses.replace(SERVICE, gids=frozenset({SERVICE_UID, AUDIO_GID, GPIO_GID}))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeAccounts:
    """The user database: a service user (or none) and its groups; uid 0 is root."""

    users: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)

    def user(self, name: str) -> Account | None:
        return self.users.get(name)

    def group(self, name: str) -> Group | None:
        return self.groups.get(name)

    def user_name(self, uid: int) -> str:
        if uid == 0:
            return "root"
        return next((a.name for a in self.users.values() if a.uid == uid), str(uid))

    def group_name(self, gid: int) -> str:
        if gid == 0:
            return "root"
        return next((g.name for g in self.groups.values() if g.gid == gid), str(gid))


def with_service() -> FakeAccounts:
    return FakeAccounts({"hello-device": MEMBER}, dict(GROUPS))


@dataclass
class FakeCommands:
    """``systemctl show`` and ``timedatectl show`` answers (None: the command fails)."""

    systemctl: str | None = None
    timedatectl: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], timeout: float) -> str | None:
        self.calls.append(list(argv))
        assert timeout <= 5.0
        return self.systemctl if argv[0] == "systemctl" else self.timedatectl


def make_probes(tmp_path: Path, **changes: Any) -> Probes:
    """Probes that see an empty root, no service user, no systemd, a fixed clock."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    probes = Probes(
        accounts=FakeAccounts(),
        run=FakeCommands(),
        root=root,
        dev_dir=tmp_path / "dev",
        installed_at=lambda: None,
        limits=Limits(dns_s=1.0, connect_s=1.0, network_s=4.0, audio_s=5.0, command_s=1.0),
    )
    return dataclasses.replace(probes, **changes)


def etc_dir(tmp_path: Path, owner_gid: int = SERVICE_UID) -> Path:
    """A directory like /etc/hello-device: 0750 root:hello-device (when root)."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(etc, 0, owner_gid)
    etc.chmod(0o750)
    return etc


def write_config(
    tmp_path: Path,
    *,
    platform: str = "",
    audio: str | None = None,
    gpio: str = "",
    state: Path | None = None,
    key_file: bool = True,
    mode: int = 0o640,
) -> Path:
    """A complete configuration in ``tmp_path/etc``; the key (if any) in its own file."""
    etc = etc_dir(tmp_path)
    lines = ["[platform]", f'agent_id = "{AGENT}"']
    if key_file:
        key = etc / "api-key"
        key.write_text(KEY + "\n")
        key.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(key, SERVICE_UID, SERVICE_UID)
        lines.append(f'api_key_file = "{key}"')
    lines.append(platform)
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    lines += [
        "[audio]",
        audio
        if audio is not None
        else f'backend = "file"\ninput_file = "{EXAMPLE_WAV}"\n'
        f'output_file = "{out_dir / "speaker.wav"}"',
        "[gpio]",
        gpio,
        "[state]",
        f'dir = "{state or (tmp_path / "state")}"',
    ]
    path = etc / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, 0, SERVICE_UID)
    (tmp_path / "state").mkdir(exist_ok=True)
    return path


def context(path: Path, probes: Probes, **kw: Any) -> Context:
    settings = load_settings(path, env=kw.pop("env", {}), warn=lambda m: None)
    return Context(str(path), settings, probes, **kw)


def run(path: Path, probes: Probes, **kw: Any) -> tuple[int, list[str]]:
    """``run_doctor`` with its output as lines (the key must never be in them)."""
    out = io.StringIO()
    code = doctor.run_doctor(str(path), probes=probes, out=out, env=kw.pop("env", {}), **kw)
    text = out.getvalue()
    assert KEY not in text
    return code, text.splitlines()


def line_of(lines: list[str], check: str) -> str:
    found = [line for line in lines if line[6:].startswith(f"{check}:")]
    assert len(found) == 1, (check, lines)
    return found[0]


def fix_after(lines: list[str], check: str) -> str:
    i = lines.index(line_of(lines, check)) + 1
    while not lines[i].lstrip().startswith("fix:"):
        i += 1
    return lines[i].strip()


def with_emulator(cfg: EmulatorConfig, fn: Callable[[Emulator], T]) -> T:
    """Run ``fn(emulator)`` in a worker thread while the emulator serves on 127.0.0.1."""

    async def go() -> T:
        async with Emulator(cfg) as emu:
            return await asyncio.to_thread(fn, emu)

    return asyncio.run(asyncio.wait_for(go(), 60 * UNIT))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_unit(
    root: Path,
    *,
    config: Path | None = None,
    enable: bool = True,
    program: bool = True,
    extra: str = "",
) -> Path:
    """The repository's unit file under ``root``, pointed at ``config``."""
    text = (REPO / "systemd" / "hello-device.service").read_text()
    if config is not None:
        text = text.replace("/etc/hello-device/config.toml", str(config))
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit = unit_dir / "hello-device.service"
    unit.write_text(text.replace("\n[Install]", f"\n{extra}[Install]"))  # extra: [Service]
    if enable:
        wants = unit_dir / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / "hello-device.service").symlink_to(unit)
    if program:
        exe = root / "opt/hello-device/bin/hello-device"
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return unit
