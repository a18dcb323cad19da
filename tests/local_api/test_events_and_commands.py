"""The local API end to end: a real WebSocket client on the running daemon, the emulator
behind it. The snapshot, the events of a whole conversation, each command and its
effect on what the platform receives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.e2e import active, silence_wav

from .support import Api, command, next_event, run_api

pytestmark = pytest.mark.slow

SNAPSHOT_KEYS = {
    "type", "state", "muted", "volume", "conversation_id", "device_id", "agent_id",
    "version", "online", "last_error",
}  # fmt: skip


def test_snapshot_then_the_events_of_a_whole_conversation(
    shared_audio: Path, tmp_path: Path
) -> None:
    seen: list[dict[str, object]] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        status, state = await api.get("/v1/state")
        assert status == 200 and state["state"] == "idle" and state["device_id"] == "test-device"
        async with api.events() as ws:
            snapshot = json.loads(await ws.recv())
            assert set(snapshot) == SNAPSHOT_KEYS and snapshot["type"] == "snapshot"
            assert (snapshot["state"], snapshot["muted"], snapshot["online"]) == (
                "idle",
                False,
                True,
            )
            assert (await command(ws, 1, "start_conversation"))["ok"] is True
            started = await next_event(ws, "conversation_started")
            seen.append(started)
            while True:  # everything up to the agent's answer having played
                event = json.loads(await asyncio.wait_for(ws.recv(), 20 * UNIT))
                seen.append(event)
                if event["type"] == "state" and event["previous"] == "speaking":
                    break
            assert (await command(ws, 2, "end_conversation"))["ok"] is True
            ended = await next_event(ws, "conversation_ended")
            assert ended["conversation_id"] == started["conversation_id"]
            assert (ended["code"], ended["reason"]) == (1000, "ended by the local API")
            idle = await next_event(ws, "state")
            assert (idle["state"], idle["reason"]) == ("idle", "conversation ended")

    mic = shared_audio / "utterance.wav"  # speech 1.05-3.90 s, then the parrot answers
    run = run_api(tmp_path, mic, scenario, limit_s=60.0)
    assert run.code == 0
    kinds = [e["type"] for e in seen]
    # in this order: the conversation, the user's words, the agent's, its voice
    order = ["conversation_started", "user_transcript", "agent_response"]
    assert [k for k in kinds if k in order] == order, kinds
    states = [(e["previous"], e["state"]) for e in seen if e["type"] == "state"]
    assert ("listening", "thinking") in states and ("thinking", "speaking") in states, states
    assert next(e for e in seen if e["type"] == "user_transcript")["text"]


def test_each_command_acts_like_the_button_and_reaches_the_platform(
    shared_audio: Path, tmp_path: Path
) -> None:
    results: dict[str, object] = {}

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            assert (await command(ws, "s", "start_conversation"))["ok"]
            await active(emu, 1)
            record = emu.conversations[0]
            await daemon.wait_state(DeviceState.LISTENING, 10 * UNIT)
            # mute: the platform gets only silence from then on (the button's code path)
            assert (await command(ws, "m", "mute"))["ok"]
            assert (await next_event(ws, "muted"))["muted"] is True
            muted_at = len(record.user_audio)
            await asyncio.sleep(1.0)
            results["muted_audio"] = bytes(record.user_audio[muted_at + 3200 :])
            assert (await command(ws, "u", "unmute"))["ok"]
            # volume
            assert (await command(ws, "v", "set_volume", volume=0.25))["ok"]
            assert (await next_event(ws, "volume"))["volume"] == 0.25
            results["volume"] = daemon.player.volume
            # text in: a typed message and context
            assert (await command(ws, "t", "user_message", text="What's on today?"))["ok"]
            assert (await command(ws, "c", "contextual_update", text="looking at room 3"))["ok"]
            await next_event(ws, "agent_response")  # the emulator answers the typed message
            # thumbs up for that answer
            assert (await command(ws, "f", "feedback", score="like"))["ok"]
            await asyncio.sleep(0.3)
            results["messages"] = list(record.client_messages)
            results["replies"] = [r.event_id for r in record.replies]
            status, body = await api.post("reload")
            assert (status, body) == (200, {"ok": True})
            assert (await command(ws, "e", "end_conversation"))["ok"]
            await next_event(ws, "conversation_ended")

    run = run_api(tmp_path, silence_wav(tmp_path / "s.wav", 30.0), scenario)
    assert run.code == 0
    muted_audio = results["muted_audio"]
    assert isinstance(muted_audio, bytes)
    muted = np.frombuffer(muted_audio, dtype="<i2")
    assert len(muted) > 8000 and not muted.any()
    assert results["volume"] == 0.25
    messages = results["messages"]
    assert isinstance(messages, list)
    by_type = {m["type"]: m for m in messages}
    assert by_type["user_message"]["text"] == "What's on today?"
    assert by_type["contextual_update"]["text"] == "looking at room 3"
    replies = results["replies"]
    assert isinstance(replies, list)
    assert by_type["feedback"] == {"type": "feedback", "event_id": replies[-1], "score": "like"}


def test_commands_over_http_for_curl_users(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        assert await api.post("end_conversation") == (
            400,
            {"ok": False, "error": "no conversation is open"},
        )
        assert await api.post("start_conversation") == (200, {"ok": True})
        await active(emu, 1)
        assert await api.post("set_volume", {"volume": 0.5}) == (200, {"ok": True})
        assert await api.post("mute") == (200, {"ok": True})
        _, state = await api.get("/v1/state")
        assert (state["muted"], state["volume"]) == (True, 0.5)
        assert state["conversation_id"] == emu.conversations[0].conversation_id
        assert await api.post("end_conversation") == (200, {"ok": True})

    run = run_api(tmp_path, silence_wav(tmp_path / "s.wav", 4.0), scenario)
    assert run.code == 0


def test_barge_in_and_the_agents_correction_reach_the_client(
    shared_audio: Path, tmp_path: Path
) -> None:
    """The user talks over a long greeting (bargein.wav): the device's barge-in, then the
    platform's correction of what the agent got to say."""
    from tests.daemon.test_bargein_e2e import long_greeting

    greeting, _ = long_greeting(shared_audio, tmp_path)
    text = "Let me tell you a long story about the museum and its many rooms."
    seen: list[dict[str, object]] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            assert (await command(ws, 1, "start_conversation"))["ok"]
            seen.append(await next_event(ws, "barge_in", within_s=30))
            seen.append(await next_event(ws, "agent_response_correction", within_s=30))

    config = EmulatorConfig(first_message=text, first_message_audio=str(greeting))
    run = run_api(tmp_path, shared_audio / "bargein.wav", scenario, config)
    assert run.code == 0
    correction = seen[1]
    assert correction["original"] == text
    corrected = correction["corrected"]
    assert isinstance(corrected, str) and corrected.endswith("...")
    assert text.startswith(corrected[:-3]) and len(corrected) < len(text)
