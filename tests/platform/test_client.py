"""The REST client against a scripted transport: the agent configuration, every error
shape of PROTOCOL.md, retries and Retry-After, the signed-URL forms. No test sleeps:
delays go to a virtual clock. Every test also checks that the API key never reaches a log
record (autouse fixture) or an exception message."""

from __future__ import annotations

import json
import socket
import time
from email.utils import formatdate
from typing import Any

import pytest

from hello_device import __version__
from hello_device.core.urls import safe_url
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    PlatformError,
    PlatformUnavailable,
)
from hello_device.platform.diagnosis import (
    error_detail,
    find_signed_url,
    parse_retry_after,
)
from hello_device.platform.http import (
    Headers,
    HttpResponse,
)
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.conftest import UNIT
from tests.platform.support import (
    AGENT,
    AGENT_CONFIG,
    BASE,
    KEY,
    FakeSleep,
    LocalServer,
    client,
    fails,
    real_client,
    run,
)

# --------------------------------------------------------------------------- client: fake


def test_fetch_success_sends_key_and_user_agent() -> None:
    t = ScriptedTransport(json_response(200, AGENT_CONFIG))
    raw = run(client(t).fetch_agent_config())
    assert raw == AGENT_CONFIG
    method, url, headers, connect_t, read_t = t.calls[0]
    assert (method, url) == ("GET", f"{BASE}/v1/convai/agents/{AGENT}")
    assert headers["xi-api-key"] == KEY
    assert "Authorization" not in headers
    assert headers["User-Agent"].startswith(f"hello-device/{__version__}")
    assert (connect_t, read_t) == (1.0 * UNIT, 1.0 * UNIT)


def test_bearer_header_and_base_url_with_slash() -> None:
    t = ScriptedTransport(json_response(200, {}))
    run(client(t, auth_header="bearer", api_base_url=BASE + "/").fetch_agent_config())
    _, url, headers, _, _ = t.calls[0]
    assert url == f"{BASE}/v1/convai/agents/{AGENT}"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert "xi-api-key" not in headers


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_auth_error_without_retry(status: int) -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(
        json_response(status, {"detail": {"status": "invalid_api_key", "message": "bad"}})
    )
    exc = fails(AuthError, client(t, sleep).fetch_agent_config())
    assert str(exc).startswith(f"the platform refused the API key (HTTP {status})")
    assert "invalid_api_key: bad" in str(exc)
    assert isinstance(exc, PermissionError)
    assert len(t.calls) == 1 and sleep.delays == []


def test_refused_without_key_says_no_key() -> None:
    t = ScriptedTransport(json_response(401, {"detail": "Unauthorized"}))
    exc = fails(AuthError, client(t, api_key=None).fetch_agent_config())
    assert "no API key is configured" in str(exc)
    assert "xi-api-key" not in t.calls[0][2]


def test_404_is_agent_not_found() -> None:
    t = ScriptedTransport(json_response(404, {"detail": "Agent not found"}))
    exc = fails(AgentNotFoundError, client(t).fetch_agent_config())
    assert str(exc).startswith(f"no agent with id {AGENT} at api.example.test")
    assert "Agent not found" in str(exc)
    assert len(t.calls) == 1


def test_404_html_hints_at_base_url() -> None:
    t = ScriptedTransport(HttpResponse(404, {"Content-Type": "text/html"}, b"<html>nginx</html>"))
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
    t = ScriptedTransport(json_response(status, body))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert type(exc) is PlatformError
    assert f"(HTTP {status})" in str(exc)
    assert expected in str(exc)
    assert len(str(exc)) < 320  # long details are cut
    assert len(t.calls) == 1


def test_key_echoed_by_the_server_is_redacted() -> None:
    t = ScriptedTransport(json_response(400, {"detail": f"key {KEY} is not valid here"}))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "key *** is not valid" in str(exc)


def test_429_honours_retry_after_seconds() -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(
        json_response(429, {"detail": "slow down"}, {"Retry-After": "7"}),
        json_response(200, AGENT_CONFIG),
    )
    assert run(client(t, sleep).fetch_agent_config()) == AGENT_CONFIG
    assert sleep.delays == [7.0]


def test_429_honours_retry_after_http_date() -> None:
    sleep = FakeSleep()
    when = formatdate(time.time() + 12, usegmt=True)
    t = ScriptedTransport(json_response(429, {}, {"retry-after": when}), json_response(200, {}))
    run(client(t, sleep).fetch_agent_config())
    assert len(sleep.delays) == 1 and 9.0 <= sleep.delays[0] <= 12.0


def test_retry_after_too_long_gives_up_at_once() -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(json_response(503, {}, {"Retry-After": "3600"}), json_response(200, {}))
    exc = fails(PlatformUnavailable, client(t, sleep).fetch_agent_config())
    assert isinstance(exc, PlatformUnavailable) and exc.retry_after == 3600.0
    assert sleep.delays == [] and len(t.calls) == 1


def test_500_then_success() -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(json_response(500, {"detail": "boom"}), json_response(200, AGENT_CONFIG))
    assert run(client(t, sleep).fetch_agent_config()) == AGENT_CONFIG
    assert len(t.calls) == 2
    assert len(sleep.delays) == 1 and 0.0 <= sleep.delays[0] <= 0.5


def test_5xx_and_network_errors_exhaust_retries_with_growing_backoff() -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(
        HttpResponse(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        json_response(503, {"detail": "maintenance"}),
    )
    exc = fails(PlatformUnavailable, client(t, sleep, max_attempts=5).fetch_agent_config())
    assert len(t.calls) == 5 and len(sleep.delays) == 4
    for i, delay in enumerate(sleep.delays):  # full jitter under 0.5 * 2**i
        assert 0.0 <= delay <= 0.5 * 2**i
    assert "HTTP 503: maintenance" in str(exc)
    assert "gave up after 5 attempts" in str(exc)
    assert isinstance(exc, ConnectionError)


def test_network_error_message_is_short_and_clear() -> None:
    t = ScriptedTransport(ConnectionRefusedError(111, "Connection refused"))
    exc = fails(PlatformUnavailable, client(t, max_attempts=1).fetch_agent_config())
    assert str(exc) == "cannot reach api.example.test: connection refused"


def test_html_instead_of_json() -> None:
    t = ScriptedTransport(
        HttpResponse(
            200, {"content-type": "text/html; charset=utf-8"}, b"<!DOCTYPE html><html>portal</html>"
        )
    )
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert str(exc) == (
        "the platform answered with HTML instead of JSON (HTTP 200) — is api_base_url right?"
    )
    assert len(t.calls) == 1


def test_truncated_body_is_a_cut_short_answer_not_bad_json(server: LocalServer) -> None:
    """A body shorter than its Content-Length is a network failure (retried), reported
    as cut short; never as "invalid JSON … is api_base_url right?"."""
    full = json.dumps(AGENT_CONFIG).encode()
    server.routes[f"/v1/convai/agents/{AGENT}"] = (
        200,
        {"Content-Type": "application/json", "Content-Length": str(len(full) + 50)},
        full,
        0.0,
    )
    sleep = FakeSleep()
    exc = fails(PlatformUnavailable, real_client(server.url, sleep).fetch_agent_config())
    assert f"cut short ({len(full)} of {len(full) + 50} bytes)" in str(exc)
    assert "JSON" not in str(exc) and len(sleep.delays) == 2  # retried like a reset


def test_bad_json_and_non_object() -> None:
    t = ScriptedTransport(HttpResponse(200, {"Content-Type": "application/json"}, b'{"a": '))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "malformed JSON at line 1 (HTTP 200, 6 bytes)" in str(exc)
    assert "api_base_url" not in str(exc)  # a JSON answer: the server is the right kind
    t = ScriptedTransport(HttpResponse(200, {"Content-Type": "text/plain"}, b"hello"))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "answered with text/plain instead of JSON" in str(exc)
    t = ScriptedTransport(json_response(200, [1, 2]))
    exc = fails(PlatformError, client(t).fetch_agent_config())
    assert "JSON list instead of an object" in str(exc)


def test_json_without_content_type_is_accepted() -> None:
    t = ScriptedTransport(HttpResponse(200, {}, b'{"agent_id": "a"}'))
    assert run(client(t).fetch_agent_config()) == {"agent_id": "a"}


# --------------------------------------------------------------------------- signed URL

SIGNED = "wss://api.example.test/v1/convai/conversation?agent_id=a&conversation_signature=TOK42"


def test_signed_url_first_form(caplog: pytest.LogCaptureFixture) -> None:
    t = ScriptedTransport(json_response(200, {"signed_url": SIGNED}))
    assert run(client(t).get_signed_url()) == SIGNED
    assert t.urls == [f"{BASE}/v1/convai/conversation/get-signed-url?agent_id={AGENT}"]
    assert "TOK42" not in caplog.text
    assert "wss://api.example.test/v1/convai/conversation" in caplog.text


def test_signed_url_variant_a_after_404_and_remembered() -> None:
    t = ScriptedTransport(
        json_response(404, {"detail": "Not Found"}),
        json_response(200, {"signed_url": SIGNED, "expires_at": "2030-01-01T00:00:00Z"}),
        json_response(200, {"signed_url": SIGNED}),
    )
    c = client(t)
    assert run(c.get_signed_url()) == SIGNED
    assert t.urls[1] == f"{BASE}/v1/convai/agents/{AGENT}/signed-url"
    run(c.get_signed_url())  # the form that worked is tried first next time
    assert t.urls[2] == f"{BASE}/v1/convai/agents/{AGENT}/signed-url"


def test_signed_url_variant_b_nested(caplog: pytest.LogCaptureFixture) -> None:
    t = ScriptedTransport(
        json_response(404, {}),
        json_response(404, {}),
        json_response(200, {"link": {"signed_url": SIGNED, "expires_in": 300}}),
    )
    assert run(client(t).get_signed_url()) == SIGNED
    assert t.urls[2] == f"{BASE}/v1/convai/agents/{AGENT}/link"
    assert "TOK42" not in caplog.text


def test_signed_url_all_404_and_bad_answers() -> None:
    t = ScriptedTransport(json_response(404, {}), json_response(404, {}), json_response(404, {}))
    exc = fails(AgentNotFoundError, client(t).get_signed_url())
    assert "no agent with id" in str(exc) and "signed URL" in str(exc)
    t = ScriptedTransport(json_response(200, {"signed_url": "https://x/y?token=TOK42"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "not ws:// or wss://" in str(exc) and "TOK42" not in str(exc)
    t = ScriptedTransport(json_response(200, {"signed_url": "ws://remote.example/c?token=TOK42"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "plain ws://" in str(exc) and "TOK42" not in str(exc)
    t = ScriptedTransport(json_response(200, {"url": "wss://x"}))
    exc = fails(PlatformError, client(t).get_signed_url())
    assert "without a signed_url" in str(exc)
    t = ScriptedTransport(json_response(401, {}))
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
