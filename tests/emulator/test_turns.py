"""The emulator's turn-taking and controls: interruptions, tool calls, client messages,
the variant dialect, and the test controls (close codes, aborts, raw frames)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedError

from hello_device.emulator import ConversationRecord, Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.emulator.support import RATE, WAIT, Client, conversation, read_wav, run

# ---------------------------------------------------------------------------------------
# Interruptions
# ---------------------------------------------------------------------------------------


def _bargein_stream(shared_audio: Path, over: str) -> tuple[np.ndarray, float, EmulatorConfig]:
    """Audio that talks over the agent, the onset (s) of the interrupting speech, the config."""
    bargein = read_wav(shared_audio / "bargein.wav")  # silence, then speech from 6.02 s
    if over == "first_message":
        # the README's set-up: a reply that starts before 6.0 s and lasts past 8.0 s
        cfg = EmulatorConfig(first_message_audio=str(shared_audio / "two_turns.wav"))
        return bargein, 6.02, cfg
    # the parrot's own reply: turn 1 ends at 3.9 s, the reply plays from ~4.6 s for ~3 s
    utterance = read_wav(shared_audio / "utterance.wav")[: int(4.8 * RATE)]
    cut = int(5.5 * RATE)
    return np.concatenate([utterance, bargein[cut:]]), 4.8 + 6.02 - 5.5, EmulatorConfig()


@pytest.mark.parametrize("over", ["parrot", "first_message"])
def test_interruption_when_user_talks_over_the_reply(shared_audio: Path, over: str) -> None:
    stream, onset, cfg = _bargein_stream(shared_audio, over)
    cfg.send_speed = 2.0

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(stream)
        await client.barrier()
        victim = rec.replies[0]  # the greeting, or the parrot's answer to turn 1
        assert victim.interrupted and victim.sent_s < victim.duration_s
        interruptions = client.of_type("interruption")
        assert interruptions == [
            {"type": "interruption", "interruption_event": {"event_id": victim.event_id}}
        ]
        assert rec.interruptions_sent == [victim.event_id]
        assert rec.interruption_times[0] == pytest.approx(onset, abs=0.1)
        # nothing of the interrupted reply after the interruption
        cut = client.index(lambda m: m["type"] == "interruption")
        later = client.messages[cut:]
        assert not [
            m
            for m in later
            if m["type"] == "audio" and m["audio_event"]["event_id"] <= victim.event_id
        ]
        if victim.text:
            corrections = client.of_type("agent_response_correction")
            event = corrections[0]["agent_response_correction_event"]
            assert event["event_id"] == victim.event_id
            assert event["original_agent_response"] == victim.text
        # the speech that interrupted is a new user turn with its own reply
        new_reply = rec.replies[-2]  # the last one is the barrier's text reply
        assert new_reply.kind == "parrot" and new_reply.event_id > victim.event_id
        assert not new_reply.interrupted
        assert rec.utterances[-1][0] == pytest.approx(onset, abs=0.1)
        assert [m for m in later if m["type"] == "user_transcript"]

    run(conversation(cfg, check))


def test_no_interruption_when_disabled(shared_audio: Path) -> None:
    stream, _, cfg = _bargein_stream(shared_audio, "first_message")
    cfg.interruptions = False
    cfg.send_speed = 8.0

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(stream)
        await client.barrier()
        assert not client.of_type("interruption") and not rec.interruptions_sent
        first, answer = rec.replies[0], rec.replies[1]
        assert not first.interrupted and first.sent_s == pytest.approx(first.duration_s)
        assert answer.kind == "parrot" and answer.sent_s == pytest.approx(answer.duration_s)
        # the answer waits for the greeting: its audio comes after all of the greeting's
        last_greeting = max(
            i
            for i, m in enumerate(client.messages)
            if m["type"] == "audio" and m["audio_event"]["event_id"] == first.event_id
        )
        first_answer = client.index(
            lambda m: m["type"] == "audio" and m["audio_event"]["event_id"] == answer.event_id
        )
        assert first_answer > last_greeting
        assert answer.timeline_start_s == pytest.approx(first.duration_s, abs=0.01)

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Tools, client messages, dialects, malformed input
# ---------------------------------------------------------------------------------------


def test_client_tool_call_after_first_turn(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(tool_call=("get_weather", {"city": "Lisbon"}))

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        calls = await client.wait_for(lambda c: c.of_type("client_tool_call"))
        call = calls[0]["client_tool_call"]
        assert set(call) == {
            "tool_name",
            "tool_call_id",
            "parameters",
            "event_id",
            "expects_response",
        }
        assert call["tool_name"] == "get_weather" and call["parameters"] == {"city": "Lisbon"}
        assert call["expects_response"] is True
        # issued after the whole first reply
        reply_audio = [
            i
            for i, m in enumerate(client.messages)
            if m["type"] == "audio" and m["audio_event"]["event_id"] == rec.replies[0].event_id
        ]
        assert client.index(lambda m: m["type"] == "client_tool_call") > max(reply_audio)
        result = {
            "type": "client_tool_result",
            "tool_call_id": call["tool_call_id"],
            "result": "sunny, 24 C",
            "is_error": False,
        }
        await client.send(result)
        await client.wait_for(
            lambda c: "The tool get_weather returned: sunny, 24 C" in c.agent_texts()
        )
        assert rec.tool_results == [result]
        assert len(client.of_type("client_tool_call")) == 1

    run(conversation(cfg, check))


def test_client_messages_are_recorded() -> None:
    sent: list[dict[str, Any]] = [
        {"type": "contextual_update", "text": "the user is in the kitchen"},
        {"type": "user_activity"},
        {"type": "feedback", "event_id": 1, "score": "like"},
        {"type": "user_message", "text": "hello there"},
    ]

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        for msg in sent:
            await client.send(msg)
        await client.barrier()
        assert rec.client_messages[1:5] == sent
        assert "You wrote: hello there" in client.agent_texts()
        assert ("user", "hello there") in rec.transcript
        assert rec.malformed == []

    run(conversation(EmulatorConfig(ping_interval_s=0), check))


def test_tool_result_must_be_a_string() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.send(
            {
                "type": "client_tool_result",
                "tool_call_id": "x",
                "result": {"a": 1},
                "is_error": False,
            }
        )
        await client.barrier()
        assert rec.tool_results == []
        assert len(rec.malformed) == 1 and "must be a string" in rec.malformed[0]

    run(conversation(EmulatorConfig(), check))


def test_malformed_messages_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    bad: list[str | bytes] = [
        "not json",
        "[1, 2]",
        b"\x00\x01binary",
        json.dumps({"user_audio_chunk": "***not base64***"}),
        json.dumps({"type": "no_such_type"}),
        json.dumps({"type": "audio", "audio": "AAAA"}),  # variant shape, elevenlabs dialect
        json.dumps({"type": "pong"}),
        json.dumps({"no": "type"}),
    ]

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        for frame in bad:
            await client.ws.send(frame)
        await client.barrier()
        assert len(rec.malformed) == len(bad)
        assert rec.audio_chunks == 0
        assert rec.close_code is None

    caplog.set_level(logging.WARNING, logger="hello_device.emulator")
    run(conversation(EmulatorConfig(ping_interval_s=0), check))
    assert "unknown message type 'no_such_type'" in caplog.text


def test_strict_mode_closes_1008_on_a_malformed_message() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.ws.send("not json")
        closed = await client.wait_closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        await asyncio.wait_for(rec.finished.wait(), WAIT)
        assert rec.close_code == 1008

    run(conversation(EmulatorConfig(strict=True), check))


def test_variant_dialect(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(dialect="variant", tool_call=("beep", {}), ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech, shape="variant")
        calls = await client.wait_for(lambda c: c.of_type("tool_call"))
        assert calls[0]["tool_call_event"]["tool_name"] == "beep"
        assert set(calls[0]["tool_call_event"]) >= {"tool_name", "tool_call_id", "parameters"}
        assert not client.of_type("client_tool_call")
        assert rec.audio_chunks > 0 and len(rec.utterances) == 1
        transcript = client.of_type("user_transcript")[0]["user_transcription_event"]
        assert transcript["is_final"] is True
        finals = [m["audio_event"]["is_final"] for m in client.of_type("audio")]
        assert finals[-1] is True and not any(finals[:-1])
        await client.send({"type": "ping", "event_id": 77})
        await client.wait_for(lambda c: c.of_type("pong"))
        assert client.of_type("pong") == [{"type": "pong", "event_id": 77}]
        await client.barrier(kind="user_input")
        assert rec.malformed == []

    run(conversation(cfg, check))


def test_variant_client_interruption_stops_the_reply(shared_audio: Path) -> None:
    cfg = EmulatorConfig(
        dialect="variant", first_message_audio=str(shared_audio / "two_turns.wav"), send_speed=1.0
    )

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.wait_for(lambda c: c.of_type("audio"))
        await client.send({"type": "interruption"})
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        assert rec.replies[0].interrupted
        assert rec.replies[0].sent_s < rec.replies[0].duration_s / 2
        assert not client.of_type("interruption")  # the client's own, not echoed

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Connection control
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1011])
def test_end_conversation_with_close_code(code: int) -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.end_conversation(code, "bye now")
        closed = await client.wait_closed()
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (code, "bye now")
        await asyncio.wait_for(rec.finished.wait(), WAIT)
        assert rec.close_code == code and rec.close_reason == "bye now"

    run(conversation(EmulatorConfig(), check))


def test_abort_connections_drops_without_close_frame() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.abort_connections()
        closed = await client.wait_closed()
        assert isinstance(closed, ConnectionClosedError)
        assert closed.rcvd is None  # no close frame came
        assert rec.finished.is_set() and rec.close_code == 1006

    run(conversation(EmulatorConfig(), check))


def test_send_raw_delivers_frames() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.send_raw('{"type": "mystery", "x": 1}')
        await emu.send_raw(b"\x00\xffbinary")
        await emu.send_raw("{broken")
        await client.wait_for(lambda c: len(c.raw) >= 4)
        assert client.raw[1:4] == ['{"type": "mystery", "x": 1}', b"\x00\xffbinary", "{broken"]

    run(conversation(EmulatorConfig(ping_interval_s=0), check))


def test_max_duration_closes_1000() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        closed = await client.wait_closed(within=5 * UNIT)
        assert closed.rcvd is not None and closed.rcvd.code == 1000

    run(conversation(EmulatorConfig(max_duration_s=0.3), check))


def test_conversations_in_order_and_config_per_conversation() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(output_format="pcm_16000")) as emu:
            first = await Client.open(emu.ws_url)
            await first.wait_for(lambda c: c.messages)
            emu.config.output_format = "ulaw_8000"
            second = await Client.open(emu.ws_url)
            await second.wait_for(lambda c: c.messages)
            rec1 = await emu.wait_conversation(1, WAIT)
            rec2 = await emu.wait_conversation(2, WAIT)
            assert emu.conversations == [rec1, rec2]
            meta = [
                c.messages[0]["conversation_initiation_metadata_event"] for c in (first, second)
            ]
            assert [m["agent_output_audio_format"] for m in meta] == ["pcm_16000", "ulaw_8000"]
            assert [m["conversation_id"] for m in meta] == [
                rec1.conversation_id,
                rec2.conversation_id,
            ]
            with pytest.raises(TimeoutError):
                await emu.wait_conversation(3, timeout=0.05)
            await first.close()
            await second.close()

    run(main())


def test_stop_closes_open_conversations_with_1001() -> None:
    async def main() -> None:
        emu = Emulator(EmulatorConfig())
        await emu.start()
        client = await Client.open(emu.ws_url)
        rec = await emu.wait_conversation(1, WAIT)
        await asyncio.wait_for(emu.stop(), WAIT)
        closed = await client.wait_closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1001
        assert rec.finished.is_set()

    run(main())
