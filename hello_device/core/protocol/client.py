"""Sans-I/O client side of the conversation WebSocket.

:class:`ClientProtocol` turns the text of each server frame into typed events
(``receive_text`` / ``receive_bytes``) and builds the JSON text of each client message.
It owns no socket, task, clock or thread: the connection layer moves frames and owns the
timers, and tests drive this class synchronously (the split of the websockets library).

Parsing is table driven (:mod:`.parsing`). The field variants of other documentation (``tool_call``, ``is_final``, ``confidence``, server
``pong``, errors with extra fields or without an ``error_event`` wrapper) are accepted in
either dialect; the dialect only chooses the shapes of outgoing messages.

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
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from hello_device.core import boundedjson
from hello_device.core.protocol.events import (
    AgentAudio,
    ConversationMetadata,
    DroppedAudio,
    Event,
    Ignored,
    Interruption,
)
from hello_device.core.protocol.parsing import ROUTES, UNUSED, Invalid

_log = logging.getLogger(__name__)


class Dialect(StrEnum):
    """Shapes of outgoing messages: the real platform's, or the variant of other docs."""

    ELEVENLABS = "elevenlabs"
    VARIANT = "variant"


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
            message = boundedjson.loads(text)
        except boundedjson.JsonTooDeep as exc:
            return [self._malformed("", str(exc), text)]
        except ValueError:
            return [self._malformed("", "not valid JSON", text)]
        if not isinstance(message, dict):
            return [self._malformed("", "JSON value is not an object", text)]
        kind = message.get("type")
        if not isinstance(kind, str):
            return [self._malformed("", "no string type field", text)]
        route = ROUTES.get(kind)
        if route is None:
            return [self._skipped(kind, text)]
        body = message.get(route.key)
        if body is None and route.flat:
            body = message
        if not isinstance(body, dict):
            return [self._malformed(kind, f"{route.key} missing or not an object", text)]
        try:
            event = route.parse(body)
        except Invalid as exc:
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
        if kind in UNUSED:
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
