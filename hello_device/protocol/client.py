"""Sans-I/O client side of the conversation WebSocket.

:class:`ClientProtocol` turns the text of each server frame into typed events
(``receive_text`` / ``receive_bytes``) and builds the JSON text of each client message.
It owns no socket, task, clock or thread: the connection layer moves frames and owns the
timers, and tests drive this class synchronously (the split of the websockets library).

Parsing is table driven: ``_ROUTES`` maps each server ``type`` to the key of its payload
object and a small parser; the parsers read fields through two helpers:

* ``_req`` for values an event cannot do without (audio, event ids that drive
  interruption, tool names): missing, null or wrongly typed makes the whole message an
  :class:`Ignored`;
* ``_opt`` for everything else: absent, null or wrongly typed reads as ``None``.

Event ids are also accepted as numeric strings. The field variants of other
documentation (``tool_call``, ``is_final``, ``confidence``, server ``pong``, errors with
extra fields or without an ``error_event`` wrapper) are accepted in either dialect; the
dialect only chooses the shapes of outgoing messages.

``receive_*`` never raise. Input that cannot be understood becomes :class:`Ignored` and is
logged at WARNING on the 1st, 2nd, 4th, 8th… occurrence (DEBUG otherwise), so a
misbehaving server cannot flood the journal; server types the device does not use are
logged at DEBUG; an unknown type at INFO the first time it is seen. Logs carry at most a
120-character excerpt with base64 audio elided, never an audio payload.

Interruption bookkeeping lives here too: agent audio whose ``event_id`` is not above the
highest interruption id seen becomes :class:`DroppedAudio`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Literal, NamedTuple, TypeVar

from hello_device.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    ClientToolCall,
    ConversationMetadata,
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

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
_Body = Mapping[str, Any]


class Dialect(StrEnum):
    """Shapes of outgoing messages: the real platform's, or the variant of other docs."""

    ELEVENLABS = "elevenlabs"
    VARIANT = "variant"


# ---------------------------------------------------------------------------------------
# Field readers


class _Invalid(Exception):
    """A needed field is missing or wrongly typed (never leaves this module)."""


_INT_TEXT = re.compile(r"-?[0-9]{1,18}")


def _string(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("not a string")


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    raise _Invalid("not an integer")


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer too large for a float
            raise _Invalid("not a finite number") from None
        if math.isfinite(number):
            return number
    raise _Invalid("not a finite number")


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("not a boolean")


def _object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _Invalid("not an object")


def _base64(value: object) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            pass
    raise _Invalid("not valid base64")


def _req(body: _Body, key: str, convert: Callable[[object], _T]) -> _T:
    value = body.get(key)
    if value is None:
        raise _Invalid(f"missing {key}")
    try:
        return convert(value)
    except _Invalid as exc:
        raise _Invalid(f"{key} is {exc}") from None


def _opt(body: _Body, key: str, convert: Callable[[object], _T]) -> _T | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return convert(value)
    except _Invalid:
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


_ROUTES: dict[str, _Route] = {
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
_UNUSED = frozenset(
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

_EXCERPT_CHARS = 120
_EXCERPT_SCAN = 1 << 16  # elide audio within this prefix only: huge messages stay cheap
_AUDIO_VALUE = re.compile(r'("(?:audio_base_64|user_audio_chunk|audio)"\s*:\s*")[^"]*"?')
_MAX_UNKNOWN_TYPES = 64  # unknown type names remembered for the INFO-once log


def _excerpt(raw: str) -> str:
    return _AUDIO_VALUE.sub(r'\1…"', raw[:_EXCERPT_SCAN])[:_EXCERPT_CHARS]


def _dumps(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


# ---------------------------------------------------------------------------------------


class ClientProtocol:
    """Server frames in, events out; client messages out as JSON text.

    Attributes (read them, do not set them): ``conversation_id`` and the negotiated
    ``agent_output_audio_format`` / ``user_input_audio_format`` once metadata arrived;
    ``last_interrupt_id``; counters ``dropped_audio_events``, ``ignored_count`` (every
    :class:`Ignored`) and ``malformed_count`` (the subset that could not be understood).
    """

    conversation_id: str | None
    agent_output_audio_format: str | None
    user_input_audio_format: str | None
    last_interrupt_id: int | None
    dropped_audio_events: int
    ignored_count: int
    malformed_count: int

    def __init__(self, dialect: Dialect | str = Dialect.ELEVENLABS) -> None:
        self.dialect = Dialect(dialect)
        self._variant = self.dialect is Dialect.VARIANT
        self._audio_prefix = (
            '{"type":"audio","audio":"' if self._variant else '{"user_audio_chunk":"'
        )
        self._audio_prefix_bytes = self._audio_prefix.encode()
        self.reset()

    def reset(self) -> None:
        """Forget everything about the current conversation, counters included."""
        self.conversation_id = None
        self.agent_output_audio_format = None
        self.user_input_audio_format = None
        self.last_interrupt_id = None
        self.dropped_audio_events = 0
        self.ignored_count = 0
        self.malformed_count = 0
        self._unknown_types: set[str] = set()

    def should_play(self, event_id: int) -> bool:
        """False for audio of a turn the server has interrupted."""
        return self.last_interrupt_id is None or event_id > self.last_interrupt_id

    # -- receiving -----------------------------------------------------------------------

    def receive_text(self, text: str) -> list[Event]:
        """Parse one text frame. Never raises: bad input becomes :class:`Ignored`."""
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return [self._malformed("", "not valid JSON", text)]
        if not isinstance(message, dict):
            return [self._malformed("", "JSON value is not an object", text)]
        kind = message.get("type")
        if not isinstance(kind, str):
            return [self._malformed("", "no string type field", text)]
        route = _ROUTES.get(kind)
        if route is None:
            return [self._skipped(kind, text)]
        body = message.get(route.key)
        if body is None and route.flat:
            body = message
        if not isinstance(body, dict):
            return [self._malformed(kind, f"{route.key} missing or not an object", text)]
        try:
            event = route.parse(body)
        except _Invalid as exc:
            return [self._malformed(kind, str(exc), text)]
        return [self._track(event)]

    def receive_bytes(self, data: bytes) -> list[Event]:
        """Binary frames are not part of the protocol: always :class:`Ignored`."""
        return [self._malformed("", f"binary frame of {len(data)} bytes", "")]

    def _track(self, event: Event) -> Event:
        match event:
            case ConversationMetadata():
                if event.conversation_id != self.conversation_id:
                    self.last_interrupt_id = None  # ids start again in a new conversation
                self.conversation_id = event.conversation_id
                self.agent_output_audio_format = event.agent_output_audio_format
                self.user_input_audio_format = event.user_input_audio_format
            case Interruption(event_id=event_id):
                if self.last_interrupt_id is None or event_id > self.last_interrupt_id:
                    self.last_interrupt_id = event_id
            case AgentAudio(event_id=event_id) if not self.should_play(event_id):
                self.dropped_audio_events += 1
                return DroppedAudio(event_id)
        return event

    def _malformed(self, kind: str, reason: str, raw: str) -> Ignored:
        self.malformed_count += 1
        n = self.malformed_count
        return self._ignore(
            logging.WARNING if n & (n - 1) == 0 else logging.DEBUG, kind, reason, raw
        )

    def _skipped(self, kind: str, raw: str) -> Ignored:
        kind = kind[:_EXCERPT_CHARS]  # a server-chosen name is kept, so bound its size
        if kind in _UNUSED:
            return self._ignore(logging.DEBUG, kind, "not used by the device", raw)
        first = kind not in self._unknown_types and len(self._unknown_types) < _MAX_UNKNOWN_TYPES
        if first:
            self._unknown_types.add(kind)
        return self._ignore(logging.INFO if first else logging.DEBUG, kind, "unknown type", raw)

    def _ignore(self, level: int, kind: str, reason: str, raw: str) -> Ignored:
        self.ignored_count += 1
        event = Ignored(kind, reason, _excerpt(raw))
        _log.log(
            level,
            "ignored server message %.40r: %s (%d ignored, %d invalid); excerpt %r",
            kind,
            reason,
            self.ignored_count,
            self.malformed_count,
            event.excerpt,
        )
        return event

    # -- sending -------------------------------------------------------------------------

    def initiation(
        self,
        dynamic_variables: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        source_info: Mapping[str, Any] | None = None,
        custom_llm_extra_body: Mapping[str, Any] | None = None,
        user_id: str | None = None,
    ) -> str:
        """First client message; empty parts are left out, ``dynamic_variables`` never."""
        optional = {
            "conversation_config_override": overrides,
            "custom_llm_extra_body": custom_llm_extra_body,
            "source_info": source_info,
            "user_id": user_id,
        }
        message: dict[str, Any] = {
            "type": "conversation_initiation_client_data",
            "dynamic_variables": dict(dynamic_variables),
        }
        message.update(
            (key, dict(value) if isinstance(value, Mapping) else value)
            for key, value in optional.items()
            if value
        )
        return _dumps(message)

    def user_audio(self, chunk: bytes) -> str:
        """One microphone chunk, already in ``user_input_audio_format`` (hot path)."""
        return self._audio_prefix + base64.b64encode(chunk).decode("ascii") + '"}'

    def user_audio_bytes(self, chunk: bytes) -> bytes:
        """:meth:`user_audio` as UTF-8 bytes, built without a detour through ``str``."""
        return self._audio_prefix_bytes + binascii.b2a_base64(chunk, newline=False) + b'"}'

    def pong(self, event_id: int) -> str:
        return _dumps({"type": "pong", "event_id": event_id})

    def tool_result(self, tool_call_id: str, result: object, is_error: bool) -> str:
        """``result`` goes out as a string: str as is, None as "", anything else as JSON."""
        if not isinstance(result, str):
            result = (
                "" if result is None else json.dumps(result, separators=(",", ":"), default=str)
            )
        return _dumps(
            {
                "type": "client_tool_result",
                "tool_call_id": tool_call_id,
                "result": result,
                "is_error": is_error,
            }
        )

    def contextual_update(self, text: str) -> str:
        return _dumps({"type": "contextual_update", "text": text})

    def user_message(self, text: str) -> str:
        return _dumps({"type": "user_input" if self._variant else "user_message", "text": text})

    def user_activity(self) -> str:
        return _dumps({"type": "user_activity"})

    def feedback(self, event_id: int, score: Literal["like", "dislike"] | None) -> str:
        """Rate the agent response ``event_id``; ``None`` clears the rating."""
        return _dumps({"type": "feedback", "event_id": event_id, "score": score})

    def client_interruption(self) -> str | None:
        """Variant only: tell the server the device detected barge-in."""
        return _dumps({"type": "interruption"}) if self._variant else None

    def keepalive(self) -> str | None:
        """Variant only: a client ping (answered by :class:`Pong`)."""
        return _dumps({"type": "ping"}) if self._variant else None
