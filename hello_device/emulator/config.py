"""What the emulated agent does, and what it records: configuration, faults, records."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hello_device.core.formats import AUDIO_FORMATS
from hello_device.emulator.toolschema import TOOL_NAME_RE

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------

SIGNED_URL_FORMS = ("primary", "a", "b")
DIALECTS = ("elevenlabs", "variant")
LIST_STYLES = ("cursor", "page")

CONVERSATION_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
_AGENT_RE = re.compile(r"^/v1/convai/agents/([^/]+)$")
_SIGNED_A_RE = re.compile(r"^/v1/convai/agents/([^/]+)/signed-url$")
_LINK_B_RE = re.compile(r"^/v1/convai/agents/([^/]+)/link$")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
RATE = 16_000  # internal audio: 16 kHz mono int16
FRAME = 320  # 20 ms VAD frame at 16 kHz
FRAME_S = FRAME / RATE
AGENT_CHUNK_S = 0.1  # agent audio is sent in ~100 ms chunks
REPLY_PREROLL_S = 0.1  # the parrot replays from the onset minus this
MIN_UTTERANCE_S = 0.2
ONSET_FRAMES = 3  # voiced frames in a row that confirm speech
VAD_AGGRESSIVENESS = 2
_INIT_TIMEOUT_S = 20.0  # waiting for the client's first message
_STALL_GRACE_S = 0.3  # watchdog: no audio for end_silence + this ends an utterance
_DEFAULT_MAX_DURATION_S = 600  # what the agent configuration reports when unlimited


# ---------------------------------------------------------------------------------------
# Configuration and records
# ---------------------------------------------------------------------------------------


FAULT_STAGES = ("before_metadata", "after_metadata", "user_speech", "agent_audio")
FAULT_ACTIONS = ("close", "abort", "half_open", "silence")


@dataclass(frozen=True)
class Fault:
    """A fault the emulated platform injects into a conversation, for the fault suite.

    ``stage``: ``before_metadata`` (the initiation arrived, no metadata sent yet),
    ``after_metadata``, ``user_speech`` (the emulator's VAD heard the user start) or
    ``agent_audio`` (the first chunk of a reply went out). ``action``: ``close`` with
    ``code``, ``abort`` (drop TCP without a close frame), ``half_open`` (stop reading and
    sending; TCP stays up) or ``silence`` (stop sending, keep reading: at
    ``before_metadata``, metadata never comes). It hits the first ``conversations``
    conversations, so a test sees the device recover in the next one.
    """

    stage: str
    action: str
    code: int = 1011
    reason: str = "injected fault"
    conversations: int = 1

    def __post_init__(self) -> None:
        if self.stage not in FAULT_STAGES:
            raise ValueError(f"fault stage must be one of {FAULT_STAGES}")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"fault action must be one of {FAULT_ACTIONS}")


@dataclass
class EmulatorConfig:
    """What the emulated agent does. Mutable between conversations (each one copies it)."""

    agent_id: str = "demo-agent"
    private: bool = False
    """A signed URL (``conversation_signature``) is required for the WebSocket."""
    api_key: str | None = None
    """If set, REST requires ``xi-api-key: KEY`` or ``Authorization: Bearer KEY`` (else 401)."""
    input_format: str = "pcm_16000"
    """``user_input_audio_format`` negotiated in the metadata."""
    output_format: str = "pcm_16000"
    """``agent_output_audio_format`` negotiated in the metadata."""
    first_message: str | None = None
    """Greeting text; spoken as audio too (``first_message_audio`` or a generated signal)."""
    reply: str = "parrot"
    """``"parrot"`` plays the user's utterance back; else a WAV path played as every reply."""
    first_message_audio: str | None = None
    """WAV spoken as the first message; if None and ``first_message`` is set, a short
    generated speech-like signal."""
    ping_interval_s: float = 2.0
    """Seconds between server pings; 0 = no pings."""
    interruptions: bool = True
    """Send ``interruption`` when the user talks over a reply the client is still playing."""
    end_silence_ms: int = 700
    """Silence after ≥ 200 ms of speech that ends an utterance."""
    tool_call: tuple[str, dict[str, Any]] | None = None
    """(tool_name, parameters) of a ``client_tool_call`` issued after the first user turn's
    reply."""
    send_speed: float = 4.0
    """Agent audio is sent this many times faster than real time; ≤ 0 = all at once."""
    signed_url_form: str = "primary"
    """``"primary"`` | ``"a"`` | ``"b"``: the signed-URL endpoint that works (others 404)."""
    dialect: str = "elevenlabs"
    """``"variant"``: sends ``tool_call``/``tool_call_event`` and ``is_final`` fields, answers
    a client ``ping`` with ``pong`` and accepts the variant client shapes."""
    max_duration_s: float = 0
    """> 0: close the conversation with 1000 after this many seconds."""
    language: str = "en"
    turn_timeout_s: float = 7.0
    """Reported in the agent configuration (the emulator has no turn timer of its own)."""
    strict: bool = False
    """Close 1008 on a malformed or unknown client message (as the real platform does)
    instead of logging and ignoring it."""
    energy_floor_dbfs: float = -48.0
    """Frames quieter than this never count as speech, whatever webrtcvad says."""
    signed_url_ttl_s: float = 900.0
    """Lifetime of a signed URL (they are single use too)."""
    fault: Fault | None = None
    """A fault to inject (see :class:`Fault`)."""
    metadata_delay_s: float = 0.0
    """A slow platform: the conversation's metadata comes this long after the client's
    initiation (the device meanwhile holds what the user says)."""
    extra_agents: int = 0
    """That many more agents in ``GET /v1/convai/agents`` after the configured one
    (``agent_extra_001``…, named "Lobby kiosk 1"…, every third one private), each with its
    own configuration document; conversations stay on the configured agent."""
    list_style: str = "cursor"
    """``"cursor"``: the agents list pages with ``cursor`` (``{"agents", "next_cursor",
    "has_more"}``); ``"page"``: the documented variant, ``page``/``page_size`` and
    ``{"data", "pagination"}``."""
    declared_tool_call: str | None = None
    """Name of a tool the parrot calls (``client_tool_call``, or ``tool_call`` in the variant
    dialect) after the first user turn's reply, or after ``declared_tool_after_silence_s``;
    only if a tool of that name was declared (``POST /v1/convai/tools``) and attached to the
    agent (its id in ``tool_ids``); else the emulator logs that the agent cannot call it."""
    declared_tool_parameters: dict[str, Any] = field(default_factory=dict)
    """The parameters of the ``declared_tool_call``."""
    declared_tool_after_silence_s: float = 0.0
    """> 0: call the ``declared_tool_call`` after this many seconds without user speech once
    the agent has finished speaking (once per conversation), instead of after the first
    reply."""

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first bad field."""
        if not self.agent_id:
            raise ValueError("agent_id must not be empty")
        for name in ("input_format", "output_format"):
            value = getattr(self, name)
            if value not in AUDIO_FORMATS:
                raise ValueError(f"{name} {value!r} is not one of {', '.join(AUDIO_FORMATS)}")
        if self.signed_url_form not in SIGNED_URL_FORMS:
            raise ValueError(f"signed_url_form must be one of {SIGNED_URL_FORMS}")
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}")
        if self.reply != "parrot" and not Path(self.reply).is_file():
            raise ValueError(f"reply must be 'parrot' or a WAV file; {self.reply!r} not found")
        if self.first_message_audio is not None and not Path(self.first_message_audio).is_file():
            raise ValueError(f"first_message_audio {self.first_message_audio!r} not found")
        if self.end_silence_ms < 2 * int(FRAME_S * 1000):
            raise ValueError("end_silence_ms must be at least 40")
        if min(self.ping_interval_s, self.max_duration_s, self.metadata_delay_s) < 0:
            raise ValueError(
                "ping_interval_s, max_duration_s and metadata_delay_s must not be negative"
            )
        if self.tool_call is not None and (
            not isinstance(self.tool_call[0], str) or not isinstance(self.tool_call[1], dict)
        ):
            raise ValueError("tool_call must be (name, parameters dict)")
        if isinstance(self.extra_agents, bool) or not 0 <= self.extra_agents <= 10_000:
            raise ValueError("extra_agents must be an integer from 0 to 10000")
        if self.list_style not in LIST_STYLES:
            raise ValueError(f"list_style must be one of {LIST_STYLES}")
        if self.declared_tool_call is not None and not TOOL_NAME_RE.match(self.declared_tool_call):
            raise ValueError("declared_tool_call must be a tool name ([a-zA-Z0-9_-]{1,64})")
        if not isinstance(self.declared_tool_parameters, dict):
            raise ValueError("declared_tool_parameters must be a dict")
        if self.declared_tool_after_silence_s < 0:
            raise ValueError("declared_tool_after_silence_s must not be negative")


@dataclass
class ReplyRecord:
    """One agent turn the emulator sent (or started to send)."""

    event_id: int
    kind: str
    """``first_message`` | ``parrot`` | ``wav`` | ``text``."""
    text: str
    timeline_start_s: float
    """Where, on the user-audio timeline, the client is assumed to start playing it."""
    duration_s: float
    """Length of its audio (0 for a text-only reply)."""
    sent_s: float = 0.0
    """Seconds of its audio actually sent."""
    interrupted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once it was sent completely, cut short, or dropped."""


@dataclass
class TurnRecord:
    """One turn of a conversation's transcript, as ``GET /v1/convai/conversations/{id}``
    shows it."""

    role: str
    """``user`` | ``agent``."""
    message: str
    time_in_call_secs: int
    event_id: int | None = None
    """The ``event_id`` of the agent's reply (what feedback over the socket names)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    feedback: str | None = None
    """``like`` | ``dislike`` sent over the socket for this turn."""


@dataclass
class ConversationRecord:
    """What happened on one WebSocket connection (rejected ones included)."""

    conversation_id: str
    init: dict[str, Any] | None = None
    """The ``conversation_initiation_client_data`` received."""
    first_message_type: str | None = None
    """Type of the first client message (``user_audio_chunk`` for audio, ``<binary>``,
    ``<invalid>``); must be the initiation."""
    client_messages: list[dict[str, Any]] = field(default_factory=list)
    """Every client JSON object except audio chunks, in order (invalid ones included)."""
    audio_chunks: int = 0
    chunk_sizes: list[int] = field(default_factory=list)
    """Decoded (base64) byte size of each user audio chunk, in the input format."""
    chunk_arrivals: list[float] = field(default_factory=list)
    """``time.monotonic()`` at the arrival of each chunk."""
    user_audio: bytearray = field(default_factory=bytearray)
    """All user audio, decoded to 16 kHz mono int16 little-endian."""
    utterances: list[tuple[float, float]] = field(default_factory=list)
    """(start_s, end_s) on the user-audio timeline, as found by the emulator's VAD."""
    pongs: dict[int, float] = field(default_factory=dict)
    """Ping event_id -> round-trip seconds."""
    pong_ids: list[int] = field(default_factory=list)
    """The event_id of every pong, in order (raw pings sent by a test included)."""
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    interruptions_sent: list[int] = field(default_factory=list)
    """event_id of each ``interruption`` sent."""
    agent_audio_sent_s: float = 0.0
    close_code: int | None = None
    close_reason: str = ""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the connection is closed."""
    # Beyond the minimum:
    agent_id: str = ""
    """The ``agent_id`` the client asked for."""
    initiated: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once ``conversation_initiation_metadata`` was sent."""
    interruption_times: list[float] = field(default_factory=list)
    """User-audio timeline position (s) of the speech onset behind each interruption."""
    replies: list[ReplyRecord] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)
    """("user" | "agent", text) in order."""
    malformed: list[str] = field(default_factory=list)
    """Why each ignored client message was rejected."""
    started_at: float | None = None
    """``time.time()`` when the metadata was sent (None: the conversation was refused)."""
    ended_at: float | None = None
    """``time.time()`` when the connection closed."""
    turns: list[TurnRecord] = field(default_factory=list)
    """The transcript the conversation endpoints show (see :class:`TurnRecord`)."""
    feedback: str | None = None
    """``like`` | ``dislike`` posted after the call (``POST …/feedback``)."""

    def add_turn(self, role: str, message: str, event_id: int | None = None) -> TurnRecord:
        """Append a transcript turn, timed from the start of the call."""
        since = time.time() - self.started_at if self.started_at is not None else 0.0
        turn = TurnRecord(role, message, max(0, int(since)), event_id)
        self.turns.append(turn)
        return turn

    @property
    def user_audio_s(self) -> float:
        """Seconds of user audio received (the timeline's current position)."""
        return len(self.user_audio) / 2 / RATE


@dataclass
class RestRecord:
    """One REST request. Secret header values are masked."""

    method: str
    path: str
    """Path with its query string."""
    headers: dict[str, str]
    status: int
    time: float = 0.0
    """``time.monotonic()`` when it was answered."""
    body: Any = None
    """The request body, JSON-decoded (None when empty or not JSON)."""


@dataclass
class _RestFailure:
    status: int
    times: int
    retry_after: float | None
    body: str | None
    content_type: str
