"""The real stdlib transport against a local ``http.server``: timeouts, redirects (never
https to http, the key dropped for another host), TLS verification, cut-short bodies."""

from __future__ import annotations

import time

from hello_device.errors import (
    PlatformError,
    PlatformUnavailable,
)
from hello_device.platform.http import (
    HttpResponse,
    UrllibTransport,
)
from tests.conftest import UNIT
from tests.platform.support import (
    AGENT,
    AGENT_CONFIG,
    KEY,
    FakeSleep,
    LocalServer,
    client,
    closed_port,
    fails,
    real_client,
    run,
)


def test_real_transport_success(server: LocalServer) -> None:
    server.json(f"/v1/convai/agents/{AGENT}", 200, AGENT_CONFIG)
    assert run(real_client(server.url).fetch_agent_config()) == AGENT_CONFIG
    path, headers = server.requests[0]
    assert path == f"/v1/convai/agents/{AGENT}"
    assert headers["xi-api-key"] == KEY
    assert "hello-device" in headers["User-Agent"]


def test_real_transport_read_timeout(server: LocalServer) -> None:
    server.json(f"/v1/convai/agents/{AGENT}", 200, {}, delay=10 * UNIT)
    sleep = FakeSleep()
    started = time.monotonic()
    c = real_client(server.url, sleep, max_attempts=2, read_timeout_s=0.2)
    exc = fails(PlatformUnavailable, c.fetch_agent_config())
    assert time.monotonic() - started < 5 * UNIT
    assert "no answer within 0.2 s" in str(exc)
    assert len(server.requests) == 2 and len(sleep.delays) == 1


def test_real_transport_html_body(server: LocalServer) -> None:
    server.routes[f"/v1/convai/agents/{AGENT}"] = (
        200,
        {"Content-Type": "text/html"},
        b"<html><body>Login</body></html>",
        0.0,
    )
    exc = fails(PlatformError, real_client(server.url).fetch_agent_config())
    assert "HTML instead of JSON (HTTP 200)" in str(exc)


def test_real_transport_500_then_success_and_429(server: LocalServer) -> None:
    path = f"/v1/convai/agents/{AGENT}"
    server.json(path, 500, {"detail": "boom"})
    sleep = FakeSleep()
    exc = fails(PlatformUnavailable, real_client(server.url, sleep).fetch_agent_config())
    assert "HTTP 500: boom" in str(exc) and len(sleep.delays) == 2
    server.json(path, 429, {"detail": "rate"}, headers={"Retry-After": "2"})
    sleep = FakeSleep()
    fails(PlatformUnavailable, real_client(server.url, sleep).fetch_agent_config())
    assert sleep.delays == [2.0, 2.0]


def test_real_transport_connection_refused() -> None:
    sleep = FakeSleep()
    c = real_client(f"http://127.0.0.1:{closed_port()}", sleep, max_attempts=2)
    exc = fails(PlatformUnavailable, c.fetch_agent_config())
    assert "connection refused" in str(exc)


def test_real_transport_redirect_to_other_host_drops_key(server: LocalServer) -> None:
    target = f"http://localhost:{server.port}/moved"
    server.routes[f"/v1/convai/agents/{AGENT}"] = (302, {"Location": target}, b"", 0.0)
    server.json("/moved", 200, {"ok": True})
    assert run(real_client(server.url).fetch_agent_config()) == {"ok": True}
    assert "xi-api-key" in server.requests[0][1]
    assert server.requests[1][0] == "/moved"
    assert "xi-api-key" not in {k.lower() for k in server.requests[1][1]}


def test_transport_refuses_https_to_http_redirect() -> None:
    class Scripted(UrllibTransport):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def _once(
            self,
            method: str,
            url: str,
            headers: dict[str, str],
            ct: float,
            rt: float,
            body: bytes | None = None,
        ) -> HttpResponse:
            self.seen.append(url)
            return HttpResponse(301, {"Location": "http://api.example.test/x"})

    t = Scripted()
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "https must not fall back to plain http" in str(exc)
    assert len(t.seen) == 1


def test_default_transport_verifies_tls() -> None:
    import ssl

    ctx = UrllibTransport()._context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
