"""The local API's HTTP and WebSocket server (aiohttp: one port for ``GET /v1/state``,
the ``/v1/events`` WebSocket, ``POST /v1/commands/NAME`` and the example page).

Every request passes :func:`guard` first (Host, Origin, token). Each events client has
a sender task that writes its queue in order; what it sends in is read by its own
handler, so a client that never reads only fills its own bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from hello_device.local_api.commands import Command, CommandError, parse_command
from hello_device.local_api.hub import EventHub, Subscriber
from hello_device.local_api.security import RateLimit, host_allowed, origin_allowed, token_ok
from hello_device.settings import LocalApiSettings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
"""Largest command accepted (a bigger one is answered with an error, not a close)."""
READ_LIMIT_BYTES = 1024 * 1024
"""What the server reads of one message or body before it gives up on the client."""
SEND_BUFFER_BYTES = 32 * 1024
"""What the kernel and aiohttp may hold for one events client that does not read; beyond
it the client's own queue fills, then drops its oldest events (memory stays bounded)."""
LEVELS_HZ = 10.0
MAX_UNREAD_RESULTS = 64
"""Answers a client may leave unread; one more command and it is disconnected (1008)."""
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kiosk.html"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiTarget(Protocol):
    """What the server asks of the daemon."""

    def api_snapshot(self) -> dict[str, Any]: ...

    def api_command(self, command: Command) -> str | None:
        """Run a checked command; an error message, or None when it was done."""
        ...

    def api_levels(self) -> dict[str, float]: ...

    def api_metrics(self) -> bytes | None: ...


def error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


class LocalApiServer:
    """Serves the API for ``target`` until :meth:`stop`."""

    def __init__(
        self,
        target: ApiTarget,
        hub: EventHub,
        settings: LocalApiSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.hub = hub
        self.settings = settings
        self.clock = clock
        host, _, port = settings.listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.token = self._read_token(settings.token_file)
        self._runner: web.AppRunner | None = None
        self._refused_origins: set[str] = set()
        self._post_limit = RateLimit(settings.commands_per_s, clock())
        self._levels_task: asyncio.Task[None] | None = None
        self._sockets: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}

    @staticmethod
    def _read_token(path: str | None) -> str | None:
        if path is None:
            return None
        token = Path(path).read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ValueError(f"local_api.token_file {path}: the token is shorter than 16")
        return token

    @property
    def bound_port(self) -> int:
        """The port really bound (``listen`` may say 0: any free port, for tests)."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        app = web.Application(middlewares=[self.guard], client_max_size=READ_LIMIT_BYTES)
        app.router.add_get("/v1/state", self._state)
        app.router.add_get("/v1/events", self._events)
        app.router.add_post("/v1/commands/{name}", self._command)
        app.router.add_get("/metrics", self._metrics)
        if self.settings.serve_example:
            app.router.add_get("/", self._example)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        log.info("local API on %s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._levels_task is not None:
            self._levels_task.cancel()
        sockets = list(self._sockets.items())
        closing = [ws.close(code=1001, message=b"device stopping") for ws, _ in sockets]
        if closing:
            # A client that does not read would hold a close for ever: 0.3 s, then cut.
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=0.3)
        for _, transport in sockets:
            if transport is not None and not transport.is_closing():
                transport.abort()  # type: ignore[attr-defined]
        if self._runner is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._runner.cleanup(), 0.5)
            self._runner = None

    # ------------------------------------------------------------ the guard

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), self.host, self.token is not None):
            return error(403, "this Host is not served (use 127.0.0.1 or localhost)")
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.settings.allowed_origins):
            shown = (origin or "")[:100]
            if shown not in self._refused_origins and len(self._refused_origins) < 64:
                self._refused_origins.add(shown)
                log.warning("local API: refused a request from the web page origin %r", shown)
            return error(403, "this origin is not allowed (see local_api.allowed_origins)")
        if not token_ok(request.headers.get("Authorization"), self.token):
            return error(401, "a bearer token is required (Authorization: Bearer TOKEN)")
        return await handler(request)

    # ------------------------------------------------------------ HTTP

    async def _state(self, request: web.Request) -> web.Response:
        text = self.hub.scrub(json.dumps(self.target.api_snapshot(), ensure_ascii=False))
        return web.Response(text=text, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.target.api_metrics()
        if body is None:
            return error(404, "metrics are off ([metrics] enabled = false)")
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _example(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXAMPLE)

    async def _command(self, request: web.Request) -> web.Response:
        if not self._post_limit.take(self.clock()):
            return error(
                429, f"too many commands: at most {self.settings.commands_per_s:g} a second"
            )
        body = await request.read()
        if len(body) > MAX_MESSAGE_BYTES:
            return error(400, f"the body is {len(body)} bytes; at most {MAX_MESSAGE_BYTES}")
        try:
            args = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return error(400, f"the body is not JSON: {str(exc)[:200]}")
        if not isinstance(args, dict):
            return error(400, "the body must be a JSON object of the command's arguments")
        problem = self._run(request.match_info["name"], args)
        if problem is not None:
            return error(400, problem)
        return web.json_response({"ok": True})

    def _run(self, name: object, args: dict[str, Any]) -> str | None:
        try:
            command = parse_command(name, args)
        except CommandError as exc:
            return str(exc)
        return self.target.api_command(command)

    # ------------------------------------------------------------ events

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.hub.clients >= self.settings.max_clients:
            return error(503, f"too many clients (at most {self.settings.max_clients})")
        subscriber = self.hub.subscribe()  # the slot is taken before any await
        ws = web.WebSocketResponse(
            max_msg_size=READ_LIMIT_BYTES,
            heartbeat=30.0,
            writer_limit=SEND_BUFFER_BYTES,
            compress=False,  # a few hundred bytes an event: not worth a zlib context each
        )
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        try:
            await ws.prepare(request)
        except BaseException:
            self.hub.unsubscribe(subscriber)
            raise
        subscriber.levels = request.query.get("levels") == "1"
        subscriber.put_result(self.hub.encode("snapshot", self.target.api_snapshot()))
        self._sockets[ws] = request.transport
        sender = asyncio.create_task(self._send(ws, subscriber), name="local-api-sender")
        if subscriber.levels:
            self._ensure_levels()
        limit = RateLimit(self.settings.commands_per_s, self.clock())
        try:
            async for message in ws:
                if subscriber.unread_results >= MAX_UNREAD_RESULTS:
                    # It sends and never reads: its answers would pile up without end.
                    await ws.close(code=1008, message=b"too many unread answers")
                    break
                if message.type is WSMsgType.TEXT:
                    subscriber.put_result(self._on_text(message.data, limit))
                elif message.type is WSMsgType.BINARY:
                    subscriber.put_result(result(None, "send commands as JSON text"))
        finally:
            self.hub.unsubscribe(subscriber)
            self._sockets.pop(ws, None)
            sender.cancel()
        return ws

    async def _send(self, ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not ws.closed:
                await ws.send_str(await subscriber.get())

    def _on_text(self, data: str, limit: RateLimit) -> str:
        if len(data) > MAX_MESSAGE_BYTES:
            return result(None, f"the message is {len(data)} bytes; at most {MAX_MESSAGE_BYTES}")
        try:
            message = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return result(None, f"not JSON: {str(exc)[:200]}")
        if not isinstance(message, dict) or message.get("type") != "command":
            return result(None, 'send {"type": "command", "id": ..., "name": ..., ...}')
        ident = message.get("id")
        if not isinstance(ident, str | int | float | type(None)) or isinstance(ident, bool):
            ident = None
        if not limit.take(self.clock()):
            rate = self.settings.commands_per_s
            return result(ident, f"too many commands: at most {rate:g} a second")
        args = {k: v for k, v in message.items() if k not in ("type", "id", "name")}
        return result(ident, self._run(message.get("name"), args))

    def _ensure_levels(self) -> None:
        if self._levels_task is None or self._levels_task.done():
            self._levels_task = asyncio.create_task(self._levels(), name="local-api-levels")

    async def _levels(self) -> None:
        while any(s.levels for s in self.hub.subscribers()):
            self.hub.publish_levels(self.target.api_levels)
            await asyncio.sleep(1.0 / LEVELS_HZ)


def result(ident: object, problem: str | None) -> str:
    """A command's answer."""
    answer: dict[str, Any] = {"type": "result", "id": ident, "ok": problem is None}
    if problem is not None:
        answer["error"] = problem
    return json.dumps(answer)
