"""A scriptable HTTP server in front of the emulator's REST API, for transport faults.

The emulator's REST API (an aiohttp application) only returns whole, well-formed
responses. The faults a field network produces are below that:
a body cut short, a body that trickles in, a reset, a redirect to another host, an answer
of several megabytes. :class:`RestFaultProxy` is a real TCP server on loopback that, for
each request, either carries out the next queued fault or forwards the request to the
emulator and pipes its answer back unchanged; every request is recorded with its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Action = Callable[[asyncio.StreamWriter], "asyncio.Future[None] | None"]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    fault: str | None = None


def _response(status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RestFaultProxy:
    """``async with RestFaultProxy(upstream_port) as proxy``; ``proxy.url`` is the base URL
    to give the device; queue faults with :meth:`fail`."""

    KINDS = (
        "status",
        "html",
        "truncated",
        "slow_body",
        "reset",
        "redirect_other_host",
        "huge",
        "deep_json",
    )

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Request] = []
        self._queue: list[tuple[str, dict[str, object], int, str | None]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> RestFaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers end on their own once their connections close (a cancelled handler
        # upsets asyncio's stream callback): stop the slow ones, close every connection.
        self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(
        self, kind: str, times: int = 1, only_path: str | None = None, **options: object
    ) -> None:
        """Answer the next ``times`` requests (whose path contains ``only_path``, if
        given) with fault ``kind``; options: ``status``, ``retry_after``, ``body``."""
        if kind not in self.KINDS:
            raise ValueError(kind)
        self._queue.append((kind, options, times, only_path))

    def clear(self) -> None:
        self._queue.clear()

    def count(self, part: str = "", since: float = 0.0) -> int:
        return sum(1 for r in self.requests if part in r.path and r.at >= since)

    def _take(self, path: str) -> tuple[str, dict[str, object]] | None:
        for i, (kind, options, times, only) in enumerate(self._queue):
            if only is not None and only not in path:
                continue
            if times <= 1:
                del self._queue[i]
            else:
                self._queue[i] = (kind, options, times - 1, only)
            return kind, options
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        taken = self._take(path)
        self.requests.append(Request(path, headers, fault=taken[0] if taken else None))
        try:
            if taken is None:
                await self._forward(head, reader, writer)
            else:
                await self._fault(*taken, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _forward(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Pipe both ways (a WebSocket upgrade goes through too) until either side ends."""
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()

        try:
            up_writer.write(head)
            await up_writer.drain()
            both = [
                asyncio.ensure_future(pipe(reader, up_writer)),
                asyncio.ensure_future(pipe(up_reader, writer)),
            ]
            try:
                await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in both:
                    task.cancel()
                await asyncio.gather(*both, return_exceptions=True)
        finally:
            up_writer.close()

    async def _fault(self, kind: str, o: dict[str, object], writer: asyncio.StreamWriter) -> None:
        if kind == "status":
            status = int(o.get("status", 500))  # type: ignore[call-overload]
            extra = {}
            if "retry_after" in o:
                extra["Retry-After"] = str(o["retry_after"])
            body = str(o.get("body", '{"detail": "injected failure"}')).encode()
            writer.write(_response(status, body, "application/json", extra))
        elif kind == "html":
            page = b"<!doctype html><html><body><h1>Captive portal</h1></body></html>"
            writer.write(_response(200, page, "text/html"))
        elif kind == "truncated":
            full = _response(
                200, b'{"agent_id": "demo-agent", "name": "cut short"}', "application/json"
            )
            writer.write(full[: len(full) - 20])
        elif kind == "slow_body":
            body = b'{"agent_id": "demo-agent"}'
            writer.write(_response(200, body, "application/json")[: -len(body)])
            for byte in body:  # one byte every 0.5 s: slower than any read timeout here
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.5)
                if self._stopping.is_set():
                    return
        elif kind == "reset":
            transport = writer.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN
                import socket
                import struct

                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif kind == "redirect_other_host":
            target = f"http://localhost:{self.port}/elsewhere"
            writer.write(_response(302, b"", "text/plain", {"Location": target}))
        elif kind == "huge":
            size = 12 * 1024 * 1024
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            chunk = b" " * 65536
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                await writer.drain()
        elif kind == "deep_json":
            writer.write(_response(200, b"[" * 10000 + b"]" * 10000, "application/json"))
        await writer.drain()
