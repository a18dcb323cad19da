"""The sans-I/O protocol, malformed input: always an Ignored (logged, rate-limited, audio
elided from excerpts), never an exception."""

from __future__ import annotations

import base64
import copy
import json
import logging
from typing import Any

import pytest

from hello_device.core.protocol import (
    ClientProtocol,
    DroppedAudio,
    Event,
    Ignored,
)
from tests.core.protocol_messages import (
    B64,
    LOGGER,
    PCM,
    audio,
    interruption,
    metadata,
    one,
    tool_call,
)
from tests.core.test_protocol_receive import VALID

# ---------------------------------------------------------------------------------------
# Malformed input: always an Ignored, never an exception


def with_body(message: dict[str, Any], **fields: object) -> dict[str, Any]:
    """``message`` with fields of its payload object replaced (None removes the field)."""
    message = copy.deepcopy(message)
    body = next(v for v in message.values() if isinstance(v, dict))
    for key, value in fields.items():
        body.pop(key, None)
        if value is not None:
            body[key] = value
    return message


MALFORMED: list[Any] = [
    pytest.param("{not json", "", "not valid JSON", id="bad-json"),
    pytest.param("", "", "not valid JSON", id="empty"),
    pytest.param("[" * 100_000, "", "nested deeper than 64", id="deep-nesting"),
    pytest.param("[" * 65 + "]" * 65, "", "nested deeper than 64", id="nesting-65"),
    pytest.param("[1, 2]", "", "JSON value is not an object", id="array"),
    pytest.param("42", "", "JSON value is not an object", id="number"),
    pytest.param("null", "", "JSON value is not an object", id="null"),
    pytest.param('"audio"', "", "JSON value is not an object", id="string"),
    pytest.param("{}", "", "no string type field", id="no-type"),
    pytest.param({"type": 5}, "", "no string type field", id="int-type"),
    pytest.param({"user_audio_chunk": B64}, "", "no string type field", id="echoed-mic-audio"),
    pytest.param({"type": "audio"}, "audio", "audio_event missing", id="audio-no-body"),
    pytest.param({"type": "audio", "audio_event": [1]}, "audio", "not an object", id="body-list"),
    pytest.param(
        with_body(audio(1), audio_base_64=None), "audio", "missing audio_base_64", id="no-b64"
    ),
    pytest.param(audio(1, "%%%not base64"), "audio", "not valid base64", id="bad-b64"),
    pytest.param(audio(1, "QUJDR"), "audio", "not valid base64", id="bad-b64-length"),
    pytest.param(audio(1, "QUJDRA==é"), "audio", "not valid base64", id="non-ascii-b64"),
    pytest.param(
        with_body(audio(1), audio_base_64=123), "audio", "not valid base64", id="b64-number"
    ),
    pytest.param(with_body(audio(1), event_id=None), "audio", "missing event_id", id="no-id"),
    pytest.param(audio("seven"), "audio", "event_id is not an integer", id="id-text"),
    pytest.param(audio(True), "audio", "event_id is not an integer", id="id-bool"),
    pytest.param(audio(1.5), "audio", "event_id is not an integer", id="id-fraction"),
    pytest.param(audio(" 7"), "audio", "event_id is not an integer", id="id-padded"),
    pytest.param(audio("1" * 40), "audio", "event_id is not an integer", id="id-huge-text"),
    pytest.param(interruption(None), "interruption", "missing event_id", id="interruption-no-id"),
    pytest.param(
        {"type": "ping", "ping_event": {"ping_ms": 5}}, "ping", "missing event_id", id="ping-no-id"
    ),
    pytest.param(
        with_body(metadata(), user_input_audio_format=None),
        "conversation_initiation_metadata",
        "missing user_input_audio_format",
        id="metadata-no-format",
    ),
    pytest.param(
        {"type": "agent_response", "agent_response_event": {"agent_response": 3}},
        "agent_response",
        "agent_response is not a string",
        id="response-number",
    ),
    pytest.param(
        tool_call("client_tool_call", "client_tool_call", parameters=["level", 3]),
        "client_tool_call",
        "parameters is not an object",
        id="tool-params-list",
    ),
    pytest.param(
        with_body(tool_call("tool_call", "tool_call_event"), tool_call_id=None),
        "tool_call",
        "missing tool_call_id",
        id="tool-no-id",
    ),
    pytest.param(
        {"type": "agent_chat_response_part", "text_response_part": {"text": "x"}},
        "agent_chat_response_part",
        "missing type",
        id="chat-part-no-type",
    ),
    pytest.param(
        {"type": "vad_score", "vad_score_event": {"vad_score": "0.5"}},
        "vad_score",
        "vad_score is not a finite number",
        id="vad-text",
    ),
    pytest.param(
        '{"type": "vad_score", "vad_score_event": {"vad_score": NaN}}',
        "vad_score",
        "vad_score is not a finite number",
        id="vad-nan",
    ),
    pytest.param(
        '{"type": "vad_score", "vad_score_event": {"vad_score": 1' + "0" * 400 + "}}",
        "vad_score",
        "vad_score is not a finite number",
        id="vad-overflow",
    ),
    pytest.param(
        {"type": "error", "error_event": "boom"}, "error", "not an object", id="error-body-text"
    ),
]


@pytest.mark.parametrize(("message", "kind", "reason"), MALFORMED)
def test_malformed_messages_are_ignored(message: object, kind: str, reason: str) -> None:
    proto = ClientProtocol()
    event = one(proto, message)
    assert isinstance(event, Ignored)
    assert event.type == kind
    assert reason in event.reason
    assert len(event.excerpt) <= 120
    assert (proto.ignored_count, proto.malformed_count) == (1, 1)


def test_binary_frame_is_ignored_without_excerpt() -> None:
    proto = ClientProtocol()
    assert proto.receive_bytes(PCM) == [Ignored("", "binary frame of 1024 bytes", "")]
    assert (proto.ignored_count, proto.malformed_count) == (1, 1)


def test_huge_unknown_message_gives_short_excerpt() -> None:
    huge = json.dumps({"type": "mystery", "blob": "x" * (16 * 1024 * 1024)})
    event = one(ClientProtocol(), huge)
    assert isinstance(event, Ignored)
    assert event.type == "mystery"
    assert event.excerpt == huge[:120]


@pytest.mark.parametrize("size", [200, 200_000], ids=["small", "beyond-scan-window"])
def test_audio_is_elided_from_excerpts_and_logs(
    size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    payload = base64.b64encode(b"\x7f" * size).decode()
    event = one(ClientProtocol(), audio("not-an-id", payload))
    assert isinstance(event, Ignored)
    assert event.excerpt.startswith('{"type": "audio", "audio_event": {"audio_base_64": "…"')
    assert payload[:16] not in event.excerpt
    assert payload[:16] not in caplog.text
    assert "event_id is not an integer" in caplog.text


def test_valid_audio_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    one(proto, audio(1))
    one(proto, interruption(1))
    one(proto, audio(1))
    assert caplog.records == []


def test_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    for _ in range(20):
        one(proto, "{bad")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5  # the 1st, 2nd, 4th, 8th and 16th
    assert len(caplog.records) == 20
    assert "(16 ignored, 16 invalid)" in warnings[-1].getMessage()


WEIRD_VALUES: list[object] = [None, 0, -1, 1.5, True, "", "x", "NaN", [], [1], {}, {"a": None}]


def leaf_paths(node: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(node, dict):
        return [path]
    return [path, *(p for k, v in node.items() for p in leaf_paths(v, (*path, k)))]


@pytest.mark.parametrize(("message", "expected"), VALID)
def test_any_field_replaced_by_junk_never_raises(message: dict[str, Any], expected: Event) -> None:
    proto = ClientProtocol()
    for path in leaf_paths(message)[1:]:
        for junk in WEIRD_VALUES:
            mutated = copy.deepcopy(message)
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = junk
            (event,) = proto.receive_text(json.dumps(mutated))
            assert isinstance(event, type(expected) | Ignored | DroppedAudio)
        for cut in range(0, len(json.dumps(message)), 7):
            assert len(proto.receive_text(json.dumps(message)[:cut])) == 1
