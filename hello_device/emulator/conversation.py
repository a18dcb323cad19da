"""What the client sends, and the turns: audio in (the VAD on the user-audio timeline),
utterances and their parrot replies, interruptions, tool calls and their results, feedback.

Tool calls: ``EmulatorConfig.tool_call`` is called after the first user turn's reply
whatever the agent declares (the legacy test hook). ``declared_tool_call``, and a text
``user_message`` of the form ``/tool NAME {json params}``, call a tool only if one of that
name was declared through the API and attached to the agent (``tool_ids``), as the real
platform's agent can only call the tools it has."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from hello_device.core import boundedjson
from hello_device.emulator.config import RATE, REPLY_PREROLL_S
from hello_device.emulator.connection import _ConversationBase, _Malformed, _Reply, _seconds
from hello_device.emulator.vad import _Onset, _Utterance

log = logging.getLogger(__name__)


class _Conversation(_ConversationBase):
    """Serves one WebSocket connection: the above, and what the client sends."""

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
            msg = boundedjson.loads(message)
        except ValueError as exc:
            raise _Malformed(f"not JSON ({exc}): {message[:60]!r}") from None
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
        self.record.pong_ids.append(event_id)
        sent = self._ping_sent.pop(event_id, None)
        if sent is None:
            log.debug("conversation %s: pong for a ping it did not send, %d", self.tag, event_id)
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
        turn = self._tool_turns.pop(call_id, None)
        if turn is not None:
            turn.tool_results.append(
                {
                    "request_id": call_id,
                    "tool_name": name,
                    "result_value": result,
                    "is_error": is_error,
                    "type": "client",
                }
            )
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
        self.record.add_turn("user", text)
        log.info("conversation %s: user (text): %s", self.tag, text)
        if text == "/tool" or text.startswith("/tool "):
            self._tool_command(text[len("/tool") :].strip())
            return
        self._queue_reply("text", f"You wrote: {text}", None)

    async def _on_feedback(self, msg: dict[str, Any]) -> None:
        if not isinstance(msg.get("event_id"), int) or msg.get("score") not in (
            "like",
            "dislike",
            None,
        ):
            raise _Malformed("feedback needs an integer event_id and a like/dislike/null score")
        rated = [
            t for t in self.record.turns if t.role == "agent" and t.event_id == msg["event_id"]
        ]
        for turn in rated:
            turn.feedback = msg.get("score")
        log.info(
            "conversation %s: feedback %s on reply %d%s",
            self.tag,
            msg.get("score"),
            msg["event_id"],
            "" if rated else " (no such agent turn)",
        )

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
                await self._inject("user_speech")
                await self._on_onset(event.t)
            else:
                await self._on_utterance(event)

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
        self._activity.set()
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
        rec.add_turn("user", text)
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
            name, parameters = self.cfg.tool_call
            self._outbox.put_nowait(lambda: self._send_tool_call(name, parameters, True))
        declared = self.cfg.declared_tool_call
        if self._user_turns == 1 and declared and self.cfg.declared_tool_after_silence_s <= 0:
            self._call_declared(declared, self.cfg.declared_tool_parameters)

    # -- tool calls ----------------------------------------------------------------------

    def _call_declared(self, name: str, parameters: dict[str, Any]) -> bool:
        """Queue a call of the declared, attached tool ``name``; False (logged) if none."""
        tool = self.emu.declared_tool(name)
        if tool is None:
            log.info(
                "conversation %s: tool %s is not declared on the agent; the agent cannot call it",
                self.tag,
                name,
            )
            return False
        expects = bool(tool["tool_config"].get("expects_response", False))
        params = dict(parameters)
        self._outbox.put_nowait(lambda: self._send_tool_call(name, params, expects))
        return True

    def _tool_command(self, command: str) -> None:
        """``/tool NAME {json params}`` typed by the user: call NAME (if declared)."""
        name, _, raw = command.partition(" ")
        try:
            params = json.loads(raw) if raw.strip() else {}
        except ValueError:
            params = None
        if not name or not isinstance(params, dict):
            self._queue_reply("text", "Usage: /tool NAME {json parameters}", None)
        elif not self._call_declared(name, params):
            text = f"I cannot call the tool {name}: it is not declared on the agent."
            self._queue_reply("text", text, None)

    async def _silence_trigger(self) -> None:
        """Call the declared tool after ``declared_tool_after_silence_s`` without user
        speech once every reply was sent (wall clock; once per conversation)."""
        silence = self.cfg.declared_tool_after_silence_s
        while True:
            pending = [r.done.wait() for r in self.record.replies if not r.done.is_set()]
            if pending:
                await asyncio.gather(*pending)
                continue
            self._activity.clear()
            try:
                await asyncio.wait_for(self._activity.wait(), silence)
            except TimeoutError:
                if not self._vad.in_speech and all(r.done.is_set() for r in self.record.replies):
                    break
        assert self.cfg.declared_tool_call is not None
        log.info("conversation %s: %.1f s of silence", self.tag, silence)
        self._call_declared(self.cfg.declared_tool_call, self.cfg.declared_tool_parameters)

    async def _send_tool_call(
        self, name: str, parameters: dict[str, Any], expects_response: bool
    ) -> None:
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
                    "expects_response": expects_response,
                },
            }
        await self._send_json(message)
        turn = self.record.add_turn("agent", "", event_id)
        turn.tool_calls.append(
            {
                "request_id": call_id,
                "tool_name": name,
                "params_as_json": json.dumps(parameters),
                "tool_has_been_called": True,
                "type": "client",
            }
        )
        self._tool_turns[call_id] = turn
        log.info("conversation %s: tool call %s(%s)", self.tag, name, json.dumps(parameters))
