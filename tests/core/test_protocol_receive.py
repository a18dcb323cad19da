"""The sans-I/O protocol, receiving: every server message of PROTOCOL.md and its
variants to its event, unknown and unused types, and interruption bookkeeping."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from hello_device.core.protocol import (
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
from tests.conftest import DATA
from tests.core.protocol_messages import (
    ALIGNMENT,
    B64,
    LOGGER,
    PCM,
    audio,
    interruption,
    metadata,
    one,
    tool_call,
)

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


@pytest.mark.parametrize(
    "raw",
    [str(2**63), str(-(2**63) - 1), str(2**70), "1e19", "1" + "0" * 4299, "-" + "9" * 4300],
    ids=["2**63", "-2**63-1", "2**70", "1e19", "4300-digits", "negative-4300-digits"],
)
def test_integers_beyond_64_bits_are_invalid(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the fuzzer: JSON integers of up to 4,300 digits were accepted as event ids
    and codes, then repeated in full in pongs and log lines (a 4,300-character line)."""
    caplog.set_level(logging.DEBUG, LOGGER)
    proto = ClientProtocol()
    for kind, body in [("interruption", "interruption_event"), ("ping", "ping_event")]:
        event = one(proto, f'{{"type":"{kind}","{body}":{{"event_id":{raw}}}}}')
        assert isinstance(event, Ignored)
        assert event == Ignored(kind, "event_id is an integer beyond 64 bits", event.excerpt)
    error = one(proto, f'{{"type":"error","error_event":{{"code":{raw},"message":"m"}}}}')
    assert error == ServerError(None, "m", None, None)
    ping = one(proto, f'{{"type":"ping","ping_event":{{"event_id":1,"ping_ms":{raw}}}}}')
    assert ping == Ping(1, None)
    assert proto.last_interrupt_id is None
    assert all(len(r.getMessage()) < 300 for r in caplog.records)


def test_the_64_bit_extremes_are_integers() -> None:
    proto = ClientProtocol()
    assert one(proto, interruption(2**63 - 1)) == Interruption(2**63 - 1)
    assert one(proto, interruption(-(2**63))) == Interruption(-(2**63))
    assert one(proto, interruption(1e18)) == Interruption(10**18)


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
        assert isinstance(event, Ignored)
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
    spec = (DATA / "protocol" / "agent.asyncapi.yaml").read_text()
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
