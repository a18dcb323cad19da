"""A local agent server for demos and tests: the platform's REST subset and conversation socket.

One loopback port serves both surfaces of an ElevenLabs-compatible Agents Platform, written
from ``shared/PROTOCOL.md`` and ``shared/protocol/agent.asyncapi.yaml`` (the *server* side,
independently of the device's client code in :mod:`hello_device.protocol`, so that the two
cannot share a misreading):

* **REST** (``GET`` only, answered from websockets' ``process_request`` hook):
  ``/v1/convai/agents/{agent_id}`` (the agent configuration, in the real platform's shape),
  and one of the three signed-URL endpoints (``get-signed-url``, ``…/signed-url``,
  ``…/link``; the others answer 404, as on a server that only has one). An API key can be
  required, failures can be injected (:meth:`Emulator.fail_rest`) and answers delayed.
* **WebSocket** ``/v1/convai/conversation?agent_id=…[&conversation_signature=…]``: a
  *parrot* agent. It answers the initiation with ``conversation_initiation_metadata``, pings
  the client, decodes the user's audio (any ``pcm_*`` rate or ``ulaw_8000``) to 16 kHz,
  finds the end of each utterance with its own VAD (webrtcvad plus an energy floor), sends
  ``user_transcript`` and ``agent_response``, and plays the utterance back as ``audio``
  events in the negotiated output format, faster than real time, in ~100 ms chunks. It
  sends ``interruption`` when the user talks over a reply that the client is still playing.

Time model: the VAD, the utterance boundaries and the "is the client still playing the
reply?" estimate all run on the *user-audio timeline* (samples received / 16 kHz), not on
the wall clock. A client streaming its microphone in real time sees the same behaviour as
on the real platform; a test may stream a file much faster than real time and still get
deterministic turns and interruptions. Only the pacing of the agent's audio (``send_speed``
times real time), pings and ``max_duration_s`` use the wall clock. If the client stops
streaming in the middle of an utterance, a wall-clock watchdog ends the utterance anyway.

Event ids (``event_id``): one increasing counter per conversation. Each ping, each user
transcript, each agent reply and each tool call takes the next value; all the ``audio``
chunks of one reply carry the id of that reply's ``agent_response``, and an
``interruption`` carries the id of the reply it cuts. This matches what the official
clients rely on (they drop audio whose ``event_id`` is ≤ the last interruption's, and the
browser client treats the audio's ``event_id`` as the id of the agent turn for feedback).

Secrets: the API key and signed-URL tokens are never logged; the websockets library's own
debug log (which prints request lines and headers) goes through a redacting filter.

Layout: configuration and records, audio helpers, VAD, log redaction, the conversation
handler, the server (REST and WebSocket), and the ``hello-device emulator`` CLI glue
(:func:`add_arguments`, :func:`run_from_args`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import datetime
import email.utils
import hmac
import http
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import secrets
import signal
import sys
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
import numpy.typing as npt
import soxr
import webrtcvad
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger(__name__)

__all__ = [
    "AUDIO_FORMATS",
    "ConversationRecord",
    "Emulator",
    "EmulatorConfig",
    "ReplyRecord",
    "RestRecord",
    "add_arguments",
    "config_from_args",
    "run_from_args",
]

# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------

AUDIO_FORMATS = (
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
)
SIGNED_URL_FORMS = ("primary", "a", "b")
DIALECTS = ("elevenlabs", "variant")

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
        if self.ping_interval_s < 0 or self.max_duration_s < 0:
            raise ValueError("ping_interval_s and max_duration_s must not be negative")
        if self.tool_call is not None and (
            not isinstance(self.tool_call[0], str) or not isinstance(self.tool_call[1], dict)
        ):
            raise ValueError("tool_call must be (name, parameters dict)")


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


@dataclass
class _RestFailure:
    status: int
    times: int
    retry_after: float | None
    body: str | None
    content_type: str


# ---------------------------------------------------------------------------------------
# Audio helpers (private; independent of hello_device.audio on purpose)
# ---------------------------------------------------------------------------------------

Int16Array = npt.NDArray[np.int16]


def _format_rate(fmt: str) -> int:
    return int(fmt.split("_", 1)[1])


def _ulaw_decode_table() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """µ-law byte for every int16 value, indexed by ``sample + 32768`` (ITU G.711 / Sun
    reference: 14-bit magnitude, bias 33, clip 8159)."""
    x14 = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = x14 < 0
    magnitude = np.minimum(np.where(negative, -x14, x14), 8159) + 33
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    uval = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    table: npt.NDArray[np.uint8] = np.where(negative, uval ^ 0x7F, uval ^ 0xFF).astype(np.uint8)
    return table


_ULAW_DECODE = _ulaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()


def _ulaw_decode(data: bytes) -> Int16Array:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def _ulaw_encode(samples: Int16Array) -> bytes:
    return _ULAW_ENCODE[samples.astype(np.int32) + 32768].tobytes()


def _resample(samples: Int16Array, rate_in: int, rate_out: int) -> Int16Array:
    if rate_in == rate_out or samples.size == 0:
        return samples
    y = soxr.resample(samples.astype(np.float32) / 32768.0, rate_in, rate_out)
    return np.clip(np.round(np.asarray(y) * 32768.0), -32768, 32767).astype(np.int16)


def _encode_output(samples16k: Int16Array, fmt: str) -> bytes:
    """16 kHz samples -> bytes in an agent output format."""
    out = _resample(samples16k, RATE, _format_rate(fmt))
    if fmt.startswith("ulaw"):
        return _ulaw_encode(out)
    return out.astype("<i2").tobytes()


def _bytes_per_sample(fmt: str) -> int:
    return 1 if fmt.startswith("ulaw") else 2


def _load_wav(path: str | Path) -> Int16Array:
    """A WAV file (8/16/24/32-bit PCM, any rate and channel count) as 16 kHz mono int16."""
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data
    if rate != RATE:
        mono = np.asarray(soxr.resample(mono, rate, RATE), dtype=np.float32)
    samples: Int16Array = np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)
    return samples


def _speech_like(duration_s: float) -> Int16Array:
    """A deterministic voiced, syllabic signal at 16 kHz standing in for TTS."""
    n = max(int(duration_s * RATE), FRAME)
    t = np.arange(n) / RATE
    f0 = 150.0 + 25.0 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 16))
    syllables = np.clip(np.sin(np.pi * 4.0 * t + 0.3), 0.0, None) ** 0.6
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    signal = voice * syllables * ramp
    peak = float(np.max(np.abs(signal))) or 1.0
    samples: Int16Array = (signal / peak * 0.5 * 32767).astype(np.int16)
    return samples


class _InputDecoder:
    """Client audio chunks (one input format) -> 16 kHz mono int16.

    Each chunk is resampled on its own (no added latency); the output length is corrected
    against the running totals so that the 16 kHz timeline never drifts, whatever the
    chunk sizes.
    """

    def __init__(self, fmt: str) -> None:
        self._ulaw = fmt.startswith("ulaw")
        self._rate = _format_rate(fmt)
        self._carry = b""
        self._in_total = 0
        self._out_total = 0

    def decode(self, data: bytes) -> Int16Array:
        if self._ulaw:
            samples = _ulaw_decode(data)
        else:
            data = self._carry + data
            cut = len(data) - len(data) % 2
            self._carry = data[cut:]
            samples = np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
        out = _resample(samples, self._rate, RATE)
        if self._rate != RATE:
            self._in_total += samples.size
            want = round(self._in_total * RATE / self._rate) - self._out_total
            if out.size > want:
                out = out[: max(want, 0)]
            elif out.size < want:
                pad = out[-1] if out.size else np.int16(0)
                out = np.concatenate([out, np.full(want - out.size, pad, dtype=np.int16)])
        self._out_total += out.size
        return out


# ---------------------------------------------------------------------------------------
# VAD on the user-audio timeline
# ---------------------------------------------------------------------------------------


@dataclass
class _Onset:
    t: float


@dataclass
class _Utterance:
    start: float
    end: float


class _UtteranceDetector:
    """webrtcvad (20 ms frames) gated by an energy floor; times are sample-based."""

    def __init__(self, end_silence_ms: int, floor_dbfs: float) -> None:
        self._vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
        self._floor = 32768.0 * 10.0 ** (floor_dbfs / 20.0)
        self._end_frames = max(2, math.ceil(end_silence_ms / (FRAME_S * 1000)))
        self._pending = np.zeros(0, dtype=np.int16)
        self._frame_no = 0
        self._run = 0
        self._run_start = 0
        self.in_speech = False
        self._onset = 0
        self._last_voiced_end = 0
        self._silence = 0

    def _voiced(self, frame: Int16Array) -> bool:
        rms = math.sqrt(float(np.mean(frame.astype(np.float64) ** 2)))
        return rms >= self._floor and bool(self._vad.is_speech(frame.tobytes(), RATE))

    def feed(self, samples: Int16Array) -> list[_Onset | _Utterance]:
        events: list[_Onset | _Utterance] = []
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(buf) - len(buf) % FRAME
        for i in range(0, whole, FRAME):
            event = self._step(self._voiced(buf[i : i + FRAME]))
            if event is not None:
                events.append(event)
        self._pending = buf[whole:].copy()
        return events

    def _step(self, voiced: bool) -> _Onset | _Utterance | None:
        n = self._frame_no
        self._frame_no += 1
        if not self.in_speech:
            if not voiced:
                self._run = 0
                return None
            if self._run == 0:
                self._run_start = n
            self._run += 1
            if self._run < ONSET_FRAMES:
                return None
            self.in_speech = True
            self._onset = self._run_start
            self._last_voiced_end = n + 1
            self._silence = 0
            return _Onset(self._onset * FRAME_S)
        if voiced:
            self._silence = 0
            self._last_voiced_end = n + 1
            return None
        self._silence += 1
        if self._silence < self._end_frames:
            return None
        return self.flush()

    def flush(self) -> _Utterance | None:
        """End the current speech now; an utterance if it was long enough."""
        if not self.in_speech:
            return None
        self.in_speech = False
        self._run = 0
        start, end = self._onset * FRAME_S, self._last_voiced_end * FRAME_S
        if end - start < MIN_UTTERANCE_S:
            return None
        return _Utterance(start, end)


# ---------------------------------------------------------------------------------------
# Log redaction (websockets' debug log prints request lines and headers)
# ---------------------------------------------------------------------------------------

_SIGNATURE_RE = re.compile(r"(conversation_signature=)[^&\s\"']+")
_HEADER_RE = re.compile(r"(?i)((?:xi-api-key|authorization)\s*:\s*(?:bearer\s+)?)\S+")


class _RedactFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SIGNATURE_RE.sub(r"\1***", _HEADER_RE.sub(r"\1***", message))
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_WS_LOG = logging.getLogger(f"{__name__}.ws")
_WS_LOG.setLevel(logging.WARNING)  # websockets logs every request at INFO; raise it to see them
_WS_REDACT = _RedactFilter()
_WS_LOG.addFilter(_WS_REDACT)


def _mask_headers(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.raw_items():
        lower = key.lower()
        if lower == "xi-api-key":
            out[lower] = "***"
        elif lower == "authorization":
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[lower] = f"{scheme} ***".strip()
        else:
            out[lower] = value
    return out


# ---------------------------------------------------------------------------------------
# The conversation handler
# ---------------------------------------------------------------------------------------


class _Malformed(Exception):
    """A client message the emulator rejects (logged and ignored, or 1008 when strict)."""


@dataclass
class _Reply:
    record: ReplyRecord
    samples: Int16Array | None  # 16 kHz; None for text only
    play_end_s: float
    cancelled: bool = False


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


class _Conversation:
    """Serves one WebSocket connection."""

    def __init__(
        self, emulator: Emulator, ws: ServerConnection, record: ConversationRecord
    ) -> None:
        self.emu = emulator
        self.ws = ws
        self.record = record
        self.cfg = copy.deepcopy(emulator.config)
        self.variant = self.cfg.dialect == "variant"
        self._ids = itertools.count(1)
        self._ping_sent: dict[int, float] = {}
        self._last_rtt_ms: int | None = None
        self._decoder = _InputDecoder(self.cfg.input_format)
        self._vad = _UtteranceDetector(self.cfg.end_silence_ms, self.cfg.energy_floor_dbfs)
        self._outbox: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._replies: list[_Reply] = []
        self._play_end_s = 0.0
        self._user_turns = 0
        self._tool_calls: dict[str, str] = {}  # tool_call_id -> tool name
        self._last_audio_wall = 0.0
        self._text_only = False
        self._reply_wav: Int16Array | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.tag = record.conversation_id

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, query: dict[str, list[str]]) -> None:
        if not await self._admit(query):
            return
        first = await self._first_message()
        if first is None:
            return
        await self._send_json(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.record.conversation_id,
                    "agent_output_audio_format": self.cfg.output_format,
                    "user_input_audio_format": self.cfg.input_format,
                },
            }
        )
        log.info(
            "conversation %s started (agent %s, in %s, out %s)",
            self.tag,
            self.cfg.agent_id,
            self.cfg.input_format,
            self.cfg.output_format,
        )
        if self.cfg.reply != "parrot":
            self._reply_wav = _load_wav(self.cfg.reply)
        self._tasks.append(asyncio.create_task(self._sender()))
        self._tasks.append(asyncio.create_task(self._watchdog()))
        if self.cfg.ping_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._pinger()))
        if self.cfg.max_duration_s > 0:
            self._tasks.append(asyncio.create_task(self._max_duration()))
        self._queue_first_message()
        self.record.initiated.set()
        try:
            if self.record.first_message_type != "conversation_initiation_client_data":
                await self._dispatch(first)
            async for message in self.ws:
                await self._dispatch(message)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for record in self.record.replies:
                record.done.set()

    async def _admit(self, query: dict[str, list[str]]) -> bool:
        agent_id = _first(query, "agent_id")
        if agent_id != self.cfg.agent_id:
            log.warning("conversation %s: unknown agent %r, closing 1008", self.tag, agent_id)
            await self.ws.close(1008, "unknown agent")
            return False
        signature = _first(query, "conversation_signature")
        if signature is None and not self.cfg.private:
            return True
        if signature is None:
            log.warning("conversation %s: private agent and no signed URL, closing 1008", self.tag)
            await self.ws.close(1008, "this agent requires a signed URL")
            return False
        if not self.emu._consume_signature(signature, agent_id):
            log.warning("conversation %s: invalid or expired signed URL, closing 1008", self.tag)
            await self.ws.close(1008, "invalid or expired signed URL")
            return False
        return True

    async def _first_message(self) -> str | bytes | None:
        try:
            first = await asyncio.wait_for(self.ws.recv(), _INIT_TIMEOUT_S)
        except TimeoutError:
            log.warning("conversation %s: no initiation within %.0f s", self.tag, _INIT_TIMEOUT_S)
            await self.ws.close(1008, "conversation initiation expected")
            return None
        except ConnectionClosed:
            return None
        msg: Any = None
        if isinstance(first, bytes):
            kind = "<binary>"
        else:
            try:
                msg = json.loads(first)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                kind = "<invalid>"
            elif "user_audio_chunk" in msg:
                kind = "user_audio_chunk"
            else:
                kind = str(msg.get("type"))
        self.record.first_message_type = kind
        if kind == "conversation_initiation_client_data":
            assert isinstance(msg, dict)
            self.record.init = msg
            self.record.client_messages.append(msg)
            self._apply_overrides(msg)
        else:
            log.warning(
                "conversation %s: first client message was %s, not "
                "conversation_initiation_client_data; continuing",
                self.tag,
                kind,
            )
        return first

    def _apply_overrides(self, init: dict[str, Any]) -> None:
        override = init.get("conversation_config_override")
        if not isinstance(override, dict):
            return
        agent = override.get("agent")
        if isinstance(agent, dict):
            if "first_message" in agent and (
                agent["first_message"] is None or isinstance(agent["first_message"], str)
            ):
                self.cfg.first_message = agent["first_message"]
                if not agent["first_message"]:
                    self.cfg.first_message_audio = None
            if isinstance(agent.get("language"), str):
                self.cfg.language = agent["language"]
        conversation = override.get("conversation")
        if isinstance(conversation, dict) and conversation.get("text_only") is True:
            self._text_only = True

    # -- sending --------------------------------------------------------------------

    async def _send_json(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj))

    def _timeline(self) -> float:
        return self.record.user_audio_s

    def _queue_reply(self, kind: str, text: str, samples: Int16Array | None) -> ReplyRecord:
        if self._text_only:
            samples = None
        duration = 0.0 if samples is None else samples.size / RATE
        start = max(self._timeline(), self._play_end_s)
        record = ReplyRecord(next(self._ids), kind, text, start, duration)
        reply = _Reply(record, samples, start + duration)
        now = self._timeline()
        self._replies = [
            r for r in self._replies if r.play_end_s > now or not r.record.done.is_set()
        ]
        if samples is not None:
            self._play_end_s = reply.play_end_s
        self._replies.append(reply)
        self.record.replies.append(record)
        self._outbox.put_nowait(lambda: self._send_reply(reply))
        return record

    def _queue_first_message(self) -> None:
        text = self.cfg.first_message or ""
        samples: Int16Array | None = None
        if self.cfg.first_message_audio:
            samples = _load_wav(self.cfg.first_message_audio)
        elif text:
            samples = _speech_like(min(max(0.065 * len(text), 1.0), 6.0))
        if text or samples is not None:
            self._queue_reply("first_message", text, samples)

    async def _sender(self) -> None:
        """Sends queued replies and tool calls one after the other."""
        while True:
            job = await self._outbox.get()
            try:
                await job()
            except ConnectionClosed:
                return
            except Exception:
                log.exception("conversation %s: sending failed", self.tag)

    async def _send_reply(self, reply: _Reply) -> None:
        rec = reply.record
        try:
            if reply.cancelled:
                return
            if rec.text:
                await self._send_json(
                    {
                        "type": "agent_response",
                        "agent_response_event": {
                            "agent_response": rec.text,
                            "event_id": rec.event_id,
                        },
                    }
                )
                self.record.transcript.append(("agent", rec.text))
                log.info("conversation %s: agent: %s", self.tag, rec.text)
            if reply.samples is None:
                return
            fmt = self.cfg.output_format
            data = _encode_output(reply.samples, fmt)
            step = max(1, round(_format_rate(fmt) * AGENT_CHUNK_S)) * _bytes_per_sample(fmt)
            bytes_per_s = _format_rate(fmt) * _bytes_per_sample(fmt)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            sent = 0
            for offset in range(0, len(data), step):
                if reply.cancelled:
                    break
                if self.cfg.send_speed > 0:
                    delay = t0 + sent / bytes_per_s / self.cfg.send_speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if reply.cancelled:
                        break
                chunk = data[offset : offset + step]
                event: dict[str, Any] = {
                    "audio_base_64": base64.b64encode(chunk).decode("ascii"),
                    "event_id": rec.event_id,
                }
                if self.variant:
                    event["is_final"] = offset + step >= len(data)
                await self._send_json({"type": "audio", "audio_event": event})
                sent += len(chunk)
                seconds = len(chunk) / bytes_per_s
                rec.sent_s += seconds
                self.record.agent_audio_sent_s += seconds
            log.debug(
                "conversation %s: reply %d: sent %.2f of %.2f s",
                self.tag,
                rec.event_id,
                rec.sent_s,
                rec.duration_s,
            )
        finally:
            rec.done.set()

    async def _send_tool_call(self) -> None:
        assert self.cfg.tool_call is not None
        name, parameters = self.cfg.tool_call
        call_id = f"toolu_{secrets.token_hex(8)}"
        self._tool_calls[call_id] = name
        event_id = next(self._ids)
        if self.variant:
            message: dict[str, Any] = {
                "type": "tool_call",
                "tool_call_event": {
                    "tool_name": name,
                    "tool_call_id": call_id,
                    "parameters": parameters,
                    "event_id": event_id,
                },
            }
        else:
            message = {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": name,
                    "tool_call_id": call_id,
                    "parameters": parameters,
                    "event_id": event_id,
                    "expects_response": True,
                },
            }
        await self._send_json(message)
        log.info("conversation %s: tool call %s(%s)", self.tag, name, json.dumps(parameters))

    async def _pinger(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.cfg.ping_interval_s)
                event_id = next(self._ids)
                self._ping_sent[event_id] = time.monotonic()
                await self._send_json(
                    {
                        "type": "ping",
                        "ping_event": {"event_id": event_id, "ping_ms": self._last_rtt_ms},
                    }
                )
        except ConnectionClosed:
            pass

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.cfg.max_duration_s)
        log.info("conversation %s: max duration reached, closing 1000", self.tag)
        await self.ws.close(1000, "max duration exceeded")

    async def _watchdog(self) -> None:
        """Ends an utterance when the client stops streaming in the middle of it."""
        loop = asyncio.get_running_loop()
        gap = self.cfg.end_silence_ms / 1000 + _STALL_GRACE_S
        try:
            while True:
                await asyncio.sleep(0.1)
                if self._vad.in_speech and loop.time() - self._last_audio_wall > gap:
                    log.debug("conversation %s: audio stalled mid-utterance", self.tag)
                    utterance = self._vad.flush()
                    if utterance is not None:
                        await self._on_utterance(utterance)
        except ConnectionClosed:
            pass

    # -- receiving ------------------------------------------------------------------

    async def _dispatch(self, message: str | bytes) -> None:
        try:
            await self._handle(message)
        except _Malformed as exc:
            reason = str(exc)
            self.record.malformed.append(reason)
            if self.cfg.strict:
                log.warning("conversation %s: %s; closing 1008 (strict)", self.tag, reason)
                await self.ws.close(1008, "invalid message")
            else:
                log.warning("conversation %s: ignored client message: %s", self.tag, reason)

    async def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise _Malformed(f"binary frame of {len(message)} bytes")
        try:
            msg = json.loads(message)
        except ValueError:
            raise _Malformed(f"not JSON: {message[:60]!r}") from None
        if not isinstance(msg, dict):
            raise _Malformed(f"not a JSON object: {message[:60]!r}")
        if "user_audio_chunk" in msg:
            await self._on_audio(msg["user_audio_chunk"])
            return
        mtype = msg.get("type")
        if self.variant and mtype == "audio":
            await self._on_audio(msg.get("audio"))
            return
        self.record.client_messages.append(msg)
        handler = self._handlers().get(mtype) if isinstance(mtype, str) else None
        if handler is None:
            raise _Malformed(f"unknown message type {mtype!r}")
        await handler(msg)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "pong": self._on_pong,
            "client_tool_result": self._on_tool_result,
            "contextual_update": self._on_contextual_update,
            "user_message": self._on_user_message,
            "user_activity": self._on_noop,
            "feedback": self._on_feedback,
            "conversation_initiation_client_data": self._on_repeat_init,
            "mcp_tool_approval_result": self._on_noop,
            "multimodal_message": self._on_noop,
        }
        if self.variant:
            handlers["user_input"] = self._on_user_message
            handlers["interruption"] = self._on_client_interruption
            handlers["ping"] = self._on_client_ping
        return handlers

    async def _on_noop(self, msg: dict[str, Any]) -> None:
        log.debug("conversation %s: client %s", self.tag, msg.get("type"))

    async def _on_repeat_init(self, msg: dict[str, Any]) -> None:
        log.warning("conversation %s: repeated conversation initiation ignored", self.tag)

    async def _on_pong(self, msg: dict[str, Any]) -> None:
        event_id = msg.get("event_id")
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise _Malformed("pong without an integer event_id")
        sent = self._ping_sent.pop(event_id, None)
        if sent is None:
            log.warning("conversation %s: pong for unknown ping %d", self.tag, event_id)
            return
        rtt = time.monotonic() - sent
        self.record.pongs[event_id] = rtt
        self._last_rtt_ms = round(rtt * 1000)

    async def _on_tool_result(self, msg: dict[str, Any]) -> None:
        call_id, result, is_error = msg.get("tool_call_id"), msg.get("result"), msg.get("is_error")
        if not isinstance(call_id, str):
            raise _Malformed("client_tool_result without a string tool_call_id")
        if not isinstance(result, str):
            raise _Malformed(f"client_tool_result.result must be a string, got {type(result)}")
        if not isinstance(is_error, bool):
            raise _Malformed("client_tool_result.is_error must be a boolean")
        self.record.tool_results.append(msg)
        name = self._tool_calls.pop(call_id, None)
        if name is None:
            log.warning("conversation %s: result for unknown tool call %s", self.tag, call_id)
            name = "?"
        verb = "failed" if is_error else "returned"
        self._queue_reply("text", f"The tool {name} {verb}: {result}", None)

    async def _on_contextual_update(self, msg: dict[str, Any]) -> None:
        if not isinstance(msg.get("text"), str):
            raise _Malformed("contextual_update without a string text")
        log.info("conversation %s: context: %s", self.tag, msg["text"])

    async def _on_user_message(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        if text is None and msg.get("type") == "user_message":
            return  # the text-only mode signal
        if not isinstance(text, str):
            raise _Malformed(f"{msg.get('type')} without a string text")
        self.record.transcript.append(("user", text))
        log.info("conversation %s: user (text): %s", self.tag, text)
        self._queue_reply("text", f"You wrote: {text}", None)

    async def _on_feedback(self, msg: dict[str, Any]) -> None:
        if not isinstance(msg.get("event_id"), int) or msg.get("score") not in (
            "like",
            "dislike",
            None,
        ):
            raise _Malformed("feedback needs an integer event_id and a like/dislike/null score")

    async def _on_client_interruption(self, msg: dict[str, Any]) -> None:
        now = self._timeline()
        stopped = self._cancel_replies(now)
        self._play_end_s = now
        log.info("conversation %s: client interruption stopped %d reply(s)", self.tag, len(stopped))

    async def _on_client_ping(self, msg: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"type": "pong"}
        if "event_id" in msg:
            answer["event_id"] = msg["event_id"]
        await self._send_json(answer)

    async def _on_audio(self, b64: Any) -> None:
        if not isinstance(b64, str):
            raise _Malformed("audio chunk is not a string")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _Malformed("audio chunk is not valid base64") from None
        rec = self.record
        rec.audio_chunks += 1
        rec.chunk_sizes.append(len(raw))
        rec.chunk_arrivals.append(time.monotonic())
        self._last_audio_wall = asyncio.get_running_loop().time()
        samples = self._decoder.decode(raw)
        rec.user_audio += samples.astype("<i2").tobytes()
        for event in self._vad.feed(samples):
            if isinstance(event, _Onset):
                await self._on_onset(event.t)
            else:
                await self._on_utterance(event)

    # -- turns ----------------------------------------------------------------------

    def _cancel_replies(self, t: float) -> list[_Reply]:
        """Cancel the reply playing at timeline position ``t`` and any queued after it."""
        victims = [
            r
            for r in self._replies
            if not r.cancelled and r.samples is not None and r.play_end_s > t
        ]
        for reply in victims:
            reply.cancelled = True
            reply.record.interrupted = True
        self._replies = [r for r in self._replies if not r.cancelled and r.play_end_s > t]
        return victims

    async def _on_onset(self, t: float) -> None:
        log.debug("conversation %s: speech onset at %.2f s", self.tag, t)
        if not self.cfg.interruptions:
            return
        playing = [
            r
            for r in self._replies
            if not r.cancelled and r.samples is not None and r.record.timeline_start_s <= t
        ]
        if not any(r.play_end_s > t for r in playing):
            return
        victims = self._cancel_replies(t)
        event_id = max(r.record.event_id for r in victims)
        self._play_end_s = self._timeline()
        await self._send_json(
            {"type": "interruption", "interruption_event": {"event_id": event_id}}
        )
        self.record.interruptions_sent.append(event_id)
        self.record.interruption_times.append(t)
        log.info("conversation %s: user spoke over reply %d at %.2f s", self.tag, event_id, t)
        for reply in victims:
            rec = reply.record
            if rec.text and rec.timeline_start_s <= t:
                played = (t - rec.timeline_start_s) / rec.duration_s if rec.duration_s else 1.0
                cut = max(0, min(len(rec.text), round(len(rec.text) * played)))
                await self._send_json(
                    {
                        "type": "agent_response_correction",
                        "agent_response_correction_event": {
                            "original_agent_response": rec.text,
                            "corrected_agent_response": rec.text[:cut].rstrip() + "...",
                            "event_id": rec.event_id,
                        },
                    }
                )

    async def _on_utterance(self, utterance: _Utterance) -> None:
        rec = self.record
        rec.utterances.append((utterance.start, utterance.end))
        length = _seconds(utterance.end - utterance.start)
        text = f"({length} of speech)"
        event: dict[str, Any] = {"user_transcript": text, "event_id": next(self._ids)}
        if self.variant:
            event.update(is_final=True, confidence=1.0)
        await self._send_json({"type": "user_transcript", "user_transcription_event": event})
        rec.transcript.append(("user", text))
        log.info(
            "conversation %s: user: %s [%.2f-%.2f s]",
            self.tag,
            text,
            utterance.start,
            utterance.end,
        )
        self._user_turns += 1
        if self._reply_wav is not None:
            self._queue_reply(
                "wav", f"Here is my answer to your {length} of speech.", self._reply_wav
            )
        else:
            first = max(0, int((utterance.start - REPLY_PREROLL_S) * RATE))
            last = int(utterance.end * RATE)
            audio = np.frombuffer(bytes(rec.user_audio[2 * first : 2 * last]), dtype="<i2")
            self._queue_reply("parrot", f"You said: {text}", audio.astype(np.int16))
        if self._user_turns == 1 and self.cfg.tool_call is not None:
            self._outbox.put_nowait(self._send_tool_call)


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------


def _json_response(
    status: int,
    payload: Any,
    extra_headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    body: bytes | None = None,
) -> Response:
    if body is None:
        body = json.dumps(payload).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
    )
    for key, value in (extra_headers or {}).items():
        headers[key] = value
    return Response(status, _phrase(status), headers, body)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _failure_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "detail": {
                "status": "too_many_concurrent_requests",
                "message": "Too many requests; try again later.",
            }
        }
    if status == 401:
        return {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
    if status == 404:
        return {"detail": "Not Found"}
    return {"detail": _phrase(status)}


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Emulator:
    """The local agent server. ``async with Emulator(cfg) as emu: ...``."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.conversations: list[ConversationRecord] = []
        self.rest_requests: list[RestRecord] = []
        self.rest_delay_s = 0.0
        self.rest_pending = 0
        """REST requests being held by ``rest_delay_s`` right now."""
        self._failures: list[_RestFailure] = []
        self._signatures: dict[str, tuple[str, float]] = {}  # token -> (agent_id, expiry)
        self._active: set[_Conversation] = set()
        self._server: Server | None = None
        self._changed: asyncio.Condition | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Validate the configuration and start listening."""
        self.config.validate()
        if self.config.api_key:
            _WS_REDACT.secrets.add(self.config.api_key)
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._server = await serve(
            self._handle_ws,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            open_timeout=60,
            logger=_WS_LOG,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        log.info("emulator listening on %s (agent %s)", self.http_url, self.config.agent_id)

    async def stop(self) -> None:
        """Close every connection (1001 for open conversations) and stop listening."""
        if self._server is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        server, self._server = self._server, None
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 15)
        except TimeoutError:
            log.warning("emulator: connections did not close in time")
        if self.config.api_key:
            _WS_REDACT.secrets.discard(self.config.api_key)

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{_host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        """The public conversation URL of the configured agent."""
        agent = quote(self.config.agent_id, safe="")
        return f"ws://{_host_port(self.host, self.port)}{CONVERSATION_PATH}?agent_id={agent}"

    # -- test controls --------------------------------------------------------------

    async def wait_conversation(
        self,
        n: int = 1,
        timeout: float = 10,  # noqa: ASYNC109 - the agreed API
    ) -> ConversationRecord:
        """The n-th (1-based) conversation, once its WebSocket is connected."""
        if self._changed is None:
            raise RuntimeError("emulator not started")
        changed = self._changed

        async def wait() -> None:
            async with changed:
                await changed.wait_for(lambda: len(self.conversations) >= n)

        await asyncio.wait_for(wait(), timeout)
        return self.conversations[n - 1]

    async def end_conversation(self, code: int = 1000, reason: str = "") -> None:
        """Close the active conversation(s) with this close code."""
        await asyncio.gather(*(c.ws.close(code, reason) for c in list(self._active)))

    async def abort_connections(self) -> None:
        """Drop every conversation's TCP connection without a close frame."""
        active = list(self._active)
        for conv in active:
            conv.ws.transport.abort()
        await asyncio.wait_for(asyncio.gather(*(c.record.finished.wait() for c in active)), 10)

    async def send_raw(self, text: str | bytes) -> None:
        """Send one raw frame (text or binary) to the active conversation(s)."""
        await asyncio.gather(*(c.ws.send(text) for c in list(self._active)))

    def fail_rest(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``times`` REST requests with this failure (queued in order)."""
        self._failures.append(_RestFailure(status, times, retry_after, body, content_type))

    # -- REST -----------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        split = urlsplit(request.path)
        if split.path.rstrip("/") == CONVERSATION_PATH:
            return None  # the WebSocket handshake goes on
        if self.rest_delay_s > 0 and self._stopping is not None:
            self.rest_pending += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), self.rest_delay_s)
            except TimeoutError:
                pass
            finally:
                self.rest_pending -= 1
        response = self._rest(request, split.path, parse_qs(split.query))
        self.rest_requests.append(
            RestRecord(
                "GET",
                request.path,
                _mask_headers(request.headers),
                response.status_code,
                time.monotonic(),
            )
        )
        log.info("REST GET %s -> %d", split.path, response.status_code)
        return response

    def _rest(self, request: Request, path: str, query: dict[str, list[str]]) -> Response:
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            extra = {}
            if failure.retry_after is not None:
                extra["Retry-After"] = _format_retry_after(failure.retry_after)
            if failure.body is not None:
                body = failure.body.encode()
            elif "html" in failure.content_type:
                phrase = _phrase(failure.status)
                body = f"<html><body><h1>{failure.status} {phrase}</h1></body></html>".encode()
            else:
                body = json.dumps(_failure_body(failure.status)).encode()
            return _json_response(failure.status, None, extra, failure.content_type, body)

        if not self._authorised(request.headers):
            return _json_response(401, _failure_body(401))

        cfg = self.config
        if path == SIGNED_URL_PATH:
            if cfg.signed_url_form != "primary":
                return _json_response(404, _failure_body(404))
            agent_id = _first(query, "agent_id")
            if agent_id is None:
                return _json_response(
                    422,
                    {
                        "detail": [
                            {
                                "loc": ["query", "agent_id"],
                                "msg": "Field required",
                                "type": "missing",
                            }
                        ]
                    },
                )
            return self._signed_url_answer(request, agent_id, "primary")
        for form, pattern in (("a", _SIGNED_A_RE), ("b", _LINK_B_RE)):
            match = pattern.match(path)
            if match:
                if cfg.signed_url_form != form:
                    return _json_response(404, _failure_body(404))
                return self._signed_url_answer(request, match.group(1), form)
        match = _AGENT_RE.match(path)
        if match:
            if match.group(1) != cfg.agent_id:
                return self._unknown_agent(match.group(1))
            return _json_response(200, self.agent_document())
        return _json_response(404, _failure_body(404))

    def _authorised(self, headers: Headers) -> bool:
        key = self.config.api_key
        if not key:
            return True
        offered = headers.get("xi-api-key")
        if offered is None:
            auth = headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            offered = value.strip() if scheme.lower() == "bearer" else None
        return offered is not None and hmac.compare_digest(offered.encode(), key.encode())

    def _unknown_agent(self, agent_id: str) -> Response:
        return _json_response(
            404,
            {
                "detail": {
                    "status": "agent_not_found",
                    "message": f"Agent with id {agent_id} not found",
                }
            },
        )

    def _signed_url_answer(self, request: Request, agent_id: str, form: str) -> Response:
        if agent_id != self.config.agent_id:
            return self._unknown_agent(agent_id)
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        self._signatures = {k: v for k, v in self._signatures.items() if v[1] > now}
        ttl = self.config.signed_url_ttl_s
        self._signatures[token] = (agent_id, now + ttl)
        host = request.headers.get("Host") or _host_port(self.host, self.port)
        url = (
            f"ws://{host}{CONVERSATION_PATH}?agent_id={quote(agent_id, safe='')}"
            f"&conversation_signature={token}"
        )
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)
        expires_at = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
        if form == "primary":
            return _json_response(200, {"signed_url": url})
        if form == "a":
            return _json_response(200, {"signed_url": url, "expires_at": expires_at})
        return _json_response(200, {"link": {"signed_url": url, "expires_at": expires_at}})

    def _consume_signature(self, token: str, agent_id: str) -> bool:
        entry = self._signatures.pop(token, None)
        return entry is not None and entry[0] == agent_id and time.monotonic() < entry[1]

    def agent_document(self) -> dict[str, Any]:
        """The agent configuration as ``GET /v1/convai/agents/{id}`` returns it."""
        cfg = self.config
        now = int(time.time())
        tools: list[dict[str, Any]] = []
        if cfg.tool_call is not None:
            tools.append(
                {
                    "type": "client",
                    "name": cfg.tool_call[0],
                    "description": "Tool the emulator calls after the first user turn",
                    "expects_response": True,
                }
            )
        return {
            "agent_id": cfg.agent_id,
            "name": f"hello-device emulator ({cfg.agent_id})",
            "conversation_config": {
                "asr": {
                    "quality": "high",
                    "provider": "elevenlabs",
                    "user_input_audio_format": cfg.input_format,
                    "keywords": [],
                },
                "turn": {"turn_timeout": cfg.turn_timeout_s, "mode": "turn"},
                "tts": {
                    "model_id": "eleven_flash_v2",
                    "voice_id": "emulator-parrot",
                    "agent_output_audio_format": cfg.output_format,
                },
                "conversation": {
                    "text_only": False,
                    "max_duration_seconds": (
                        math.ceil(cfg.max_duration_s)
                        if cfg.max_duration_s > 0
                        else _DEFAULT_MAX_DURATION_S
                    ),
                    "client_events": [
                        "audio",
                        "interruption",
                        "agent_response",
                        "user_transcript",
                        "agent_response_correction",
                        "client_tool_call",
                        "conversation_initiation_metadata",
                        "ping",
                    ],
                },
                "agent": {
                    "first_message": cfg.first_message or "",
                    "language": cfg.language,
                    "prompt": {
                        "prompt": "You are a parrot: repeat what the user says.",
                        "llm": "none",
                        "tools": tools,
                    },
                },
            },
            "metadata": {"created_at_unix_secs": now, "updated_at_unix_secs": now},
            "platform_settings": {
                "auth": {"enable_auth": cfg.private, "allowlist": [], "shareable_token": None}
            },
            "tags": ["emulator"],
        }

    # -- WebSocket ------------------------------------------------------------------

    async def _handle_ws(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        query = parse_qs(urlsplit(path).query)
        record = ConversationRecord(
            conversation_id=f"conv_{secrets.token_hex(12)}",
            agent_id=_first(query, "agent_id") or "",
        )
        self.conversations.append(record)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        try:
            self.config.validate()
        except ValueError as exc:
            log.error(
                "conversation %s: bad emulator configuration: %s", record.conversation_id, exc
            )
            await ws.close(1011, "emulator misconfigured")
            record.close_code, record.close_reason = ws.close_code, ws.close_reason or ""
            record.finished.set()
            return
        conv = _Conversation(self, ws, record)
        self._active.add(conv)
        try:
            await conv.run(query)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("conversation %s: emulator error, closing 1011", record.conversation_id)
            await ws.close(1011, "emulator error")
        finally:
            await ws.close()  # no-op when already closed
            self._active.discard(conv)
            record.close_code = ws.close_code
            record.close_reason = ws.close_reason or ""
            record.finished.set()
            log.info(
                "conversation %s closed (%s %r), %d chunks, %.1f s of user audio",
                record.conversation_id,
                record.close_code,
                record.close_reason,
                record.audio_chunks,
                record.user_audio_s,
            )


# ---------------------------------------------------------------------------------------
# CLI: hello-device emulator
# ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hello-device emulator``."""
    defaults = EmulatorConfig()
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", type=int, default=8765, help="port (default: 8765; 0 = pick a free one)")
    add(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the conversation socket has no authentication)",
    )
    add("--agent-id", default=defaults.agent_id, help="agent id (default: %(default)s)")
    add("--private", action="store_true", help="require a signed URL for the conversation")
    add("--api-key-env", metavar="VAR", help="require the API key held in this variable")
    add("--input-format", choices=AUDIO_FORMATS, default=defaults.input_format)
    add("--output-format", choices=AUDIO_FORMATS, default=defaults.output_format)
    add("--first-message", metavar="TEXT", help="greeting the agent says first")
    add("--first-message-audio", metavar="WAV", help="audio of the greeting")
    add("--reply", default="parrot", metavar="parrot|WAV", help="parrot, or a WAV to play")
    add("--ping-interval", type=float, default=defaults.ping_interval_s, metavar="S")
    add("--no-interruption", action="store_true", help="never send interruption")
    add("--tool-call", metavar="NAME[:JSON]", help="client tool to call after the first turn")
    add("--dialect", choices=DIALECTS, default=defaults.dialect)
    add("--max-duration", type=float, default=0.0, metavar="S", help="close 1000 after S s")
    add("--signed-url-form", choices=SIGNED_URL_FORMS, default=defaults.signed_url_form)
    add("--send-speed", type=float, default=defaults.send_speed, metavar="X")
    add("--end-silence-ms", type=int, default=defaults.end_silence_ms, metavar="MS")
    add("--language", default=defaults.language)
    add("--strict", action="store_true", help="close 1008 on malformed client messages")


def _parse_tool_call(spec: str) -> tuple[str, dict[str, Any]]:
    name, sep, params = spec.partition(":")
    if not name:
        raise ValueError("--tool-call needs a tool name")
    if not sep:
        return name, {}
    value = json.loads(params)
    if not isinstance(value, dict):
        raise ValueError("--tool-call parameters must be a JSON object")
    return name, value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Build (and validate) the configuration; :class:`ValueError` says what is wrong."""
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"environment variable {args.api_key_env} is not set")
    try:
        tool_call = _parse_tool_call(args.tool_call) if args.tool_call else None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--tool-call parameters are not valid JSON: {exc}") from None
    cfg = EmulatorConfig(
        agent_id=args.agent_id,
        private=args.private,
        api_key=api_key,
        input_format=args.input_format,
        output_format=args.output_format,
        first_message=args.first_message,
        first_message_audio=args.first_message_audio,
        reply=args.reply,
        ping_interval_s=args.ping_interval,
        interruptions=not args.no_interruption,
        tool_call=tool_call,
        dialect=args.dialect,
        max_duration_s=args.max_duration,
        signed_url_form=args.signed_url_form,
        send_speed=args.send_speed,
        end_silence_ms=args.end_silence_ms,
        language=args.language,
        strict=args.strict,
    )
    cfg.validate()
    return cfg


async def _serve_until_signal(cfg: EmulatorConfig, host: str, port: int) -> int:
    emulator = Emulator(cfg, host, port)
    try:
        await emulator.start()
    except OSError as exc:
        print(f"error: cannot listen on {_host_port(host, port)}: {exc}", file=sys.stderr)
        return 1
    print(f"emulator listening on {emulator.http_url} (agent {cfg.agent_id})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await emulator.stop()
    return 0


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hello-device emulator`` until SIGINT/SIGTERM; exit code 0, or 2 on bad options."""
    if not _is_loopback(args.host) and not args.allow_remote:
        print(
            f"error: --host {args.host} is not a loopback address; the emulator has no "
            "authentication on its conversation socket (add --allow-remote to do it anyway)",
            file=sys.stderr,
        )
        return 2
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # run outside the CLI's logging setup
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_serve_until_signal(cfg, args.host, args.port))
