"""The emulator: its lifecycle, the test controls, and the WebSocket handler."""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from urllib.parse import parse_qs, quote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hello_device.emulator.config import (
    CONVERSATION_PATH,
    MAX_MESSAGE_BYTES,
    ConversationRecord,
    EmulatorConfig,
    Fault,
    RestRecord,
    _RestFailure,
)
from hello_device.emulator.connection import _first
from hello_device.emulator.conversation import _Conversation
from hello_device.emulator.redaction import _WS_LOG, _WS_REDACT
from hello_device.emulator.rest import _host_port, _RestApi

log = logging.getLogger(__name__)


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
        self._signatures: dict[str, tuple[str, float]] = {}  # token -> (agent_id, expiry)
        self._active: set[_Conversation] = set()
        self._server: Server | None = None
        self._changed: asyncio.Condition | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        """Validate the configuration and start listening."""
        self.config.validate()
        if self.config.api_key:
            _WS_REDACT.secrets.add(self.config.api_key)
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._server = await serve(
            self._handle_ws,
            self.host,
            self.port,
            process_request=self._process_request,
            ssl=self.ssl_context,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            open_timeout=60,
            logger=_WS_LOG,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        log.info("emulator listening on %s (agent %s)", self.http_url, self.config.agent_id)

    async def stop(self) -> None:
        """Close every connection (1001 for open conversations) and stop listening."""
        if self._server is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        server, self._server = self._server, None
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 15)
        except TimeoutError:
            log.warning("emulator: connections did not close in time")
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

    async def _handle_ws(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        query = parse_qs(urlsplit(path).query)
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
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("conversation %s: emulator error, closing 1011", record.conversation_id)
            await ws.close(1011, "emulator error")
        finally:
            await ws.close()  # no-op when already closed
            self._active.discard(conv)
            record.close_code = ws.close_code
            record.close_reason = ws.close_reason or ""
            record.finished.set()
            log.info(
                "conversation %s closed (%s %r), %d chunks, %.1f s of user audio",
                record.conversation_id,
                record.close_code,
                record.close_reason,
                record.audio_chunks,
                record.user_audio_s,
            )
