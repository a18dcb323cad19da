"""The session through a fake connection: close-code policy, timers, tail flush, order.

The platform is played by :class:`~hello_device.testing.connection.FakeConnection` and
time by :class:`~hello_device.testing.clock.VirtualClock`, so each case runs in
milliseconds; the same behaviour is covered end to end against the emulator elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from hello_device.audio.player import Player
from hello_device.conversation.ending import SessionEnd
from hello_device.conversation.listener import SessionListener
from hello_device.conversation.playback import AGENT_AUDIO_MAX_QUEUE_S
from hello_device.conversation.session import Session
from hello_device.conversation.tools import ToolRegistry
from hello_device.settings import Settings, parse_settings
from hello_device.testing.clock import VirtualClock
from hello_device.testing.connection import FakeConnection, FakeConnector

URL = "ws://127.0.0.1:9/v1/convai/conversation?agent_id=a"
FRAME = bytes(640)


def settings(**conversation: Any) -> Settings:
    data: dict[str, Any] = {
        "platform": {"agent_id": "a", "api_base_url": "http://127.0.0.1:9"},
        "conversation": {"inactivity_timeout_s": 0, "connect_timeout_s": 1.0, **conversation},
    }
    return parse_settings(data, "test.toml", env={})


class Heard(SessionListener):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.connected = asyncio.Event()

    def on_connected(self, conversation_id: str) -> None:
        self.events.append(f"connected {conversation_id}")
        self.connected.set()

    def on_agent_audio(self, samples: int) -> None:
        self.events.append("audio")

    def on_interruption(self) -> None:
        self.events.append("interruption")


def run(
    scenario: Callable[[Session, FakeConnection], Awaitable[None]],
    clock: VirtualClock | None = None,
    player: Player | None = None,
    tools: ToolRegistry | None = None,
    **conversation: Any,
) -> tuple[SessionEnd, Session, FakeConnection]:
    """Run a session on a fake connection while ``scenario`` plays the platform."""
    conn = FakeConnection()
    clock = clock or VirtualClock()

    async def go() -> SessionEnd:
        session = Session(
            settings(**conversation),
            player or Player(rate=16000),
            tools,
            Heard(),
            clock=clock.now,
            sleep=clock.sleep,
            connect=FakeConnector(conn),
        )
        holder.append(session)
        task = asyncio.create_task(session.run(URL))
        await scenario(session, conn)
        return await asyncio.wait_for(task, 5)

    holder: list[Session] = []
    end = asyncio.run(go())
    return end, holder[0], conn


async def accepted(session: Session, conn: FakeConnection, **formats: str) -> None:
    """The platform accepts the conversation; returns once the session streams."""
    await conn.wait_sent(lambda c: c.of_type("conversation_initiation_client_data"))
    conn.metadata(**formats)
    assert isinstance(session.listener, Heard)
    await asyncio.wait_for(session.listener.connected.wait(), 5)


# ------------------------------------------------------------------ start and order


def test_initiation_first_then_queued_frames_in_order_one_message_each() -> None:
    async def scenario(session: Session, conn: FakeConnection) -> None:
        frames = [bytes([i]) * 640 for i in range(5)]
        for i, f in enumerate(frames[:3]):  # before the platform accepted
            session.send_frame(f, float(i))
        await accepted(session, conn)
        for i, f in enumerate(frames[3:], 3):
            session.send_frame(f, float(i))
        await conn.wait_sent(lambda c: len(c.audio_chunks()) == 5)
        conn.server_close(1000)

    end, session, conn = run(scenario)
    assert conn.sent[0]["type"] == "conversation_initiation_client_data"
    assert conn.sent[0]["dynamic_variables"]["device_id"]
    assert conn.audio_chunks() == [bytes([i]) * 640 for i in range(5)]
    assert session.stats.frames_sent == 5 and session.conversation_id == "conv_fake"
    assert (end.code, end.connected, end.resumable, end.by_client) == (1000, True, False, False)


def test_every_ping_is_answered_at_once_with_its_event_id() -> None:
    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        for event_id in (7, 8, 99):
            conn.receive({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 5}})
        await conn.wait_sent(lambda c: len(c.of_type("pong")) == 3)
        conn.server_close(1000)

    _, _, conn = run(scenario)
    assert [m["event_id"] for m in conn.of_type("pong")] == [7, 8, 99]


# ------------------------------------------------------------------ close-code policy


@pytest.mark.parametrize(
    ("close", "code", "resumable", "error"),
    [
        ("server", 1000, False, False),
        ("server", 1001, True, False),
        ("server", 1011, True, False),
        ("server", 4000, True, False),
        ("server", 4999, True, False),
        ("server", 1002, False, True),
        ("server", 1008, False, True),
        ("drop", None, True, False),
    ],
)
def test_close_code_policy(close: str, code: int | None, resumable: bool, error: bool) -> None:
    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        if close == "drop":
            conn.drop()
        else:
            assert code is not None
            conn.server_close(code, "bye")

    end, _, _ = run(scenario)
    assert (end.code, end.resumable, end.connected, end.by_client) == (code, resumable, True, False)
    assert (end.error is not None) is error


def test_closed_before_the_metadata_is_not_connected() -> None:
    async def scenario(session: Session, conn: FakeConnection) -> None:
        await conn.wait_sent(lambda c: c.sent)
        conn.server_close(1011)

    end, session, _ = run(scenario)
    assert (end.code, end.resumable, end.connected) == (1011, True, False)
    assert not session.streaming


def test_metadata_that_never_comes_is_resumed() -> None:
    async def scenario(session: Session, conn: FakeConnection) -> None:
        await conn.wait_sent(lambda c: c.sent)  # the initiation; no answer ever

    end, _, conn = run(scenario, connect_timeout_s=0.5)
    assert end.resumable and not end.connected and "metadata" in (end.error or "")
    assert conn.close_code == 1000  # the device closed its side


def test_a_refused_connection_is_the_connectors_answer() -> None:
    refused = SessionEnd(None, "HTTP 403", resumable=False, error="refused")

    async def go() -> SessionEnd:
        session = Session(settings(), Player(rate=16000), connect=FakeConnector(refused))
        return await session.run(URL)

    assert asyncio.run(go()) is refused


def test_plain_ws_to_another_host_is_refused_before_connecting() -> None:
    connector = FakeConnector(FakeConnection())

    async def go() -> SessionEnd:
        session = Session(settings(), Player(rate=16000), connect=connector)
        return await session.run("ws://127.example.com/v1/convai/conversation?token=secret")

    end = asyncio.run(go())
    assert not end.resumable and "refusing unencrypted" in (end.error or "")
    assert connector.urls == []


# ------------------------------------------------------------------ timers


def test_inactivity_ends_the_conversation_from_the_device() -> None:
    clock = VirtualClock()

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)

    end, _, conn = run(scenario, clock, inactivity_timeout_s=30)
    assert (end.code, end.reason, end.by_client) == (1000, "inactivity", True)
    assert conn.close_code == 1000 and conn.close_reason == "inactivity"
    assert sum(clock.slept) == pytest.approx(30)


def test_maximum_duration_and_user_activity_on_schedule() -> None:
    clock = VirtualClock()

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)

    end, _, conn = run(scenario, clock, max_duration_s=100, user_activity_interval_s=30)
    assert (end.reason, end.by_client) == ("maximum duration", True)
    assert len(conn.of_type("user_activity")) == 3  # at 30, 60 and 90 s


def test_variant_keepalive_pings_on_schedule() -> None:
    clock = VirtualClock()
    conn = FakeConnection()

    async def go() -> SessionEnd:
        s = parse_settings(
            {
                "platform": {
                    "agent_id": "a",
                    "api_base_url": "http://127.0.0.1:9",
                    "dialect": "variant",
                },
                "conversation": {"inactivity_timeout_s": 0, "max_duration_s": 60},
            },
            "t",
            env={},
        )
        session = Session(
            s,
            Player(rate=16000),
            listener=Heard(),
            clock=clock.now,
            sleep=clock.sleep,
            connect=FakeConnector(conn),
            keepalive_s=15.0,
        )
        task = asyncio.create_task(session.run(URL))
        await accepted(session, conn)
        return await asyncio.wait_for(task, 5)

    asyncio.run(go())
    assert len(conn.of_type("ping")) == 3  # at 15, 30 and 45 s; the end comes at 60


# ------------------------------------------------------------------ agent audio


def tone(rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def test_the_resampler_tail_is_flushed_when_the_turn_pauses() -> None:
    """22.05 kHz agent audio into a 16 kHz player: the resampler keeps a few samples back;
    once nothing arrived for a while and little is left to play, they are pushed."""
    clock = VirtualClock()
    player = Player(rate=16000)

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn, agent="pcm_22050")
        conn.agent_audio(tone(22050, 0.1))
        conn.receive({"type": "ping", "ping_event": {"event_id": 1}})
        await conn.wait_sent(lambda c: c.of_type("pong"))  # the audio before it is queued
        queued = player.queued_ms
        assert 0 < queued < 100  # some of the 100 ms still in the resampler
        session.flush_tail_if_idle(clock.now())  # too soon: nothing
        assert player.queued_ms == queued
        player.read(int(16000 * queued / 1000))  # it played out
        clock.advance(0.2)
        session.flush_tail_if_idle(clock.now())
        assert player.queued_ms > 0  # the tail came out
        assert session.stats.audio_events == 1
        conn.server_close(1000)

    run(scenario, clock, player)


def test_interruption_flushes_and_drops_the_interrupted_turn() -> None:
    player = Player(rate=16000)

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        conn.agent_audio(tone(16000, 0.5), event_id=3)
        conn.receive({"type": "interruption", "interruption_event": {"event_id": 3}})
        conn.agent_audio(tone(16000, 0.5), event_id=3)  # late audio of the cut turn
        conn.agent_audio(tone(16000, 0.2), event_id=4)  # the next turn plays
        conn.receive({"type": "ping", "ping_event": {"event_id": 10}})
        await conn.wait_sent(lambda c: c.of_type("pong"))
        assert player.queued_ms == pytest.approx(200, abs=1)
        conn.server_close(1000)

    _, session, _ = run(scenario, player=player)
    assert session.stats.audio_events == 2


def test_local_barge_in_drops_the_rest_of_the_turn_until_the_transcript() -> None:
    player = Player(rate=16000)

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        conn.agent_audio(tone(16000, 0.5), event_id=3)
        conn.receive({"type": "ping", "ping_event": {"event_id": 1}})
        await conn.wait_sent(lambda c: len(c.of_type("pong")) == 1)
        session.local_barge_in()
        assert player.queued_ms == 0
        conn.agent_audio(tone(16000, 0.5), event_id=3)  # dropped
        conn.receive(
            {"type": "user_transcript", "user_transcription_event": {"user_transcript": "hi"}}
        )
        conn.agent_audio(tone(16000, 0.1), event_id=5)  # played
        conn.receive({"type": "ping", "ping_event": {"event_id": 2}})
        await conn.wait_sent(lambda c: len(c.of_type("pong")) == 2)
        assert player.queued_ms == pytest.approx(100, abs=1)
        conn.server_close(1000)

    _, session, _ = run(scenario, player=player)
    assert session.stats.audio_dropped == 1
    assert list(session.transcript) == [("user", "hi")]


def test_agent_audio_beyond_the_playout_cap_is_dropped() -> None:
    player = Player(rate=16000)
    chunk = bytes(16000 * 2 * 10)  # 10 s

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        for _ in range(int(AGENT_AUDIO_MAX_QUEUE_S // 10) + 3):
            conn.agent_audio(chunk)
        conn.receive({"type": "ping", "ping_event": {"event_id": 1}})
        await conn.wait_sent(lambda c: c.of_type("pong"))
        conn.server_close(1000)

    _, session, _ = run(scenario, player=player)
    assert player.queued_ms <= (AGENT_AUDIO_MAX_QUEUE_S + 10) * 1000
    assert session.stats.audio_dropped >= 2


# ------------------------------------------------------------------ tools


def test_tool_calls_are_answered_and_unknown_ones_are_errors() -> None:
    tools = ToolRegistry()
    tools.register("get_answer", lambda: {"answer": 42})

    async def scenario(session: Session, conn: FakeConnection) -> None:
        await accepted(session, conn)
        for name, call_id in (("get_answer", "t1"), ("nope", "t2")):
            conn.receive(
                {
                    "type": "client_tool_call",
                    "client_tool_call": {
                        "tool_name": name,
                        "tool_call_id": call_id,
                        "parameters": {},
                    },
                }
            )
        await conn.wait_sent(lambda c: len(c.of_type("client_tool_result")) == 2)
        conn.server_close(1000)

    _, _, conn = run(scenario, tools=tools)
    results = {m["tool_call_id"]: m for m in conn.of_type("client_tool_result")}
    assert results["t1"]["result"] == '{"answer":42}' and results["t1"]["is_error"] is False
    assert results["t2"]["is_error"] is True and "unknown tool" in results["t2"]["result"]
