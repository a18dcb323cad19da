"""``hello-device doctor``: every check's PASS and FAIL paths, against real local parts.

Real parts wherever they run here: the agent emulator on 127.0.0.1 for the platform
checks (HTTP, 401, 404, private agents, slow answers), a local TLS server with a
certificate made by ``openssl`` for the handshake check, temporary directories for the
key file, configuration and state permission cases (chowned to a stand-in service user
id), gpiozero's ``MockFactory`` for pins, the file audio backend, the fake PortAudio host
of ``tests/test_pyaudio_backend.py`` for sound cards (and the private PulseAudio server
when it can start), and a fake file-system root for the systemd unit files. The user
database and ``systemctl``/``timedatectl`` are faked: the doctor must not depend on
this machine's. Nothing leaves 127.0.0.1. The API key never appears in any output.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from gpiozero import Button
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device import doctor
from hello_device.doctor import (
    Account,
    CheckResult,
    Context,
    Group,
    Limits,
    Probes,
    Status,
)
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.platform.cache import AgentConfigCache
from hello_device.settings import load_settings
from tests.conftest import REPO, UNIT
from tests.soundserver import SoundServer, sound_server
from tests.test_pyaudio_backend import FakeDevice, FakeHost, hat_codec

__all__ = ["sound_server"]  # the fixture, for the `sound` tests

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


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)


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


# --------------------------------------------------------------------------- results


def test_result_lines() -> None:
    bad = CheckResult("clock", Status.FAIL, "it is 1970", "set the time", ("a", "b"))
    assert bad.lines() == [
        "FAIL  clock: it is 1970",
        "      - a",
        "      - b",
        "      fix: set the time",
    ]
    assert CheckResult("GPIO", Status.PASS, "ok", "never shown").lines() == ["PASS  GPIO: ok"]
    assert CheckResult("DNS", Status.SKIP, "--skip-network").lines() == [
        "SKIP  DNS: --skip-network"
    ]


def test_register_adds_doctor_with_its_flags() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    doctor.register(sub)
    args = parser.parse_args(["doctor", "--config", "c.toml", "--skip-network", "--skip-audio"])
    assert (args.config, args.skip_network, args.skip_audio) == ("c.toml", True, True)
    assert args.func is doctor.cmd_doctor
    args = parser.parse_args(["doctor"])
    assert (args.config, args.skip_network, args.skip_audio) == (
        "/etc/hello-device/config.toml",
        False,
        False,
    )


# --------------------------------------------------------------------------- configuration


def test_configuration_valid(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_configuration(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS
    assert result.detail == f"{path} is valid (agent {AGENT}, audio file, start button)"


def test_invalid_configuration_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[platform]\nagent_id = "a"\n[audio]\nframe_ms = 25\nvolumme = 1\n')
    code, lines = run(path, make_probes(tmp_path))
    assert code == 2
    assert lines[1] == f"FAIL  configuration: {path} has 2 problems"
    assert lines[2].startswith("      - audio.frame_ms: 25 is not allowed")
    assert lines[3].startswith("      - audio.volumme: unknown key; did you mean audio.volume?")
    assert lines[4] == (
        f"      fix: edit {path} (every key is explained in config.example.toml), then check "
        f"it with: hello-device check-config {path}"
    )
    # The checks that need no configuration still run; the others say why they did not.
    assert line_of(lines, "clock").startswith("PASS  clock: ")
    assert line_of(lines, "GPIO") == "SKIP  GPIO: needs a valid configuration"
    assert line_of(lines, "systemd unit").startswith("FAIL  systemd unit: ")
    assert lines[-1] == "doctor: 1 PASS, 0 WARN, 3 FAIL, 9 SKIP; exit code 2"


def test_unparseable_and_missing_files_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[platform\n")
    code, lines = run(broken, make_probes(tmp_path))
    assert code == 2
    assert lines[1] == f"FAIL  configuration: {broken} has 1 problem"
    assert lines[2].startswith("      - invalid TOML: ")

    missing = tmp_path / "nowhere.toml"
    code, lines = run(missing, make_probes(tmp_path))
    assert code == 2
    assert lines[2] == "      - no such file"
    assert fix_after(lines, "configuration").startswith(
        f"fix: copy config.example.toml to {missing}"
    )


@needs_root
def test_configuration_the_service_user_cannot_read(tmp_path: Path) -> None:
    path = write_config(tmp_path, mode=0o600)  # root-owned, 0600: only root reads it
    probes = make_probes(tmp_path, accounts=with_service())
    result = doctor.check_configuration(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        f"but the service user hello-device cannot read it: it cannot read {path} (mode 0600)"
    )
    assert result.fix.startswith(f"sudo chown root:hello-device {path} && sudo chmod 640")
    path.chmod(0o640)  # group hello-device may read it, as the README says
    assert doctor.check_configuration(context(path, probes)).status is Status.PASS


# --------------------------------------------------------------------------- API key


@needs_root
def test_api_key_file_readable_only_by_the_service(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.PASS
    assert result.detail == (
        f"set, from the key file {tmp_path / 'etc' / 'api-key'} "
        "(mode 0600, owner hello-device:hello-device)"
    )
    assert KEY not in repr(result)


def test_api_key_file_everyone_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    key.chmod(0o644)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"from the key file {key}, which everyone on this machine")
    assert result.fix == f"sudo chmod 600 {key}"


@needs_root
def test_api_key_file_another_group_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    os.chown(key, SERVICE_UID, AUDIO_GID)
    key.chmod(0o640)
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.WARN
    assert "which group audio can read (mode 0640, owner hello-device:audio)" in result.detail
    assert result.fix == f"sudo chmod 600 {key}"


@needs_root
def test_api_key_file_the_service_cannot_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    os.chown(key, 0, 0)  # 0600 root:root: only root can read it, not the service
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.FAIL
    assert result.detail.endswith(
        f"but the service user hello-device cannot read it: it cannot read {key} (mode 0600)"
    )
    assert result.fix == f"sudo chown hello-device:hello-device {key} && sudo chmod 600 {key}"


def test_api_key_from_the_environment_or_missing(tmp_path: Path) -> None:
    path = write_config(tmp_path, key_file=False)
    probes = make_probes(tmp_path)
    result = doctor.check_api_key(context(path, probes, env={"HELLO_DEVICE_API_KEY": KEY}))
    assert result.status is Status.PASS
    assert result.detail.startswith("set, from the environment variable HELLO_DEVICE_API_KEY")
    result = doctor.check_api_key(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail == "not set: only a public agent can be reached without one"
    assert 'platform.api_key_file = "/etc/hello-device/api-key"' in result.fix


def test_api_key_inline_in_a_world_readable_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, key_file=False, platform=f'api_key = "{KEY}"', mode=0o644)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"set in {path} itself, which everyone on this machine")
    assert result.fix == f"sudo chmod 640 {path}"
    path.chmod(0o640)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS
    assert "a separate key file (mode 0600) is preferred" in result.detail


# --------------------------------------------------------------------------- clock


def test_clock_plausible_and_synchronised(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = time.time()
    probes = make_probes(
        tmp_path,
        clock=lambda: now,
        installed_at=lambda: now - 86400,
        run=FakeCommands(timedatectl="yes\n"),
    )
    result = doctor.check_clock(context(path, probes))
    assert result.status is Status.PASS
    assert result.detail.endswith("UTC (synchronised)")


def test_clock_in_1970_or_2000_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    for when in (0.0, 946684800.0):
        result = doctor.check_clock(context(path, make_probes(tmp_path, clock=lambda w=when: w)))
        assert result.status is Status.FAIL
        assert "cannot be right, and TLS certificates will look invalid" in result.detail
        assert "timedatectl" in result.fix


def test_clock_behind_the_install_time_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = 1_750_000_000.0
    probes = make_probes(tmp_path, clock=lambda: now, installed_at=lambda: now + 7 * 86400)
    result = doctor.check_clock(context(path, probes))
    assert result.status is Status.FAIL
    assert "before this copy of hello-device was installed (2025-06-22" in result.detail


def test_clock_behind_the_cached_configuration_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = 1_750_000_000.0
    AgentConfigCache(tmp_path / "state").save(AGENT, {"agent_id": AGENT}, fetched_at=now + 3600)
    result = doctor.check_clock(context(path, make_probes(tmp_path, clock=lambda: now)))
    assert result.status is Status.FAIL
    assert "before the cached agent configuration was fetched (2025-06-15 16:06:40 UTC)" in (
        result.detail
    )


def test_clock_not_synchronised_warns(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_clock(
        context(path, make_probes(tmp_path, run=FakeCommands(timedatectl="no\n")))
    )
    assert result.status is Status.WARN
    assert result.detail.endswith("but not synchronised with a time server (yet)")


# --------------------------------------------------------------------------- state directory


def test_state_dir_writable_with_a_cache(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    AgentConfigCache(tmp_path / "state").save(AGENT, {"agent_id": AGENT}, fetched_at=1.75e9)
    result = doctor.check_state_dir(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS
    assert result.detail.startswith(f"{tmp_path / 'state'} is writable by root (cached agent")
    assert "from 2025-06-15 15:06:40 UTC" in result.detail
    assert [p.name for p in (tmp_path / "state").iterdir()] == [f"agent-{AGENT}.json"]


def test_state_dir_missing_or_not_a_directory(tmp_path: Path) -> None:
    probes = make_probes(tmp_path)
    path = write_config(tmp_path, state=tmp_path / "later")
    result = doctor.check_state_dir(context(path, probes))
    assert (result.status, result.detail) == (
        Status.WARN,
        f"{tmp_path / 'later'} does not exist yet",
    )
    assert "systemd-tmpfiles --create" in result.fix

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = write_config(tmp_path, state=blocker)
    result = doctor.check_state_dir(context(path, probes))
    assert (result.status, result.detail) == (
        Status.FAIL,
        f"{blocker} exists but is not a directory",
    )
    path = write_config(tmp_path, state=blocker / "state")
    result = doctor.check_state_dir(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail == f"{blocker / 'state'} cannot be created: {blocker} is not a directory"


def test_state_dir_outside_what_the_sandboxed_unit_may_write(tmp_path: Path) -> None:
    probes = make_probes(tmp_path)
    install_unit(probes.root)
    path = write_config(tmp_path)
    result = doctor.check_state_dir(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        "but the unit (ProtectSystem=strict) lets the service write only /var/lib/hello-device"
    )


# --------------------------------------------------------------------------- DNS and reach


def test_dns_resolves_localhost_with_the_real_resolver(tmp_path: Path) -> None:
    path = write_config(tmp_path, platform='api_base_url = "http://localhost:9"')
    ctx = context(path, make_probes(tmp_path, resolver=doctor.resolve_host))
    result = doctor.check_dns(ctx)
    assert result.status is Status.PASS
    assert result.detail.startswith("localhost -> ")
    assert ctx.resolved == {"localhost": True}


def test_dns_failure_skips_the_checks_that_need_it(tmp_path: Path) -> None:
    def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    path = write_config(tmp_path, platform='api_base_url = "https://api.example.invalid"')
    code, lines = run(path, make_probes(tmp_path, resolver=no_such_host))
    assert code == 1
    assert line_of(lines, "DNS") == (
        "FAIL  DNS: api.example.invalid does not resolve: Name or service not known"
    )
    assert "getent hosts api.example.invalid" in fix_after(lines, "DNS")
    assert line_of(lines, "HTTPS") == (
        "SKIP  HTTPS: not tried: api.example.invalid does not resolve (see DNS)"
    )
    assert line_of(lines, "agent configuration") == (
        "SKIP  agent configuration: not tried: the platform cannot be reached (see above)"
    )
    assert line_of(lines, "signed URL") == (
        "SKIP  signed URL: not tried: the agent configuration was not fetched"
    )


def test_a_hanging_resolver_is_cut_off(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(host: str, port: int) -> list[str]:
        release.wait(30)
        return ["192.0.2.1"]

    path = write_config(tmp_path, platform='api_base_url = "https://api.example.invalid"')
    probes = make_probes(tmp_path, resolver=hang, limits=Limits(dns_s=0.3, network_s=4.0))
    started = time.monotonic()
    try:
        result = doctor.check_dns(context(path, probes))
    finally:
        release.set()
    assert time.monotonic() - started < 3.0
    assert result.status is Status.FAIL
    assert result.detail == (
        "api.example.invalid does not resolve: no answer from the DNS server within 0.3 s"
    )


def test_reach_refused(tmp_path: Path) -> None:
    port = closed_port()
    path = write_config(tmp_path, platform=f'api_base_url = "http://127.0.0.1:{port}"')
    ctx = context(path, make_probes(tmp_path))
    assert doctor.check_dns(ctx).status is Status.PASS
    result = doctor.check_reach(ctx)
    assert (result.check, result.status) == ("HTTP", Status.FAIL)
    assert result.detail == f"cannot reach 127.0.0.1:{port}: connection refused"
    assert result.fix == f"nothing listens on 127.0.0.1:{port}: is platform.api_base_url right?"


@dataclass
class TlsServer:
    """A TLS server on 127.0.0.1 that completes handshakes and closes (a thread)."""

    context: ssl.SSLContext
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20 * UNIT)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5 * UNIT)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5 * UNIT)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = TlsServer(ctx)
    try:
        yield server, cert
    finally:
        server.close()


def test_reach_tls_handshake_verified_and_rejected(
    tmp_path: Path, tls_server: tuple[TlsServer, Path]
) -> None:
    server, cert = tls_server
    path = write_config(tmp_path, platform=f'api_base_url = "https://127.0.0.1:{server.port}"')
    trusting = functools.partial(
        doctor.tls_connect, context=ssl.create_default_context(cafile=str(cert))
    )
    ctx = context(path, make_probes(tmp_path, connector=trusting))
    assert doctor.check_dns(ctx).status is Status.PASS
    result = doctor.check_reach(ctx)
    assert (result.check, result.status) == ("HTTPS", Status.PASS), result
    assert result.detail.startswith(f"127.0.0.1:{server.port} (127.0.0.1, TLSv1.")
    assert "certificate verified" in result.detail
    assert ctx.reachable is True

    # The system trust store does not know this self-signed certificate.
    ctx = context(path, make_probes(tmp_path))
    doctor.check_dns(ctx)
    result = doctor.check_reach(ctx)
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"cannot reach 127.0.0.1:{server.port}: TLS certificate")
    assert "(is the system clock right?)" in result.detail
    assert result.fix.startswith("check the clock (see above)")
    assert ctx.reachable is False


# --------------------------------------------------------------------------- platform


def platform_lines(
    tmp_path: Path,
    cfg: EmulatorConfig,
    *,
    key: str = KEY,
    extra: str = "",
    before: Callable[[Emulator], None] | None = None,
    limits: Limits | None = None,
) -> tuple[int, list[str], Emulator]:
    """The whole doctor (no audio) against the emulator; the key file holds ``key``."""

    def go(emu: Emulator) -> tuple[int, list[str], Emulator]:
        path = write_config(tmp_path, platform=f'api_base_url = "{emu.http_url}"\n{extra}')
        (tmp_path / "etc" / "api-key").write_text(key + "\n")
        if before is not None:
            before(emu)
        probes = make_probes(tmp_path)
        if limits is not None:
            probes = dataclasses.replace(probes, limits=limits)
        code, lines = run(path, probes, skip_audio=True)
        assert key not in "\n".join(lines)
        return code, lines, emu

    return with_emulator(cfg, go)


def test_agent_configuration_fetched(tmp_path: Path) -> None:
    code, lines, emu = platform_lines(tmp_path, EmulatorConfig(agent_id=AGENT, api_key=KEY))
    assert code == 1  # only the unit and the service user fail here
    assert line_of(lines, "DNS") == "PASS  DNS: 127.0.0.1 is an address (no lookup needed)"
    assert line_of(lines, "HTTP").startswith(f"PASS  HTTP: 127.0.0.1:{emu.port} (127.0.0.1, TCP")
    agent = line_of(lines, "agent configuration")
    assert agent.startswith(f'PASS  agent configuration: "hello-device emulator ({AGENT})" ')
    assert agent.endswith("(public, microphone pcm_16000, voice pcm_16000)")
    assert line_of(lines, "signed URL") == (
        'SKIP  signed URL: not needed (public agent, platform.signed_url = "auto")'
    )
    assert [r.status for r in emu.rest_requests] == [200]
    assert KEY not in json.dumps([r.headers for r in emu.rest_requests])


def test_agent_configuration_refused_key(tmp_path: Path) -> None:
    code, lines, emu = platform_lines(
        tmp_path, EmulatorConfig(agent_id=AGENT, api_key=KEY), key="sk_wrong_key_0000000000"
    )
    assert code == 1
    agent = line_of(lines, "agent configuration")
    assert agent.startswith(
        "FAIL  agent configuration: the platform refused the API key (HTTP 401) at 127.0.0.1:"
    )
    assert fix_after(lines, "agent configuration").startswith(
        f"fix: copy the key again from the platform's API keys page into {tmp_path}/etc/api-key"
    )
    assert [r.status for r in emu.rest_requests] == [401]  # no retry of a refusal


def test_agent_configuration_unknown_agent(tmp_path: Path) -> None:
    code, lines, _ = platform_lines(tmp_path, EmulatorConfig(agent_id="someone-else"))
    assert code == 1
    assert line_of(lines, "agent configuration").startswith(
        f"FAIL  agent configuration: no agent with id {AGENT} at 127.0.0.1:"
    )
    assert fix_after(lines, "agent configuration").startswith(
        f'fix: check platform.agent_id = "{AGENT}"'
    )


def test_private_agent_signed_url(tmp_path: Path) -> None:
    _, lines, emu = platform_lines(
        tmp_path, EmulatorConfig(agent_id=AGENT, api_key=KEY, private=True)
    )
    assert line_of(lines, "agent configuration").endswith(
        "(private, microphone pcm_16000, voice pcm_16000)"
    )
    assert line_of(lines, "signed URL") == (
        f"PASS  signed URL: obtained (ws://127.0.0.1:{emu.port}/v1/convai/conversation, "
        "token hidden)"
    )
    assert "conversation_signature" not in "\n".join(lines)


def test_private_agent_with_signed_urls_turned_off(tmp_path: Path) -> None:
    code, lines, _ = platform_lines(
        tmp_path,
        EmulatorConfig(agent_id=AGENT, api_key=KEY, private=True),
        extra='signed_url = "never"',
    )
    assert code == 1
    assert line_of(lines, "signed URL") == (
        'FAIL  signed URL: the agent is private but platform.signed_url = "never"'
    )


def test_platform_unavailable_is_retried_once(tmp_path: Path) -> None:
    code, lines, emu = platform_lines(
        tmp_path,
        EmulatorConfig(agent_id=AGENT, api_key=KEY),
        before=lambda e: e.fail_rest(503, times=2),
    )
    assert code == 1
    assert line_of(lines, "agent configuration").startswith(
        "FAIL  agent configuration: the platform at 127.0.0.1:"
    )
    assert "HTTP 503" in line_of(lines, "agent configuration")
    assert "(gave up after 2 attempts)" in line_of(lines, "agent configuration")
    assert [r.status for r in emu.rest_requests] == [503, 503]


def test_a_slow_platform_is_bounded_by_the_network_budget(tmp_path: Path) -> None:
    def slow(emu: Emulator) -> None:
        emu.rest_delay_s = 30.0

    started = time.monotonic()
    code, lines, _ = platform_lines(
        tmp_path,
        EmulatorConfig(agent_id=AGENT, api_key=KEY),
        before=slow,
        limits=Limits(dns_s=1.0, connect_s=1.0, network_s=1.5),
    )
    took = time.monotonic() - started
    assert code == 1
    assert line_of(lines, "agent configuration").startswith("FAIL  agent configuration: ")
    assert took < 10 * UNIT, took


# --------------------------------------------------------------------------- audio


def test_file_backend_audio(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    ctx = context(path, make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert (mic.status, mic.detail) == (
        Status.PASS,
        f"file backend: {EXAMPLE_WAV} reads (6.2 s, 16000 Hz, 1 channel)",
    )
    out = tmp_path / "out" / "speaker.wav"
    assert (speaker.status, speaker.detail) == (Status.PASS, f"file backend: {out} can be written")
    assert not out.exists()


def test_file_backend_audio_failures(tmp_path: Path) -> None:
    not_wav = tmp_path / "not.wav"
    not_wav.write_text("hello")
    audio = (
        f'backend = "file"\ninput_file = "{not_wav}"\n'
        f'output_file = "{tmp_path / "missing" / "out.wav"}"'
    )
    ctx = context(write_config(tmp_path, audio=audio), make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.FAIL
    assert mic.detail.startswith(f"the input file {not_wav} cannot be read: ")
    assert speaker.status is Status.FAIL
    assert speaker.detail == f"the output file's directory {tmp_path / 'missing'} does not exist"


def pyaudio_ctx(tmp_path: Path, host: FakeHost, audio: str = "") -> Context:
    path = write_config(tmp_path, audio=f'backend = "pyaudio"\n{audio}')
    return context(path, make_probes(tmp_path, pyaudio_factory=host.factory))


def test_hat_codec_opens_at_its_own_rates(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), hat_codec()], 1, 1)
    ctx = pyaudio_ctx(tmp_path, host, 'input_device = "wm8960"\noutput_device = "wm8960"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    label = "#1 'seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)'"
    assert (mic.status, mic.detail) == (
        Status.PASS,
        f"{label} at 48000 Hz, 2 channels mixed (resampled to 16 kHz), delivering audio",
    )
    assert (speaker.status, speaker.detail) == (
        Status.PASS,
        f"{label} at 44100 Hz, stereo (mono duplicated)",
    )
    assert host.all_closed  # the doctor gave the card back


def test_a_silent_microphone_warns(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("USB Audio", 1, 2, 48000)], 0, 0, tone_hz=0.0)
    ctx = pyaudio_ctx(tmp_path, host)
    mic = doctor.check_microphone(ctx)
    assert mic.status is Status.WARN
    assert mic.detail == (
        "#0 'USB Audio' at 16000 Hz, mono (no resampling), but it delivers only digital silence"
    )
    assert "alsamixer" in mic.fix


def test_a_missing_microphone_or_loudspeaker(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("USB Audio", 1, 2, 48000)], 0, 0)
    ctx = pyaudio_ctx(tmp_path, host, 'input_device = "ReSpeaker"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.FAIL
    assert mic.detail == (
        "no microphone (input device) matches 'ReSpeaker'; input devices: #0 'USB Audio'"
    )
    assert mic.fix.startswith("list the sound devices with: hello-device devices")
    assert speaker.status is Status.SKIP

    ctx = pyaudio_ctx(tmp_path, host, 'output_device = "HiFiBerry"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.SKIP
    assert speaker.status is Status.FAIL
    assert speaker.detail.startswith("no loudspeaker (output device) matches 'HiFiBerry'")


def test_portaudio_that_fails_to_start(tmp_path: Path) -> None:
    host = FakeHost([], init_error=OSError(-9999, "Unanticipated host error"))
    ctx = pyaudio_ctx(tmp_path, host)
    mic = doctor.check_microphone(ctx)
    assert (mic.status, mic.detail) == (
        Status.FAIL,
        "PortAudio failed to start: Unanticipated host error",
    )
    assert doctor.check_loudspeaker(ctx).status is Status.SKIP


def test_skip_audio(tmp_path: Path) -> None:
    ctx = context(write_config(tmp_path), make_probes(tmp_path), skip_audio=True)
    assert doctor.check_microphone(ctx).lines() == ["SKIP  microphone: --skip-audio"]
    assert doctor.check_loudspeaker(ctx).lines() == ["SKIP  loudspeaker: --skip-audio"]


def write_tone(path: Path, seconds: float = 3.0, rate: int = 48000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.mark.sound
def test_real_sound_server_through_portaudio(sound_server: SoundServer, tmp_path: Path) -> None:
    path = write_config(tmp_path, audio='backend = "pyaudio"')
    ctx = context(path, make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert speaker.status is Status.PASS, speaker
    assert " at " in speaker.detail and " Hz, " in speaker.detail
    # Nothing plays into the virtual microphone: its null sink delivers exact zeros.
    assert mic.status is Status.WARN and mic.detail.endswith("delivers only digital silence")

    player = sound_server.play_into_mic(write_tone(tmp_path / "tone.wav"))
    try:
        mic = doctor.check_microphone(context(path, make_probes(tmp_path)))
    finally:
        player.kill()
        player.wait(10)
    assert mic.status is Status.PASS, mic
    assert mic.detail.endswith("delivering audio")


# --------------------------------------------------------------------------- GPIO

GPIO_ALL = (
    'pin_factory = "mock"\nbutton_pin = 17\nmute_pin = 27\nled_type = "rgb"\n'
    "led_pins = [12, 13, 19]"
)


def test_gpio_pins_claimed_and_released(tmp_path: Path) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    path = write_config(tmp_path, gpio=GPIO_ALL)
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert (result.status, result.detail) == (
        Status.PASS,
        "MockFactory: button GPIO17, mute switch GPIO27, rgb LED GPIO12/13/19 claimed and released",
    )
    for pin in (17, 27, 12, 13, 19):  # released: each can be claimed again
        Button(pin, pin_factory=factory).close()
    # Through gpio.pin_factory = "mock", as in the configuration file.
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS


def test_gpio_without_pins_is_skipped(tmp_path: Path) -> None:
    result = doctor.check_gpio(context(write_config(tmp_path), make_probes(tmp_path)))
    assert result.lines() == [
        "SKIP  GPIO: no pins configured (gpio.button_pin, gpio.mute_pin, gpio.led_type)"
    ]


def test_gpio_factory_missing(tmp_path: Path) -> None:
    try:
        import lgpio  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only on a board with lgpio
        pytest.skip("lgpio is installed here")
    path = write_config(tmp_path, gpio='pin_factory = "lgpio"\nbutton_pin = 17')
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail == "gpio.pin_factory = \"lgpio\": No module named 'lgpio'"
    assert result.fix.startswith("install lgpio: `sudo apt install python3-lgpio`")


def test_gpio_invalid_pin(tmp_path: Path) -> None:
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nbutton_pin = 50')
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail == (
        "cannot open the button on GPIO50: PinInvalidPin: 50 is not a valid pin name"
    )
    assert result.fix == "check the BCM pin numbers in [gpio]"


class GroundedPin(MockPWMPin):
    """A pin whose switch to ground is closed: it reads low even with the pull-up."""

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self.drive_low()


def test_gpio_switch_closed_at_rest(tmp_path: Path) -> None:
    factory = MockFactory(pin_class=GroundedPin)
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nmute_pin = 27')
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the mute switch reads closed: the microphone is muted")
    assert "button_pull_up" in result.fix

    factory = MockFactory(pin_class=GroundedPin)
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nbutton_pin = 17')
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the button reads pressed while at rest")


@needs_root
def test_gpiochip_the_service_cannot_open(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    chip = dev / "gpiochip0"
    chip.write_text("")
    chip.chmod(0o600)
    path = write_config(tmp_path)
    ctx = context(path, make_probes(tmp_path, accounts=with_service(), dev_dir=dev))
    assert doctor._gpiochip_problem(ctx) == (
        f"the service user hello-device cannot open {chip} (root:root, mode 0600)"
    )
    os.chown(chip, 0, GPIO_GID)
    chip.chmod(0o660)
    assert doctor._gpiochip_problem(ctx) == ""


# --------------------------------------------------------------------------- systemd


def active(
    state: str = "active", sub: str = "running", reload: str = "no", result: str = "success"
) -> FakeCommands:
    return FakeCommands(
        systemctl=f"ActiveState={state}\nSubState={sub}\nResult={result}\n"
        f"NeedDaemonReload={reload}\nLoadState=loaded\n"
    )


def test_unit_installed_enabled_and_running(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path, run=active())
    install_unit(probes.root, config=path)
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.detail) == (
        Status.PASS,
        "/etc/systemd/system/hello-device.service, enabled (multi-user.target.wants), "
        "active (running)",
    )


def test_unit_not_installed(tmp_path: Path) -> None:
    result = doctor.check_unit(context(write_config(tmp_path), make_probes(tmp_path)))
    assert (result.status, result.detail) == (Status.FAIL, "hello-device.service is not installed")
    assert "sudo systemctl enable --now hello-device" in result.fix


def test_unit_not_enabled_masked_or_without_its_program(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path)
    unit = install_unit(probes.root, config=path, enable=False)
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail.endswith("is installed but not enabled: it will not start at boot")
    assert result.fix == "sudo systemctl enable --now hello-device"

    (probes.root / "opt/hello-device/bin/hello-device").unlink()
    result = doctor.check_unit(context(path, probes))
    assert result.detail == (
        "/etc/systemd/system/hello-device.service runs /opt/hello-device/bin/hello-device, "
        "which does not exist"
    )

    unit.unlink()
    unit.symlink_to("/dev/null")
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.fix) == (Status.FAIL, "sudo systemctl unmask hello-device")


def test_unit_reading_another_config_failed_or_stale(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path, run=active())
    install_unit(probes.root)  # reads /etc/hello-device/config.toml
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        f"the service reads /etc/hello-device/config.toml, this run checked {path}"
    )
    assert result.fix == "run: hello-device doctor --config /etc/hello-device/config.toml"

    probes = make_probes(tmp_path, run=active("failed", "failed", result="exit-code"))
    shutil.rmtree(probes.root)
    probes.root.mkdir()
    install_unit(probes.root, config=path)
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(", failed (failed); the last run failed (exit-code)")
    assert result.fix.startswith("see why: journalctl -u hello-device -b -n 50")

    probes = dataclasses.replace(probes, run=active(reload="yes"))
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.fix) == (Status.WARN, "sudo systemctl daemon-reload")


def test_unit_drop_ins_override_exec_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install_unit(root)
    dropins = root / "etc/systemd/system/hello-device.service.d"
    dropins.mkdir()
    (dropins / "override.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/hello-device run -c /srv/hd.toml\n"
        "User=kiosk\nSupplementaryGroups=video\n"
    )
    unit = doctor.read_unit(root)
    assert unit is not None
    assert unit.exec_start == ("/usr/local/bin/hello-device", "run", "-c", "/srv/hd.toml")
    assert unit.config_path == "/srv/hd.toml"
    assert unit.user == "kiosk"
    assert unit.supplementary_groups == ("audio", "gpio", "video")
    assert unit.protect_system == "strict"
    assert unit.state_directories == ("hello-device",)
    assert unit.enabled_by == ("multi-user.target.wants",)


def test_service_user(tmp_path: Path) -> None:
    probes = make_probes(tmp_path, accounts=with_service())
    result = doctor.check_service_user(context(write_config(tmp_path), probes))
    assert (result.status, result.detail) == (
        Status.PASS,
        f"hello-device (uid {SERVICE_UID}) is in groups audio and gpio",
    )


def test_service_user_missing(tmp_path: Path) -> None:
    result = doctor.check_service_user(context(write_config(tmp_path), make_probes(tmp_path)))
    assert (result.status, result.detail) == (Status.FAIL, "user hello-device does not exist")
    assert result.fix == (
        "sudo install -m 644 systemd/hello-device.sysusers /usr/lib/sysusers.d/hello-device.conf"
        " && sudo systemd-sysusers /usr/lib/sysusers.d/hello-device.conf"
    )


def test_service_user_groups(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    groups = {k: v for k, v in GROUPS.items() if k != "gpio"}
    probes = make_probes(tmp_path, accounts=FakeAccounts({"hello-device": MEMBER}, groups))
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail.startswith("group gpio does not exist (the unit's SupplementaryGroups=")

    outsider = dataclasses.replace(SERVICE, gids=frozenset({SERVICE_UID}))
    probes = make_probes(tmp_path, accounts=FakeAccounts({"hello-device": outsider}, GROUPS))
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail == f"hello-device (uid {SERVICE_UID}) is not in group audio and gpio"
    assert result.fix.startswith("sudo usermod -aG audio,gpio hello-device")

    install_unit(probes.root)  # SupplementaryGroups=audio gpio adds them for the service
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the unit adds it (SupplementaryGroups=)")


@dataclass
class RootAccounts:
    """:class:`doctor.Accounts` read from ``root/etc/passwd`` and ``root/etc/group``."""

    root: Path

    def _rows(self, name: str) -> list[list[str]]:
        text = (self.root / "etc" / name).read_text()
        return [line.split(":") for line in text.splitlines() if line]

    def user(self, name: str) -> Account | None:
        row = next((r for r in self._rows("passwd") if r[0] == name), None)
        if row is None:
            return None
        uid, gid = int(row[2]), int(row[3])
        extra = {int(g[2]) for g in self._rows("group") if name in g[3].split(",")}
        return Account(name, uid, gid, frozenset({gid} | extra))

    def group(self, name: str) -> Group | None:
        row = next((r for r in self._rows("group") if r[0] == name), None)
        return Group(name, int(row[2]), tuple(filter(None, row[3].split(",")))) if row else None

    def user_name(self, uid: int) -> str:
        return next((r[0] for r in self._rows("passwd") if int(r[2]) == uid), str(uid))

    def group_name(self, gid: int) -> str:
        return next((r[0] for r in self._rows("group") if int(r[2]) == gid), str(gid))


@needs_root
@pytest.mark.skipif(
    not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
    reason="systemd-sysusers/systemd-tmpfiles are not installed here",
)
def test_the_repository_provisioning_files_satisfy_the_doctor(tmp_path: Path) -> None:
    """The real sysusers and tmpfiles files, applied with ``--root``, give a service user
    and directories that the user, configuration and key checks accept."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for tool, name in (("systemd-sysusers", "sysusers"), ("systemd-tmpfiles", "tmpfiles")):
        args = [tool, f"--root={root}"] + (["--create"] if name == "tmpfiles" else [])
        done = subprocess.run(
            [*args, str(REPO / "systemd" / f"hello-device.{name}")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    accounts = RootAccounts(root)
    service = accounts.user("hello-device")
    assert service is not None
    etc = root / "etc" / "hello-device"
    config = etc / "config.toml"
    key = etc / "api-key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    os.chown(key, service.uid, service.gid)
    config.write_text(
        f'[platform]\nagent_id = "{AGENT}"\napi_key_file = "{key}"\n'
        f'[state]\ndir = "{root / "var/lib/hello-device"}"\n'
    )
    config.chmod(0o640)
    os.chown(config, 0, service.gid)
    probes = make_probes(tmp_path, root=root, accounts=accounts)
    install_unit(root, config=config)
    ctx = context(config, probes)
    results = [
        doctor.check_configuration(ctx),
        doctor.check_api_key(ctx),
        doctor.check_service_user(ctx),
        doctor.check_unit(ctx),
    ]
    assert [r.status for r in results] == [Status.PASS] * 4, results
    assert (
        results[1].detail
        == f"set, from the key file {key} (mode 0600, owner hello-device:hello-device)"
    )
    assert results[2].detail == f"hello-device (uid {service.uid}) is in groups audio and gpio"
    state = root / "var/lib/hello-device"
    assert (state.stat().st_uid, oct(state.stat().st_mode & 0o777)) == (service.uid, "0o700")


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

    checks = tuple((broken if c is doctor.check_clock else c, n) for c, n in doctor.CHECKS)
    monkeypatch.setattr(doctor, "CHECKS", checks)
    monkeypatch.setitem(doctor._NAMES, broken, "clock")
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


def _unit_installed_here() -> bool:
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
    if not _unit_installed_here():
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
