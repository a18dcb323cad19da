"""``agents``, ``tools`` and ``conversations`` against the bundled emulator over loopback:
a real daemon converses first (the emulator keeps the transcript), then the technician's
commands run as they would on the device (in a worker thread: they start their own event
loop). The key must never be printed; a refused key and an unknown conversation are one
line each. Then every command against a scripted transport: 401, 404, 422, 5xx in one
line, a 429 waited out, several pages."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hello_device.cli import manage
from hello_device.conversation.tool_specs import DEVICE_TOOLS
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.platform.client import PlatformClient
from hello_device.platform.http import HttpResponse
from hello_device.settings import PlatformSettings
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.conftest import UNIT
from tests.e2e import make_settings, silence_wav
from tests.platform.support import FakeSleep

KEY = "sk_manage_0123456789abcdef"
AGENT = "agent_lobby"


def fast_client(settings: PlatformSettings, attempts: int) -> PlatformClient:
    return PlatformClient(settings, max_attempts=attempts, sleep=FakeSleep())


def write_config(tmp_path: Path, emu: Emulator, key: str = KEY) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[platform]\napi_base_url = "{emu.http_url}"\nagent_id = "{AGENT}"\n'
        f'api_key = "{key}"\n[state]\ndir = "{tmp_path / "state"}"\n'
    )
    return path


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hello-device")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    manage.register(sub, client_factory=fast_client)
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    return code, out, err


Cli = Callable[[list[str]], tuple[int, str, str]]


def with_conversation(
    tmp_path: Path, config: EmulatorConfig, body: Callable[[Emulator], Any]
) -> Any:
    """One short daemon conversation with the emulator (its greeting, 2 s of silence),
    then ``body(emulator)`` in a worker thread while the emulator still serves."""

    async def go() -> Any:
        async with Emulator(config) as emu:
            mic = silence_wav(tmp_path / "quiet.wav", 2.0)
            settings = make_settings(tmp_path, emu, mic, platform={"api_key": KEY})
            daemon = Daemon(settings)
            assert await asyncio.wait_for(daemon.run(), 30 * UNIT) == 0
            return await asyncio.to_thread(body, emu)

    return asyncio.run(asyncio.wait_for(go(), 60 * UNIT))


def test_the_technicians_commands_against_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = EmulatorConfig(
        agent_id=AGENT,
        api_key=KEY,
        private=True,
        extra_agents=4,
        first_message="Welcome to the lobby.",
    )

    def body(emu: Emulator) -> None:
        path = str(write_config(tmp_path, emu))
        # agents: id, private or public, name
        code, out, _ = cli(["agents", "-c", path], capsys)
        assert code == 0
        lines = out.splitlines()
        assert lines[0].split() == ["AGENT", "ID", "ACCESS", "NAME"]
        assert len(lines) == 1 + 5
        rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
        assert rows[AGENT] == "private" and lines[1].endswith("(this device)")
        assert (rows["agent_extra_003"], rows["agent_extra_004"]) == ("private", "public")
        code, out, _ = cli(["agents", "-c", path, "--search", "kiosk 2"], capsys)
        assert [line.split()[0] for line in out.splitlines()[1:]] == ["agent_extra_002"]
        # tools: all missing, then declared and attached; a second sync changes nothing
        code, out, _ = cli(["tools", "list", "-c", path], capsys)
        assert code == 0
        assert out.count("missing") == len(DEVICE_TOOLS) and "to change" in out
        code, out, _ = cli(["tools", "sync", "--dry-run", "-c", path], capsys)
        assert out.count("would declare") == len(DEVICE_TOOLS) and emu.tools == {}
        code, out, _ = cli(["tools", "sync", "-c", path], capsys)
        assert code == 0
        assert out.count("declare ") == len(DEVICE_TOOLS)
        assert out.count("attach ") == len(DEVICE_TOOLS)
        assert len(emu.tools) == len(DEVICE_TOOLS)
        assert sorted(emu.attached_tool_ids(AGENT)) == sorted(emu.tools)
        code, out, _ = cli(["tools", "sync", "-c", path], capsys)
        assert out.strip() == f"nothing to change: {len(DEVICE_TOOLS)} tools declared and attached"
        code, out, _ = cli(["tools", "list", "-c", path], capsys)
        assert out.count("declared (tool_") == len(DEVICE_TOOLS) and "missing" not in out
        # conversations: the one the daemon just had, and its transcript
        code, out, _ = cli(["conversations", "-c", path], capsys)
        assert code == 0
        conv_id = emu.conversations[0].conversation_id
        assert conv_id in out and "done" in out
        code, out, _ = cli(["conversations", "show", conv_id, "-c", path], capsys)
        assert code == 0
        assert f"conversation {conv_id}" in out and "status:  done" in out
        assert "agent  Welcome to the lobby." in out
        code, out, err = cli(["conversations", "show", "conv_nope", "-c", path], capsys)
        assert (code, out) == (1, "")
        assert err.startswith("error: no conversation with id conv_nope at 127.0.0.1:")

    with_conversation(tmp_path, config, body)


def test_a_refused_key_is_one_line_and_a_missing_id_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def body(emu: Emulator) -> None:
        path = str(write_config(tmp_path, emu, key="sk_wrong_key_000000"))
        for argv in (["agents"], ["tools", "list"], ["tools", "sync"], ["conversations"]):
            code, out, err = cli([*argv, "-c", path], capsys)
            assert (code, out) == (1, ""), argv
            assert err.count("\n") == 1 and "refused the API key (HTTP 401)" in err
            assert "sk_wrong_key" not in err
        assert emu.tools == {}  # nothing was declared with a refused key
        code, _, err = cli(["conversations", "show", "-c", path], capsys)
        assert code == 2 and "needs the conversation's ID" in err
        # a technician looking for the agent id: `agents` works without one
        fresh = tmp_path / "fresh.toml"
        fresh.write_text(f'[platform]\napi_base_url = "{emu.http_url}"\napi_key = "{KEY}"\n')
        code, out, _ = cli(["agents", "-c", str(fresh)], capsys)
        assert code == 0 and AGENT in out and "(this device)" not in out
        code, _, err = cli(["tools", "list", "-c", str(fresh)], capsys)
        assert code == 2 and "platform.agent_id: is required" in err

    async def go() -> None:
        async with Emulator(EmulatorConfig(agent_id=AGENT, api_key=KEY)) as emu:
            await asyncio.to_thread(body, emu)

    asyncio.run(asyncio.wait_for(go(), 60 * UNIT))


def test_a_configuration_error_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[platform]\nagent_id = ""\n')
    code, _, err = cli(["tools", "list", "-c", str(path)], capsys)
    assert code == 2 and f"config error: {path}" in err


# --------------------------------------------------------------------------- scripted transport


COMMANDS = [
    ["agents"],
    ["tools", "list"],
    ["tools", "sync"],
    ["conversations"],
    ["conversations", "show", "conv_1"],
]
REFUSALS = {
    401: (
        {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
        "the platform refused the API key (HTTP 401)",
    ),
    404: ({"detail": {"status": "not_found", "message": "nothing here"}}, "(HTTP 404)"),
    422: (
        {"detail": [{"loc": ["query", "page_size"], "msg": "too big", "type": "value_error"}]},
        "(HTTP 422): query.page_size: too big",
    ),
    503: ({"detail": "maintenance"}, "HTTP 503: maintenance (gave up after 3 attempts)"),
}


def scripted_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], *answers: HttpResponse
) -> tuple[int, str, str, ScriptedTransport]:
    transport = ScriptedTransport(*answers)

    def factory(settings: PlatformSettings, attempts: int) -> PlatformClient:
        return PlatformClient(settings, transport, max_attempts=attempts, sleep=FakeSleep())

    path = tmp_path / "config.toml"
    path.write_text(
        f'[platform]\napi_base_url = "https://api.example.test"\nagent_id = "{AGENT}"\n'
        f'api_key = "{KEY}"\n'
    )
    parser = argparse.ArgumentParser(prog="hello-device")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    manage.register(sub, client_factory=factory)
    args = parser.parse_args([*argv, "-c", str(path)])
    code = args.func(args)
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return code, out, err, transport


@pytest.mark.parametrize("status", sorted(REFUSALS))
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_says_a_refusal_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], status: int
) -> None:
    body, expected = REFUSALS[status]
    code, out, err, transport = scripted_cli(
        tmp_path, capsys, argv, *[json_response(status, body)] * 3
    )
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert len(transport.calls) == (3 if status == 503 else 1)  # only 5xx is retried


def test_a_rate_limit_is_waited_out_then_every_page_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def page(ids: list[str], cursor: str | None) -> HttpResponse:
        items = [{"conversation_id": i, "status": "done"} for i in ids]
        return json_response(
            200, {"conversations": items, "next_cursor": cursor, "has_more": bool(cursor)}
        )

    code, out, _, transport = scripted_cli(
        tmp_path,
        capsys,
        ["conversations", "--limit", "5"],
        json_response(429, {"detail": "slow down"}, {"Retry-After": "1"}),
        page(["c1", "c2"], "p2"),
        page(["c3", "c4"], "p3"),
        page(["c5", "c6"], "p4"),
    )
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["c1", "c2", "c3", "c4", "c5"]
    assert len(transport.calls) == 4
