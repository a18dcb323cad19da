"""DNS, HTTPS (a local TLS server with an ``openssl`` certificate) and the platform
checks against the emulator on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hello_device import doctor
from hello_device.doctor import (
    Limits,
    Status,
)
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.doctor.support import (
    AGENT,
    KEY,
    closed_port,
    context,
    fix_after,
    line_of,
    make_probes,
    run,
    with_emulator,
    write_config,
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
