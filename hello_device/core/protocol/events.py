"""Typed events produced from the conversation WebSocket's server messages.

One frozen dataclass per server message the device acts on, plus three that the client
synthesises itself:

* :class:`Ignored` stands for every message that was skipped: a type the device does not
  use, an unknown type, or input that could not be understood (bad JSON, a binary frame,
  a missing or wrongly typed field). It carries a short, audio-free excerpt for logs.
* :class:`DroppedAudio` replaces an :class:`AgentAudio` whose ``event_id`` belongs to a
  turn the server has already interrupted.
* :class:`Pong` is the variant dialect's answer to a client ``ping``.

Field names follow the device's vocabulary, not the wire's (``text`` rather than
``agent_response``); ``client.py`` holds the mapping. Events hold plain values only, so
they can be compared in tests and passed between tasks freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class ConversationMetadata:
    """First server message: the conversation's id and the audio formats in force."""

    conversation_id: str
    agent_output_audio_format: str
    user_input_audio_format: str


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A chunk of agent speech; ``audio`` is decoded from base64 but still in the
    negotiated ``agent_output_audio_format`` (pcm_* or ulaw_8000)."""

    event_id: int
    audio: bytes
    alignment: dict[str, Any] | None
    is_final: bool | None

    def __repr__(self) -> str:  # never dump audio into logs
        return (
            f"AgentAudio(event_id={self.event_id}, audio=<{len(self.audio)} bytes>, "
            f"alignment={'yes' if self.alignment else None}, is_final={self.is_final})"
        )


@dataclass(frozen=True, slots=True)
class Interruption:
    """The user talked over the agent: stop playback, drop audio with ``event_id`` <= this."""

    event_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Server keep-alive; answer at once with ``ClientProtocol.pong(event_id)``."""

    event_id: int
    ping_ms: int | None


@dataclass(frozen=True, slots=True)
class Pong:
    """Variant dialect: the server's answer to a client ``ping``."""

    event_id: int | None


@dataclass(frozen=True, slots=True)
class AgentResponse:
    """The agent's text for a turn."""

    text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class AgentResponseCorrection:
    """After an interruption: what the agent actually got to say."""

    original: str
    corrected: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class UserTranscript:
    """What the server heard the user say (``is_final``/``confidence``: variant fields)."""

    text: str
    event_id: int | None
    is_final: bool | None
    confidence: float | None


@dataclass(frozen=True, slots=True)
class TentativeUserTranscript:
    """In-progress transcription; may still change."""

    text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class TentativeAgentResponse:
    """The agent's response as it is being generated (internal, optional)."""

    text: str


@dataclass(frozen=True, slots=True)
class AgentChatResponsePart:
    """Streaming text chunk; ``part_type`` is "start", "delta" or "stop"."""

    text: str
    part_type: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class ClientToolCall:
    """The agent asks the device to run a tool (``client_tool_call`` or variant ``tool_call``).

    Answer with ``ClientProtocol.tool_result`` when ``expects_response`` is true.
    """

    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any]
    expects_response: bool
    event_id: int | None


@dataclass(frozen=True, slots=True)
class VadScore:
    """The server's voice-activity score, 0..1."""

    score: float


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` message; ``code`` is a WebSocket close code (1000/1002/1008/1011)."""

    code: int | None
    message: str
    error_type: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that produced no useful event.

    ``type`` is the message's ``type`` when it had one, else ""; ``reason`` says why it was
    skipped; ``excerpt`` is at most 120 characters of the raw text with audio elided.
    """

    type: str
    reason: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class DroppedAudio:
    """Agent audio discarded because its ``event_id`` <= the last interruption's."""

    event_id: int


Event: TypeAlias = (
    ConversationMetadata
    | AgentAudio
    | Interruption
    | Ping
    | Pong
    | AgentResponse
    | AgentResponseCorrection
    | UserTranscript
    | TentativeUserTranscript
    | TentativeAgentResponse
    | AgentChatResponsePart
    | ClientToolCall
    | VadScore
    | ServerError
    | Ignored
    | DroppedAudio
)
