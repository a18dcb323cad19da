"""The sans-I/O protocol, sending: the JSON of every client message, in both dialects."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hello_device.core.protocol import (
    ClientProtocol,
    Dialect,
)
from tests.core.protocol_messages import PCM

# ---------------------------------------------------------------------------------------
# Builders


def test_dialect_from_string() -> None:
    assert ClientProtocol("variant").dialect is Dialect.VARIANT
    assert ClientProtocol().dialect is Dialect.ELEVENLABS
    with pytest.raises(ValueError, match="nonsense"):
        ClientProtocol("nonsense")


@pytest.mark.parametrize("dialect", list(Dialect))
def test_initiation_minimal(dialect: Dialect) -> None:
    text = ClientProtocol(dialect).initiation({}, overrides={}, source_info=None, user_id="")
    assert text == '{"type":"conversation_initiation_client_data","dynamic_variables":{}}'


def test_initiation_full() -> None:
    text = ClientProtocol().initiation(
        {"device_id": "kiosk-1", "n": 2},
        overrides={"agent": {"language": "de"}},
        source_info={"source": "hello-device", "version": "0.1.0"},
        custom_llm_extra_body={"temperature": 0.2},
        user_id="u-1",
    )
    assert " " not in text
    assert json.loads(text) == {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"device_id": "kiosk-1", "n": 2},
        "conversation_config_override": {"agent": {"language": "de"}},
        "custom_llm_extra_body": {"temperature": 0.2},
        "source_info": {"source": "hello-device", "version": "0.1.0"},
        "user_id": "u-1",
    }


@pytest.mark.parametrize("chunk", [b"", b"\x00", PCM, bytes(range(255, -1, -1)) * 3])
def test_user_audio_round_trips(chunk: bytes) -> None:
    real = json.loads(ClientProtocol().user_audio(chunk))
    variant = json.loads(ClientProtocol(Dialect.VARIANT).user_audio(chunk))
    assert list(real) == ["user_audio_chunk"]
    assert base64.b64decode(real["user_audio_chunk"], validate=True) == chunk
    assert list(variant) == ["type", "audio"]
    assert variant["type"] == "audio"
    assert base64.b64decode(variant["audio"], validate=True) == chunk


def test_user_audio_exact_text() -> None:
    assert ClientProtocol().user_audio(b"abc") == '{"user_audio_chunk":"YWJj"}'
    assert ClientProtocol("variant").user_audio(b"abc") == '{"type":"audio","audio":"YWJj"}'


class Opaque:
    def __str__(self) -> str:
        return "opaque"


@pytest.mark.parametrize(
    ("result", "wire"),
    [
        ("done", "done"),
        ("", ""),
        (None, ""),
        ({"volume": 3, "ok": True}, '{"volume":3,"ok":true}'),
        ([1, "a"], '[1,"a"]'),
        (42, "42"),
        (False, "false"),
        (Opaque(), '"opaque"'),
    ],
)
@pytest.mark.parametrize("dialect", list(Dialect))
def test_tool_result_is_always_a_string(dialect: Dialect, result: object, wire: str) -> None:
    text = ClientProtocol(dialect).tool_result("t1", result, is_error=False)
    assert json.loads(text) == {
        "type": "client_tool_result",
        "tool_call_id": "t1",
        "result": wire,
        "is_error": False,
    }


def test_tool_result_error() -> None:
    message = json.loads(ClientProtocol().tool_result("t9", "unknown tool: x", is_error=True))
    assert (message["result"], message["is_error"]) == ("unknown tool: x", True)


TRICKY = 'say "hi"\nthen 😀 \\ done'

BUILDERS: list[Any] = [
    # (call, elevenlabs message, variant message)
    (lambda p: p.pong(17), {"type": "pong", "event_id": 17}, None),
    (lambda p: p.contextual_update(TRICKY), {"type": "contextual_update", "text": TRICKY}, None),
    (
        lambda p: p.user_message(TRICKY),
        {"type": "user_message", "text": TRICKY},
        {"type": "user_input", "text": TRICKY},
    ),
    (lambda p: p.user_activity(), {"type": "user_activity"}, None),
    (lambda p: p.feedback(3, "like"), {"type": "feedback", "event_id": 3, "score": "like"}, None),
    (lambda p: p.feedback(3, None), {"type": "feedback", "event_id": 3, "score": None}, None),
]


@pytest.mark.parametrize(("build", "real", "variant"), BUILDERS)
def test_builders(build: Any, real: dict[str, Any], variant: dict[str, Any] | None) -> None:
    for dialect, expected in [(Dialect.ELEVENLABS, real), (Dialect.VARIANT, variant or real)]:
        text = build(ClientProtocol(dialect))
        assert json.loads(text) == expected
        assert ", " not in text
        assert '": ' not in text


def test_variant_only_messages() -> None:
    real, variant = ClientProtocol(), ClientProtocol(Dialect.VARIANT)
    assert real.client_interruption() is None
    assert real.keepalive() is None
    assert variant.client_interruption() == '{"type":"interruption"}'
    assert variant.keepalive() == '{"type":"ping"}'
