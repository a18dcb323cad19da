"""The narrow socket interface the conversation handler uses, over aiohttp's
``WebSocketResponse``: send, recv, async iteration, close(code, reason), the close code and
reason, the transport (for the abort and half-open faults) and the request path/headers.

Close codes follow the websockets library's meaning (what the rest of the emulator was
written against): ``close_code`` is None while the connection is open; then the code of the
peer's close frame if one came, else the code this side sent (the peer echoes it), else
1006 (the connection dropped without a close frame)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import WSMsgType, web

ABNORMAL = 1006
_UNSENDABLE = (1005, 1006, 1015)
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
"""The keep-alive of the websockets server the emulator used to run on: a ping every
20 s; no pong within 20 s closes the conversation with 1011 "keepalive ping timeout"."""


class SocketClosed(Exception):
    """The connection is closed (the adapter's ``ConnectionClosed``)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed ({code} {reason!r})")
        self.code = code
        self.reason = reason

    @property
    def ok(self) -> bool:
        return self.code in (1000, 1001)


class ServerSocket:
    """One accepted conversation WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self.path = request.raw_path
        """The request target: path and query string, as sent."""
        self.headers: Mapping[str, str] = request.headers
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost before the upgrade")
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._sent: tuple[int, str] | None = None
        self._rcvd: tuple[int, str] | None = None
        self._dropped = False
        self._close_lock = asyncio.Lock()
        self._pong = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._ws.closed or self._dropped or self._rcvd is not None

    @property
    def close_code(self) -> int | None:
        if not self.closed:
            return None
        if self._rcvd is not None:
            return self._rcvd[0]
        if self._sent is not None and not self._dropped:
            return self._sent[0]
        return ABNORMAL

    @property
    def close_reason(self) -> str | None:
        if not self.closed:
            return None
        if self._rcvd is not None:
            return self._rcvd[1]
        if self._sent is not None and not self._dropped:
            return self._sent[1]
        return ""

    def _closed_error(self) -> SocketClosed:
        return SocketClosed(self.close_code or ABNORMAL, self.close_reason or "")

    async def send(self, message: str | bytes) -> None:
        """Send one text or binary frame; :class:`SocketClosed` once closed."""
        if self.closed or self.transport.is_closing():
            raise self._closed_error()
        try:
            if isinstance(message, bytes):
                await self._ws.send_bytes(message)
            else:
                await self._ws.send_str(message)
        except (ConnectionError, RuntimeError):
            self._dropped = self._sent is None and self._rcvd is None
            raise self._closed_error() from None

    async def recv(self) -> str | bytes:
        """The next text or binary message; :class:`SocketClosed` once closed."""
        while True:
            if self.closed:
                raise self._closed_error()
            msg = await self._ws.receive()
            if msg.type is WSMsgType.TEXT:
                return str(msg.data)
            if msg.type is WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type is WSMsgType.CLOSE:
                code = int(msg.data) or 1005  # 1005: a close frame without a code
                self._rcvd = (code, str(msg.extra or ""))
                if self._sent is None:  # echo the peer's code, as websockets does
                    self._sent = self._rcvd
                    echo = code if 1000 <= code < 5000 and code not in _UNSENDABLE else 1000
                    await self._ws.close(code=echo, message=self._rcvd[1].encode())
                raise self._closed_error()
            if msg.type is WSMsgType.CLOSING and self._sent is not None:
                raise self._closed_error()  # closed by this side, from another task
            if msg.type is WSMsgType.PING:  # autoping is off: pongs are seen here
                await self._ws.pong(msg.data)
                continue
            if msg.type is WSMsgType.PONG:
                self._pong.set()
                continue
            # ERROR, CLOSED, or a CLOSING this side did not start: the connection dropped
            if self._sent is None and self._rcvd is None:
                self._dropped = True
            raise self._closed_error()

    async def keepalive(self) -> None:
        """Ping every :data:`PING_INTERVAL_S`; close 1011 when no pong comes within
        :data:`PING_TIMEOUT_S` (pongs are read by whoever reads the socket, as with
        websockets)."""
        while not self.closed:
            await asyncio.sleep(PING_INTERVAL_S)
            self._pong.clear()
            try:
                await self._ws.ping()
                await asyncio.wait_for(self._pong.wait(), PING_TIMEOUT_S)
            except (ConnectionError, RuntimeError):
                return
            except TimeoutError:
                await self.close(1011, "keepalive ping timeout")
                return

    def __aiter__(self) -> ServerSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """Ends at a normal close (1000/1001); raises :class:`SocketClosed` at others."""
        try:
            return await self.recv()
        except SocketClosed as exc:
            if exc.ok:
                raise StopAsyncIteration from None
            raise

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once) and release the connection."""
        async with self._close_lock:
            if self.closed:
                return
            self._sent = (code, reason)
            try:
                await self._ws.close(code=code, message=reason.encode())
            except (ConnectionError, RuntimeError):
                self._dropped = True
