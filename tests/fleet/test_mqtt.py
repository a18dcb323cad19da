"""The device on a real Mosquitto broker (started here on loopback, with a password
file): availability and its last will, the retained state, Home Assistant discovery
checked per entity type, every command round trip, a broker restart during a
conversation, a wrong password. Real time: the broker keeps its own clock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator
from tests.conftest import REPO, UNIT
from tests.e2e import active, run_with_emulator, silence_wav

from .broker import PASSWORD, USER, Broker

aiomqtt = pytest.importorskip("aiomqtt", reason="the mqtt extra is not installed")
pytestmark = pytest.mark.slow

PREFIX = "hello-device/test-device"
# Home Assistant's MQTT discovery: what each entity type requires and what it accepts
# (https://www.home-assistant.io/integrations/{sensor,switch,number,button}.mqtt/).
COMMON = {"name", "unique_id", "object_id", "availability_topic", "device", "icon",
          "entity_category"}  # fmt: skip
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "sensor": ({"state_topic"}, {"value_template"}),
    "switch": ({"command_topic"}, {"state_topic", "value_template", "payload_on", "payload_off"}),
    "number": ({"command_topic"}, {"state_topic", "value_template", "min", "max", "step", "mode"}),
    "button": ({"command_topic"}, {"payload_press"}),
}


def check_discovery(topic: str, payload: dict[str, Any]) -> str:
    """The entity type, after checking the payload against its schema."""
    parts = topic.split("/")
    assert parts[0] == "homeassistant" and parts[-1] == "config" and len(parts) == 5, topic
    component = parts[1]
    required, optional = SCHEMA[component]
    assert required <= set(payload), (topic, required - set(payload))
    assert set(payload) <= required | optional | COMMON, (
        topic,
        set(payload) - required - optional - COMMON,
    )
    device = payload["device"]
    assert device["identifiers"] == ["hello-device-test-device"] and device["sw_version"]
    assert payload["availability_topic"] == f"{PREFIX}/availability"
    if component == "number":
        assert payload["min"] < payload["max"] and payload["mode"] in ("auto", "box", "slider")
    return component


@asynccontextmanager
async def watcher(broker: Broker, *topics: str) -> AsyncIterator[Any]:
    async with aiomqtt.Client("127.0.0.1", broker.port, username=USER, password=PASSWORD) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def next_message(client: Any, topic: str, within_s: float = 15.0) -> str:
    async def find() -> str:
        async for message in client.messages:
            if str(message.topic) == topic:
                return bytes(message.payload).decode()
        raise AssertionError("the connection closed")

    return await asyncio.wait_for(find(), within_s * UNIT)


def mqtt_section(broker: Broker, folder: Path, password: str = PASSWORD) -> dict[str, Any]:
    return {
        "url": f"mqtt://127.0.0.1:{broker.port}",
        "username": USER,
        "password_file": str(broker.password_file(folder, password)),
        "keepalive_s": 5,
    }


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


async def connected(daemon: Daemon) -> None:
    for _ in range(int(200 * UNIT)):  # bounded: 20 s
        if daemon.mqtt is not None and daemon.mqtt.connected.is_set():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the daemon never connected to the broker")


def test_availability_state_discovery_and_every_command(broker: Broker, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await connected(daemon)
        async with watcher(broker, f"{PREFIX}/#", "homeassistant/#") as client:
            retained: dict[str, str] = {}
            while len([t for t in retained if t.startswith("homeassistant/")]) < 7 or (
                f"{PREFIX}/state" not in retained
            ):
                message = await asyncio.wait_for(anext(aiter(client.messages)), 10 * UNIT)
                retained[str(message.topic)] = bytes(message.payload).decode()
            seen["retained"] = retained
            # Home Assistant restarts: it says so, and the device announces itself again
            await client.publish("homeassistant/status", "online", qos=1)
            again = await next_message(client, "homeassistant/sensor/test-device/state/config")
            seen["again"] = json.loads(again)
            for name, payload, expect in [
                ("set_volume", {"volume": 0.3}, {"ok": True}),
                ("mute", {}, {"ok": True}),
                ("unmute", {}, {"ok": True}),
                ("self_destruct", {}, None),
                ("set_volume", {"volume": 7}, None),
                ("start_conversation", {}, {"ok": True}),
            ]:
                await client.publish(f"{PREFIX}/command/{name}", json.dumps(payload), qos=1)
                answer = json.loads(await next_message(client, f"{PREFIX}/command/{name}/result"))
                if expect is None:
                    assert answer["ok"] is False and answer["error"], answer
                else:
                    assert answer == expect, (name, answer)
            await active(emu, 1)
            await client.publish(f"{PREFIX}/ha/mute/set", "ON", qos=1)  # Home Assistant's switch
            await next_message(client, f"{PREFIX}/ha/mute/set/result")
            state = json.loads(await next_message(client, f"{PREFIX}/state"))
            while not state["muted"]:
                state = json.loads(await next_message(client, f"{PREFIX}/state"))
            seen["state"] = state
            await client.publish(f"{PREFIX}/ha/volume/set", "0.55", qos=1)
            await next_message(client, f"{PREFIX}/ha/volume/set/result")
            seen["volume"] = daemon.player.volume
            await client.publish(f"{PREFIX}/command/end_conversation", "{}", qos=1)
            await next_message(client, f"{PREFIX}/command/end_conversation/result")
            event = json.loads(await next_message(client, f"{PREFIX}/event"))
            while event["type"] != "conversation_ended":
                event = json.loads(await next_message(client, f"{PREFIX}/event"))
            seen["ended"] = event
        daemon.stop()

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 60.0),
            during=during,
            conversation={"start": "button"},
            mqtt=mqtt_section(broker, tmp_path),
            limit_s=60,
        )
    )
    assert run.code == 0
    retained = seen["retained"]
    assert retained[f"{PREFIX}/availability"] == "online"
    snapshot = json.loads(retained[f"{PREFIX}/state"])
    assert snapshot["state"] == "idle" and snapshot["device_id"] == "test-device"
    kinds = sorted(
        check_discovery(t, json.loads(p))
        for t, p in retained.items()
        if t.startswith("homeassistant/")
    )
    assert kinds == ["button", "button", "number", "sensor", "sensor", "sensor", "switch"]
    assert seen["again"]["unique_id"] == "test-device_state"
    assert seen["state"]["muted"] is True and seen["state"]["conversations_today"] == 1
    assert seen["volume"] == 0.55
    assert seen["ended"]["reason"] == "ended by the local API"


def test_the_last_will_says_offline_when_the_daemon_is_killed(
    broker: Broker, tmp_path: Path
) -> None:
    from tests.daemon.test_service import EmulatorThread

    emulator = EmulatorThread(
        __import__("hello_device.emulator", fromlist=["EmulatorConfig"]).EmulatorConfig()
    )
    config = tmp_path / "config.toml"
    m = mqtt_section(broker, tmp_path)
    config.write_text(
        f'[device]\nid = "test-device"\n[platform]\nagent_id = "demo-agent"\n'
        f'api_base_url = "{emulator.emu.http_url}"\n[audio]\nbackend = "file"\n'
        f'input_file = "{silence_wav(tmp_path / "s.wav", 60.0)}"\noutput_file = "{tmp_path / "o.wav"}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n[local_api]\nenabled = false\n'
        f'[mqtt]\nurl = "{m["url"]}"\nusername = "{USER}"\npassword_file = "{m["password_file"]}"\n'
        f"keepalive_s = 5\n"
    )  # fmt: skip

    async def scenario() -> list[str]:
        async with watcher(broker, f"{PREFIX}/availability") as client:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hello_device", "run", "--config", str(config),
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                seen = [await next_message(client, f"{PREFIX}/availability", 30)]
                while seen[-1] != "online":
                    seen.append(await next_message(client, f"{PREFIX}/availability", 30))
                os.kill(daemon.pid, signal.SIGKILL)  # no goodbye: only the will can tell
                seen.append(await next_message(client, f"{PREFIX}/availability", 20))
                return seen
            finally:
                if daemon.returncode is None:
                    daemon.kill()
                await asyncio.wait_for(daemon.wait(), 10)

    try:
        seen = asyncio.run(scenario())
    finally:
        emulator.close()
    assert seen[-2:] == ["online", "offline"]


def test_a_broker_restart_leaves_the_conversation_alone(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await connected(daemon)
        await active(emu, 1)
        assert daemon.mqtt is not None
        await asyncio.to_thread(broker.stop)
        for _ in range(int(100 * UNIT)):
            if not daemon.mqtt.connected.is_set():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the broker stays down a moment (real time: it is real)
        await asyncio.to_thread(broker.start)
        await connected(daemon)
        async with watcher(broker, f"{PREFIX}/availability") as client:
            assert await next_message(client, f"{PREFIX}/availability") == "online"
        daemon.stop()

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 60.0),
            during=during,
            mqtt=mqtt_section(broker, tmp_path),
            conversation={"start": "auto", "inactivity_timeout_s": 0},
            limit_s=60,
        )
    )
    assert run.code == 0
    assert len(run.emulator.conversations) == 1 and run.daemon.reconnects == 0
    lost = [
        r
        for r in caplog.records
        if "MQTT 127.0.0.1" in r.getMessage() and "unavailable" in r.getMessage()
    ]
    assert 1 <= len(lost) <= 2, [r.getMessage() for r in lost]  # one line a change, no flood


def test_a_wrong_password_is_one_clear_line_and_the_device_works(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        await asyncio.sleep(4.0)  # several reconnection attempts (real time)
        daemon.stop()

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 60.0),
            during=during,
            mqtt=mqtt_section(broker, tmp_path, password="wrong-password"),
            limit_s=60,
        )
    )
    assert run.code == 0
    assert len(run.emulator.conversations) == 1  # the conversation path never waited
    lines = [r.getMessage() for r in caplog.records if r.name == "hello_device.fleet.mqtt"]
    assert len(lines) == 1, lines
    assert "unavailable" in lines[0] and "wrong-password" not in caplog.text


def test_transcripts_only_when_asked(broker: Broker, shared_audio: Path, tmp_path: Path) -> None:
    """Off by default (personal data): no transcript event and no text sensors; with
    ``publish_transcripts`` both, and the last texts on their own topic."""
    seen: dict[str, Any] = {}

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await connected(daemon)
        async with watcher(broker, f"{PREFIX}/#", "homeassistant/#") as client:
            texts = json.loads(await next_message(client, f"{PREFIX}/transcript", 30))
            while not texts["user"] or not texts["agent"]:
                texts = json.loads(await next_message(client, f"{PREFIX}/transcript", 30))
            seen["texts"] = texts
        daemon.stop()

    section = {**mqtt_section(broker, tmp_path), "publish_transcripts": True}
    run = asyncio.run(
        run_with_emulator(
            tmp_path, shared_audio / "utterance.wav", during=during, mqtt=section, limit_s=60
        )
    )
    assert run.code == 0
    assert seen["texts"]["user"].startswith("(") and seen["texts"]["agent"]
    # and by default: nothing of what was said on the broker
    events: list[str] = []

    async def quiet(daemon: Daemon, emu: Emulator) -> None:
        await connected(daemon)
        async with watcher(broker, f"{PREFIX}/#", "homeassistant/#") as client:
            while True:
                message = await asyncio.wait_for(anext(aiter(client.messages)), 30 * UNIT)
                events.append(f"{message.topic} {bytes(message.payload).decode()}")
                if '"conversation_ended"' in events[-1] or '"agent_response' in events[-1]:
                    break
                if '"state": "speaking"' in events[-1]:
                    break
        daemon.stop()

    asyncio.run(
        run_with_emulator(
            tmp_path / "quiet",
            shared_audio / "utterance.wav",
            during=quiet,
            mqtt=mqtt_section(broker, tmp_path),
            limit_s=60,
        )
    )

    # turned off, the words of the first run were removed from the broker too
    def personal(entry: str) -> bool:
        topic, _, payload = entry.partition(" ")
        if not payload:  # an emptied retained message: a removal
            return False
        words_topic = topic.endswith("/transcript") or "_text/config" in topic
        return words_topic or '"user_transcript"' in payload or '"agent_response' in payload

    assert not [e for e in events if personal(e)]
