"""Management REST client, mapping, cache and provider (platform_api.py).

The client is tested against a scripted fake transport and, for the real stdlib
transport, against a local ``http.server`` on 127.0.0.1. No test sleeps: delays go to a
fake ``sleep`` that records them; every real wait is bounded. Every test also checks
that the API key never reaches a log record (autouse fixture) or an exception message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import socket
import stat
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hello_device import __version__
from hello_device.config import PlatformSettings, Secret, Settings, load_settings
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    PlatformError,
    PlatformUnavailable,
)
from hello_device.platform_api import (
    AgentConfigCache,
    AgentConfigProvider,
    AgentProfile,
    Headers,
    HttpResponse,
    PlatformClient,
    UrllibTransport,
    apply_profile,
    effective_settings,
    error_detail,
    explicit_keys,
    find_signed_url,
    map_agent_config,
    parse_retry_after,
    safe_url,
)

from .conftest import UNIT

KEY = "sk_test_PLATFORM_0123456789abcdefSECRET"
AGENT = "agent_0123"
BASE = "https://api.example.test"
T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture everything hello_device logs, and fail if the API key shows up."""
    caplog.set_level(logging.DEBUG, logger="hello_device")
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    for record in records:
        assert KEY not in record.getMessage(), record.getMessage()
        assert KEY not in str(record.args)


def psettings(**kw: Any) -> PlatformSettings:
    base: dict[str, Any] = {
        "api_base_url": BASE,
        "agent_id": AGENT,
        "api_key": Secret(KEY),
        "connect_timeout_s": 1.0 * UNIT,
        "read_timeout_s": 1.0 * UNIT,
    }
    base.update(kw)
    return PlatformSettings(**base)


def settings_with(tmp_path: Path, **platform: Any) -> Settings:
    from hello_device.config import StateSettings

    return Settings(platform=psettings(**platform), state=StateSettings(dir=str(tmp_path / "st")))


def jresp(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return HttpResponse(status, hdrs, json.dumps(body).encode())


class FakeTransport:
    """Plays a script of answers (HttpResponse) and failures (exceptions), in order."""

    def __init__(self, *script: HttpResponse | BaseException) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str, dict[str, str], float, float]] = []

    def add(self, *items: HttpResponse | BaseException) -> None:
        self.script.extend(items)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> HttpResponse:
        self.calls.append((method, url, dict(headers), connect_timeout, read_timeout))
        if not self.script:
            raise ConnectionRefusedError(111, "Connection refused")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def urls(self) -> list[str]:
        return [c[1] for c in self.calls]


class FakeSleep:
    """Records the delays asked for and returns at once (lets other tasks run)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client(
    transport: Any, sleep: FakeSleep | None = None, max_attempts: int = 5, **kw: Any
) -> PlatformClient:
    return PlatformClient(
        psettings(**kw),
        transport,
        sleep=sleep or FakeSleep(),
        rng=random.Random(7),
        max_attempts=max_attempts,
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fails(exc_type: type[BaseException], coro: Coroutine[Any, Any, Any]) -> BaseException:
    """Run ``coro``, expect ``exc_type``; check the key is in neither str nor repr."""
    with pytest.raises(exc_type) as info:
        asyncio.run(coro)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    return info.value


AGENT_CONFIG: dict[str, Any] = {
    "agent_id": AGENT,
    "name": "Front desk",
    "conversation_config": {
        "asr": {"user_input_audio_format": "pcm_16000"},
        "tts": {"agent_output_audio_format": "pcm_22050", "voice_id": "v1"},
        "agent": {"first_message": "Hello!", "language": "en", "prompt": {"prompt": "Be nice"}},
        "turn": {"turn_timeout": 7},
        "conversation": {"max_duration_seconds": 600},
    },
    "platform_settings": {"auth": {"enable_auth": False}},
}


# --------------------------------------------------------------------------- client: fake


def test_fetch_success_sends_key_and_user_agent() -> None:
    t = FakeTransport(jresp(200, AGENT_CONFIG))
    raw = run(client(t).fetch_agent_config())
    assert raw == AGENT_CONFIG
    method, url, headers, connect_t, read_t = t.calls[0]
    assert (method, url) == ("GET", f"{BASE}/v1/convai/agents/{AGENT}")
    assert headers["xi-api-key"] == KEY
    assert "Authorization" not in headers
    assert headers["User-Agent"].startswith(f"hello-device/{__version__}")
    assert (connect_t, read_t) == (1.0 * UNIT, 1.0 * UNIT)


def test_bearer_header_and_base_url_with_slash() -> None:
    t = FakeTransport(jresp(200, {}))
    run(client(t, auth_header="bearer", api_base_url=BASE + "/").fetch_agent_config())
    _, url, headers, _, _ = t.calls[0]
    assert url == f"{BASE}/v1/convai/agents/{AGENT}"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert "xi-api-key" not in headers


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_auth_error_without_retry(status: int) -> None:
    sleep = FakeSleep()
    t = FakeTransport(jresp(status, {"detail": {"status": "invalid_api_key", "message": "bad"}}))
    exc = fails(AuthError, client(t, sleep).fetch_agent_config())
    assert str(exc).startswith(f"the platform refused the API key (HTTP {status})")
    assert "invalid_api_key: bad" in str(exc)
    assert isinstance(exc, PermissionError)
    assert len(t.calls) == 1 and sleep.delays == []


def test_refused_without_key_says_no_key() -> None:
    t = FakeTransport(jresp(401, {"detail": "Unauthorized"}))
    exc = fails(AuthError, client(t, api_key=None).fetch_agent_config())
    assert "no API key is configured" in str(exc)
    assert "xi-api-key" not in t.calls[0][2]


def test_404_is_agent_not_found() -> None:
    t = FakeTransport(jresp(404, {"detail": "Agent not found"}))
    exc = fails(AgentNotFoundError, client(t).fetch_agent_config())
    assert str(exc).startswith(f"no agent with id {AGENT} at api.example.test")
    assert "Agent not found" in str(exc)
    assert len(t.calls) == 1


def test_404_html_hints_at_base_url() -> None:
    t = FakeTransport(HttpResponse(404, {"Content-Type": "text/html"}, b"<html>nginx</html>"))
    exc = fails(AgentNotFoundError, client(t).fetch_agent_config())
    assert "is api_base_url right?" in str(exc)
    assert "nginx" not in str(exc)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"detail": "agent_id is malformed"}, "agent_id is malformed"),
        (
            422,
            {"detail": [{"loc": ["query", "agent_id"], "msg": "field required"}]},
            "query.agent_id: field required",
        ),
        (
            400,
            {"error": {"code": "bad_request", "message": "nope", "details": "id"}},
            "bad_request: nope (id)",
        ),
        (409, {"error": "conflict", "message": "busy"}, "conflict: busy"),
        (400, {"detail": "x" * 500}, "x" * 150),
    ],
)
def test_other_4xx_quote_the_detail(status: int, body: Any, expected: str) -> None:
    t = FakeTransport(jresp(status, body))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert type(exc) is PlatformError
    assert f"(HTTP {status})" in str(exc)
    assert expected in str(exc)
    assert len(str(exc)) < 320  # long details are cut
    assert len(t.calls) == 1


def test_key_echoed_by_the_server_is_redacted() -> None:
    t = FakeTransport(jresp(400, {"detail": f"key {KEY} is not valid here"}))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "key *** is not valid" in str(exc)


def test_429_honours_retry_after_seconds() -> None:
    sleep = FakeSleep()
    t = FakeTransport(
        jresp(429, {"detail": "slow down"}, {"Retry-After": "7"}), jresp(200, AGENT_CONFIG)
    )
    assert run(client(t, sleep).fetch_agent_config()) == AGENT_CONFIG
    assert sleep.delays == [7.0]


def test_429_honours_retry_after_http_date() -> None:
    sleep = FakeSleep()
    when = formatdate(time.time() + 12, usegmt=True)
    t = FakeTransport(jresp(429, {}, {"retry-after": when}), jresp(200, {}))
    run(client(t, sleep).fetch_agent_config())
    assert len(sleep.delays) == 1 and 9.0 <= sleep.delays[0] <= 12.0


def test_retry_after_too_long_gives_up_at_once() -> None:
    sleep = FakeSleep()
    t = FakeTransport(jresp(503, {}, {"Retry-After": "3600"}), jresp(200, {}))
    exc = fails(PlatformUnavailable, client(t, sleep).fetch_agent_config())
    assert isinstance(exc, PlatformUnavailable) and exc.retry_after == 3600.0
    assert sleep.delays == [] and len(t.calls) == 1


def test_500_then_success() -> None:
    sleep = FakeSleep()
    t = FakeTransport(jresp(500, {"detail": "boom"}), jresp(200, AGENT_CONFIG))
    assert run(client(t, sleep).fetch_agent_config()) == AGENT_CONFIG
    assert len(t.calls) == 2
    assert len(sleep.delays) == 1 and 0.0 <= sleep.delays[0] <= 0.5


def test_5xx_and_network_errors_exhaust_retries_with_growing_backoff() -> None:
    sleep = FakeSleep()
    t = FakeTransport(
        HttpResponse(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        jresp(503, {"detail": "maintenance"}),
    )
    exc = fails(PlatformUnavailable, client(t, sleep, max_attempts=5).fetch_agent_config())
    assert len(t.calls) == 5 and len(sleep.delays) == 4
    for i, delay in enumerate(sleep.delays):  # full jitter under 0.5 * 2**i
        assert 0.0 <= delay <= 0.5 * 2**i
    assert "HTTP 503: maintenance" in str(exc)
    assert "gave up after 5 attempts" in str(exc)
    assert isinstance(exc, ConnectionError)


def test_network_error_message_is_short_and_clear() -> None:
    t = FakeTransport(ConnectionRefusedError(111, "Connection refused"))
    exc = fails(PlatformUnavailable, client(t, max_attempts=1).fetch_agent_config())
    assert str(exc) == "cannot reach api.example.test: connection refused"


def test_html_instead_of_json() -> None:
    t = FakeTransport(
        HttpResponse(
            200, {"content-type": "text/html; charset=utf-8"}, b"<!DOCTYPE html><html>portal</html>"
        )
    )
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert str(exc) == (
        "the platform answered with HTML instead of JSON (HTTP 200) — is api_base_url right?"
    )
    assert len(t.calls) == 1


def test_bad_json_and_non_object() -> None:
    t = FakeTransport(HttpResponse(200, {"Content-Type": "application/json"}, b'{"a": '))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "invalid JSON" in str(exc) and "(HTTP 200)" in str(exc)
    t = FakeTransport(HttpResponse(200, {"Content-Type": "text/plain"}, b"hello"))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "answered with text/plain instead of JSON" in str(exc)
    t = FakeTransport(jresp(200, [1, 2]))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "JSON list instead of an object" in str(exc)


def test_json_without_content_type_is_accepted() -> None:
    t = FakeTransport(HttpResponse(200, {}, b'{"agent_id": "a"}'))
    assert run(client(t).fetch_agent_config()) == {"agent_id": "a"}


# --------------------------------------------------------------------------- signed URL

SIGNED = "wss://api.example.test/v1/convai/conversation?agent_id=a&conversation_signature=TOK42"


def test_signed_url_first_form(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTransport(jresp(200, {"signed_url": SIGNED}))
    assert run(client(t).get_signed_url()) == SIGNED
    assert t.urls == [f"{BASE}/v1/convai/conversation/get-signed-url?agent_id={AGENT}"]
    assert "TOK42" not in caplog.text
    assert "wss://api.example.test/v1/convai/conversation" in caplog.text


def test_signed_url_variant_a_after_404_and_remembered() -> None:
    t = FakeTransport(
        jresp(404, {"detail": "Not Found"}),
        jresp(200, {"signed_url": SIGNED, "expires_at": "2030-01-01T00:00:00Z"}),
        jresp(200, {"signed_url": SIGNED}),
    )
    c = client(t)
    assert run(c.get_signed_url()) == SIGNED
    assert t.urls[1] == f"{BASE}/v1/convai/agents/{AGENT}/signed-url"
    run(c.get_signed_url())  # the form that worked is tried first next time
    assert t.urls[2] == f"{BASE}/v1/convai/agents/{AGENT}/signed-url"


def test_signed_url_variant_b_nested(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTransport(
        jresp(404, {}),
        jresp(404, {}),
        jresp(200, {"link": {"signed_url": SIGNED, "expires_in": 300}}),
    )
    assert run(client(t).get_signed_url()) == SIGNED
    assert t.urls[2] == f"{BASE}/v1/convai/agents/{AGENT}/link"
    assert "TOK42" not in caplog.text


def test_signed_url_all_404_and_bad_answers() -> None:
    t = FakeTransport(jresp(404, {}), jresp(404, {}), jresp(404, {}))
    exc = fails(AgentNotFoundError, client(t).get_signed_url())
    assert "no agent with id" in str(exc) and "signed URL" in str(exc)
    t = FakeTransport(jresp(200, {"signed_url": "https://x/y?token=TOK42"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "not ws:// or wss://" in str(exc) and "TOK42" not in str(exc)
    t = FakeTransport(jresp(200, {"signed_url": "ws://remote.example/c?token=TOK42"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "plain ws://" in str(exc) and "TOK42" not in str(exc)
    t = FakeTransport(jresp(200, {"url": "wss://x"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "without a signed_url" in str(exc)
    t = FakeTransport(jresp(401, {}))
    fails(AuthError, client(t).get_signed_url())
    assert len(t.calls) == 1


def test_find_signed_url_depth() -> None:
    assert find_signed_url({"a": {"b": [{"signed_url": "wss://x"}]}}) == "wss://x"
    assert find_signed_url({"signed_url": 3}) is None
    assert find_signed_url([]) is None


# --------------------------------------------------------------------------- small helpers


def test_headers_case_insensitive() -> None:
    h = Headers([("Content-Type", "a"), ("X-A", "1"), ("x-a", "2")])
    assert h["content-type"] == "a" and h.get("CONTENT-TYPE") == "a"
    assert h["X-a"] == "1, 2" and "x-A" in h and len(h) == 2
    assert HttpResponse(200, {"Retry-After": "3"}).headers["retry-after"] == "3"


def test_parse_retry_after() -> None:
    assert parse_retry_after("5", 0) == 5.0
    assert parse_retry_after(" 1.5 ", 0) == 1.5
    assert parse_retry_after("-3", 0) == 0.0
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 10) == 10.0


def test_error_detail_shapes() -> None:
    assert error_detail(b'{"detail": "x"}') == "x"
    assert error_detail(b'{"error": {"code": "c", "message": "m"}}') == "c: m"
    assert error_detail(b'{"message": "m"}') == "m"
    assert error_detail(b"plain\ntext", {"Content-Type": "text/plain"}) == "plain text"
    assert error_detail(b"<html>x</html>", {"Content-Type": "text/html"}) == ""
    assert error_detail(b"") == ""


def test_safe_url_drops_query_and_userinfo() -> None:
    assert safe_url("wss://u:p@h.example:8443/a/b?token=T#f") == "wss://h.example:8443/a/b"


# --------------------------------------------------------------------------- real transport


Route = tuple[int, dict[str, str], bytes, float]


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 answering from a route table.

    ``routes[path_with_query] = (status, headers, body, delay_s)``; a delay waits on an
    event that :meth:`close` sets, so nothing outlives the test. Requests are recorded.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                status, headers, body, delay = server.routes.get(
                    self.path, (404, {"Content-Type": "application/json"}, b'{"detail":"nf"}', 0)
                )
                if delay:
                    server.release.wait(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json(
        self,
        path: str,
        status: int,
        body: Any,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.routes[path] = (status, headers, json.dumps(body).encode(), delay)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5 * UNIT)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer()
    try:
        yield s
    finally:
        s.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_client(url: str, sleep: FakeSleep | None = None, **kw: Any) -> PlatformClient:
    attempts = kw.pop("max_attempts", 3)
    return PlatformClient(
        psettings(api_base_url=url, **kw), sleep=sleep or FakeSleep(), max_attempts=attempts
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
            self, method: str, url: str, headers: dict[str, str], ct: float, rt: float
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


# --------------------------------------------------------------------------- mapping


def test_mapping_real_platform_fields() -> None:
    cfg = json.loads(json.dumps(AGENT_CONFIG))
    cfg["platform_settings"]["auth"]["enable_auth"] = True
    p = map_agent_config(cfg)
    assert p == AgentProfile(
        agent_id=AGENT,
        name="Front desk",
        user_input_audio_format="pcm_16000",
        agent_output_audio_format="pcm_22050",
        first_message="Hello!",
        language="en",
        turn_timeout_s=7.0,
        max_duration_s=600.0,
        private=True,
    )


def test_mapping_every_alias() -> None:
    cfg = {
        "conversation_config": {
            "asr": {"user_input_audio_format": "ULAW_8000"},
            "tts": {"output_format": "pcm_24000"},
            "stt": {"language": "fr"},
            "turn": {"silence_duration_ms": 650, "prefix_padding_ms": 250.4, "threshold": 0.6},
        },
        "platform_settings": {"auth": {"mode": "private"}},
    }
    p = map_agent_config(cfg)
    assert p.user_input_audio_format == "ulaw_8000"
    assert p.agent_output_audio_format == "pcm_24000"
    assert p.language == "fr"
    assert (p.silence_duration_ms, p.prefix_padding_ms, p.vad_threshold) == (650, 250, 0.6)
    assert p.private is True
    top = map_agent_config(
        {"turn_detection": {"silence_duration_ms": 800, "prefix_padding_ms": 100, "threshold": 0.4}}
    )
    assert (top.silence_duration_ms, top.prefix_padding_ms, top.vad_threshold) == (800, 100, 0.4)
    top_turn = map_agent_config({"turn": {"silence_duration_ms": 900}})
    assert top_turn.silence_duration_ms == 900
    nested_td = map_agent_config(
        {
            "conversation_config": {"turn_detection": {"silence_duration_ms": 1000}},
            "turn_detection": {"silence_duration_ms": 1},
        }
    )
    assert nested_td.silence_duration_ms == 1000  # conversation_config first


def test_mapping_real_field_wins_over_alias() -> None:
    p = map_agent_config(
        {
            "conversation_config": {
                "tts": {"agent_output_audio_format": "pcm_44100", "output_format": "pcm_8000"},
                "agent": {"language": "de"},
                "stt": {"language": "fr"},
            }
        }
    )
    assert p.agent_output_audio_format == "pcm_44100" and p.language == "de"


def test_mapping_defaults_and_wrong_types(caplog: pytest.LogCaptureFixture) -> None:
    assert map_agent_config({}) == AgentProfile()
    assert map_agent_config([]) == AgentProfile()  # type: ignore[arg-type]
    assert AgentProfile().private is False
    p = map_agent_config(
        {
            "name": 5,
            "conversation_config": {
                "agent": {"first_message": 42, "language": ["en"]},
                "stt": {"language": "es"},
                "turn": {"turn_timeout": "7", "silence_duration_ms": True, "threshold": 3},
                "conversation": {"max_duration_seconds": -5},
                "asr": "pcm_16000",
            },
            "platform_settings": {"auth": {"enable_auth": "yes"}},
        }
    )
    assert p.name is None and p.first_message is None
    assert p.language == "es"  # the wrong-typed real field is skipped, the alias used
    assert p.turn_timeout_s is None and p.silence_duration_ms is None
    assert p.vad_threshold is None and p.max_duration_s is None and p.private is False
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("conversation_config.agent.first_message" in m for m in debug)


def test_mapping_unknown_audio_format_warns(caplog: pytest.LogCaptureFixture) -> None:
    p = map_agent_config({"conversation_config": {"tts": {"agent_output_audio_format": "mp3"}}})
    assert p.agent_output_audio_format == "pcm_16000"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mp3" in warnings[0].getMessage()


# --------------------------------------------------------------------------- effective


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[platform]\nagent_id = "{AGENT}"\napi_key = "{KEY}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n' + extra
    )
    return path


PROFILE = AgentProfile(
    agent_id=AGENT,
    first_message="Hi there",
    language="en",
    silence_duration_ms=900,
    prefix_padding_ms=5000,
    max_duration_s=600.0,
    agent_output_audio_format="pcm_24000",
    private=True,
    turn_timeout_s=5.0,
)


def test_explicit_keys(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "[vad]\nend_silence_ms = 500\n[conversation.dynamic_variables]\na = 1\n"
    )
    assert explicit_keys(path) == {
        "platform.agent_id",
        "platform.api_key",
        "state.dir",
        "vad.end_silence_ms",
        "conversation.dynamic_variables",
    }
    assert explicit_keys(tmp_path / "missing.toml") == set()
    assert explicit_keys(None) == set()


def test_effective_settings_file_wins_over_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)
    path = write_config(tmp_path, '[vad]\nend_silence_ms = 500\n[conversation]\nlanguage = "de"\n')
    settings = load_settings(path)
    rows = {k: (v, s) for k, v, s in effective_settings(settings, PROFILE, "platform")}
    assert rows["vad.end_silence_ms"] == (500, "file")
    assert rows["conversation.language"] == ("de", "file")
    assert rows["vad.preroll_ms"] == (5000, "platform")
    assert rows["conversation.first_message"] == ("Hi there", "platform")
    assert rows["conversation.max_duration_s"] == (600.0, "platform")
    assert rows["platform.api_key"] == ("***", "file")
    assert rows["platform.agent_id"] == (AGENT, "file")
    assert rows["device.name"] == ("hello-device", "default")
    assert rows["platform.private"] == (True, "platform")
    assert rows["platform.agent_output_audio_format"] == ("pcm_24000", "platform")
    assert rows["platform.user_input_audio_format"] == ("pcm_16000", "platform")
    assert rows["platform.turn_timeout_s"] == (5.0, "platform")
    assert all(KEY not in repr(v) for v, _ in rows.values())

    cached = {k: (v, s) for k, v, s in effective_settings(settings, PROFILE, "cache")}
    assert cached["vad.preroll_ms"] == (5000, "cache")
    none = {k: (v, s) for k, v, s in effective_settings(settings, None, "none")}
    assert none["vad.preroll_ms"] == (300, "default")
    assert none["platform.private"] == (False, "default")
    # Profile fields the platform left out keep the local default.
    sparse = {k: (v, s) for k, v, s in effective_settings(settings, AgentProfile(), "platform")}
    assert sparse["conversation.first_message"] == (None, "default")

    # Every key of every section, then the platform rows, in order.
    keys = [k for k, _, _ in effective_settings(settings, None, "none")]
    assert len(keys) == len(set(keys))
    assert keys.index("platform.private") < keys.index("conversation.start")


def test_effective_settings_key_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[platform]\nagent_id = "{AGENT}"\n')
    settings = load_settings(path, env={"HELLO_DEVICE_API_KEY": KEY})
    rows = {k: (v, s) for k, v, s in effective_settings(settings, None, "none")}
    assert rows["platform.api_key"] == ("***", "environment")


def test_apply_profile_only_local_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)
    settings = load_settings(write_config(tmp_path, "[vad]\nend_silence_ms = 500\n"))
    merged = apply_profile(settings, PROFILE)
    assert merged.vad.end_silence_ms == 500  # file wins
    assert merged.vad.preroll_ms == 2000  # platform, clamped to the allowed maximum
    assert merged.conversation.max_duration_s == 600.0
    assert merged.conversation.first_message is None  # overrides stay file-only
    assert apply_profile(settings, None) is settings


# --------------------------------------------------------------------------- cache


def test_cache_atomic_write_mode_and_content(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    state = tmp_path / "var" / "state"
    cache = AgentConfigCache(state, clock=clock)
    path = cache.save(AGENT, AGENT_CONFIG)
    assert path == state / f"agent-{AGENT}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert sorted(p.name for p in state.iterdir()) == [path.name]
    doc = json.loads(path.read_text())
    assert doc == {"fetched_at": 1000.0, "agent_id": AGENT, "config": AGENT_CONFIG}
    clock.now = 1060.0
    loaded = cache.load(AGENT)
    assert loaded is not None
    assert (loaded.raw, loaded.fetched_at, loaded.age_s) == (AGENT_CONFIG, 1000.0, 60.0)
    cache.save(AGENT, {"agent_id": AGENT, "name": "v2"}, fetched_at=2000.0)
    assert sorted(p.name for p in state.iterdir()) == [path.name]
    again = cache.load(AGENT)
    assert again is not None and again.raw["name"] == "v2" and again.fetched_at == 2000.0
    assert cache.load("other_agent") is None


def test_cache_removes_stale_temp_files_only(tmp_path: Path) -> None:
    cache = AgentConfigCache(tmp_path)
    old = tmp_path / f".agent-{AGENT}.json.1.deadbeef.tmp"
    fresh = tmp_path / f".agent-{AGENT}.json.2.cafecafe.tmp"
    old.write_text("x")
    fresh.write_text("y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    cache.save(AGENT, {})
    assert not old.exists() and fresh.exists()


def test_cache_write_failure_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        AgentConfigCache(blocker).save(AGENT, {})
    with pytest.raises(ValueError):
        AgentConfigCache(tmp_path).save("../etc", {})


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1]",
        b'{"fetched_at": 1, "agent_id": "agent_0123"}',
        b'{"fetched_at": "x", "agent_id": "agent_0123", "config": {}}',
        b'{"fetched_at": 1, "agent_id": "someone_else", "config": {}}',
    ],
)
def test_corrupt_cache_is_renamed_aside_once(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AgentConfigCache(tmp_path, clock=FakeClock(0.0))
    path = tmp_path / f"agent-{AGENT}.json"
    path.write_bytes(content)
    assert cache.load(AGENT) is None
    assert not path.exists()
    aside = list(tmp_path.glob(f"agent-{AGENT}.json.corrupt-*"))
    assert [p.name for p in aside] == [f"agent-{AGENT}.json.corrupt-19700101T000000Z"]
    assert aside[0].read_bytes() == content
    assert cache.load(AGENT) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage()
    path.write_bytes(content)  # a second corrupt file gets its own name
    assert cache.load(AGENT) is None
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 2


def test_corrupt_cache_readonly_mode_keeps_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AgentConfigCache(tmp_path)
    path = tmp_path / f"agent-{AGENT}.json"
    path.write_bytes(b"garbage")
    assert cache.load(AGENT, quarantine=False) is None
    assert cache.load(AGENT, quarantine=False) is None
    assert path.exists()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_cache_never_holds_a_signed_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = FakeTransport(jresp(200, AGENT_CONFIG), jresp(200, {"signed_url": SIGNED}))
        c = client(t)
        p = AgentConfigProvider(settings_with(tmp_path), c, cache_for(tmp_path))
        await p.boot()
        assert await c.get_signed_url() == SIGNED

    run(scenario())
    for f in (tmp_path / "st").iterdir():
        assert "TOK42" not in f.read_text()


# --------------------------------------------------------------------------- provider


def cache_for(tmp_path: Path, clock: FakeClock | None = None) -> AgentConfigCache:
    return AgentConfigCache(tmp_path / "st", clock=clock or FakeClock())


def provider(
    tmp_path: Path,
    t: FakeTransport,
    clock: FakeClock | None = None,
    sleep: FakeSleep | None = None,
    on_change: Callable[[AgentConfigProvider], None] | None = None,
    **platform: Any,
) -> AgentConfigProvider:
    clock = clock or FakeClock()
    return AgentConfigProvider(
        settings_with(tmp_path, **platform),
        client(t),
        cache_for(tmp_path, clock),
        clock=clock,
        sleep=sleep or FakeSleep(),
        rng=random.Random(3),
        on_change=on_change,
    )


def test_boot_online_saves_cache(tmp_path: Path) -> None:
    p = provider(tmp_path, FakeTransport(jresp(200, AGENT_CONFIG)))
    profile = run(p.boot())
    assert profile is not None and profile.first_message == "Hello!"
    assert (p.status, p.source, p.current) == ("online", "platform", profile)
    assert p.fetched_at == FakeClock().now
    cached = cache_for(tmp_path).load(AGENT)
    assert cached is not None and cached.raw == AGENT_CONFIG


def test_boot_offline_from_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG, fetched_at=clock.now - 7200)
    p = provider(tmp_path, FakeTransport(ConnectionRefusedError(111, "refused")), clock)
    profile = run(p.boot())
    assert profile == map_agent_config(AGENT_CONFIG)
    assert (p.status, p.source, p.fetched_at) == ("cached", "cache", clock.now - 7200)
    assert p.status_message.startswith(
        "platform unreachable (cannot reach api.example.test: connection refused); "
        "using the agent configuration cached at "
    )
    assert "(age 2 h 0 min)" in p.status_message
    assert any(
        r.levelno == logging.WARNING and "platform unreachable" in r.getMessage()
        for r in caplog.records
    )


def test_boot_without_cache_or_network_is_offline(tmp_path: Path) -> None:
    p = provider(tmp_path, FakeTransport(TimeoutError("timed out")))
    assert run(p.boot()) is None
    assert (p.status, p.source, p.current) == ("offline", "none", None)
    assert "no cached agent configuration" in p.status_message


def test_boot_with_corrupt_cache(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    bad = tmp_path / "st" / f"agent-{AGENT}.json"
    bad.write_text("{{{")
    p = provider(tmp_path, FakeTransport(OSError(101, "Network is unreachable")))
    assert run(p.boot()) is None and p.status == "offline"
    assert not bad.exists() and list((tmp_path / "st").glob("*.corrupt-*"))
    bad.write_text("{{{")
    p = provider(tmp_path, FakeTransport(jresp(200, AGENT_CONFIG)))
    assert run(p.boot()) is not None and p.status == "online"
    assert json.loads(bad.read_text())["config"] == AGENT_CONFIG


def test_boot_refused_key_falls_back_to_cache_with_error_status(tmp_path: Path) -> None:
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG)
    p = provider(tmp_path, FakeTransport(jresp(401, {"detail": "Invalid API key"})))
    profile = run(p.boot())
    assert profile is not None and (p.status, p.source) == ("error", "cache")
    assert p.status_message.startswith("the platform refused the API key (HTTP 401)")
    assert "using the agent configuration cached at" in p.status_message
    p = provider(tmp_path / "empty", FakeTransport(jresp(404, {})))
    assert run(p.boot()) is None
    assert p.status == "error" and p.status_message.startswith("no agent with id")


def test_boot_timeout_bounds_the_fetch(tmp_path: Path) -> None:
    gate = threading.Event()

    class Stuck(FakeTransport):
        def request(self, *args: Any, **kwargs: Any) -> HttpResponse:
            gate.wait(10 * UNIT)
            raise TimeoutError("timed out")

    async def scenario() -> AgentConfigProvider:
        p = provider(tmp_path, Stuck())
        started = time.monotonic()
        try:
            assert await p.boot(timeout=0.05) is None
        finally:
            gate.set()
        assert time.monotonic() - started < 2 * UNIT
        return p

    p = run(scenario())
    assert p.status == "offline" and "within 0.05 s" in p.status_message


def wait_until(event: asyncio.Event) -> Coroutine[Any, Any, Any]:
    return asyncio.wait_for(event.wait(), timeout=5 * UNIT)


def test_background_retries_with_backoff_then_holds_pending(tmp_path: Path) -> None:
    changed = asyncio.Event()
    sleep = FakeSleep()
    t = FakeTransport(
        ConnectionRefusedError(111, "refused"),  # boot
        ConnectionRefusedError(111, "refused"),
        TimeoutError("timed out"),
        jresp(200, AGENT_CONFIG),
    )

    def on_change(p: AgentConfigProvider) -> None:
        if p.status == "online":
            changed.set()

    async def scenario() -> AgentConfigProvider:
        p = provider(tmp_path, t, sleep=sleep, on_change=on_change)
        assert await p.boot() is None
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(changed)
        finally:
            task.cancel()
        assert p.current is None and p.pending is not None  # not applied mid-conversation
        assert p.status == "online"
        profile = p.take_update()
        assert profile is not None and p.current is profile and p.source == "platform"
        assert p.take_update() is None
        return p

    run(scenario())
    assert len(t.calls) == 4  # one attempt per backoff step
    assert len(sleep.delays) == 3
    for delay, step in zip(sleep.delays, (1.0, 2.0, 4.0), strict=True):
        assert step / 2 <= delay <= step
    assert cache_for(tmp_path).load(AGENT) is not None


def test_background_backoff_is_capped_and_honours_retry_after(tmp_path: Path) -> None:
    sleep = FakeSleep()
    done = asyncio.Event()
    t = FakeTransport(*[ConnectionRefusedError(111, "x") for _ in range(7)])
    t.add(jresp(429, {}, {"Retry-After": "20"}), jresp(200, AGENT_CONFIG))

    async def scenario() -> None:
        p = provider(
            tmp_path,
            t,
            sleep=sleep,
            reconnect_max_backoff_s=30.0,
            on_change=lambda p: done.set() if p.status == "online" else None,
        )
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(done)
        finally:
            task.cancel()

    run(scenario())
    # steps 1, 2, 4, 8, 16, 30, 30 ...; the wait after the 429 is at least Retry-After
    assert all(d <= 30.0 for d in sleep.delays)
    assert sleep.delays[5] >= 15.0 and sleep.delays[6] >= 15.0
    assert sleep.delays[-1] >= 20.0


def test_refused_key_logged_once_per_retry_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    online = asyncio.Event()
    refused = jresp(401, {"detail": "Invalid API key"})
    t = FakeTransport(refused, refused, refused, refused)
    t.add(jresp(403, {"detail": "missing permission convai_read"}), refused)
    t.add(jresp(200, AGENT_CONFIG))

    async def scenario() -> AgentConfigProvider:
        p = provider(
            tmp_path, t, on_change=lambda p: online.set() if p.status == "online" else None
        )
        await p.boot()
        assert p.status == "error"
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(online)
        finally:
            task.cancel()
        return p

    p = run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3, errors  # 401 at boot, 403 (new message), 401 again (changed)
    assert "HTTP 401" in errors[0] and "HTTP 403" in errors[1] and "HTTP 401" in errors[2]
    debug = [r.getMessage() for r in caplog.records if "(again)" in r.getMessage()]
    assert len(debug) == 3
    assert p.status == "online"
    assert any("platform reachable again" in r.getMessage() for r in caplog.records)


class Watch:
    """An ``on_change`` callback that lets a test await a condition, bounded in time."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def __call__(self, provider: AgentConfigProvider) -> None:
        self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5 * UNIT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def test_request_refresh_fetches_now_and_applies_at_boundary(tmp_path: Path) -> None:
    v2 = dict(AGENT_CONFIG, name="v2")
    watch = Watch()
    sleep = FakeSleep()
    t = FakeTransport(jresp(200, AGENT_CONFIG), jresp(200, AGENT_CONFIG), jresp(200, v2))

    async def scenario() -> None:
        p = provider(tmp_path, t, sleep=sleep, on_change=watch)
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(t.calls) == 1  # online: the background task only waits
            p.request_refresh()  # SIGHUP; the platform still has the same config
            await watch.until(lambda: not p.is_stale())
            assert len(t.calls) == 2
            assert p.pending is None and p.current is not None and p.current.name == "Front desk"
            p.request_refresh()
            await watch.until(lambda: p.pending is not None)
            assert p.current.name == "Front desk"  # not applied until the boundary
            update = p.take_update()
            assert update is not None and update.name == "v2" and p.current is update
        finally:
            task.cancel()
        assert sleep.delays == []  # refreshes while online do not back off

    run(scenario())


def test_refresh_if_stale_with_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock(10_000.0)
    v2 = dict(AGENT_CONFIG, name="v2")
    t = FakeTransport(jresp(200, AGENT_CONFIG))

    async def scenario() -> None:
        p = provider(tmp_path, t, clock, config_max_age_s=3600.0)
        await p.boot()
        clock.now += 1800
        assert not p.is_stale()
        assert await p.refresh_if_stale() is False and len(t.calls) == 1
        clock.now += 1800  # now exactly max age
        t.add(jresp(200, v2))
        assert await p.refresh_if_stale() is True and len(t.calls) == 2
        assert p.current is not None and p.current.name == "v2" and p.fetched_at == clock.now
        assert p.source == "platform" and p.status == "online"
        clock.now += 4000
        t.add(ConnectionResetError(104, "reset"))
        assert await p.refresh_if_stale() is False
        assert p.current.name == "v2" and p.status == "cached"  # kept on failure
        t.add(jresp(200, AGENT_CONFIG))
        assert await p.refresh_if_stale() is True and p.status == "online"
        assert await p.refresh_if_stale() is False
        p.request_refresh()
        assert p.is_stale()
        t.add(jresp(200, AGENT_CONFIG))
        assert await p.refresh_if_stale() is True and not p.is_stale()
        clock.now -= 86400  # the clock went back (no RTC, before NTP): age unknown
        assert p.is_stale()

    run(scenario())


def test_refresh_if_stale_max_age_zero_and_timeout(tmp_path: Path) -> None:
    gate = threading.Event()

    class Slow(FakeTransport):
        def request(self, *args: Any, **kwargs: Any) -> HttpResponse:
            response = super().request(*args, **kwargs)
            if len(self.calls) > 1:  # every fetch after boot hangs
                gate.wait(10 * UNIT)
                raise TimeoutError("timed out")
            return response

    async def scenario() -> None:
        t = Slow(jresp(200, AGENT_CONFIG), jresp(200, AGENT_CONFIG))
        p = provider(tmp_path, t, config_max_age_s=0.0)
        await p.boot()
        assert p.is_stale()
        try:
            assert await p.refresh_if_stale(timeout=0.05) is False
        finally:
            gate.set()
        assert p.current is not None and p.status == "cached"

    run(scenario())


def test_take_update_without_pending_is_none(tmp_path: Path) -> None:
    p = provider(tmp_path, FakeTransport(jresp(200, AGENT_CONFIG)))
    run(p.boot())
    assert p.take_update() is None


def test_provider_cache_write_failure_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "st").write_text("not a directory")
    p = provider(tmp_path, FakeTransport(jresp(200, AGENT_CONFIG)))
    assert run(p.boot()) is not None and p.status == "online"
    assert any(
        "cannot write the agent configuration cache" in r.getMessage() for r in caplog.records
    )


def test_unexpected_transport_failure_never_escapes_boot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = FakeTransport(ValueError(f"Invalid header value {KEY!r}"))
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG)
    p = provider(tmp_path, t)
    assert run(p.boot()) is not None
    assert (p.status, p.source) == ("error", "cache")
    assert p.status_message.startswith("unexpected ValueError while fetching")
    assert any("Traceback" in r.getMessage() for r in caplog.records)  # key scrubbed: fixture


def test_invalid_url_is_not_retried() -> None:
    sleep = FakeSleep()
    c = real_client("http://127.0.0.1:99999", sleep)
    exc = fails(PlatformError, c.fetch_agent_config())
    assert "not a valid http(s) URL" in str(exc) and sleep.delays == []


def test_from_settings_builds_real_pieces(tmp_path: Path) -> None:
    p = AgentConfigProvider.from_settings(settings_with(tmp_path))
    assert isinstance(p._client.transport, UrllibTransport)
    assert p.status == "offline" and p.current is None and p.source == "none"


def test_settings_dataclass_untouched() -> None:
    # PlatformSettings carries the key only as a Secret: repr never shows it.
    assert KEY not in repr(psettings())
    assert KEY not in repr(dataclasses.asdict(psettings()))
