"""Unit tests of the sans-I/O protocol: server text in -> events out, builders -> JSON out."""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from hello_device.protocol import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    ClientProtocol,
    ClientToolCall,
    ConversationMetadata,
    Dialect,
    DroppedAudio,
    Event,
    Ignored,
    Interruption,
    Ping,
    Pong,
    ServerError,
    TentativeAgentResponse,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)

PCM = bytes(range(256)) * 4
B64 = base64.b64encode(PCM).decode()
ALIGNMENT = {"chars": ["h", "i"], "char_start_times_ms": [0, 50], "char_durations_ms": [50, 50]}
LOGGER = "hello_device.protocol.client"


def one(proto: ClientProtocol, message: object) -> Event:
    """Feed one message (a dict is JSON-encoded first) and return its single event."""
    text = message if isinstance(message, str) else json.dumps(message)
    events = proto.receive_text(text)
    assert len(events) == 1
    return events[0]


def audio(event_id: object, payload: str = B64) -> dict[str, Any]:
    return {"type": "audio", "audio_event": {"audio_base_64": payload, "event_id": event_id}}


def interruption(event_id: object) -> dict[str, Any]:
    return {"type": "interruption", "interruption_event": {"event_id": event_id}}


def metadata(conversation_id: str = "conv_1") -> dict[str, Any]:
    return {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": conversation_id,
            "agent_output_audio_format": "pcm_24000",
            "user_input_audio_format": "ulaw_8000",
        },
    }


def tool_call(kind: str, key: str, **extra: object) -> dict[str, Any]:
    body = {"tool_name": "set_volume", "tool_call_id": "t1", "parameters": {"level": 3}}
    return {"type": kind, key: body | extra}


# ---------------------------------------------------------------------------------------
# Every server message of PROTOCOL.md and its variants

VALID: list[Any] = [
    pytest.param(metadata(), ConversationMetadata("conv_1", "pcm_24000", "ulaw_8000"), id="meta"),
    pytest.param(audio(7), AgentAudio(7, PCM, None, None), id="audio"),
    pytest.param(
        {
            "type": "audio",
            "audio_event": {
                "audio_base_64": B64,
                "event_id": "8",
                "alignment": ALIGNMENT,
                "is_final": True,
            },
        },
        AgentAudio(8, PCM, ALIGNMENT, True),
        id="audio-alignment-is_final-string-id",
    ),
    pytest.param(audio(1, ""), AgentAudio(1, b"", None, None), id="audio-empty"),
    pytest.param(interruption(4), Interruption(4), id="interruption"),
    pytest.param(
        {"type": "ping", "ping_event": {"event_id": 3, "ping_ms": 42}}, Ping(3, 42), id="ping"
    ),
    pytest.param(
        {"type": "ping", "ping_event": {"event_id": 3, "ping_ms": None}},
        Ping(3, None),
        id="ping-null",
    ),
    pytest.param({"type": "ping", "ping_event": {"event_id": 3}}, Ping(3, None), id="ping-bare"),
    pytest.param({"type": "pong"}, Pong(None), id="pong-bare"),
    pytest.param({"type": "pong", "event_id": 5}, Pong(5), id="pong-flat"),
    pytest.param({"type": "pong", "pong_event": {"event_id": "6"}}, Pong(6), id="pong-nested"),
    pytest.param(
        {"type": "agent_response", "agent_response_event": {"agent_response": "Hi", "event_id": 2}},
        AgentResponse("Hi", 2),
        id="agent_response",
    ),
    pytest.param(
        {
            "type": "agent_response_correction",
            "agent_response_correction_event": {
                "original_agent_response": "Hello there, how",
                "corrected_agent_response": "Hello there",
                "event_id": 9,
            },
        },
        AgentResponseCorrection("Hello there, how", "Hello there", 9),
        id="correction",
    ),
    pytest.param(
        {
            "type": "agent_response_correction",
            "agent_response_correction_event": {
                "original_agent_response": "a b",
                "corrected_agent_response": "a",
            },
        },
        AgentResponseCorrection("a b", "a", None),
        id="correction-no-id",
    ),
    pytest.param(
        {"type": "user_transcript", "user_transcription_event": {"user_transcript": "hey"}},
        UserTranscript("hey", None, None, None),
        id="user_transcript",
    ),
    pytest.param(
        {
            "type": "user_transcript",
            "user_transcription_event": {
                "user_transcript": "hey",
                "event_id": 1,
                "is_final": False,
                "confidence": 0.75,
            },
        },
        UserTranscript("hey", 1, False, 0.75),
        id="user_transcript-variant",
    ),
    pytest.param(
        {
            "type": "user_transcript",
            "user_transcription_event": {"user_transcript": "x", "confidence": 1},
        },
        UserTranscript("x", None, None, 1.0),
        id="user_transcript-int-confidence",
    ),
    pytest.param(
        {
            "type": "tentative_user_transcript",
            "tentative_user_transcription_event": {"user_transcript": "he", "event_id": 1},
        },
        TentativeUserTranscript("he", 1),
        id="tentative_user_transcript",
    ),
    pytest.param(
        {
            "type": "internal_tentative_agent_response",
            "tentative_agent_response_internal_event": {"tentative_agent_response": "Sure"},
        },
        TentativeAgentResponse("Sure"),
        id="tentative_agent_response",
    ),
    pytest.param(
        {
            "type": "agent_chat_response_part",
            "text_response_part": {"text": "Hel", "type": "delta", "event_id": 3},
        },
        AgentChatResponsePart("Hel", "delta", 3),
        id="chat_part",
    ),
    pytest.param(
        {"type": "agent_chat_response_part", "text_response_part": {"type": "start"}},
        AgentChatResponsePart("", "start", None),
        id="chat_part-start",
    ),
    pytest.param(
        tool_call("client_tool_call", "client_tool_call", event_id=4),
        ClientToolCall("set_volume", "t1", {"level": 3}, True, 4),
        id="client_tool_call",
    ),
    pytest.param(
        tool_call("client_tool_call", "client_tool_call", expects_response=False),
        ClientToolCall("set_volume", "t1", {"level": 3}, False, None),
        id="client_tool_call-no-response",
    ),
    pytest.param(
        {"type": "client_tool_call", "client_tool_call": {"tool_name": "n", "tool_call_id": "i"}},
        ClientToolCall("n", "i", {}, True, None),
        id="client_tool_call-no-parameters",
    ),
    pytest.param(
        tool_call("tool_call", "tool_call_event"),
        ClientToolCall("set_volume", "t1", {"level": 3}, True, None),
        id="tool_call-variant",
    ),
    pytest.param(
        {"type": "vad_score", "vad_score_event": {"vad_score": 0.5}}, VadScore(0.5), id="vad"
    ),
    pytest.param(
        {"type": "vad_score", "vad_score_event": {"vad_score": 1}}, VadScore(1.0), id="vad-int"
    ),
    pytest.param(
        {
            "type": "error",
            "error_event": {
                "code": 1008,
                "message": "override not allowed",
                "error_type": "override_error",
                "reason": "bad override",
                "debug_message": "tts.voice_id",
                "details": {"field": "tts"},
            },
        },
        ServerError(1008, "override not allowed", "override_error", "bad override"),
        id="error-extra-fields",
    ),
    pytest.param(
        {"type": "error", "error_event": {"code": 1011}},
        ServerError(1011, "", None, None),
        id="error-code-only",
    ),
    pytest.param(
        {"type": "error", "code": "1002", "message": "llm timeout"},
        ServerError(1002, "llm timeout", None, None),
        id="error-flat",
    ),
]


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize(("message", "expected"), VALID)
def test_valid_messages(dialect: Dialect, message: dict[str, Any], expected: Event) -> None:
    proto = ClientProtocol(dialect)
    assert proto.receive_text(json.dumps(message)) == [expected]
    assert proto.ignored_count == 0


def test_both_tool_call_shapes_give_the_same_event() -> None:
    proto = ClientProtocol()
    real = one(proto, tool_call("client_tool_call", "client_tool_call"))
    variant = one(proto, tool_call("tool_call", "tool_call_event"))
    assert real == variant
    assert type(real) is ClientToolCall


def test_metadata_sets_conversation_attributes() -> None:
    proto = ClientProtocol()
    assert proto.conversation_id is None
    one(proto, metadata("conv_9"))
    assert proto.conversation_id == "conv_9"
    assert proto.agent_output_audio_format == "pcm_24000"
    assert proto.user_input_audio_format == "ulaw_8000"


@pytest.mark.parametrize(("value", "expected"), [(12, 12), ("12", 12), (12.0, 12), ("-3", -3)])
def test_event_id_forms_accepted(value: object, expected: int) -> None:
    assert one(ClientProtocol(), interruption(value)) == Interruption(expected)


def test_wrongly_typed_optional_fields_read_as_none() -> None:
    message = audio(3)
    message["audio_event"] |= {"alignment": "junk", "is_final": "yes"}
    assert one(ClientProtocol(), message) == AgentAudio(3, PCM, None, None)
    transcript = {
        "type": "user_transcript",
        "user_transcription_event": {"user_transcript": "a", "event_id": "x", "confidence": "hi"},
    }
    assert one(ClientProtocol(), transcript) == UserTranscript("a", None, None, None)


def test_agent_audio_repr_hides_the_payload() -> None:
    text = repr(AgentAudio(1, PCM, None, True))
    assert "1024 bytes" in text
    assert "\\x00" not in text


# ---------------------------------------------------------------------------------------
# Types the device does not use, unknown types, and the contract file


UNUSED = [
    "agent_reasoning_response_part",
    "rich_content",
    "agent_tool_request",
    "agent_tool_response",
    "agent_tool_response_full_payload",
    "mcp_tool_call",
    "mcp_connection_status",
    "context_usage",
    "asr_initiation_metadata",
    "guardrail_triggered",
    "internal_turn_probability",
    "agent_typing",
    "external_agent_connected",
    "external_agent_disconnected",
]


@pytest.mark.parametrize("kind", UNUSED)
def test_unused_types_are_ignored_quietly(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    event = one(proto, {"type": kind, f"{kind}_event": {"x": 1}})
    assert isinstance(event, Ignored)
    assert (event.type, event.reason) == (kind, "not used by the device")
    assert (proto.ignored_count, proto.malformed_count) == (1, 0)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_unknown_type_logged_at_info_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    for _ in range(3):
        event = one(proto, {"type": "brand_new_event", "brand_new_event": {}})
        assert event == Ignored("brand_new_event", "unknown type", event.excerpt)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert (proto.ignored_count, proto.malformed_count) == (3, 0)


def test_unknown_type_names_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    event = one(proto, {"type": "t" * 100_000})
    assert isinstance(event, Ignored)
    assert event.type == "t" * 120
    for i in range(100):
        one(proto, {"type": f"new_{i}"})
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 64  # names remembered for the INFO-once log are capped too


def contract_server_types() -> list[str]:
    shared = os.environ.get("HELLO_DEVICE_SHARED") or Path(__file__).resolve().parents[2] / "shared"
    spec = (Path(shared) / "protocol" / "agent.asyncapi.yaml").read_text()
    block = re.search(
        r"\n    ClientEvent:\n      type: string\n      enum:\n((?:\s+- \w+\n)+)", spec
    )
    assert block, "ClientEvent enum not found in the contract"
    return [*re.findall(r"- (\w+)", block.group(1)), "error"]


def test_every_contract_server_type_is_known() -> None:
    types = contract_server_types()
    assert len(types) > 20
    proto = ClientProtocol()
    for kind in types:
        event = one(proto, {"type": kind})
        assert not (isinstance(event, Ignored) and event.reason == "unknown type"), kind


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
    pytest.param("[" * 100_000, "", "not valid JSON", id="deep-nesting"),
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


# ---------------------------------------------------------------------------------------
# Interruption bookkeeping


def test_audio_plays_before_any_interruption() -> None:
    proto = ClientProtocol()
    assert proto.last_interrupt_id is None
    assert proto.should_play(0)
    assert one(proto, audio(0)) == AgentAudio(0, PCM, None, None)


def test_audio_up_to_the_interruption_id_is_dropped() -> None:
    proto = ClientProtocol()
    assert one(proto, audio(4)) == AgentAudio(4, PCM, None, None)
    assert one(proto, interruption(5)) == Interruption(5)
    assert proto.last_interrupt_id == 5
    assert one(proto, audio(4)) == DroppedAudio(4)
    assert one(proto, audio("5")) == DroppedAudio(5)
    assert one(proto, audio(6)) == AgentAudio(6, PCM, None, None)
    assert proto.dropped_audio_events == 2
    assert (proto.should_play(5), proto.should_play(6)) == (False, True)


def test_last_interrupt_id_is_the_highest_seen() -> None:
    proto = ClientProtocol()
    one(proto, interruption(9))
    assert one(proto, interruption(3)) == Interruption(3)  # reported, but does not lower it
    assert proto.last_interrupt_id == 9
    assert isinstance(one(proto, audio(8)), DroppedAudio)
    one(proto, interruption("12"))
    assert proto.last_interrupt_id == 12
    assert isinstance(one(proto, audio(10)), DroppedAudio)
    assert isinstance(one(proto, audio(13)), AgentAudio)


def test_reset_starts_a_new_conversation() -> None:
    proto = ClientProtocol()
    one(proto, metadata())
    one(proto, interruption(5))
    one(proto, audio(2))
    one(proto, "junk")
    proto.reset()
    assert proto.conversation_id is None
    assert proto.agent_output_audio_format is None
    assert proto.user_input_audio_format is None
    assert proto.last_interrupt_id is None
    assert (proto.dropped_audio_events, proto.ignored_count, proto.malformed_count) == (0, 0, 0)
    assert isinstance(one(proto, audio(2)), AgentAudio)


def test_metadata_of_another_conversation_clears_interruption_state() -> None:
    proto = ClientProtocol()
    one(proto, metadata("conv_1"))
    one(proto, interruption(5))
    one(proto, metadata("conv_1"))  # repeated: same conversation, state kept
    assert proto.last_interrupt_id == 5
    one(proto, metadata("conv_2"))
    assert proto.last_interrupt_id is None
    assert isinstance(one(proto, audio(1)), AgentAudio)


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
