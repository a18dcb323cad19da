"""Proxies, for real (issue 11, item 14): against a real CONNECT proxy (tinyproxy, started
per test: tests/tinyproxy.py) and the emulator serving TLS with a certificate from a CA
made here with openssl. Whether a request went through the proxy is read from the
proxy's own log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hello_device.conversation.ending import SessionEnd
from hello_device.core.agent_profile import map_agent_config
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.errors import PlatformError, PlatformUnavailable
from hello_device.platform.client import PlatformClient
from hello_device.platform.http import UrllibTransport
from hello_device.platform.proxy import (
    ProxyServer,
    open_tunnel,
)
from hello_device.settings import parse_settings
from tests.conftest import UNIT
from tests.e2e import active, make_settings, silence_wav
from tests.platform.proxy_support import (
    KEY,
    PROXY_PASSWORD,
    PROXY_USER,
    NoSleep,
    StartProxy,
    Tls,
    connect_once,
    converse_once,
    rest_client,
    secrets_absent,
    with_tls_emulator,
)

# --------------------------------------------------------------------------- the tunnel


def test_connect_timeout_bounds_the_whole_connect_exchange() -> None:
    """A proxy that answers a header line at a time, forever: each read is quick, so only
    a deadline over the whole exchange (not a per-read timeout) ends the wait."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n")
            give_up = time.monotonic() + 3 * UNIT  # then a per-read timeout fails fast too
            while not stop.wait(0.05) and time.monotonic() < give_up:  # slowness, not a sync
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError) as info:
            open_tunnel(ProxyServer("127.0.0.1", port), "api.elevenlabs.io", 443, 0.5)
        took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
        thread.join(5 * UNIT)
    assert 0.45 <= took < 0.5 + 1.0 * UNIT
    assert str(info.value) == (
        f"the proxy 127.0.0.1:{port} did not open the tunnel to api.elevenlabs.io:443 within 0.5 s"
    )


def test_unreachable_proxy_is_named_and_retried() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = parse_settings(
        {"platform": {"agent_id": "a", "api_base_url": "https://api.elevenlabs.io"}},
        "test",
        env={},
    )
    environ = {"HTTPS_PROXY": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{closed}"}
    sleep = NoSleep()
    client = PlatformClient(
        settings.platform, UrllibTransport(environ=environ), sleep=sleep, max_attempts=2
    )
    with pytest.raises(PlatformUnavailable) as info:
        asyncio.run(client.fetch_agent_config())
    assert str(info.value) == (
        f"cannot reach api.elevenlabs.io: no connection to the proxy 127.0.0.1:{closed} "
        "(connection refused) (gave up after 2 attempts)"
    )
    assert len(sleep.delays) == 1


# --------------------------------------------------------------------------- REST, real proxy


def test_rest_goes_through_the_proxy_over_tls(
    tls: Tls, tinyproxy: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hello_device")
    proxy = tinyproxy()

    async def body(emu: Emulator) -> tuple[int, dict[str, Any], str, list[int]]:
        client = rest_client(emu, {"HTTPS_PROXY": proxy.url()}, tls)
        raw = await client.fetch_agent_config()
        url = await client.get_signed_url()
        return emu.port, raw, url, [r.status for r in emu.rest_requests]

    port, raw, url, statuses = with_tls_emulator(tls, body, output_format="pcm_22050")
    assert raw["agent_id"] == "demo-agent"
    assert map_agent_config(raw).agent_output_audio_format == "pcm_22050"
    assert url.startswith(f"wss://127.0.0.1:{port}/v1/convai/conversation?agent_id=demo-agent&")
    assert statuses == [200, 200]  # the API key reached the platform, inside the tunnel
    assert proxy.requests() == [("CONNECT", f"127.0.0.1:{port}")] * 2
    uses = [
        r.levelno
        for r in caplog.records
        if r.getMessage() == f"using proxy {proxy.url()} for 127.0.0.1:{port}"
    ]
    assert uses == [logging.INFO, logging.DEBUG]
    assert KEY not in caplog.text


def test_plain_http_also_goes_through_a_tunnel_on_both_paths(
    tinyproxy: StartProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain-http platform (an emulator on the LAN) with HTTP_PROXY: REST and ws://
    both CONNECT (never the absolute-URI form, which would show the API key to the
    proxy as a request header)."""
    proxy = tinyproxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url())

    async def go() -> tuple[int, list[int], SessionEnd]:
        async with Emulator(EmulatorConfig(api_key=KEY)) as emu:
            settings = parse_settings(
                {
                    "platform": {
                        "agent_id": emu.config.agent_id,
                        "api_base_url": emu.http_url,
                        "api_key": KEY,
                    }
                },
                "test",
                env={},
            )
            client = PlatformClient(settings.platform, sleep=NoSleep(), max_attempts=1)
            await client.fetch_agent_config()
            statuses = [r.status for r in emu.rest_requests]
            return emu.port, statuses, await converse_once(emu)

    port, statuses, end = asyncio.run(go())
    assert statuses == [200]
    assert end.by_client and end.error is None
    assert proxy.requests() == [("CONNECT", f"127.0.0.1:{port}")] * 2


def test_no_proxy_sends_rest_directly(tls: Tls, tinyproxy: StartProxy) -> None:
    proxy = tinyproxy()
    environ = {"https_proxy": proxy.url(), "NO_PROXY": "localhost,127.0.0.1"}

    async def body(emu: Emulator) -> list[int]:
        await rest_client(emu, environ, tls).fetch_agent_config()
        return [r.status for r in emu.rest_requests]

    assert with_tls_emulator(tls, body) == [200]
    assert proxy.requests() == []


REFUSALS = [
    pytest.param(("ConnectPort 443",), "", 403, "", id="403-port-not-allowed"),
    pytest.param(
        (f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}",),
        "",
        407,
        "; proxy credentials missing or wrong (http://user:password@host:port)",
        id="407-no-credentials",
    ),
    pytest.param(
        (f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}",),
        f"{PROXY_USER}:wrong-{PROXY_PASSWORD}",
        401,  # what tinyproxy answers to wrong credentials
        "; proxy credentials missing or wrong (http://user:password@host:port)",
        id="401-wrong-credentials",
    ),
]


@pytest.mark.parametrize(("config", "userinfo", "status", "hint"), REFUSALS)
def test_a_refused_tunnel_is_one_clear_line_on_both_paths(
    tls: Tls,
    tinyproxy: StartProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    config: tuple[str, ...],
    userinfo: str,
    status: int,
    hint: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = tinyproxy(*config)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url(userinfo))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))

    async def body(emu: Emulator) -> tuple[int, PlatformError, SessionEnd]:
        with pytest.raises(PlatformError) as info:
            await rest_client(emu, dict(os.environ), tls).fetch_agent_config()
        end = await connect_once(emu)
        return emu.port, info.value, end

    port, error, end = with_tls_emulator(tls, body)
    line = f"the proxy {proxy.address} refused the tunnel to 127.0.0.1:{port} (HTTP {status}){hint}"
    assert str(error) == line
    assert not isinstance(error, PlatformUnavailable)  # not retried: a fix is needed
    assert end.error == line and not end.resumable
    assert proxy.connects() == [f"127.0.0.1:{port}"] * 2  # one REST try, one conversation
    secrets_absent(caplog, str(error), repr(error), end.error or "")


def test_proxy_credentials_are_sent_and_never_shown(
    tls: Tls,
    tinyproxy: StartProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = tinyproxy(f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}")
    monkeypatch.setenv("https_proxy", proxy.url(f"{PROXY_USER}:{PROXY_PASSWORD}"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))

    async def body(emu: Emulator) -> tuple[int, SessionEnd]:
        await rest_client(emu, dict(os.environ), tls).fetch_agent_config()
        return emu.port, await converse_once(emu)

    port, end = with_tls_emulator(tls, body)
    assert end.by_client and end.error is None
    assert proxy.connects() == [f"127.0.0.1:{port}"] * 2
    assert f"using proxy {proxy.url()} for 127.0.0.1:{port}" in caplog.text
    secrets_absent(caplog)


class _RedirectingTlsServer(ThreadingHTTPServer):
    """https on 127.0.0.1: /a → 302 /b → 302 https://localhost:PORT/c → 200 JSON."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        self.seen: list[tuple[str, bool]] = []  # (path, the API key came along)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append((self.path, self.headers.get("xi-api-key") == KEY))
                port = server.server_address[1]
                moves = {"/a": "/b", "/b": f"https://localhost:{port}/c"}
                if self.path in moves:
                    self.send_response(302)
                    self.send_header("Location", moves[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)


def test_redirects_are_followed_through_the_proxy_hop_by_hop(
    tls: Tls, tinyproxy: StartProxy
) -> None:
    """Each hop takes its own route: /a and /b through the proxy, then the redirect to
    localhost (in NO_PROXY) directly, without the API key (another host)."""
    proxy = tinyproxy()
    server = _RedirectingTlsServer(tls.server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        transport = UrllibTransport(
            tls.client(), environ={"HTTPS_PROXY": proxy.url(), "NO_PROXY": "localhost"}
        )
        response = transport.request(
            "GET", f"https://127.0.0.1:{port}/a", {"xi-api-key": KEY}, 5 * UNIT, 5 * UNIT
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5 * UNIT)
    assert (response.status, response.body) == (200, b'{"ok": true}')
    assert server.seen == [("/a", True), ("/b", True), ("/c", False)]
    assert proxy.connects() == [f"127.0.0.1:{port}"] * 2


# --------------------------------------------------------------------------- the conversation


def test_conversation_goes_through_the_proxy(
    tls: Tls,
    tinyproxy: StartProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    proxy = tinyproxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))

    async def body(emu: Emulator) -> tuple[int, SessionEnd]:
        return emu.port, await converse_once(emu)

    port, end = with_tls_emulator(tls, body)
    assert end.by_client and end.connected and end.error is None
    assert proxy.requests() == [("CONNECT", f"127.0.0.1:{port}")]


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"], ids=["proxied", "no_proxy"])
def test_daemon_behind_a_proxy_fetches_its_configuration_and_converses(
    tls: Tls,
    tinyproxy: StartProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_proxy: str,
) -> None:
    """The issue's device: a private agent (configuration, signed URL, conversation)
    behind a proxy; with NO_PROXY listing the platform, all three go direct instead."""
    proxy = tinyproxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    from hello_device.daemon import Daemon

    async def go() -> tuple[int, int, list[str]]:
        config = EmulatorConfig(private=True, api_key=KEY)
        async with Emulator(config, ssl_context=tls.server) as emu:
            settings = make_settings(
                tmp_path,
                emu,
                silence_wav(tmp_path / "s.wav", 2.0),
                platform={"api_key": KEY},
                conversation={"restart_delay_s": 30},
            )
            daemon = Daemon(settings)
            run = asyncio.create_task(daemon.run())
            await asyncio.wait_for(active(emu, 1), 20 * UNIT)
            await emu.end_conversation(1000)
            code = await asyncio.wait_for(run, 20 * UNIT)
            return code, emu.port, [r.path.split("?")[0] for r in emu.rest_requests]

    code, port, paths = asyncio.run(go())
    assert code == 0
    assert "/v1/convai/agents/demo-agent" in paths  # the configuration was fetched
    assert "/v1/convai/conversation/get-signed-url" in paths
    if no_proxy:
        assert proxy.requests() == []
    else:
        connects = proxy.connects()
        assert len(connects) >= 3 and set(connects) == {f"127.0.0.1:{port}"}
        assert {method for method, _ in proxy.requests()} == {"CONNECT"}
