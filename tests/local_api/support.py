"""The daemon with its local API on a free loopback port, the emulator behind it, and
real clients: websockets for the events socket, aiohttp for plain HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

import hello_device.local_api.server  # noqa: F401 - imported now: the daemon imports it

# in a thread, which a virtual-time loop does not wait for (it would race the audio file)
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.testing import virtual_time
from tests.conftest import UNIT
from tests.e2e import Run, run_with_emulator

Scenario = Callable[[Daemon, Emulator, "Api"], Awaitable[None]]


class Api:
    """Clients of one running daemon's local API."""

    def __init__(self, port: int, http: aiohttp.ClientSession) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.http = http

    def events(
        self, query: str = "", headers: dict[str, str] | None = None, *, sleepy: bool = False
    ) -> Any:
        """An events client; ``sleepy``: one that will not read (a tiny receive buffer,
        and the library stops reading the socket after one message)."""
        sock = None
        if sleepy:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.connect(("127.0.0.1", self.port))
        return connect(
            f"ws://127.0.0.1:{self.port}/v1/events{query}",
            additional_headers=headers,
            open_timeout=5 * UNIT,
            sock=sock,
            max_queue=1 if sleepy else 16,
        )

    async def post(
        self, name: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        async with self.http.post(
            f"{self.base}/v1/commands/{name}", data=data, headers=headers
        ) as r:
            return r.status, await r.json()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", headers=headers) as r:
            body = await r.text()
            try:
                return r.status, json.loads(body)
            except ValueError:
                return r.status, body


_BACKLOG: dict[int, list[dict[str, Any]]] = {}
"""Per connection: events read while waiting for something else (a command's result)."""


async def _read(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await ws.recv()))


async def next_event(ws: ClientConnection, kind: str, within_s: float = 10.0) -> dict[str, Any]:
    """The next event of ``kind`` (others before it are skipped)."""
    backlog = _BACKLOG.setdefault(id(ws), [])
    while backlog:
        event = backlog.pop(0)
        if event.get("type") == kind:
            return event

    async def find() -> dict[str, Any]:
        while True:
            event = await _read(ws)
            if event.get("type") == kind:
                return event

    return await asyncio.wait_for(find(), within_s * UNIT)


async def command(ws: ClientConnection, ident: object, name: str, **args: Any) -> dict[str, Any]:
    """Send a command; its result (events read meanwhile are kept for next_event)."""
    await ws.send(json.dumps({"type": "command", "id": ident, "name": name, **args}))
    backlog = _BACKLOG.setdefault(id(ws), [])
    while True:
        event = await asyncio.wait_for(_read(ws), 10 * UNIT)
        if event.get("type") == "result" and event.get("id") == ident:
            return event
        backlog.append(event)


def run_api(
    tmp_path: Path,
    mic: Path,
    scenario: Scenario,
    config: EmulatorConfig | None = None,
    limit_s: float = 60.0,
    local_api: dict[str, Any] | None = None,
    real_time: bool = False,
    **sections: Any,
) -> Run:
    """Run the daemon (button start, API on a free port) until the input file ends, in
    virtual time (``real_time`` for a browser, which keeps its own clock)."""

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await asyncio.wait_for(daemon.api_started.wait(), 10 * UNIT)
        assert daemon.api_port is not None
        async with aiohttp.ClientSession() as http:
            await scenario(daemon, emu, Api(daemon.api_port, http))

    api = {"enabled": True, "listen": "127.0.0.1:0", **(local_api or {})}
    sections.setdefault("conversation", {"start": "button"})
    run = run_with_emulator(
        tmp_path, mic, config, during, limit_s=limit_s, local_api=api, **sections
    )
    return asyncio.run(run) if real_time else virtual_time.run(run)
