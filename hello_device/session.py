"""One conversation over the platform's WebSocket.

The session only moves data: the sans-I/O :class:`~hello_device.protocol.ClientProtocol`
turns frames into events and builds every message; the audio classes encode and decode.
The session owns the socket, the timers and the order of things:

1. connect (public or signed URL; TLS verified; plain ``ws://`` only to loopback unless
   ``platform.allow_insecure``), send ``conversation_initiation_client_data`` first;
2. wait, bounded, for ``conversation_initiation_metadata`` and adopt its formats;
3. stream microphone frames (handed in by the app with :meth:`Session.send_frame`) as
   one message per frame, answer every ``ping`` at once, queue agent audio on the
   :class:`~hello_device.audio.player.Player`, flush it on ``interruption``, run device
   tools, log transcripts;
4. end with a :class:`SessionEnd` that tells the app whether the conversation is over
   (1000, policy errors) or was cut off and should resume as a new one (network loss,
   abrupt close, 1001, 1011).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from hello_device import __version__
from hello_device.audio.convert import AgentDecoder, MicEncoder
from hello_device.audio.formats import AudioFormat
from hello_device.audio.player import Player
from hello_device.config import Settings, is_secure_or_loopback
from hello_device.errors import ConversationError
from hello_device.protocol import (
    AgentAudio,
    AgentResponse,
    AgentResponseCorrection,
    ClientProtocol,
    ClientToolCall,
    ConversationMetadata,
    Event,
    Interruption,
    Ping,
    ServerError,
    UserTranscript,
)
from hello_device.tools import ToolRegistry
from hello_device.wire import AudioFrameWriter

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SEND_BUFFER_LIMIT = 256 * 1024
"""Bytes waiting in the socket's write buffer above which new mic frames are dropped
(about 6 s of pcm_16000): on a stalled network, stale audio only delays the turn."""
UPLINK_BACKLOG_S = 10.0
"""Audio held while the socket is not yet streaming (a voice-triggered conversation's
first words wait here while the connection opens)."""

TAIL_IDLE_S = 0.05
TAIL_QUEUE_MS = 60.0
"""A turn's audio has ended when nothing arrived for TAIL_IDLE_S and less than
TAIL_QUEUE_MS is left to play; then the resampler's held tail is pushed."""

KEEPALIVE_S = 15.0
"""Interval of the variant dialect's client keep-alive ``ping``."""

RESUMABLE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which a conversation that was cut off resumes as a new one."""


@dataclass
class SessionEnd:
    """How a conversation ended."""

    code: int | None
    """WebSocket close code (None: the connection was lost without a close frame, or
    never opened)."""
    reason: str = ""
    resumable: bool = False
    """True when the conversation was cut off (network, 1001, 1011) and should resume
    as a new one."""
    by_client: bool = False
    """True when this device ended it (stop, inactivity, button, maximum duration)."""
    error: str | None = None
    """The platform's error message or the connection problem, if any."""
    connected: bool = False
    """True once the platform accepted the conversation (metadata received)."""


class SessionListener:
    """What the app hears from a session; every method is optional."""

    def on_connected(self, conversation_id: str) -> None:
        """The platform accepted the conversation."""

    def on_agent_audio(self, samples: int) -> None:
        """Agent audio was queued for playback (``samples`` at the player's rate)."""

    def on_interruption(self) -> None:
        """The platform interrupted the agent; playback was flushed."""

    def on_user_transcript(self, text: str) -> None:
        """The platform transcribed a user turn."""

    def on_agent_response(self, text: str) -> None:
        """The agent's text for its turn."""


@dataclass
class SessionStats:
    frames_sent: int = 0
    frames_via_websockets: int = 0
    """Frames that went out through websockets' own send path (it had something
    pending) instead of :class:`~hello_device.wire.AudioFrameWriter`."""
    frames_dropped: int = 0
    audio_events: int = 0
    audio_dropped: int = 0
    pings: int = 0
    wire_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=5000)
    )
    """Seconds from a frame's last captured sample to the end of its ``send``."""
    audio_arrivals: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=2000)
    )
    """(arrival time, samples queued) of agent audio events, for latency benchmarks."""


def conversation_url(settings: Settings) -> str:
    """The public conversation URL for the configured agent."""
    p = settings.platform
    if p.ws_url:
        base = p.ws_url
    else:
        parts = urlsplit(p.api_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        base = urlunsplit((scheme, parts.netloc, "/v1/convai/conversation", "", ""))
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query))
    query.setdefault("agent_id", p.agent_id)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def safe_url(url: str) -> str:
    """A URL for the logs: scheme, host and path only (a signed URL's token stays out)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def initiation_overrides(settings: Settings) -> dict[str, Any]:
    c = settings.conversation
    agent: dict[str, Any] = {}
    if c.first_message is not None:
        agent["first_message"] = c.first_message
    if c.language is not None:
        agent["language"] = c.language
    if c.prompt is not None:
        agent["prompt"] = {"prompt": c.prompt}
    overrides: dict[str, Any] = {}
    if agent:
        overrides["agent"] = agent
    if c.voice_id:
        overrides["tts"] = {"voice_id": c.voice_id}
    return overrides


class Session:
    """One conversation. Create, call :meth:`run`, feed frames with :meth:`send_frame`."""

    def __init__(
        self,
        settings: Settings,
        player: Player,
        tools: ToolRegistry | None = None,
        listener: SessionListener | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.player = player
        self.tools = tools or ToolRegistry()
        self.listener = listener or SessionListener()
        self.clock = clock
        self.protocol = ClientProtocol(settings.platform.dialect)
        self.stats = SessionStats()
        self.conversation_id: str | None = None
        self.transcript: list[tuple[str, str]] = []
        """(speaker, text) lines of this conversation; corrections replace lines."""
        frame_ms = settings.audio.frame_ms
        self._uplink: collections.deque[tuple[bytes, float]] = collections.deque(
            maxlen=int(UPLINK_BACKLOG_S * 1000 / frame_ms)
        )
        self._uplink_ready = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._writer: AudioFrameWriter | None = None
        self._streaming = False
        self._encoder: MicEncoder | None = None
        self._decoder: AgentDecoder | None = None
        self._suppress_agent_audio = False
        self._close_request: tuple[int, str] | None = None
        self._close_event = asyncio.Event()
        self._last_error: str | None = None
        self._last_activity = clock()
        self._last_audio_at = clock()
        self._started_at = clock()
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        """Set when :meth:`run` has returned."""

    # ------------------------------------------------------------ called by the app

    def send_frame(self, pcm: bytes, captured_at: float) -> None:
        """Send one 16 kHz mono frame to the platform (never blocks, never raises).

        While the conversation streams, the frame is encoded and written to the socket at
        once, on the caller's turn of the event loop: no task hop, no extra wake-up.
        Before that, frames wait (up to ``UPLINK_BACKLOG_S``) and go out in order as soon
        as the platform has accepted the conversation.
        """
        if self._streaming and not self._uplink:
            self._transmit(pcm, captured_at)
            return
        if len(self._uplink) == self._uplink.maxlen:
            self.stats.frames_dropped += 1
        self._uplink.append((pcm, captured_at))
        self._uplink_ready.set()

    def _transmit(self, pcm: bytes, captured_at: float) -> None:
        """Encode one frame and write it to the socket now (event loop thread)."""
        ws, encoder, writer = self._ws, self._encoder, self._writer
        if ws is None or encoder is None or writer is None or ws.protocol.state is not State.OPEN:
            return
        if ws.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            self.stats.frames_dropped += 1  # the network is stalled: stale audio is useless
            return
        wire = encoder.encode(pcm)
        if not wire:  # a resampler still filling (first frame of a stream)
            return
        payload = self.protocol.user_audio_bytes(wire)
        # The receive task notices a broken connection; here a failed write just drops.
        try:
            if not writer.write(payload):
                # Something of websockets' own is pending (or the connection is not in
                # its plain streaming state): its sans-I/O layer keeps the order.
                ws.protocol.send_text(payload)
                ws.send_data()
                self.stats.frames_via_websockets += 1
        except OSError:
            return
        self.stats.frames_sent += 1
        self.stats.wire_latency_s.append(self.clock() - captured_at)

    def flush_tail_if_idle(self, now: float) -> None:
        """Called once per captured frame: when the agent's audio has paused (nothing for
        ``TAIL_IDLE_S``) and the playout queue runs low, push the few milliseconds the
        agent-audio resampler still holds, so a turn's last sound is never stranded."""
        decoder = self._decoder
        if (
            decoder is not None
            and decoder.pending_ms > 0
            and now - self._last_audio_at > TAIL_IDLE_S
            and self.player.queued_ms < TAIL_QUEUE_MS
            and not self._suppress_agent_audio
        ):
            tail = decoder.flush()
            if len(tail):
                self.player.push(tail)

    def note_activity(self) -> None:
        """The user spoke: the inactivity timer starts again."""
        self._last_activity = self.clock()

    def local_barge_in(self) -> None:
        """The device heard the user talk over the agent: silence the rest of the turn.

        Playback is flushed at once and further audio of the interrupted turn is dropped
        until the platform's ``interruption`` or the next user transcript. In the variant
        dialect the server is told with a client ``interruption`` message.
        """
        dropped = self.player.flush()
        if self._decoder is not None:
            self._decoder.reset()
        self._suppress_agent_audio = True
        log.debug("local barge-in: flushed %d samples of agent audio", dropped)
        message = self.protocol.client_interruption()
        if message is not None and self._ws is not None:
            self._spawn(self._send(message))

    def request_close(self, code: int = 1000, reason: str = "") -> None:
        """Ask the session to end the conversation (normal close by the device)."""
        if self._close_request is None:
            self._close_request = (code, reason)
        self._close_event.set()

    @property
    def streaming(self) -> bool:
        return self._streaming

    # ------------------------------------------------------------ the conversation

    async def run(self, url: str) -> SessionEnd:
        """Hold one conversation at ``url``; return how it ended. Never raises for
        network or protocol problems (only on cancellation)."""
        try:
            return await self._run(url)
        finally:
            self.done.set()

    async def _run(self, url: str) -> SessionEnd:
        p = self.settings.platform
        if not p.allow_insecure and not is_secure_or_loopback(url):
            message = f"refusing unencrypted {safe_url(url)} (set platform.allow_insecure)"
            log.error("%s", message)
            return SessionEnd(None, "insecure URL", resumable=False, error=message)
        log.info("connecting to %s", safe_url(url))
        try:
            ws = await asyncio.wait_for(
                connect(
                    url,
                    max_size=MAX_MESSAGE_BYTES,
                    compression=None,
                    open_timeout=None,
                    close_timeout=2,
                    user_agent_header=f"hello-device/{__version__}",
                    ping_interval=20,
                    ping_timeout=20,
                ),
                timeout=p.connect_timeout_s,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            message = f"the platform refused the conversation (HTTP {status})"
            log.error("%s", message)
            return SessionEnd(None, message, resumable=status >= 500, error=message)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            message = f"cannot connect to {safe_url(url)}: {_describe(exc)}"
            log.warning("%s", message)
            return SessionEnd(None, message, resumable=True, error=message)
        self._ws = ws
        self._writer = AudioFrameWriter(ws)
        try:
            return await self._converse(ws)
        except ConnectionClosed as exc:
            return self._end_from_close(exc, connected=self._streaming)
        except Exception as exc:  # a bug must not end the daemon: report, resume
            text = _describe(exc)
            log.exception("conversation failed unexpectedly: %s", text)
            return SessionEnd(None, text, resumable=True, error=text, connected=self._streaming)
        finally:
            self._streaming = False
            for task in list(self._tool_tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

    async def _converse(self, ws: ClientConnection) -> SessionEnd:
        s = self.settings
        dynamic = dict(s.conversation.dynamic_variables)
        dynamic.update(device_id=s.device.id, device_name=s.device.name)
        await ws.send(
            self.protocol.initiation(
                dynamic,
                overrides=initiation_overrides(s) or None,
                source_info={"source": "hello-device", "version": __version__},
            )
        )
        try:
            metadata = await asyncio.wait_for(
                self._await_metadata(ws), s.conversation.connect_timeout_s
            )
        except TimeoutError:
            message = "the platform sent no conversation metadata in time"
            log.warning("%s", message)
            return SessionEnd(None, message, resumable=True, error=message)
        except ConnectionClosed as exc:
            return self._end_from_close(exc, connected=False)
        try:
            self._adopt(metadata)
        except ValueError as exc:
            message = f"unusable audio format from the platform: {exc}"
            log.error("%s", message)
            return SessionEnd(1002, message, error=message)
        self._started_at = self._last_activity = self.clock()
        self._streaming = True
        self.listener.on_connected(metadata.conversation_id)
        log.info(
            "conversation %s started (mic %s, agent %s)",
            metadata.conversation_id,
            metadata.user_input_audio_format,
            metadata.agent_output_audio_format,
        )
        receiver = asyncio.create_task(self._receive(ws), name="session-receive")
        uplink = asyncio.create_task(self._send_uplink(ws), name="session-uplink")
        timers = asyncio.create_task(self._timers(), name="session-timers")
        closer = asyncio.create_task(self._close_event.wait(), name="session-close")
        tasks = {receiver, uplink, timers, closer}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if closer in done or (timers in done and self._close_request):
            code, reason = self._close_request or (1000, "")
            log.info("ending conversation %s (%s)", self.conversation_id, reason or "closed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), 2)
            return SessionEnd(code, reason, by_client=True, connected=True)
        for task in done:
            failure = task.exception()
            if isinstance(failure, ConnectionClosed):
                return self._end_from_close(failure, connected=True)
            if failure is not None:
                text = _describe(failure)
                log.error("conversation failed: %s", text, exc_info=failure)
                return SessionEnd(None, text, resumable=True, error=text)
        return SessionEnd(ws.close_code, ws.close_reason or "", connected=True)

    async def _await_metadata(self, ws: ClientConnection) -> ConversationMetadata:
        while True:  # recv() raises ConnectionClosed(OK|Error) for every kind of close
            for event in self._parse(await ws.recv()):
                if isinstance(event, ConversationMetadata):
                    return event
                await self._handle(ws, event)

    def _adopt(self, metadata: ConversationMetadata) -> None:
        self.conversation_id = metadata.conversation_id
        user_fmt = AudioFormat.parse(metadata.user_input_audio_format or "pcm_16000")
        agent_fmt = AudioFormat.parse(metadata.agent_output_audio_format or "pcm_16000")
        self._encoder = MicEncoder(user_fmt)
        self._decoder = AgentDecoder(agent_fmt, self.player.rate)

    def _parse(self, message: str | bytes) -> list[Event]:
        if isinstance(message, bytes):
            return self.protocol.receive_bytes(message)
        return self.protocol.receive_text(message)

    async def _receive(self, ws: ClientConnection) -> None:
        while True:
            for event in self._parse(await ws.recv()):
                await self._handle(ws, event)

    async def _handle(self, ws: ClientConnection, event: Event) -> None:
        if isinstance(event, AgentAudio):
            self._on_audio(event)
        elif isinstance(event, Ping):
            self.stats.pings += 1
            await ws.send(self.protocol.pong(event.event_id))
        elif isinstance(event, Interruption):
            dropped = self.player.flush()
            if self._decoder is not None:
                self._decoder.reset()
            self._suppress_agent_audio = False
            log.debug("interruption %d: flushed %d samples", event.event_id, dropped)
            self.listener.on_interruption()
        elif isinstance(event, UserTranscript):
            self._suppress_agent_audio = False
            self._last_activity = self.clock()
            self.transcript.append(("user", event.text))
            log.info("user: %s", event.text)
            self.listener.on_user_transcript(event.text)
        elif isinstance(event, AgentResponse):
            self.transcript.append(("agent", event.text))
            log.info("agent: %s", event.text)
            self.listener.on_agent_response(event.text)
        elif isinstance(event, AgentResponseCorrection):
            self._correct(event.original, event.corrected)
        elif isinstance(event, ClientToolCall):
            self._spawn(self._run_tool(ws, event))
        elif isinstance(event, ServerError):
            self._last_error = event.message or event.reason or event.error_type or "error"
            log.error(
                "platform error %s%s: %s",
                event.code if event.code is not None else "",
                f" ({event.error_type})" if event.error_type else "",
                self._last_error,
            )

    def _on_audio(self, event: AgentAudio) -> None:
        decoder = self._decoder
        if self._suppress_agent_audio or decoder is None:
            self.stats.audio_dropped += 1
            return
        if decoder.out_rate != self.player.rate:  # the sound card reopened at a new rate
            decoder = self._decoder = AgentDecoder(decoder.fmt, self.player.rate)
        pcm = decoder.decode(event.audio)
        if not len(pcm):
            return
        self.player.push(pcm)
        now = self.clock()
        self._last_audio_at = now
        self.stats.audio_events += 1
        self.stats.audio_arrivals.append((now, len(pcm)))
        self._last_activity = now
        self.listener.on_agent_audio(len(pcm))

    def _correct(self, original: str, corrected: str) -> None:
        for i in range(len(self.transcript) - 1, -1, -1):
            speaker, text = self.transcript[i]
            if speaker == "agent" and (text == original or original.startswith(text[:20])):
                self.transcript[i] = ("agent", corrected)
                break
        else:
            self.transcript.append(("agent", corrected))
        log.info("agent (corrected): %s", corrected)

    async def _run_tool(self, ws: ClientConnection, call: ClientToolCall) -> None:
        result, is_error = await self.tools.call(call.tool_name, call.parameters)
        log.info("tool %s -> %s%s", call.tool_name, "error: " if is_error else "", result[:80])
        if call.expects_response:
            await self._send(self.protocol.tool_result(call.tool_call_id, result, is_error))

    async def _send(self, message: str) -> None:
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(message)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _send_uplink(self, ws: ClientConnection) -> None:
        encoder = self._encoder
        if encoder is None:  # pragma: no cover - _adopt always runs first
            raise ConversationError("no encoder")
        # Frames queued before the conversation was accepted (or while the socket was
        # congested) go out in order; afterwards send_frame() writes directly.
        uplink, ready = self._uplink, self._uplink_ready
        while True:
            while not uplink:
                ready.clear()
                await ready.wait()
            while uplink:
                self._transmit(*uplink.popleft())
            await ws.drain()

    async def _timers(self) -> None:
        """Inactivity, maximum duration, user_activity and variant keep-alive.

        Sleeps until the earliest deadline rather than polling: on a small board every
        wake-up counts. Activity only moves the inactivity deadline later, so a wake-up
        that finds it moved simply sleeps again.
        """
        c = self.settings.conversation
        now = self.clock()
        next_activity = now + c.user_activity_interval_s
        keepalive = self.protocol.keepalive()
        next_keepalive = now + KEEPALIVE_S
        while True:
            deadlines = []
            if c.inactivity_timeout_s:
                deadlines.append(self._last_activity + c.inactivity_timeout_s)
            if c.max_duration_s:
                deadlines.append(self._started_at + c.max_duration_s)
            if c.user_activity_interval_s:
                deadlines.append(next_activity)
            if keepalive is not None:
                deadlines.append(next_keepalive)
            if not deadlines:
                await asyncio.get_running_loop().create_future()  # until cancelled
            wait = min(deadlines) - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            now = self.clock()
            if c.inactivity_timeout_s and now - self._last_activity >= c.inactivity_timeout_s:
                if not self.player.playing:
                    log.info("no speech for %.0f s", c.inactivity_timeout_s)
                    self.request_close(1000, "inactivity")
                    return
                self._last_activity = now
            if c.max_duration_s and now - self._started_at >= c.max_duration_s:
                log.info("conversation reached its maximum of %.0f s", c.max_duration_s)
                self.request_close(1000, "maximum duration")
                return
            if c.user_activity_interval_s and now >= next_activity:
                next_activity = now + c.user_activity_interval_s
                await self._send(self.protocol.user_activity())
            if keepalive is not None and now >= next_keepalive:
                next_keepalive = now + KEEPALIVE_S
                await self._send(keepalive)

    def _end_from_close(self, exc: ConnectionClosed, connected: bool) -> SessionEnd:
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        error = self._last_error
        if code == 1000:
            log.info("the platform ended conversation %s", self.conversation_id)
            return SessionEnd(1000, reason, connected=connected, error=error)
        if code is None or code in RESUMABLE_CODES:
            what = "connection lost" if code is None else f"closed with code {code}"
            log.warning("conversation %s cut off (%s)", self.conversation_id, what)
            return SessionEnd(code, reason, resumable=True, connected=connected, error=error)
        explanation = {
            1002: "the platform reported an operational error",
            1008: "the platform refused a message or setting (policy)",
        }.get(code, "the platform closed the conversation")
        log.error("%s: code %d %s %s", explanation, code, reason, error or "")
        return SessionEnd(code, reason, connected=connected, error=error or explanation)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"
