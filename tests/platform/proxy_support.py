"""What the proxy tests share: credentials, a TLS emulator, a REST client, and the check
that no secret reaches an output."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hello_device.audio.player import Player
from hello_device.conversation.ending import SessionEnd
from hello_device.conversation.session import Session
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.platform.client import PlatformClient
from hello_device.platform.http import UrllibTransport
from hello_device.settings import parse_settings
from tests.conftest import UNIT
from tests.e2e import active
from tests.tinyproxy import TinyProxy

KEY = "sk_proxy_test_key_0000000000001"
PROXY_USER = "devices"
PROXY_PASSWORD = "pr0xy-Pa55word"


class NoSleep:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass(frozen=True)
class Tls:
    ca: Path
    """The CA certificate that signed the server's (for clients to trust)."""
    server: ssl.SSLContext

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


StartProxy = Callable[..., TinyProxy]


def rest_client(
    emu: Emulator, environ: dict[str, str], tls: Tls, attempts: int = 2
) -> PlatformClient:
    settings = parse_settings(
        {
            "platform": {
                "agent_id": emu.config.agent_id,
                "api_base_url": emu.http_url,
                "api_key": KEY,
                "connect_timeout_s": 5.0 * UNIT,
                "read_timeout_s": 5.0 * UNIT,
            }
        },
        "test",
        env={},
    )
    transport = UrllibTransport(tls.client(), environ=environ)
    return PlatformClient(settings.platform, transport, sleep=NoSleep(), max_attempts=attempts)


def with_tls_emulator(tls: Tls, body: Callable[[Emulator], Any], **config: Any) -> Any:
    async def go() -> Any:
        cfg = EmulatorConfig(api_key=KEY, **config)
        async with Emulator(cfg, ssl_context=tls.server) as emu:
            return await body(emu)

    return asyncio.run(go())


async def converse_once(emu: Emulator) -> SessionEnd:
    """A session to ``emu``'s public conversation URL; closed by the device once open.
    TLS trust and proxies come from the environment, as in the daemon."""
    settings = parse_settings(
        {"platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url}},
        "test",
        env={},
    )
    session = Session(settings, Player())
    task = asyncio.create_task(session.run(emu.ws_url))
    await active(emu, 1)
    session.request_close()
    return await asyncio.wait_for(task, 10 * UNIT)


async def connect_once(emu: Emulator) -> SessionEnd:
    """A session that is expected not to get a conversation."""
    settings = parse_settings(
        {"platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url}},
        "test",
        env={},
    )
    end = await asyncio.wait_for(Session(settings, Player()).run(emu.ws_url), 15 * UNIT)
    assert not emu.conversations
    return end


def secrets_absent(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    """No credential, plain or Base64 (as in Proxy-Authorization), in logs or ``texts``."""
    token = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    logged = [r.getMessage() for r in caplog.records] + [caplog.text]
    for text in [*logged, *texts]:
        assert PROXY_PASSWORD not in text
        assert token not in text
        assert f"{PROXY_USER}:" not in text
