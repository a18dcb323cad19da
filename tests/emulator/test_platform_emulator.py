"""The REST client against the real emulator (a real HTTP server on loopback): the
cases issue 4 names, complementing the fake-transport tests in test_platform_api.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from hello_device.core.agent_profile import map_agent_config
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.errors import AgentNotFoundError, AuthError, PlatformError
from hello_device.platform.cache import AgentConfigCache
from hello_device.platform.client import PlatformClient
from hello_device.platform.provider import AgentConfigProvider
from hello_device.settings import parse_settings

T = TypeVar("T")

KEY = "sk_platform_emulator_key_0000001"


class Sleeps:
    """Records backoff delays instead of sleeping; :meth:`monotonic` is a virtual clock
    that each recorded sleep moves forward."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += max(0.0, seconds)


def client_for(
    emu: Emulator, key: str = KEY, sleep: Sleeps | None = None, **platform: object
) -> PlatformClient:
    settings = parse_settings(
        {
            "platform": {
                "agent_id": emu.config.agent_id,
                "api_base_url": emu.http_url,
                "api_key": key,
                "read_timeout_s": 2.0,
                **platform,
            }
        },
        "test",
        env={},
    )
    sleep = sleep or Sleeps()
    return PlatformClient(settings.platform, sleep=sleep, monotonic=sleep.monotonic, max_attempts=3)


def with_emulator(config: EmulatorConfig, body: Callable[[Emulator], Awaitable[T]]) -> T:
    async def go() -> T:
        async with Emulator(config) as emu:
            return await body(emu)

    return asyncio.run(go())


def test_success_and_mapping() -> None:
    async def body(emu: Emulator) -> dict:  # type: ignore[type-arg]
        return await client_for(emu).fetch_agent_config()

    raw = with_emulator(EmulatorConfig(api_key=KEY, output_format="pcm_44100"), body)
    profile = map_agent_config(raw)
    assert profile.agent_output_audio_format == "pcm_44100" and not profile.private


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthError), (403, AuthError), (404, AgentNotFoundError)]
)
def test_refusals_are_final_and_clear(status: int, error: type[Exception]) -> None:
    sleeps = Sleeps()

    async def body(emu: Emulator) -> None:
        if status == 404:
            emu.config.agent_id = "someone-else"  # the device asks for an unknown agent
        else:
            emu.fail_rest(status, times=5)
        with pytest.raises(error) as info:
            await client_for(emu, sleep=sleeps, agent_id="demo-agent").fetch_agent_config()
        assert KEY not in str(info.value)
        if status == 404:
            assert "no agent with id demo-agent" in str(info.value)
        else:
            assert "refused the API key" in str(info.value)

    with_emulator(EmulatorConfig(api_key=KEY), body)
    assert sleeps.delays == []  # not retried


def test_wrong_key_is_refused() -> None:
    async def body(emu: Emulator) -> None:
        with pytest.raises(AuthError):
            await client_for(emu, key="sk_wrong_key_1234567890").fetch_agent_config()

    with_emulator(EmulatorConfig(api_key=KEY), body)


def test_429_honours_retry_after_and_500_then_success() -> None:
    sleeps = Sleeps()

    async def body(emu: Emulator) -> dict:  # type: ignore[type-arg]
        emu.fail_rest(429, times=1, retry_after=7)
        emu.fail_rest(500, times=1)
        return await client_for(emu, sleep=sleeps).fetch_agent_config()

    raw = with_emulator(EmulatorConfig(api_key=KEY), body)
    assert raw["agent_id"] == "demo-agent"
    assert sleeps.delays[0] == pytest.approx(7, abs=0.01)
    assert len(sleeps.delays) == 2


def test_timeout_and_html() -> None:
    async def slow(emu: Emulator) -> None:
        emu.rest_delay_s = 5.0  # beyond the 2 s read timeout
        with pytest.raises(PlatformError, match=r"2 s|timed out|no answer"):
            await client_for(emu).fetch_agent_config(attempts=1)

    async def html(emu: Emulator) -> None:
        emu.fail_rest(200, times=3, body="<html>captive portal</html>", content_type="text/html")
        with pytest.raises(PlatformError, match="HTML"):
            await client_for(emu).fetch_agent_config()

    with_emulator(EmulatorConfig(api_key=KEY), slow)
    with_emulator(EmulatorConfig(api_key=KEY), html)


@pytest.mark.parametrize("form", ["primary", "a", "b"])
def test_private_agent_signed_url_in_each_form(form: str) -> None:
    async def body(emu: Emulator) -> tuple[dict, str]:  # type: ignore[type-arg]
        client = client_for(emu)
        return await client.fetch_agent_config(), await client.get_signed_url()

    raw, url = with_emulator(EmulatorConfig(api_key=KEY, private=True, signed_url_form=form), body)
    assert map_agent_config(raw).private
    assert url.startswith("ws://127.0.0.1:") and "conversation_signature=" in url


def test_offline_boot_from_cache_corrupt_cache_and_no_cache(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def provider(emu_url: str) -> AgentConfigProvider:
        settings = parse_settings(
            {
                "platform": {"agent_id": "demo-agent", "api_base_url": emu_url, "api_key": KEY},
                "state": {"dir": str(state)},
            },
            "test",
            env={},
        )
        client = PlatformClient(settings.platform, sleep=Sleeps(), max_attempts=1)
        return AgentConfigProvider(settings, client, AgentConfigCache(state))

    async def online(emu: Emulator) -> str:
        p = provider(emu.http_url)
        assert await p.boot() is not None and p.status == "online"
        return emu.http_url

    url = with_emulator(EmulatorConfig(api_key=KEY), online)

    async def offline() -> AgentConfigProvider:  # the emulator is gone: refused
        p = provider(url)
        await p.boot(timeout=2)
        return p

    p = asyncio.run(offline())
    assert p.status == "cached" and p.current is not None and p.source == "cache"
    cache_file = AgentConfigCache(state).path("demo-agent")
    cache_file.write_text("{not json")
    p = asyncio.run(offline())
    assert p.status == "offline" and p.current is None
    assert list(state.glob("*.corrupt-*")), "the corrupt cache was not kept aside"
    p = asyncio.run(offline())  # no cache, no network: still no exception
    assert p.status == "offline"
