"""Proxies, the rules: the REST client and the conversation socket choose the proxy of
HTTPS_PROXY / HTTP_PROXY unless NO_PROXY lists the host, by the same rules as websockets
and urllib; bad settings are named without their credentials."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from hello_device.audio.player import Player
from hello_device.conversation.session import Session
from hello_device.errors import PlatformError
from hello_device.platform.proxy import (
    ProxyServer,
    environment_proxies,
    exempt_from_proxy,
    parse_proxy,
    proxy_setting_for,
)
from hello_device.settings import parse_settings
from tests.conftest import REPO, UNIT
from tests.platform.proxy_support import PROXY_PASSWORD, PROXY_USER, secrets_absent
from tests.tinyproxy import tinyproxy_executable


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_tinyproxy_skips_except_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr("tests.tinyproxy.shutil.which", lambda *_a, **_k: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="tinyproxy is not installed"):
        tinyproxy_executable()


# --------------------------------------------------------------------------- the rules


RULE_CASES: list[tuple[dict[str, str], str, str | None, str | None]] = [
    # (environment, host:port, expected for https/wss, expected for http/ws)
    ({}, "api.elevenlabs.io:443", None, None),
    ({"HTTPS_PROXY": "http://p:3128"}, "api.elevenlabs.io:443", "http://p:3128", "http://p:3128"),
    (
        {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"},
        "api.elevenlabs.io:443",
        "http://lower:1",
        "http://lower:1",
    ),
    ({"https_proxy": "", "HTTPS_PROXY": "http://upper:2"}, "api.elevenlabs.io:443", None, None),
    ({"HTTP_PROXY": "http://h:8080"}, "api.elevenlabs.io:443", None, "http://h:8080"),
    (
        {"HTTP_PROXY": "http://h:8080", "HTTPS_PROXY": "http://s:3128"},
        "api.elevenlabs.io:443",
        "http://s:3128",
        "http://s:3128",
    ),
    ({"HTTP_PROXY": "http://h:8080", "REQUEST_METHOD": "GET"}, "example.com:80", None, None),
    ({"ALL_PROXY": "http://all:1"}, "api.elevenlabs.io:443", None, None),
    (
        {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "api.elevenlabs.io"},
        "api.elevenlabs.io:443",
        None,
        None,
    ),
    (
        {"HTTPS_PROXY": "http://p:3128", "no_proxy": ".elevenlabs.io"},
        "api.elevenlabs.io:443",
        None,
        None,
    ),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "api.elevenlabs.io:443", None, None),
    (
        {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "elevenlabs.io.evil"},
        "api.elevenlabs.io:443",
        "http://p:3128",
        "http://p:3128",
    ),
    (
        {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost, 127.0.0.1"},
        "127.0.0.1:8443",
        None,
        None,
    ),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "127.0.0.1:8443"}, "127.0.0.1:8443", None, None),
    (
        {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "127.0.0.1:9999"},
        "127.0.0.1:8443",
        "http://p:3128",
        "http://p:3128",
    ),
]


@pytest.mark.parametrize(("env", "where", "secure", "plain"), RULE_CASES)
def test_rest_rules_match_websockets_and_urllib(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    where: str,
    secure: str | None,
    plain: str | None,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def rest(scheme: str) -> str | None:
        setting = proxy_setting_for(f"{scheme}://{where}/v1/convai/agents/a")
        assert setting == proxy_setting_for(f"{scheme}://{where}/x", dict(env))  # a mapping
        return None if setting is None else setting[1]

    def websockets(scheme: str) -> str | None:
        return get_proxy(parse_uri(f"{scheme}://{where}/v1/convai/conversation"))

    assert environment_proxies() == urllib.request.getproxies_environment()
    assert rest("https") == websockets("wss") == secure
    assert rest("http") == websockets("ws") == plain


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (f"{PROXY_USER}:{PROXY_PASSWORD}@proxy.example:3128", "proxy.example:3128"),
        (f"socks5h://{PROXY_USER}:{PROXY_PASSWORD}@proxy.example:1080", "socks5h://proxy.example"),
        (f"https://{PROXY_USER}:{PROXY_PASSWORD}@proxy.example", "https://proxy.example"),
        (f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.example:3128/path", "proxy.example:3128"),
        (f"http://{PROXY_USER}@proxy.example:3128", "http://proxy.example:3128"),
    ],
)
def test_unusable_proxy_settings_are_named_without_credentials(value: str, shown: str) -> None:
    with pytest.raises(PlatformError) as info:
        parse_proxy("HTTPS_PROXY", value)
    text = str(info.value)
    assert "HTTPS_PROXY=" in text and shown in text
    assert PROXY_PASSWORD not in text and PROXY_USER not in text


def test_credentials_become_basic_proxy_authorization_and_stay_out_of_repr() -> None:
    proxy = parse_proxy("HTTPS_PROXY", f"http://{PROXY_USER}:pr0xy%40Pa55@proxy.example:3128")
    assert proxy == ProxyServer("proxy.example", 3128, PROXY_USER, "pr0xy@Pa55")
    expected = base64.b64encode(f"{PROXY_USER}:pr0xy@Pa55".encode()).decode()
    assert proxy.authorization() == f"Basic {expected}"
    assert proxy.display == "http://proxy.example:3128"
    assert "pr0xy" not in repr(proxy) and PROXY_USER not in repr(proxy)
    assert parse_proxy("HTTP_PROXY", "http://proxy.example").port == 80


def test_session_reports_an_invalid_proxy_setting_without_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets' own InvalidProxy text quotes the setting whole: it must not leak."""
    monkeypatch.setenv("HTTPS_PROXY", f"{PROXY_USER}:{PROXY_PASSWORD}@proxy.example:3128")
    settings = parse_settings({"platform": {"agent_id": "a"}}, "test", env={})
    end = asyncio.run(Session(settings, Player()).run("wss://127.0.0.1:9/v1/convai/conversation"))
    assert end.error == (
        "the proxy setting proxy.example:3128 is not valid: write it as http://host:port"
    )
    assert not end.resumable
    secrets_absent(caplog, end.error, end.reason)


def test_exempt_from_proxy_adds_a_host_to_no_proxy_for_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://p:3128")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    exempt_from_proxy("127.0.0.1")
    exempt_from_proxy("127.0.0.1")  # once is enough
    assert os.environ["no_proxy"] == os.environ["NO_PROXY"] == "corp.example,127.0.0.1"
    assert proxy_setting_for("http://127.0.0.1:8765/v1/convai/agents/a") is None
    assert get_proxy(parse_uri("ws://127.0.0.1:8765/v1/convai/conversation")) is None
    assert proxy_setting_for("https://api.elevenlabs.io/") == ("HTTPS_PROXY", "http://p:3128")
    everything = {"no_proxy": "*"}
    exempt_from_proxy("127.0.0.1", everything)
    assert everything == {"no_proxy": "*"}


def test_demo_works_with_a_proxy_in_the_environment(tmp_path: Path) -> None:
    """The demo's emulator is in-process on loopback: an (unreachable) HTTPS_PROXY must
    not take its REST requests or its conversation."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {**os.environ, "HTTPS_PROXY": f"http://127.0.0.1:{closed}", "NO_PROXY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "hello_device", "demo", "--output", str(tmp_path / "out.wav")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60 * UNIT,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "agent: You said" in done.stdout
    assert "using proxy" not in done.stderr
