"""Conversations the emulator ran, over real HTTP: list (pages, newest first, filter),
details with the transcript, feedback over the socket and posted after the call; and the
parrot calling a tool declared through the API (never an undeclared one)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hello_device.emulator import ConversationRecord, Emulator, EmulatorConfig
from tests.emulator.support import (
    TOOL,
    WAIT,
    Client,
    acall,
    aget,
    conversation,
    declare_tool,
    read_wav,
    run,
)

NOT_DECLARED = "tool open_door is not declared on the agent; the agent cannot call it"


async def _details(emu: Emulator, rec: ConversationRecord) -> dict[str, Any]:
    status, _, body = await aget(f"{emu.http_url}/v1/convai/conversations/{rec.conversation_id}")
    assert status == 200
    return dict(body)


def _calls(client: Client) -> list[dict[str, Any]]:
    return [m["client_tool_call"] for m in client.of_type("client_tool_call")]


# ---------------------------------------------------------------------------------------
# Conversations and feedback
# ---------------------------------------------------------------------------------------


def test_transcript_in_the_details_and_the_list(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(first_message="Hello!", ping_interval_s=0)

    async def main() -> None:
        async with Emulator(cfg) as emu:
            client = await Client.open(emu.ws_url)
            rec = await emu.wait_conversation(1, WAIT)
            await asyncio.wait_for(rec.initiated.wait(), WAIT)
            status, _, listed = await aget(f"{emu.http_url}/v1/convai/conversations")
            assert status == 200
            assert listed["conversations"][0]["status"] == "in-progress"
            assert listed["conversations"][0]["call_successful"] == "unknown"
            await client.stream(speech)
            await client.wait_for(lambda c: c.of_type("agent_response")[1:])
            await client.barrier()
            await client.close()
            await asyncio.wait_for(rec.finished.wait(), WAIT)
            said = client.of_type("user_transcript")[0]["user_transcription_event"]
            details = await _details(emu, rec)
            turns = [(t["role"], t["message"]) for t in details["transcript"]]
            assert turns == [
                ("agent", "Hello!"),
                ("user", said["user_transcript"]),
                ("agent", f"You said: {said['user_transcript']}"),
                ("user", "barrier-1"),
                ("agent", "You wrote: barrier-1"),
            ]
            for turn in details["transcript"]:
                assert turn["tool_calls"] == [] and turn["tool_results"] == []
                assert turn["feedback"] is None and isinstance(turn["time_in_call_secs"], int)
            assert details["status"] == "done" and details["agent_id"] == "demo-agent"
            assert details["metadata"]["feedback"] == {
                "overall_score": None,
                "likes": 0,
                "dislikes": 0,
            }
            assert details["metadata"]["start_time_unix_secs"] == int(rec.started_at or 0)
            assert not details["has_audio"] and not details["has_user_audio"]
            _, _, listed = await aget(f"{emu.http_url}/v1/convai/conversations?agent_id=demo-agent")
            item = listed["conversations"][0]
            assert item["conversation_id"] == rec.conversation_id
            assert item["agent_name"] == "hello-device emulator (demo-agent)"
            assert (item["status"], item["call_successful"]) == ("done", "success")
            assert item["message_count"] == 5 and item["call_duration_secs"] >= 0

    run(main())


def test_conversations_list_pages_newest_first() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(ping_interval_s=0)) as emu:
            for n in range(1, 4):
                client = await Client.open(emu.ws_url)
                rec = await emu.wait_conversation(n, WAIT)
                await asyncio.wait_for(rec.initiated.wait(), WAIT)
                await client.close()
                await asyncio.wait_for(rec.finished.wait(), WAIT)
            refused = await Client.open(emu.ws_url.replace("demo-agent", "other"), init=None)
            await refused.wait_closed()
            base = f"{emu.http_url}/v1/convai/conversations"
            status, _, first = await aget(f"{base}?page_size=2")
            assert status == 200 and first["has_more"] is True
            status, _, second = await aget(f"{base}?page_size=2&cursor={first['next_cursor']}")
            assert second["has_more"] is False and second["next_cursor"] is None
            ids = [c["conversation_id"] for c in first["conversations"] + second["conversations"]]
            assert ids == [r.conversation_id for r in reversed(emu.conversations[:3])]
            status, _, none = await aget(f"{base}?agent_id=other")
            assert none["conversations"] == [] and none["has_more"] is False
            status, _, body = await aget(f"{base}?page_size=101")
            assert status == 422 and body["detail"][0]["loc"] == ["query", "page_size"]
            status, _, body = await aget(f"{base}/conv_nope")
            assert status == 404 and body["detail"] == {
                "status": "conversation_not_found",
                "message": "Conversation with id conv_nope not found",
            }

    run(main())


def test_feedback_over_the_socket_and_posted_after_the_call() -> None:
    cfg = EmulatorConfig(first_message="Hello!", ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.wait_for(lambda c: c.of_type("agent_response"))
        greeting = client.of_type("agent_response")[0]["agent_response_event"]["event_id"]
        await client.send({"type": "feedback", "score": "like", "event_id": greeting})
        await client.barrier()
        url = f"{emu.http_url}/v1/convai/conversations/{rec.conversation_id}/feedback"
        status, _, body = await acall("POST", url, {"feedback": "dislike"})
        assert status == 200 and body == {}
        details = await _details(emu, rec)
        assert details["transcript"][0]["feedback"] == {"score": "like"}
        assert details["transcript"][2]["feedback"] is None
        assert details["metadata"]["feedback"] == {"overall_score": -1, "likes": 1, "dislikes": 0}
        assert emu.feedback_posts == [(rec.conversation_id, "dislike")]
        for bad in ({"feedback": "meh"}, {"rating": 5}, {"feedback": None}):
            status, _, body = await acall("POST", url, bad)
            assert status == 422 and body["detail"][0]["loc"] == ["body", "feedback"]
        status, _, body = await acall("POST", url, raw=b"like")
        assert status == 422 and body["detail"][0]["loc"] == ["body"]
        nope = url.replace(rec.conversation_id, "conv_nope")
        status, _, body = await acall("POST", nope, {"feedback": "like"})
        assert status == 404 and body["detail"]["status"] == "conversation_not_found"
        assert len(emu.feedback_posts) == 1

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Declared tools
# ---------------------------------------------------------------------------------------


def test_an_undeclared_tool_is_never_called(
    shared_audio: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hello_device.emulator")
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(declared_tool_call="open_door", ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await declare_tool(emu, attach=False)  # declared, not attached: still not callable
        await client.stream(speech)
        await client.wait_for(lambda c: c.of_type("agent_response"))
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        await client.send({"type": "user_message", "text": "/tool open_door {}"})
        text = "I cannot call the tool open_door: it is not declared on the agent."
        await client.wait_for(lambda c: text in c.agent_texts())
        await client.barrier()
        assert _calls(client) == [] and not client.of_type("tool_call")

    run(conversation(cfg, check))
    assert caplog.text.count(NOT_DECLARED) == 2


@pytest.mark.parametrize("dialect", ["elevenlabs", "variant"])
def test_a_declared_tool_is_called_after_the_first_reply(shared_audio: Path, dialect: str) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(
        declared_tool_call="open_door",
        declared_tool_parameters={"door": "front"},
        dialect=dialect,
        ping_interval_s=0,
    )

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await declare_tool(emu)
        await client.stream(speech, shape="elevenlabs" if dialect == "elevenlabs" else "variant")
        key = "client_tool_call" if dialect == "elevenlabs" else "tool_call"
        calls = await client.wait_for(lambda c: c.of_type(key))
        call = calls[0][key if dialect == "elevenlabs" else "tool_call_event"]
        assert (call["tool_name"], call["parameters"]) == ("open_door", {"door": "front"})
        reply = client.index(lambda m: m["type"] == "agent_response")
        assert reply < client.index(lambda m: m["type"] == key)
        if dialect == "elevenlabs":
            assert call["expects_response"] is True
        result = {
            "type": "client_tool_result",
            "tool_call_id": call["tool_call_id"],
            "result": "opened",
            "is_error": False,
        }
        await client.send(result)
        await client.wait_for(lambda c: "The tool open_door returned: opened" in c.agent_texts())
        details = await _details(emu, rec)
        tool_turns = [t for t in details["transcript"] if t["tool_calls"]]
        assert len(tool_turns) == 1 and tool_turns[0]["role"] == "agent"
        made = tool_turns[0]["tool_calls"][0]
        assert made["request_id"] == call["tool_call_id"] and made["tool_name"] == "open_door"
        assert json.loads(made["params_as_json"]) == {"door": "front"}
        assert tool_turns[0]["tool_results"] == [
            {
                "request_id": call["tool_call_id"],
                "tool_name": "open_door",
                "result_value": "opened",
                "is_error": False,
                "type": "client",
            }
        ]

    run(conversation(cfg, check))


def test_a_declared_tool_is_called_after_silence(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(
        first_message="Hello!",
        declared_tool_call="open_door",
        declared_tool_after_silence_s=0.3,
        ping_interval_s=0,
    )

    async def main() -> None:
        async with Emulator(cfg) as emu:
            await declare_tool(emu)
            client = await Client.open(emu.ws_url)
            rec = await emu.wait_conversation(1, WAIT)
            await asyncio.wait_for(rec.initiated.wait(), WAIT)
            await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)  # the greeting is out
            calls = await client.wait_for(_calls)
            assert calls[0]["tool_name"] == "open_door" and calls[0]["parameters"] == {}
            assert rec.utterances == []  # no user speech at all: the silence did it
            # once per conversation: a user turn and more silence call nothing more
            await client.stream(np.concatenate([speech, np.zeros(8000, dtype=np.int16)]))
            await client.wait_for(lambda c: len(c.of_type("agent_response")) >= 2)
            await asyncio.wait_for(rec.replies[-1].done.wait(), WAIT)
            await client.barrier()
            assert len(_calls(client)) == 1
            await client.close()

    run(main())


def test_tool_command_in_a_user_message_calls_a_declared_tool() -> None:
    cfg = EmulatorConfig(ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        flat = dict(TOOL["tool_config"])
        flat["expects_response"] = False
        await declare_tool(emu, flat)
        await client.send({"type": "user_message", "text": '/tool open_door {"door": "back"}'})
        calls = await client.wait_for(_calls)
        assert calls[0]["parameters"] == {"door": "back"}
        assert calls[0]["expects_response"] is False
        await client.send({"type": "user_message", "text": "/tool open_door {oops"})
        await client.wait_for(lambda c: "Usage: /tool NAME {json parameters}" in c.agent_texts())
        await client.barrier()
        assert len(_calls(client)) == 1
        assert not any(t.startswith("You wrote: /tool") for t in client.agent_texts())

    run(conversation(cfg, check))
