"""The emulator's admission (agents, signed URLs), its REST subset (the agent
configuration, signed URLs, the API key, injected failures) and its CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.emulator import cli as emu_cli
from tests.conftest import REPO
from tests.emulator.support import WAIT, Client, aget, http_get, run

# ---------------------------------------------------------------------------------------
# WebSocket admission: agent id and signed URLs
# ---------------------------------------------------------------------------------------


async def _rejected(url: str) -> ConnectionClosed:
    client = await Client.open(url, init=None)
    return await client.wait_closed()


def test_unknown_agent_is_closed_1008() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            closed = await _rejected(emu.ws_url.replace("demo-agent", "someone-else"))
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "unknown agent")
            rec = emu.conversations[0]
            await asyncio.wait_for(rec.finished.wait(), WAIT)
            assert rec.agent_id == "someone-else" and rec.close_code == 1008 and rec.init is None

    run(main())


def test_private_agent_needs_a_valid_signature() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True)) as emu:
            closed = await _rejected(emu.ws_url)
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            closed = await _rejected(emu.ws_url + "&conversation_signature=forged")
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            status, _, body = await aget(
                f"{emu.http_url}/v1/convai/conversation/get-signed-url?agent_id=demo-agent"
            )
            assert status == 200
            client = await Client.open(body["signed_url"])
            await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
            await client.close()
            # single use
            closed = await _rejected(body["signed_url"])
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            await asyncio.wait_for(emu.conversations[-1].finished.wait(), WAIT)
            assert [r.close_code for r in emu.conversations] == [1008, 1008, 1000, 1008]

    run(main())


def test_expired_signed_url_is_refused() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True, signed_url_ttl_s=0)) as emu:
            _, _, body = await aget(
                f"{emu.http_url}/v1/convai/conversation/get-signed-url?agent_id=demo-agent"
            )
            closed = await _rejected(body["signed_url"])
            assert closed.rcvd is not None and closed.rcvd.code == 1008

    run(main())


# ---------------------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------------------


def test_agent_configuration_shape() -> None:
    cfg = EmulatorConfig(
        agent_id="agent_42",
        private=True,
        input_format="pcm_48000",
        output_format="ulaw_8000",
        first_message="Hello!",
        language="pt",
        turn_timeout_s=9.5,
        max_duration_s=120,
    )

    async def main() -> None:
        async with Emulator(cfg) as emu:
            status, headers, doc = await aget(f"{emu.http_url}/v1/convai/agents/agent_42")
            assert status == 200 and headers["Content-Type"] == "application/json"
            assert doc["agent_id"] == "agent_42" and isinstance(doc["name"], str)
            conv = doc["conversation_config"]
            assert conv["asr"]["user_input_audio_format"] == "pcm_48000"
            assert conv["tts"]["agent_output_audio_format"] == "ulaw_8000"
            assert conv["agent"]["first_message"] == "Hello!"
            assert conv["agent"]["language"] == "pt"
            assert conv["turn"]["turn_timeout"] == 9.5
            assert conv["conversation"]["max_duration_seconds"] == 120
            assert doc["platform_settings"]["auth"]["enable_auth"] is True
            status, _, body = await aget(f"{emu.http_url}/v1/convai/agents/nobody")
            assert status == 404 and "nobody" in body["detail"]["message"]
            status, _, body = await aget(f"{emu.http_url}/v1/no/such/path")
            assert status == 404 and body == {"detail": "Not Found"}
            assert [r.status for r in emu.rest_requests] == [200, 404, 404]
            assert emu.rest_requests[0].method == "GET"
            assert emu.rest_requests[0].path == "/v1/convai/agents/agent_42"

    run(main())


SIGNED_PATHS = {
    "primary": "/v1/convai/conversation/get-signed-url?agent_id=demo-agent",
    "a": "/v1/convai/agents/demo-agent/signed-url",
    "b": "/v1/convai/agents/demo-agent/link",
}


@pytest.mark.parametrize("form", ["primary", "a", "b"])
def test_signed_url_only_from_the_configured_form(form: str) -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True, signed_url_form=form)) as emu:
            for other, path in SIGNED_PATHS.items():
                status, _, body = await aget(emu.http_url + path)
                if other != form:
                    assert status == 404, other
                    continue
                assert status == 200
                if form == "primary":
                    assert set(body) == {"signed_url"}
                    url = body["signed_url"]
                elif form == "a":
                    assert set(body) == {"signed_url", "expires_at"}
                    assert body["expires_at"].endswith("Z")
                    url = body["signed_url"]
                else:
                    url = body["link"]["signed_url"]
                prefix = f"ws://127.0.0.1:{emu.port}/v1/convai/conversation?agent_id=demo-agent"
                assert url.startswith(prefix + "&conversation_signature=")
                client = await Client.open(url)
                await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
                await client.close()

    run(main())


def test_api_key_enforced_and_masked() -> None:
    key = "sk_test_0123456789abcdef"

    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key=key)) as emu:
            url = f"{emu.http_url}/v1/convai/agents/demo-agent"
            status, _, body = await aget(url)
            assert status == 401 and body["detail"]["status"] == "invalid_api_key"
            status, _, _ = await aget(url, {"xi-api-key": "wrong"})
            assert status == 401
            status, _, _ = await aget(url, {"xi-api-key": key})
            assert status == 200
            status, _, _ = await aget(url, {"Authorization": f"Bearer {key}"})
            assert status == 200
            status, _, _ = await aget(url, {"Authorization": f"Basic {key}"})
            assert status == 401
            assert [r.status for r in emu.rest_requests] == [401, 401, 200, 200, 401]
            assert emu.rest_requests[2].headers["xi-api-key"] == "***"
            assert emu.rest_requests[3].headers["authorization"] == "Bearer ***"
            assert key not in repr(emu.rest_requests)

    run(main())


def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk_test_secret_key_value"
    caplog.set_level(logging.DEBUG, logger="hello_device")
    caplog.set_level(logging.DEBUG, logger="hello_device.emulator.ws")

    async def main() -> str:
        async with Emulator(EmulatorConfig(api_key=key, private=True)) as emu:
            path = SIGNED_PATHS["primary"]
            status, _, body = await aget(emu.http_url + path, {"xi-api-key": key})
            assert status == 200
            client = await Client.open(body["signed_url"])
            await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
            await client.close()
            token: str = body["signed_url"].split("conversation_signature=")[1]
            return token

    token = run(main())
    assert "conversation_signature=***" in caplog.text  # websockets' request line, redacted
    assert "xi-api-key: ***" in caplog.text.lower()
    assert key not in caplog.text and token not in caplog.text


def test_fail_rest_injections() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key="k")) as emu:
            url = f"{emu.http_url}/v1/convai/agents/demo-agent"
            ok = {"xi-api-key": "k"}
            emu.fail_rest(429, retry_after=2)
            emu.fail_rest(500, times=2)
            emu.fail_rest(
                502, body="<html><body>Bad gateway</body></html>", content_type="text/html"
            )
            emu.fail_rest(503, retry_after=0.25, content_type="text/html")
            status, headers, body = await aget(url)  # failures win over the missing key
            assert status == 429 and headers["Retry-After"] == "2"
            assert body["detail"]["status"] == "too_many_concurrent_requests"
            for _ in range(2):
                status, headers, body = await aget(url, ok)
                assert status == 500 and body == {"detail": "Internal Server Error"}
            status, headers, body = await aget(url, ok)
            assert status == 502 and headers["Content-Type"] == "text/html"
            assert body == "<html><body>Bad gateway</body></html>"
            status, headers, body = await aget(url, ok)
            assert status == 503 and headers["Retry-After"] == "0.25"
            assert body.startswith("<html>") and "503" in body
            status, _, body = await aget(url, ok)
            assert status == 200 and body["agent_id"] == "demo-agent"
            assert [r.status for r in emu.rest_requests] == [429, 500, 500, 502, 503, 200]

    run(main())


def test_rest_delay_for_timeouts() -> None:
    async def main() -> None:
        emu = Emulator(EmulatorConfig())
        await emu.start()
        url = f"{emu.http_url}/v1/convai/agents/demo-agent"
        emu.rest_delay_s = 30
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            await aget(url, within=0.2)
        emu.rest_delay_s = 0
        status, _, _ = await aget(url)
        assert status == 200
        # a pending delayed answer does not hold up stop()
        emu.rest_delay_s = 30
        pending = asyncio.create_task(aget(url, within=WAIT))

        async def held() -> None:
            # a bounded poll of a counter (there is no event for "request held")
            while emu.rest_pending == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

        await asyncio.wait_for(held(), WAIT)
        started = time.monotonic()
        await asyncio.wait_for(emu.stop(), WAIT)
        assert time.monotonic() - started < 5
        await asyncio.wait_for(asyncio.gather(pending, return_exceptions=True), WAIT)

    run(main())


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="input_format"):
        EmulatorConfig(input_format="mp3_44100").validate()
    with pytest.raises(ValueError, match="signed_url_form"):
        EmulatorConfig(signed_url_form="c").validate()
    with pytest.raises(ValueError, match="reply"):
        EmulatorConfig(reply="/nonexistent.wav").validate()

    async def main() -> None:
        with pytest.raises(ValueError, match="dialect"):
            await Emulator(EmulatorConfig(dialect="klingon")).start()

    run(main())


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emu_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options_build_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMU_KEY", "secret")
    args = _parse(
        "--agent-id=a1",
        "--private",
        "--api-key-env=EMU_KEY",
        "--input-format=ulaw_8000",
        "--output-format=pcm_44100",
        "--first-message=Hi",
        "--ping-interval=0.5",
        "--no-interruption",
        '--tool-call=get_time:{"tz": "UTC"}',
        "--dialect=variant",
        "--max-duration=30",
    )
    cfg = emu_cli.config_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert cfg.agent_id == "a1" and cfg.private and cfg.api_key == "secret"
    assert (cfg.input_format, cfg.output_format) == ("ulaw_8000", "pcm_44100")
    assert cfg.first_message == "Hi" and cfg.ping_interval_s == 0.5
    assert cfg.interruptions is False and cfg.dialect == "variant" and cfg.max_duration_s == 30
    assert cfg.tool_call == ("get_time", {"tz": "UTC"})
    assert emu_cli.config_from_args(_parse("--tool-call=beep")).tool_call == ("beep", {})
    with pytest.raises(ValueError, match="JSON"):
        emu_cli.config_from_args(_parse("--tool-call=beep:{nope"))
    monkeypatch.delenv("EMU_KEY")
    with pytest.raises(ValueError, match="EMU_KEY"):
        emu_cli.config_from_args(args)


def test_cli_refuses_a_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_cli.run_from_args(_parse("--host=0.0.0.0")) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert emu_cli.run_from_args(_parse("--reply=/no/such.wav")) == 2


def test_cli_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys\n"
        "from hello_device.emulator import cli as emulator\n"
        "p = argparse.ArgumentParser(); emulator.add_arguments(p)\n"
        "sys.exit(emulator.run_from_args(p.parse_args(sys.argv[1:])))\n"
    )
    env = dict(os.environ, EMU_TEST_KEY="cli-key")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port=0", "--agent-id=cli", "--api-key-env=EMU_TEST_KEY"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith(
            "(agent cli)"
        )
        base = line.split()[3]
        status, _, body = http_get(f"{base}/v1/convai/agents/cli", {"xi-api-key": "cli-key"})
        assert status == 200 and json.loads(body)["agent_id"] == "cli"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert "cli-key" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
