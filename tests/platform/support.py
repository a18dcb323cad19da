"""What the platform tests share: settings, a virtual clock, a local HTTP server, and
builders for the client, cache and provider (the scripted transport ships in
:mod:`hello_device.testing.transport`)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections.abc import Callable, Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hello_device.core.agent_profile import (
    AgentProfile,
)
from hello_device.platform.cache import AgentConfigCache
from hello_device.platform.client import PlatformClient
from hello_device.platform.provider import (
    AgentConfigProvider,
)
from hello_device.settings import (
    PlatformSettings,
    Secret,
    Settings,
)
from hello_device.testing.transport import ScriptedTransport
from tests.conftest import UNIT

KEY = "sk_test_PLATFORM_0123456789abcdefSECRET"
AGENT = "agent_0123"
BASE = "https://api.example.test"
T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def psettings(**kw: Any) -> PlatformSettings:
    base: dict[str, Any] = {
        "api_base_url": BASE,
        "agent_id": AGENT,
        "api_key": Secret(KEY),
        "connect_timeout_s": 1.0 * UNIT,
        "read_timeout_s": 1.0 * UNIT,
    }
    base.update(kw)
    return PlatformSettings(**base)


def settings_with(tmp_path: Path, **platform: Any) -> Settings:
    from hello_device.settings import StateSettings

    return Settings(platform=psettings(**platform), state=StateSettings(dir=str(tmp_path / "st")))


class FakeSleep:
    """Records the delays asked for and returns at once (lets other tasks run); its
    :attr:`now` is a virtual monotonic clock that each sleep moves forward."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += max(0.0, delay)
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client(
    transport: Any, sleep: FakeSleep | None = None, max_attempts: int = 5, **kw: Any
) -> PlatformClient:
    sleep = sleep or FakeSleep()
    return PlatformClient(
        psettings(**kw),
        transport,
        sleep=sleep,
        monotonic=sleep.monotonic,
        rng=random.Random(7),
        max_attempts=max_attempts,
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fails(exc_type: type[BaseException], coro: Coroutine[Any, Any, Any]) -> BaseException:
    """Run ``coro``, expect ``exc_type``; check the key is in neither str nor repr."""
    with pytest.raises(exc_type) as info:
        asyncio.run(coro)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    return info.value


AGENT_CONFIG: dict[str, Any] = {
    "agent_id": AGENT,
    "name": "Front desk",
    "conversation_config": {
        "asr": {"user_input_audio_format": "pcm_16000"},
        "tts": {"agent_output_audio_format": "pcm_22050", "voice_id": "v1"},
        "agent": {"first_message": "Hello!", "language": "en", "prompt": {"prompt": "Be nice"}},
        "turn": {"turn_timeout": 7},
        "conversation": {"max_duration_seconds": 600},
    },
    "platform_settings": {"auth": {"enable_auth": False}},
}


# --------------------------------------------------------------------------- real transport


Route = tuple[int, dict[str, str], bytes, float]


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 answering from a route table.

    ``routes[path_with_query] = (status, headers, body, delay_s)``; a delay waits on an
    event that :meth:`close` sets, so nothing outlives the test. Requests are recorded.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                status, headers, body, delay = server.routes.get(
                    self.path, (404, {"Content-Type": "application/json"}, b'{"detail":"nf"}', 0)
                )
                if delay:
                    server.release.wait(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if not any(k.lower() == "content-length" for k in headers):
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json(
        self,
        path: str,
        status: int,
        body: Any,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.routes[path] = (status, headers, json.dumps(body).encode(), delay)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5 * UNIT)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_client(url: str, sleep: FakeSleep | None = None, **kw: Any) -> PlatformClient:
    attempts = kw.pop("max_attempts", 3)
    sleep = sleep or FakeSleep()
    return PlatformClient(
        psettings(api_base_url=url, **kw),
        sleep=sleep,
        monotonic=sleep.monotonic,
        max_attempts=attempts,
    )


# --------------------------------------------------------------------------- effective


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[platform]\nagent_id = "{AGENT}"\napi_key = "{KEY}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n' + extra
    )
    return path


PROFILE = AgentProfile(
    agent_id=AGENT,
    first_message="Hi there",
    language="en",
    silence_duration_ms=900,
    prefix_padding_ms=5000,
    max_duration_s=600.0,
    agent_output_audio_format="pcm_24000",
    private=True,
    turn_timeout_s=5.0,
)


# --------------------------------------------------------------------------- provider


def cache_for(tmp_path: Path, clock: FakeClock | None = None) -> AgentConfigCache:
    return AgentConfigCache(tmp_path / "st", clock=clock or FakeClock())


def provider(
    tmp_path: Path,
    t: ScriptedTransport,
    clock: FakeClock | None = None,
    sleep: FakeSleep | None = None,
    on_change: Callable[[AgentConfigProvider], None] | None = None,
    **platform: Any,
) -> AgentConfigProvider:
    clock = clock or FakeClock()
    sleep = sleep or FakeSleep()
    return AgentConfigProvider(
        settings_with(tmp_path, **platform),
        client(t, sleep),
        cache_for(tmp_path, clock),
        clock=clock,
        monotonic=sleep.monotonic,
        sleep=sleep,
        rng=random.Random(3),
        on_change=on_change,
    )


def wait_until(event: asyncio.Event) -> Coroutine[Any, Any, Any]:
    return asyncio.wait_for(event.wait(), timeout=5 * UNIT)


class Watch:
    """An ``on_change`` callback that lets a test await a condition, bounded in time."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def __call__(self, provider: AgentConfigProvider) -> None:
        self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5 * UNIT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
