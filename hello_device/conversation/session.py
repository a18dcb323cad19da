"""One conversation over the platform's WebSocket.

The session only moves data: the sans-I/O :class:`~hello_device.core.protocol.ClientProtocol`
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
import contextlib
import logging
import time
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed

from hello_device import __version__
from hello_device.aio import Clock, Sleep
from hello_device.audio.convert import MicEncoder
from hello_device.audio.player import Player
from hello_device.conversation.connect import Connector, Socket, open_connection
from hello_device.conversation.ending import SessionEnd, describe, end_from_close
from hello_device.conversation.listener import SessionListener, SessionStats
from hello_device.conversation.playback import AgentPlayback
from hello_device.conversation.tools import ToolRegistry
from hello_device.conversation.transcript import Transcript
from hello_device.conversation.uplink import UplinkQueue
from hello_device.conversation.urls import initiation_overrides
from hello_device.core.formats import AudioFormat
from hello_device.core.protocol import (
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
from hello_device.core.text import peer
from hello_device.core.urls import is_secure_or_loopback, safe_url
from hello_device.errors import ConversationError
from hello_device.settings import Settings

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""Interval of the variant dialect's client keep-alive ``ping``."""


class Session:
    """One conversation. Create, call :meth:`run`, feed frames with :meth:`send_frame`."""

    def __init__(
        self,
        settings: Settings,
        player: Player,
        tools: ToolRegistry | None = None,
        listener: SessionListener | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        connect: Connector = open_connection,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.settings = settings
        self._connect = connect
        self._sleep = sleep
        self.keepalive_s = keepalive_s
        """Interval of the variant dialect's client keep-alive ``ping``."""
        self.player = player
        self.tools = tools or ToolRegistry()
        self.listener = listener or SessionListener()
        self.clock = clock
        self.protocol = ClientProtocol(settings.platform.dialect)
        self.stats = SessionStats()
        self.conversation_id: str | None = None
        self.transcript = Transcript()
        """(speaker, text) lines of this conversation; corrections replace lines."""
        self.last_agent_event_id: int | None = None
        """The platform's id of the agent's latest turn (what ``feedback`` rates)."""
        self._rated_event_id: int | None = None
        frame_ms = settings.audio.frame_ms
        self._uplink = UplinkQueue(frame_ms, self.stats)
        self._ws: Socket | None = None
        self._streaming = False
        self._encoder: MicEncoder | None = None
        self.playback = AgentPlayback(player, clock)
        self._close_request: tuple[int, str] | None = None
        self._close_event = asyncio.Event()
        self._last_error: str | None = None
        self._last_activity = clock()
        self._started_at = clock()
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        """Set when :meth:`run` has returned."""

    # ------------------------------------------------------------ called by the app

    def send_frame(self, pcm: bytes, captured_at: float) -> None:
        """Queue one 16 kHz mono frame for the platform (never blocks, never raises).

        The session's uplink task sends each frame as one message, through websockets'
        public ``send`` (which applies its flow control). Before the platform accepts the
        conversation, and while a stalled network holds the sender back, frames wait here
        (up to ``UPLINK_BACKLOG_S``; beyond that the oldest are dropped and counted: stale
        audio only delays the turn).
        """
        self._uplink.put(pcm, captured_at)

    def flush_tail_if_idle(self, now: float) -> None:
        """Called once per captured frame: a paused turn's last sound is pushed out."""
        self.playback.flush_tail_if_idle(now)

    def note_activity(self) -> None:
        """The user spoke: the inactivity timer starts again."""
        self._last_activity = self.clock()

    def local_barge_in(self) -> None:
        """The device heard the user talk over the agent: silence the rest of the turn.

        Playback is flushed at once and further audio of the interrupted turn is dropped
        until the platform's ``interruption`` or the next user transcript. In the variant
        dialect the server is told with a client ``interruption`` message.
        """
        dropped = self.playback.cut()
        log.debug("local barge-in: flushed %d samples of agent audio", dropped)
        message = self.protocol.client_interruption()
        if message is not None and self._ws is not None:
            self._spawn(self._send(message))

    def request_close(self, code: int = 1000, reason: str = "") -> None:
        """Ask the session to end the conversation (normal close by the device)."""
        if self._close_request is None:
            self._close_request = (code, reason)
        self._close_event.set()

    def send_text(self, kind: str, text: str) -> str | None:
        """``user_message`` or ``contextual_update`` on the open conversation; an error
        message if there is none yet."""
        if self._ws is None or not self._streaming:
            return "the conversation is not open yet"
        build = (
            self.protocol.user_message
            if kind == "user_message"
            else self.protocol.contextual_update
        )
        self._spawn(self._send(build(text)))
        self._last_activity = self.clock()
        return None

    def send_feedback(self, score: Literal["like", "dislike"]) -> str | None:
        """Rate the agent's latest turn; an error message if there is nothing to rate."""
        if self._ws is None or self.last_agent_event_id is None:
            return "the agent has not answered yet: nothing to rate"
        if self.last_agent_event_id == self._rated_event_id:
            return "this answer is rated already"
        self._rated_event_id = self.last_agent_event_id
        self._spawn(self._send(self.protocol.feedback(self.last_agent_event_id, score)))
        return None

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def closing(self) -> bool:
        """Ending: a close was asked for, or the socket is no longer streaming."""
        return self._close_request is not None or not self._streaming

    @property
    def ping_rtt_s(self) -> float | None:
        """The last keep-alive round trip to the platform (websockets' measure)."""
        ws = self._ws
        latency = getattr(ws, "latency", None) if ws is not None else None
        return float(latency) if latency else None

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
        opened = await self._connect(url, p)
        if isinstance(opened, SessionEnd):
            return opened
        ws = opened
        self._ws = ws
        try:
            return await self._converse(ws)
        except ConnectionClosed as exc:
            return self._end_from_close(exc, connected=self._streaming)
        except Exception as exc:  # a bug must not end the daemon: report, resume
            text = describe(exc)
            log.exception("conversation failed unexpectedly: %s", text)
            return SessionEnd(None, text, resumable=True, error=text, connected=self._streaming)
        finally:
            self._streaming = False
            for task in list(self._tool_tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

    async def _converse(self, ws: Socket) -> SessionEnd:
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
        self.listener.on_connected(self.conversation_id or "")
        log.info(
            "conversation %s started (mic %s, agent %s)",
            self.conversation_id,
            peer(metadata.user_input_audio_format, 40),
            peer(metadata.agent_output_audio_format, 40),
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
            log.info("ending conversation %s (%s)", self.conversation_id, peer(reason or "closed"))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), 2)
            return SessionEnd(code, reason, by_client=True, connected=True)
        for task in done:
            failure = task.exception()
            if isinstance(failure, ConnectionClosed):
                return self._end_from_close(failure, connected=True)
            if failure is not None:
                text = describe(failure)
                log.error("conversation failed: %s", text, exc_info=failure)
                return SessionEnd(None, text, resumable=True, error=text, connected=True)
        return SessionEnd(ws.close_code, ws.close_reason or "", connected=True)

    async def _await_metadata(self, ws: Socket) -> ConversationMetadata:
        while True:  # recv() raises ConnectionClosed(OK|Error) for every kind of close
            for event in self._parse(await ws.recv()):
                if isinstance(event, ConversationMetadata):
                    return event
                await self._handle(ws, event)

    def _adopt(self, metadata: ConversationMetadata) -> None:
        # A server-chosen string that reaches logs, journald fields and systemd STATUS.
        self.conversation_id = peer(metadata.conversation_id, 128)
        user_fmt = AudioFormat.parse(metadata.user_input_audio_format or "pcm_16000")
        agent_fmt = AudioFormat.parse(metadata.agent_output_audio_format or "pcm_16000")
        self._encoder = MicEncoder(user_fmt)
        self.playback.start(agent_fmt)

    def _parse(self, message: str | bytes) -> list[Event]:
        if isinstance(message, bytes):
            return self.protocol.receive_bytes(message)
        return self.protocol.receive_text(message)

    async def _receive(self, ws: Socket) -> None:
        while True:
            for event in self._parse(await ws.recv()):
                await self._handle(ws, event)

    async def _handle(self, ws: Socket, event: Event) -> None:
        if isinstance(event, AgentAudio):
            self._on_audio(event)
        elif isinstance(event, Ping):
            self.stats.pings += 1
            await ws.send(self.protocol.pong(event.event_id))
        elif isinstance(event, Interruption):
            dropped = self.playback.interrupted()
            log.debug("interruption %d: flushed %d samples", event.event_id, dropped)
            self.listener.on_interruption()
        elif isinstance(event, UserTranscript):
            self.playback.resume()
            self._last_activity = self.clock()
            self.transcript.add("user", event.text)
            log.info("user: %s", peer(event.text))
            self.listener.on_user_transcript(event.text)
        elif isinstance(event, AgentResponse):
            self.transcript.add("agent", event.text)
            if event.event_id is not None:
                self.last_agent_event_id = event.event_id
            log.info("agent: %s", peer(event.text))
            self.listener.on_agent_response(event.text)
        elif isinstance(event, AgentResponseCorrection):
            self._correct(event.original, event.corrected)
        elif isinstance(event, ClientToolCall):
            self._spawn(self._run_tool(ws, event))
        elif isinstance(event, ServerError):
            self._last_error = peer(event.message or event.reason or event.error_type or "error")
            log.error(
                "platform error %s%s: %s",
                event.code if event.code is not None else "",
                f" ({peer(event.error_type, 60)})" if event.error_type else "",
                peer(self._last_error),
            )

    def _on_audio(self, event: AgentAudio) -> None:
        samples = self.playback.push(event.audio)
        if samples < 0:
            self.stats.audio_dropped += 1
            return
        if samples == 0:
            return
        now = self.clock()
        self.last_agent_event_id = event.event_id
        self.stats.audio_events += 1
        self.stats.audio_arrivals.append((now, samples))
        self._last_activity = now
        self.listener.on_agent_audio(samples)

    def _correct(self, original: str, corrected: str) -> None:
        self.transcript.correct(original, corrected)
        log.info("agent (corrected): %s", peer(corrected))
        self.listener.on_agent_response_correction(original, corrected)

    async def _run_tool(self, ws: Socket, call: ClientToolCall) -> None:
        result, is_error = await self.tools.call(call.tool_name, call.parameters)
        log.info(
            "tool %s -> %s%s",
            peer(call.tool_name, 64),
            "error: " if is_error else "",
            peer(result, 80),
        )
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

    async def _send_uplink(self, ws: Socket) -> None:
        encoder = self._encoder
        if encoder is None:  # pragma: no cover - _adopt always runs first
            raise ConversationError("no encoder")
        await self._uplink.send(ws, encoder, self.protocol.user_audio_bytes, self.clock)

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
        next_keepalive = now + self.keepalive_s
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
                await self._sleep(wait)
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
                next_keepalive = now + self.keepalive_s
                await self._send(keepalive)

    def _end_from_close(self, exc: ConnectionClosed, connected: bool) -> SessionEnd:
        return end_from_close(exc, connected, self.conversation_id, self._last_error)
