"""The emulator: its lifecycle, the test controls, and the WebSocket handler."""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from hello_device.emulator.answers import _Answer, _Call, _first
from hello_device.emulator.config import (
    CONVERSATION_PATH,
    MAX_MESSAGE_BYTES,
    ConversationRecord,
    EmulatorConfig,
    Fault,
    RestRecord,
    _RestFailure,
)
from hello_device.emulator.conversation import _Conversation
from hello_device.emulator.redaction import _WS_REDACT, _log_request
from hello_device.emulator.rest import _host_port, _RestApi
from hello_device.emulator.wsocket import ServerSocket, SocketClosed

log = logging.getLogger(__name__)


_MAX_BODY = 1024 * 1024
_CLOSE_TIMEOUT_S = 5.0


class Emulator(_RestApi):
    """The local agent server. ``async with Emulator(cfg) as emu: ...``."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.ssl_context = ssl_context
        """Serve TLS (https:// and wss://) with this server context; None: plain."""
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.conversations: list[ConversationRecord] = []
        self.rest_requests: list[RestRecord] = []
        self.rest_delay_s = 0.0
        self.rest_pending = 0
        """REST requests being held by ``rest_delay_s`` right now."""
        self._failures: list[_RestFailure] = []
        self.tokens_issued: list[str] = []
        """Every signed-URL token handed out (tests check none leaks into a log)."""
        self.faults_injected: list[tuple[str, Fault, float]] = []
        """(conversation id, fault, ``time.monotonic()``) of each fault carried out."""
        self.tools: dict[str, dict[str, Any]] = {}
        """Declared tools: id -> the ``ToolResponse`` (``id``, ``tool_config``, …)."""
        self.feedback_posts: list[tuple[str, str]] = []
        """(conversation id, ``like`` | ``dislike``) of each ``POST …/feedback``."""
        self._agent_patches: dict[str, dict[str, Any]] = {}
        self._created_unix = int(time.time())
        self._signatures: dict[str, tuple[str, float]] = {}  # token -> (agent_id, expiry)
        self._active: set[_Conversation] = set()
        self._sockets: set[ServerSocket] = set()
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Condition | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        """Validate the configuration and start listening."""
        self.config.validate()
        if self.config.api_key:
            _WS_REDACT.secrets.add(self.config.api_key)
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle_http)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            self.port = int(address[1])
            break
        log.info("emulator listening on %s (agent %s)", self.http_url, self.config.agent_id)

    async def stop(self) -> None:
        """Close every connection (1001 for open conversations) and stop listening."""
        if self._runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        runner, self._runner = self._runner, None
        sockets = list(self._sockets)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.close(1001, "") for s in sockets), return_exceptions=True),
                _CLOSE_TIMEOUT_S,
            )
        except TimeoutError:
            log.warning("emulator: connections did not close in time")
        for sock in sockets:
            if not sock.transport.is_closing():
                sock.transport.abort()
        try:
            await asyncio.wait_for(runner.cleanup(), 15)
        except TimeoutError:
            log.warning("emulator: the server did not stop in time")
        if self.config.api_key:
            _WS_REDACT.secrets.discard(self.config.api_key)

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{_host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        """The public conversation URL of the configured agent."""
        agent = quote(self.config.agent_id, safe="")
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{_host_port(self.host, self.port)}{CONVERSATION_PATH}?agent_id={agent}"

    async def wait_conversation(
        self,
        n: int = 1,
        timeout: float = 10,  # noqa: ASYNC109 - the agreed API
    ) -> ConversationRecord:
        """The n-th (1-based) conversation, once its WebSocket is connected."""
        if self._changed is None:
            raise RuntimeError("emulator not started")
        changed = self._changed

        async def wait() -> None:
            async with changed:
                await changed.wait_for(lambda: len(self.conversations) >= n)

        await asyncio.wait_for(wait(), timeout)
        return self.conversations[n - 1]

    async def end_conversation(self, code: int = 1000, reason: str = "") -> None:
        """Close the active conversation(s) with this close code."""
        await asyncio.gather(*(c.ws.close(code, reason) for c in list(self._active)))

    async def abort_connections(self) -> None:
        """Drop every conversation's TCP connection without a close frame."""
        active = list(self._active)
        for conv in active:
            conv.ws.transport.abort()
        await asyncio.wait_for(asyncio.gather(*(c.record.finished.wait() for c in active)), 10)

    async def send_raw(self, text: str | bytes) -> None:
        """Send one raw frame (text or binary) to the active conversation(s)."""
        await asyncio.gather(*(c.ws.send(text) for c in list(self._active)))

    def fail_rest(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``times`` REST requests with this failure (queued in order)."""
        self._failures.append(_RestFailure(status, times, retry_after, body, content_type))

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        version = f"{request.version.major}.{request.version.minor}"
        _log_request(request.method, request.raw_path, version, request.headers.items())
        if request.path.rstrip("/") == CONVERSATION_PATH and request.method == "GET":
            ws = web.WebSocketResponse(
                timeout=_CLOSE_TIMEOUT_S,
                autoclose=False,
                autoping=False,  # the socket answers pings and keeps alive (wsocket.py)
                compress=False,
                max_msg_size=MAX_MESSAGE_BYTES,
            )
            if ws.can_prepare(request):
                return await self._handle_upgrade(ws, request)
            answer = _Answer(426, {"detail": "Upgrade Required"}, {"Upgrade": "websocket"})
            return self._response(answer)
        call = _Call(
            request.method,
            request.path,
            request.raw_path,
            parse_qs(request.query_string),
            request.headers,
            await request.read() if request.can_read_body else b"",
            request.headers.get("Host"),
        )
        return self._response(await self._serve_rest(call))

    @staticmethod
    def _response(answer: _Answer) -> web.Response:
        headers = {"Content-Type": answer.content_type, **answer.headers}
        response = web.Response(status=answer.status, body=answer.encoded(), headers=headers)
        response.force_close()  # one request per connection, like the platform's edge
        return response

    async def _handle_upgrade(
        self, ws: web.WebSocketResponse, request: web.Request
    ) -> web.WebSocketResponse:
        await ws.prepare(request)
        sock = ServerSocket(ws, request)
        self._sockets.add(sock)
        keepalive = asyncio.create_task(sock.keepalive())
        try:
            await self._handle_ws(sock)
        finally:
            keepalive.cancel()
            self._sockets.discard(sock)
        return ws

    async def _handle_ws(self, ws: ServerSocket) -> None:
        query = parse_qs(urlsplit(ws.path).query)
        record = ConversationRecord(
            conversation_id=f"conv_{secrets.token_hex(12)}",
            agent_id=_first(query, "agent_id") or "",
        )
        self.conversations.append(record)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        try:
            self.config.validate()
        except ValueError as exc:
            log.error(
                "conversation %s: bad emulator configuration: %s", record.conversation_id, exc
            )
            await ws.close(1011, "emulator misconfigured")
            record.close_code, record.close_reason = ws.close_code, ws.close_reason or ""
            record.finished.set()
            return
        conv = _Conversation(self, ws, record)
        self._active.add(conv)
        try:
            await conv.run(query)
        except SocketClosed:
            pass
        except Exception:
            log.exception("conversation %s: emulator error, closing 1011", record.conversation_id)
            await ws.close(1011, "emulator error")
        finally:
            await ws.close()  # no-op when already closed
            self._active.discard(conv)
            record.close_code = ws.close_code
            record.close_reason = ws.close_reason or ""
            record.ended_at = time.time()
            record.finished.set()
            log.info(
                "conversation %s closed (%s %r), %d chunks, %.1f s of user audio",
                record.conversation_id,
                record.close_code,
                record.close_reason,
                record.audio_chunks,
                record.user_audio_s,
            )
