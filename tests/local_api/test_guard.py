"""The local API against bad input, web pages and greedy clients: a clear error for
every mistake (the connection stays), Origin, Host and token rules, the client limit,
a client that never reads, and no secret in any answer."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.errors import ConfigError
from hello_device.local_api.commands import MAX_TEXT_CHARS
from hello_device.local_api.hub import QUEUE_EVENTS
from hello_device.settings import load_settings
from tests.conftest import UNIT
from tests.e2e import active, silence_wav

from .support import Api, command, next_event, run_api

pytestmark = pytest.mark.slow

TOKEN = "local-api-token-0123456789abcdef"
BAD_COMMANDS: list[tuple[dict[str, object], str]] = [
    ({"name": "self_destruct"}, "unknown command 'self_destruct'"),
    ({"name": 42}, "unknown command '42'"),
    ({"name": "set_volume"}, "set_volume needs volume, a number from 0.0 to 1.0"),
    ({"name": "set_volume", "volume": "loud"}, "set_volume needs volume"),
    ({"name": "set_volume", "volume": True}, "set_volume needs volume"),
    ({"name": "set_volume", "volume": 1.5}, "volume 1.5 is out of range 0.0 to 1.0"),
    ({"name": "mute", "volume": 1}, "mute takes no arguments, not 'volume'"),
    ({"name": "user_message", "text": ""}, "user_message needs text, a non-empty string"),
    ({"name": "user_message", "text": "x" * (MAX_TEXT_CHARS + 1)}, "at most 2000"),
    ({"name": "feedback", "score": "meh"}, 'feedback needs score, "like" or "dislike"'),
    ({"name": "user_message", "text": "hi"}, "no conversation is open"),
]


def test_every_bad_input_gets_a_clear_error_and_the_connection_stays(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            for i, (args, error) in enumerate(BAD_COMMANDS):
                answer = await command(ws, i, **args)  # type: ignore[arg-type]
                assert answer["ok"] is False and error in answer["error"], (args, answer)
            for raw, error in [
                ("{not json", "not JSON"),
                ("[1, 2]", '"type": "command"'),
                (json.dumps({"type": "hello"}), '"type": "command"'),
                (json.dumps({"type": "command", "name": "mute", "pad": "x" * 20000}), "at most"),
            ]:
                await ws.send(raw)
                answer = await next_event(ws, "result")
                assert answer == {
                    "type": "result",
                    "id": None,
                    "ok": False,
                    "error": answer["error"],
                }
                assert error in answer["error"], (raw[:40], answer)
            await ws.send(b"\x00\x01")
            assert "JSON text" in (await next_event(ws, "result"))["error"]
            assert (await command(ws, "last", "mute"))["ok"]  # still connected, still obeyed
            # over HTTP too
            assert await api.post("set_volume", {"volume": -1}) == (
                400,
                {"ok": False, "error": "volume -1 is out of range 0.0 to 1.0"},
            )
            status, body = await api.post("mute", b"{oops")
            assert status == 400 and body["error"].startswith("the body is not JSON")
            status, body = await api.post("mute", b"[]")
            assert status == 400 and "JSON object" in body["error"]

    assert run_api(tmp_path, silence_wav(tmp_path / "s.wav", 3.0), scenario).code == 0


def test_commands_are_rate_limited(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            answers = [await command(ws, i, "unmute") for i in range(12)]
            refused = [a for a in answers if not a["ok"]]
            assert len(refused) == 12 - 10  # a burst of twice the rate (5 a second)
            assert refused[0]["error"] == "too many commands: at most 5 a second"
        statuses = [(await api.post("unmute"))[0] for _ in range(12)]
        assert statuses.count(429) == 2

    run = run_api(
        tmp_path, silence_wav(tmp_path / "s.wav", 2.0), scenario, local_api={"commands_per_s": 5}
    )
    assert run.code == 0


def test_web_pages_and_rebinding_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        for origin, expected in [
            (None, 200),
            ("null", 403),  # a file, or any site's sandboxed frame: only if listed
            ("file://", 403),
            ("http://localhost:3000", 200),
            ("http://127.0.0.1", 200),
            ("https://kiosk.example", 200),  # listed
            ("https://evil.example", 403),
            ("http://localhost.evil.example", 403),
        ]:
            headers = {"Origin": origin} if origin else {}
            status, _ = await api.get("/v1/state", headers)
            assert status == expected, origin
        for _ in range(2):  # the WebSocket handshake too; logged once
            with pytest.raises(InvalidStatus) as refused:
                async with api.events(headers={"Origin": "https://evil.example"}):
                    pass
            assert refused.value.response.status_code == 403
        assert (await api.post("mute", headers={"Origin": "https://evil.example"}))[0] == 403
        # DNS rebinding: a page whose own name now points at 127.0.0.1
        status, body = await api.get("/v1/state", {"Host": f"evil.example:{api.port}"})
        assert status == 403 and "Host" in body["error"]
        assert daemon.player.volume == 1.0 and not daemon.state.muted

    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 2.0),
        scenario,
        local_api={"allowed_origins": ["https://kiosk.example"]},
    )
    assert run.code == 0
    refusals = [r.message for r in caplog.records if "refused a request from the web" in r.message]
    assert len(refusals) == 4  # each refused origin once, however often it tried
    assert sum("'https://evil.example'" in r for r in refusals) == 1


def test_a_token_is_required_when_configured(tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        assert (await api.get("/v1/state"))[0] == 401
        assert (await api.get("/v1/state", {"Authorization": "Bearer wrong"}))[0] == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await api.get("/v1/state", good))[0] == 200
        assert await api.post("mute", headers=good) == (200, {"ok": True})
        with pytest.raises(InvalidStatus):
            async with api.events():
                pass
        async with api.events(headers=good) as ws:
            assert (await next_event(ws, "snapshot"))["muted"] is True

    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 2.0),
        scenario,
        local_api={"token_file": str(token_file)},
    )
    assert run.code == 0


def test_beyond_loopback_only_with_a_token(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[platform]\nagent_id = "a"\n[local_api]\nlisten = "0.0.0.0:8766"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    assert str(path) in str(caught.value) and "local_api.listen" in str(caught.value)
    (tmp_path / "token").write_text(TOKEN)
    path.write_text(path.read_text() + 'token_file = "token"\n')
    assert load_settings(str(path)).local_api.token_file == str(tmp_path / "token")


def test_client_limit_and_a_client_that_never_reads(shared_audio: Path, tmp_path: Path) -> None:
    """The 3rd client is refused. One that stops reading while a conversation runs and
    another client floods events: its queue stays bounded, no audio frame is lost, and
    when it reads again it is told how many events it missed; a client that never
    answers the server's pings is dropped."""
    outcome: dict[str, object] = {}

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events("?levels=1", sleepy=True) as sleeper, api.events() as reader:
            with pytest.raises(InvalidStatus) as refused:
                async with api.events():
                    pass
            assert refused.value.response.status_code == 503
            await next_event(reader, "snapshot")
            assert (await command(reader, "go", "start_conversation"))["ok"]
            await active(emu, 1)
            for i in range(6000):  # 6000 volume events in 6 s: far more than its buffers
                answer = await command(reader, i, "set_volume", volume=(i % 10) / 10)
                assert answer["ok"], (i, answer)
                if i % 1000 == 999:
                    await asyncio.sleep(1.0)  # within the command rate
            queues = [len(s) for s in daemon.events.subscribers()]
            outcome["queued"] = max(queues)
            outcome["dropped"] = daemon.sessions[0].stats.frames_dropped
            for _ in range(5000):
                event = json.loads(await asyncio.wait_for(sleeper.recv(), 5 * UNIT))
                if event["type"] == "lagged":
                    outcome["lagged"] = event
                    break
            await asyncio.sleep(120)  # the sleeper reads no more: no pongs either
            outcome["clients"] = daemon.events.clients

    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 140.0),
        scenario,
        limit_s=300,
        local_api={"max_clients": 2, "commands_per_s": 1000},
        conversation={"start": "button", "inactivity_timeout_s": 0},
    )
    assert run.code == 0
    assert outcome["queued"] == QUEUE_EVENTS  # bounded, full
    assert outcome["dropped"] == 0  # no audio frame lost meanwhile
    lagged = outcome["lagged"]
    assert isinstance(lagged, dict) and lagged["dropped"] >= 1000, lagged
    assert outcome["clients"] == 1  # the silent one was dropped


def test_no_secret_in_any_answer(tmp_path: Path, shared_audio: Path) -> None:
    """A private agent: the API key and the signed URL's token never reach a client, even
    when an error message would carry them."""
    key = "sk_local_api_SECRET_0123456789"
    texts: list[str] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            texts.append(await ws.recv())
            await command(ws, 1, "start_conversation")
            await active(emu, 1)
            daemon._show_error(f"a platform message quoting {key}")
            await next_event(ws, "error")
            await command(ws, 2, "end_conversation")
            while True:
                text = str(await asyncio.wait_for(ws.recv(), 5 * UNIT))
                texts.append(text)
                if '"conversation_ended"' in text:
                    break
            texts.append(json.dumps((await api.get("/v1/state"))[1]))
        outcome = [*emu.tokens_issued]
        texts.append("|".join(outcome) and "")
        assert emu.tokens_issued
        for token in emu.tokens_issued:
            assert all(token not in t for t in texts)

    config = EmulatorConfig(api_key=key, private=True)
    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 3.0),
        scenario,
        config,
        platform={"api_key": key},
    )
    assert run.code == 0
    assert all(key not in text for text in texts)
    assert any("***" in text for text in texts)  # the error was sent, scrubbed


def test_a_client_that_sends_and_never_reads_is_disconnected(tmp_path: Path) -> None:
    """Its answers would pile up without end: at 64 unread it is closed with 1008."""
    codes: list[int | None] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with api.events() as ws:
            for _ in range(300):
                await ws.send("{not json")
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(400):
                    await asyncio.wait_for(ws.recv(), 5 * UNIT)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        assert daemon.events.clients == 0

    run = run_api(tmp_path, silence_wav(tmp_path / "s.wav", 2.0), scenario)
    assert run.code == 0
    assert codes == [1008]


def test_the_mute_switch_wins_over_the_api(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        assert daemon.gpio is not None and daemon.gpio.pin_factory is not None
        daemon.gpio.pin_factory.pin(27).drive_low()  # the switch is closed: muted
        await daemon.wait_state(DeviceState.MUTED, 5 * UNIT)
        assert await api.post("unmute") == (
            400,
            {"ok": False, "error": "the mute switch is closed: open it to unmute"},
        )
        assert daemon.state.muted

    gpio = {"pin_factory": "mock", "mute_pin": 27, "bounce_ms": 10}
    assert run_api(tmp_path, silence_wav(tmp_path / "s.wav", 2.0), scenario, gpio=gpio).code == 0
