"""Server message -> event, table driven (pure).

``ROUTES`` maps each server ``type`` to the key of its payload object and a small parser;
the parsers read fields through two helpers:

* ``_req`` for values an event cannot do without (audio, event ids that drive
  interruption, tool names): missing, null or wrongly typed makes the whole message an
  :class:`~hello_device.core.protocol.events.Ignored`;
* ``_opt`` for everything else: absent, null or wrongly typed reads as ``None``.

Event ids are also accepted as numeric strings; every integer must fit in 64 bits.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from hello_device.core.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    ClientToolCall,
    ConversationMetadata,
    Event,
    Interruption,
    Ping,
    Pong,
    ServerError,
    TentativeAgentResponse,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)

_T = TypeVar("_T")
_Body = Mapping[str, Any]

# ---------------------------------------------------------------------------------------
# Field readers


class Invalid(Exception):
    """A needed field is missing or wrongly typed (never leaves this module)."""


_INT_TEXT = re.compile(r"-?[0-9]{1,18}")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
"""Integers (event ids, codes, milliseconds) are 64-bit: JSON allows 4,300 digits, which
would come back in every pong and log line that repeats them."""


def _string(value: object) -> str:
    if isinstance(value, str):
        return value
    raise Invalid("not a string")


def _integer(value: object) -> int:
    number = _integral(value)
    if not _INT_MIN <= number <= _INT_MAX:
        raise Invalid("an integer beyond 64 bits")
    return number


def _integral(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    raise Invalid("not an integer")


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer too large for a float
            raise Invalid("not a finite number") from None
        if math.isfinite(number):
            return number
    raise Invalid("not a finite number")


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise Invalid("not a boolean")


def _object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise Invalid("not an object")


def _base64(value: object) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            pass
    raise Invalid("not valid base64")


def _req(body: _Body, key: str, convert: Callable[[object], _T]) -> _T:
    value = body.get(key)
    if value is None:
        raise Invalid(f"missing {key}")
    try:
        return convert(value)
    except Invalid as exc:
        raise Invalid(f"{key} is {exc}") from None


def _opt(body: _Body, key: str, convert: Callable[[object], _T]) -> _T | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return convert(value)
    except Invalid:
        return None


# ---------------------------------------------------------------------------------------
# Parsers: payload object -> event


def _metadata(b: _Body) -> Event:
    return ConversationMetadata(
        conversation_id=_req(b, "conversation_id", _string),
        agent_output_audio_format=_req(b, "agent_output_audio_format", _string),
        user_input_audio_format=_req(b, "user_input_audio_format", _string),
    )


def _audio(b: _Body) -> Event:
    return AgentAudio(
        event_id=_req(b, "event_id", _integer),
        audio=_req(b, "audio_base_64", _base64),
        alignment=_opt(b, "alignment", _object),
        is_final=_opt(b, "is_final", _boolean),
    )


def _interruption(b: _Body) -> Event:
    return Interruption(event_id=_req(b, "event_id", _integer))


def _ping(b: _Body) -> Event:
    return Ping(event_id=_req(b, "event_id", _integer), ping_ms=_opt(b, "ping_ms", _integer))


def _pong(b: _Body) -> Event:
    return Pong(event_id=_opt(b, "event_id", _integer))


def _agent_response(b: _Body) -> Event:
    return AgentResponse(
        text=_req(b, "agent_response", _string), event_id=_opt(b, "event_id", _integer)
    )


def _correction(b: _Body) -> Event:
    return AgentResponseCorrection(
        original=_req(b, "original_agent_response", _string),
        corrected=_req(b, "corrected_agent_response", _string),
        event_id=_opt(b, "event_id", _integer),
    )


def _user_transcript(b: _Body) -> Event:
    return UserTranscript(
        text=_req(b, "user_transcript", _string),
        event_id=_opt(b, "event_id", _integer),
        is_final=_opt(b, "is_final", _boolean),
        confidence=_opt(b, "confidence", _number),
    )


def _tentative_user_transcript(b: _Body) -> Event:
    return TentativeUserTranscript(
        text=_req(b, "user_transcript", _string), event_id=_opt(b, "event_id", _integer)
    )


def _tentative_agent_response(b: _Body) -> Event:
    return TentativeAgentResponse(text=_req(b, "tentative_agent_response", _string))


def _chat_part(b: _Body) -> Event:
    return AgentChatResponsePart(
        text=_opt(b, "text", _string) or "",  # empty on start/stop parts
        part_type=_req(b, "type", _string),
        event_id=_opt(b, "event_id", _integer),
    )


def _tool_call(b: _Body) -> Event:
    return ClientToolCall(
        tool_name=_req(b, "tool_name", _string),
        tool_call_id=_req(b, "tool_call_id", _string),
        # No parameters means none; parameters of the wrong type must not run the tool.
        parameters=_req(b, "parameters", _object) if b.get("parameters") is not None else {},
        expects_response=_opt(b, "expects_response", _boolean) is not False,
        event_id=_opt(b, "event_id", _integer),
    )


def _vad_score(b: _Body) -> Event:
    return VadScore(score=_req(b, "vad_score", _number))


def _error(b: _Body) -> Event:
    return ServerError(
        code=_opt(b, "code", _integer),
        message=_opt(b, "message", _string) or "",
        error_type=_opt(b, "error_type", _string),
        reason=_opt(b, "reason", _string),
    )


class _Route(NamedTuple):
    key: str  # the payload object's key in the message
    parse: Callable[[_Body], Event]
    flat: bool = False  # without the payload object, read fields from the message itself


ROUTES: dict[str, _Route] = {
    "conversation_initiation_metadata": _Route("conversation_initiation_metadata_event", _metadata),
    "audio": _Route("audio_event", _audio),
    "interruption": _Route("interruption_event", _interruption),
    "ping": _Route("ping_event", _ping),
    "pong": _Route("pong_event", _pong, flat=True),
    "agent_response": _Route("agent_response_event", _agent_response),
    "agent_response_correction": _Route("agent_response_correction_event", _correction),
    "user_transcript": _Route("user_transcription_event", _user_transcript),
    "tentative_user_transcript": _Route(
        "tentative_user_transcription_event", _tentative_user_transcript
    ),
    "internal_tentative_agent_response": _Route(
        "tentative_agent_response_internal_event", _tentative_agent_response
    ),
    "agent_chat_response_part": _Route("text_response_part", _chat_part),
    "client_tool_call": _Route("client_tool_call", _tool_call),
    "tool_call": _Route("tool_call_event", _tool_call),
    "vad_score": _Route("vad_score_event", _vad_score),
    "error": _Route("error_event", _error, flat=True),
}

# Server types of agent.asyncapi.yaml that a device has no use for.
UNUSED = frozenset(
    {
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
    }
)
