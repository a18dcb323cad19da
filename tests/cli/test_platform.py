"""``config show`` and ``fetch-config`` against a local http.server on 127.0.0.1.

The commands are registered on a fresh argparse parser exactly as the CLI does, with a
client factory whose retries do not really sleep. The API key must never be printed.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hello_device.cli import platform
from hello_device.platform.cache import AgentConfigCache
from hello_device.platform.client import PlatformClient
from hello_device.settings import (
    PlatformSettings,
    dump_settings,
    load_settings,
)
from tests.platform.support import (
    AGENT,
    AGENT_CONFIG,
    KEY,
    FakeSleep,
    LocalServer,
    closed_port,
)

SIGNED = "wss://127.0.0.1/v1/convai/conversation?agent_id=a&conversation_signature=TOK42"


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="hello_device")
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert KEY not in record.getMessage()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer()
    try:
        yield s
    finally:
        s.close()


def fast_client(settings: PlatformSettings, attempts: int) -> PlatformClient:
    return PlatformClient(settings, max_attempts=attempts, sleep=FakeSleep())


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hello-device")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    platform.register(sub, client_factory=fast_client)
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    return code, out, err


def write_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[platform]\napi_base_url = "{url}"\nagent_id = "{AGENT}"\napi_key = "{KEY}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        "[vad]\nend_silence_ms = 450\n" + extra
    )
    return path


AGENT_PATH = f"/v1/convai/agents/{AGENT}"

SECRETIVE = {
    **AGENT_CONFIG,
    "conversation_config": {
        **AGENT_CONFIG["conversation_config"],
        "asr": {"user_input_audio_format": "pcm_16000", "keywords": ["hello", "device"]},
        "agent": {
            "first_message": "Hi from the platform",
            "language": "en",
            "prompt": {
                "llm": "x",
                "max_tokens": 321,
                "custom_llm": {"apiKey": {"secret_id": "S1"}},
            },
        },
        "turn": {"prefix_padding_ms": 120, "turn_timeout": 9},
    },
    "platform_settings": {
        "auth": {"enable_auth": True, "shareable_token": "SHARE-TOKEN-1"},
        "webhook": {"url": "https://hooks.example/x", "secret": "whsec_ABCDEF"},
        "tools": [{"request_headers": {"Authorization": "Bearer OTHER-SECRET"}}],
    },
}


# --------------------------------------------------------------------------- fetch-config


def test_fetch_config_prints_masked_json_and_profile(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.json(AGENT_PATH, 200, SECRETIVE)
    code, out, err = cli(
        ["fetch-config", "--config", str(write_config(tmp_path, server.url))], capsys
    )
    assert code == 0, err
    json_text, _, profile_text = out.partition("\n\n")
    shown = json.loads(json_text)
    for secret in ("SHARE-TOKEN-1", "whsec_ABCDEF", "OTHER-SECRET", "S1"):
        assert secret not in out
    assert shown["platform_settings"]["webhook"] == {
        "url": "https://hooks.example/x",
        "secret": "***",
    }
    assert shown["conversation_config"]["asr"]["keywords"] == ["hello", "device"]
    assert shown["conversation_config"]["agent"]["prompt"]["max_tokens"] == 321
    assert shown["conversation_config"]["agent"]["prompt"]["custom_llm"] == {
        "apiKey": {"secret_id": "***"}
    }
    assert "private = true" in profile_text
    assert 'first_message = "Hi from the platform"' in profile_text
    assert "prefix_padding_ms = 120" in profile_text
    assert server.requests[0][1]["xi-api-key"] == KEY
    assert not (tmp_path / "state").exists()  # fetch-config never writes the cache


def test_fetch_config_signed_url_hides_token(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.json(AGENT_PATH, 200, AGENT_CONFIG)
    server.json(f"/v1/convai/agents/{AGENT}/signed-url", 200, {"signed_url": SIGNED})
    config = str(write_config(tmp_path, server.url))
    code, out, err = cli(["fetch-config", "--signed-url", "--config", config], capsys)
    assert code == 0, err
    assert "signed URL: OK (wss://127.0.0.1/v1/convai/conversation" in out
    assert "TOK42" not in out and "TOK42" not in err
    assert [path.split("?")[0] for path, _ in server.requests[1:]] == [
        "/v1/convai/conversation/get-signed-url",
        f"/v1/convai/agents/{AGENT}/signed-url",
    ]


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        (
            401,
            {"detail": "Invalid API key"},
            "application/json",
            "error: the platform refused the API key (HTTP 401)",
        ),
        (
            403,
            {"error": {"code": "forbidden", "message": "no"}},
            "application/json",
            "error: the platform refused the API key (HTTP 403)",
        ),
        (
            404,
            {"detail": "Agent not found"},
            "application/json",
            f"error: no agent with id {AGENT}",
        ),
        (
            200,
            "<html>hi</html>",
            "text/html",
            "error: the platform answered with HTML instead of JSON (HTTP 200)",
        ),
    ],
)
def test_fetch_config_failures_exit_1_with_one_line(
    tmp_path: Path,
    server: LocalServer,
    capsys: pytest.CaptureFixture[str],
    status: int,
    body: Any,
    ctype: str,
    expected: str,
) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    server.routes[AGENT_PATH] = (status, {"Content-Type": ctype}, raw, 0.0)
    code, out, err = cli(["fetch-config", "-c", str(write_config(tmp_path, server.url))], capsys)
    assert code == 1
    assert out == ""
    assert err.startswith(expected)
    assert err.count("\n") == 1


def test_fetch_config_unreachable_and_retries(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, _, err = cli(["fetch-config", "-c", str(write_config(tmp_path, url))], capsys)
    assert code == 1
    assert err.startswith("error: cannot reach 127.0.0.1:")
    assert "connection refused (gave up after 3 attempts)" in err
    server.json(AGENT_PATH, 503, {"detail": "maintenance"})
    config = str(write_config(tmp_path, server.url))
    code, _, err = cli(["fetch-config", "--attempts", "2", "-c", config], capsys)
    assert code == 1 and "HTTP 503: maintenance" in err
    assert len(server.requests) == 2


def test_fetch_config_config_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[platform]\napi_key = "{KEY}"\napi_base_url = "ftp://x"\n')
    code, out, err = cli(["fetch-config", "-c", str(path)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith("config error: ") for line in lines)
    assert any("platform.agent_id" in line for line in lines)
    code, _, err = cli(["config", "show", "-c", str(tmp_path / "missing.toml")], capsys)
    assert code == 2 and err.startswith("config error: ") and "no such file" in err


# --------------------------------------------------------------------------- config show


def rows(out: str) -> dict[str, tuple[str, str]]:
    """``key = value  (source)`` lines -> {key: (value, source)}."""
    result = {}
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, rest = line.partition(" = ")
        value, _, source = rest.rpartition("  (")
        result[key.strip()] = (value, source.rstrip(")"))
    return result


def test_config_show_without_cache(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, server.url)
    code, out, err = cli(["config", "show", "--config", str(config)], capsys)
    assert code == 0, err
    assert server.requests == []  # no network without --fetch
    assert "# agent configuration: none: no cache in" in out
    shown = rows(out)
    settings = load_settings(config)
    for section, values in dump_settings(settings).items():
        for name in values:
            assert f"{section}.{name}" in shown, f"{section}.{name} missing"
    assert shown["platform.api_key"] == ("***", "file")
    assert shown["platform.agent_id"] == (f'"{AGENT}"', "file")
    assert shown["vad.end_silence_ms"] == ("450", "file")
    assert shown["vad.preroll_ms"] == ("300", "default")
    assert "\nvad.end_silence_ms = 450  (file)\n" in out  # the exact line format
    assert shown["conversation.first_message"] == ("(unset)", "default")
    assert shown["platform.private"] == ("false", "default")
    assert shown["platform.user_input_audio_format"] == ('"pcm_16000"', "default")


def test_config_show_from_cache_file_still_wins(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, server.url, '[conversation]\nlanguage = "de"\n')
    cached = {
        "agent_id": AGENT,
        "conversation_config": {
            "agent": {"first_message": "Cached hello", "language": "en"},
            "turn": {"silence_duration_ms": 999, "prefix_padding_ms": 150},
            "tts": {"output_format": "pcm_24000"},
        },
        "platform_settings": {"auth": {"mode": "private"}},
    }
    AgentConfigCache(tmp_path / "state").save(AGENT, cached)
    code, out, err = cli(["config", "show", "-c", str(config)], capsys)
    assert code == 0, err
    assert server.requests == []
    assert "# agent configuration: cached at " in out
    shown = rows(out)
    assert shown["conversation.first_message"] == ('"Cached hello"', "cache")
    assert shown["conversation.language"] == ('"de"', "file")
    assert shown["vad.end_silence_ms"] == ("450", "file")
    assert shown["vad.preroll_ms"] == ("150", "cache")
    assert shown["platform.private"] == ("true", "cache")
    assert shown["platform.agent_output_audio_format"] == ('"pcm_24000"', "cache")


def test_config_show_fetch_uses_platform_and_falls_back(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.json(AGENT_PATH, 200, SECRETIVE)
    config = str(write_config(tmp_path, server.url))
    code, out, err = cli(["config", "show", "--fetch", "-c", config], capsys)
    assert code == 0, err
    shown = rows(out)
    assert shown["conversation.first_message"] == ('"Hi from the platform"', "platform")
    assert shown["vad.preroll_ms"] == ("120", "platform")
    assert shown["platform.turn_timeout_s"] == ("9.0", "platform")
    assert not (tmp_path / "state").exists()  # a read-only tool: no cache written

    AgentConfigCache(tmp_path / "state").save(AGENT, AGENT_CONFIG)
    server.json(AGENT_PATH, 401, {"detail": "Invalid API key"})
    code, out, err = cli(["config", "show", "--fetch", "-c", config], capsys)
    assert code == 0
    assert err.startswith(
        "warning: could not fetch the agent configuration: the platform "
        "refused the API key (HTTP 401)"
    )
    assert rows(out)["conversation.first_message"] == ('"Hello!"', "cache")


def test_config_show_does_not_touch_a_corrupt_cache(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state").mkdir()
    bad = tmp_path / "state" / f"agent-{AGENT}.json"
    bad.write_text("{oops")
    code, out, _ = cli(["config", "show", "-c", str(write_config(tmp_path, server.url))], capsys)
    assert code == 0 and bad.exists()
    assert "# agent configuration: none" in out


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("xi-api-key", True),
        ("apiKey", True),
        ("access_token", True),
        ("secret", True),
        ("Authorization", True),
        ("signed_url", True),
        ("password", True),
        ("keywords", False),
        ("monkey", False),
        ("voice_id", False),
        ("url", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert platform.is_secret_name(name) is secret


def test_mask_secrets_also_scrubs_the_key_anywhere() -> None:
    data = {"note": f"uses {KEY}", "token": 5, "tokens": ["a", "b"], "nested": [{"secret": "x"}]}
    assert platform.mask_secrets(data, (KEY,)) == {
        "note": "uses ***",
        "token": 5,
        "tokens": ["***", "***"],
        "nested": [{"secret": "***"}],
    }
