"""The agent's tools and the user's ratings end to end: the daemon, the emulator over a
real loopback WebSocket and HTTP, the local API, and the like button on gpiozero's
MockFactory (no real pins here). Virtual time.

- A tool the device declared with ``tools sync`` is called by the emulator's agent after
  the user's first turn and does its job; without the sync the agent cannot call it.
- ``get_device_status``, ``show_on_screen`` and ``end_conversation`` through the
  emulator's ``/tool`` text.
- A rating during the conversation goes out as the protocol's ``feedback`` for the last
  answer (once), after the conversation through the REST feedback endpoint (once); the
  LED acknowledges.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hello_device.conversation.tool_specs import DEVICE_TOOLS
from hello_device.core.led_patterns import ACK_FLASHES
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.platform.client import PlatformClient
from hello_device.platform.management import ManagementApi
from hello_device.platform.tool_sync import sync_tools
from hello_device.testing import virtual_time
from tests.conftest import UNIT
from tests.e2e import active, run_with_emulator, silence_wav
from tests.local_api.support import Api, command, next_event, run_api

pytestmark = pytest.mark.slow

LIKE_PIN, LED_PIN = 23, 22


async def declare_tools(daemon: Daemon) -> list[str]:
    """What ``hello-device tools sync`` does, with the daemon's own settings."""
    api = ManagementApi(PlatformClient(daemon.settings.platform))
    return (await sync_tools(api, DEVICE_TOOLS)).changes


async def until(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    """Wait (bounded) for something the emulator records; it has no event to wait on,
    so this polls (in virtual time: no wall-clock cost)."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a record, not an event
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), within_s * UNIT)


def test_every_tool_the_daemon_runs_is_declared_in_code(tmp_path: Path) -> None:
    async def during(daemon: Daemon, emu: Emulator) -> None:
        assert daemon.tools.names() == sorted(spec.name for spec in DEVICE_TOOLS)

    virtual_time.run(
        run_with_emulator(tmp_path, silence_wav(tmp_path / "s.wav", 0.5), None, during)
    )


@pytest.mark.parametrize("declared", [True, False])
def test_the_agent_calls_a_tool_only_once_it_is_declared(
    shared_audio: Path, tmp_path: Path, declared: bool
) -> None:
    config = EmulatorConfig(declared_tool_call="set_volume", declared_tool_parameters={"level": 30})
    changes: list[str] = []

    async def during(daemon: Daemon, emu: Emulator) -> None:
        if declared:
            changes.extend(await declare_tools(daemon))

    run = virtual_time.run(
        run_with_emulator(tmp_path, shared_audio / "utterance.wav", config, during)
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    if not declared:
        assert record.tool_results == []
        assert run.daemon.player.volume == 1.0
        return
    assert "declare set_volume" in " ".join(changes)
    (result,) = record.tool_results
    assert result["is_error"] is False and json.loads(result["result"]) == {"volume": 0.3}
    assert run.daemon.player.volume == pytest.approx(0.3)
    assert "The tool set_volume returned" in " ".join(r.text for r in record.replies)


def test_device_status_and_the_agent_ending_the_conversation(tmp_path: Path) -> None:
    results: dict[str, object] = {}

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        await declare_tools(daemon)
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            assert (await command(ws, 1, "start_conversation"))["ok"]
            await active(emu, 1)
            await next_event(ws, "conversation_started")
            await command(ws, 2, "user_message", text="/tool get_device_status {}")
            results["status"] = (await next_event(ws, "agent_response"))["text"]
            text = '/tool show_on_screen {"text": "Room 3: first floor, left"}'
            await command(ws, 4, "user_message", text=text)
            results["display"] = await next_event(ws, "display")
            text = '/tool end_conversation {"reason": "the user said goodbye"}'
            await command(ws, 3, "user_message", text=text)
            results["ended"] = await next_event(ws, "conversation_ended", 30)
            results["tool_results"] = list(emu.conversations[0].tool_results)

    run = run_api(tmp_path, silence_wav(tmp_path / "s.wav", 40.0), scenario)
    assert run.code == 0
    status = str(results["status"])
    assert status.startswith("The tool get_device_status returned: ")
    fields = json.loads(status.split("returned: ", 1)[1])
    assert fields["state"] in ("listening", "thinking") and fields["muted"] is False
    assert fields["conversation_id"] == run.emulator.conversations[0].conversation_id
    assert results["display"] == {"type": "display", "text": "Room 3: first floor, left"}
    ended = results["ended"]
    assert isinstance(ended, dict) and ended["reason"] == "ended by the agent"
    # end_conversation does not expect a response (its spec): two results, not three
    tool_results = results["tool_results"]
    assert isinstance(tool_results, list) and len(tool_results) == 2
    assert [r["is_error"] for r in tool_results] == [False, False]
    assert tool_results[1]["result"] == "shown on the screen"


def test_ratings_during_and_after_a_conversation_from_the_api_and_the_button(
    tmp_path: Path,
) -> None:
    config = EmulatorConfig(first_message="Hello, how can I help?")
    seen: dict[str, object] = {}

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        assert daemon.gpio is not None and daemon.gpio.pin_factory is not None
        like_button = daemon.gpio.pin_factory.pin(LIKE_PIN)
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            nothing = await command(ws, 0, "feedback", score="like")
            assert nothing == {
                "type": "result",
                "id": 0,
                "ok": False,
                "error": "no conversation to rate",
            }
            assert (await command(ws, 1, "start_conversation"))["ok"]
            await active(emu, 1)
            record = emu.conversations[0]
            await next_event(ws, "agent_response")  # the greeting
            # during: the protocol's feedback, for the greeting's event id, once
            assert (await command(ws, 2, "feedback", score="like"))["ok"]
            event = await next_event(ws, "feedback")
            assert (event["score"], event["sent"]) == ("like", "conversation")
            again = await command(ws, 3, "feedback", score="dislike")
            assert again["error"] == "this answer is rated already"
            await until(lambda: any(m.get("type") == "feedback" for m in record.client_messages))
            seen["during"] = [m for m in record.client_messages if m.get("type") == "feedback"]
            seen["greeting_id"] = record.replies[0].event_id
            assert daemon.gpio is not None and daemon.gpio.led is not None
            seen["ack"] = daemon.gpio.led.pattern
            # after: the like button rates the conversation that just ended, once
            assert (await command(ws, 4, "end_conversation"))["ok"]
            await next_event(ws, "conversation_ended")
            like_button.drive_low()
            event = await next_event(ws, "feedback")
            assert (event["sent"], event["conversation_id"]) == ("after", record.conversation_id)
            like_button.drive_high()
            await until(lambda: bool(emu.feedback_posts))
            seen["posts"] = list(emu.feedback_posts)
            late = await command(ws, 5, "feedback", score="dislike")
            assert late["error"] == "this conversation is rated already"

    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 30.0),
        scenario,
        config,
        gpio={
            "pin_factory": "mock",
            "like_pin": LIKE_PIN,
            "led_type": "led",
            "led_pins": [LED_PIN],
        },
    )
    assert run.code == 0
    assert seen["during"] == [
        {"type": "feedback", "score": "like", "event_id": seen["greeting_id"]}
    ]
    assert seen["ack"] is ACK_FLASHES["led"]["like"][0]
    conv_id = run.emulator.conversations[0].conversation_id
    assert seen["posts"] == [(conv_id, "like")]


def test_a_press_while_the_next_conversation_opens_does_not_rate_the_last_one(
    tmp_path: Path,
) -> None:
    config = EmulatorConfig(metadata_delay_s=2.0)
    answers: list[object] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            assert (await command(ws, 1, "start_conversation"))["ok"]
            await next_event(ws, "conversation_started")
            assert (await command(ws, 2, "end_conversation"))["ok"]
            await next_event(ws, "conversation_ended")
            assert (await command(ws, 3, "start_conversation"))["ok"]
            await next_event(ws, "state")  # connecting: the next visitor's conversation
            assert daemon.session is not None and daemon.session.conversation_id is None
            answers.append(await command(ws, 4, "feedback", score="dislike"))
            await next_event(ws, "conversation_started")
            answers.append(list(emu.feedback_posts))

    run = run_api(tmp_path, silence_wav(tmp_path / "s.wav", 30.0), scenario, config)
    assert run.code == 0
    refused, posts = answers
    assert isinstance(refused, dict) and refused["error"] == "no conversation to rate"
    assert posts == []
