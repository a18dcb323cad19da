"""One conversation's connection: admission (agent, signed URL), the first message,
the metadata, and everything the emulated agent sends (replies, tool calls, pings)."""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hello_device.core import boundedjson
from hello_device.emulator.answers import _first
from hello_device.emulator.audio import (
    Int16Array,
    _bytes_per_sample,
    _encode_output,
    _format_rate,
    _InputDecoder,
    _load_wav,
    _speech_like,
)
from hello_device.emulator.config import (
    _INIT_TIMEOUT_S,
    _STALL_GRACE_S,
    AGENT_CHUNK_S,
    RATE,
    ConversationRecord,
    ReplyRecord,
    TurnRecord,
)
from hello_device.emulator.vad import _Utterance, _UtteranceDetector
from hello_device.emulator.wsocket import ServerSocket, SocketClosed

if TYPE_CHECKING:
    from hello_device.emulator.server import Emulator

log = logging.getLogger(__name__)


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


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


class _ConversationBase:
    """Serves one WebSocket connection: admission, the first message, sending, timers."""

    def __init__(self, emulator: Emulator, ws: ServerSocket, record: ConversationRecord) -> None:
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
        self._tool_turns: dict[str, TurnRecord] = {}  # tool_call_id -> its transcript turn
        self._last_audio_wall = 0.0
        self._text_only = False
        self._reply_wav: Int16Array | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.tag = record.conversation_id
        fault = self.cfg.fault
        self._fault = (
            fault if fault and len(emulator.conversations) <= fault.conversations else None
        )
        self._frozen = asyncio.Event()
        """Set by a ``half_open`` or ``silence`` fault: nothing is sent any more."""
        self._activity = asyncio.Event()
        """Set when the user starts speaking or a reply is queued (the silence timer)."""

    async def run(self, query: dict[str, list[str]]) -> None:
        if not await self._admit(query):
            return
        first = await self._first_message()
        if first is None:
            return
        await self._inject("before_metadata")
        if self.cfg.metadata_delay_s > 0:
            await asyncio.sleep(self.cfg.metadata_delay_s)
        self.record.started_at = time.time()
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
        if self.cfg.declared_tool_call and self.cfg.declared_tool_after_silence_s > 0:
            self._tasks.append(asyncio.create_task(self._silence_trigger()))
        self._queue_first_message()
        self.record.initiated.set()
        await self._inject("after_metadata")
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
        if agent_id is None or agent_id != self.cfg.agent_id:
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
        except SocketClosed:
            return None
        msg: Any = None
        if isinstance(first, bytes):
            kind = "<binary>"
        else:
            try:
                msg = boundedjson.loads(first)
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

    async def _send_json(self, obj: dict[str, Any]) -> None:
        if self._frozen.is_set():
            await asyncio.get_running_loop().create_future()  # silent until cancelled
        await self.ws.send(json.dumps(obj))

    async def _inject(self, stage: str) -> None:
        """Carry out the configured fault if it belongs to this stage (once)."""
        fault = self._fault
        if fault is None or fault.stage != stage:
            return
        self._fault = None
        self.emu.faults_injected.append((self.record.conversation_id, fault, time.monotonic()))
        log.info("conversation %s: injecting %s at %s", self.tag, fault.action, stage)
        if fault.action == "close":
            await self.ws.close(fault.code, fault.reason)
        elif fault.action == "abort":
            self.ws.transport.abort()
        else:
            self._frozen.set()
            if fault.action == "half_open":
                self.ws.transport.pause_reading()  # pings go unanswered; TCP stays up

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
        self._activity.set()
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
            except SocketClosed:
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
                self.record.add_turn("agent", rec.text, rec.event_id)
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
                if offset == 0:
                    await self._inject("agent_audio")
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
        except SocketClosed:
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
        except SocketClosed:
            pass

    async def _dispatch(self, message: str | bytes) -> None:
        raise NotImplementedError

    async def _on_onset(self, t: float) -> None:
        raise NotImplementedError

    async def _on_utterance(self, utterance: _Utterance) -> None:
        raise NotImplementedError

    async def _silence_trigger(self) -> None:
        raise NotImplementedError
