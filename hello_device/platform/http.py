"""HTTP for the management API: a blocking transport with two timeouts, run in a thread.

Why the standard library: the device makes a handful of small GET requests at boot and at
conversation boundaries. ``http.client`` in a daemon thread does that with no extra
dependency to install, audit and update on the board, no import cost at boot (httpx and
aiohttp pull in dozens of modules, hundreds of milliseconds on a Pi Zero), and it lets us
set the connect and read timeouts separately and control redirects (no https -> http
downgrade, no API key sent to another host). The :class:`Transport` protocol keeps it
replaceable: tests hand in a scripted fake (:mod:`hello_device.testing.transport`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import logging
import os
import ssl
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from hello_device import __version__
from hello_device.core.urls import host_of, safe_url
from hello_device.errors import PlatformError
from hello_device.platform.proxy import (
    ProxyServer,
    host_port,
    log_proxy_use,
    open_tunnel,
    proxy_bypassed,
    proxy_for,
    target_of,
)

log = logging.getLogger(__name__)

USER_AGENT = (
    f"hello-device/{__version__} (python {sys.version_info.major}.{sys.version_info.minor})"
)

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Answers larger than this are refused (an agent configuration is a few kilobytes)."""
_REDIRECTS = (301, 302, 303, 307, 308)
_AUTH_HEADERS = ("xi-api-key", "authorization")


class Headers(Mapping[str, str]):
    """Response headers with case-insensitive lookup; repeated headers are joined."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                first, old = self._items[key]
                self._items[key] = (first, f"{old}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class HttpResponse:
    """One HTTP answer: status, headers (case-insensitive lookup) and the whole body."""

    status: int
    headers: Mapping[str, str] = dataclasses.field(default_factory=Headers)
    body: bytes = b""
    redirected_to: str | None = None
    """``host[:port]`` of another host a redirect led to (None: the host asked)."""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))


class Transport(Protocol):
    """Sends one request and returns the answer (blocking; run in a worker thread).

    Network failures and timeouts raise :class:`OSError` (``TimeoutError`` included);
    any HTTP status, even 500, is an answer, not an exception. ``body``: the request's
    body (a POST or PATCH), its ``Content-Type`` among ``headers``.
    """

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        body: bytes | None = None,
    ) -> HttpResponse: ...


class UrllibTransport:
    """The real transport: :mod:`http.client` with TLS verification and two timeouts.

    ``connect_timeout`` bounds reaching the server (the TCP connect; through a proxy,
    the connection to the proxy and its CONNECT exchange together) and, separately, the
    TLS handshake; ``read_timeout`` bounds the whole wait for the answer, from sending
    the request to the last byte of the body. Redirects are followed for GET (at most
    ``max_redirects``), never from https to http, and the auth headers are dropped when
    the host changes. (Name kept from the design notes; :mod:`urllib.request` cannot
    separate the two timeouts.)

    Proxies: ``https_proxy``, ``http_proxy`` and ``no_proxy`` (either case) in
    ``environ`` (default :data:`os.environ`, read at every request) are honoured by the
    rules of :mod:`hello_device.platform.proxy`, the same as the conversation socket's. Each
    request (each redirect hop too) goes through a CONNECT tunnel to its target, TLS
    verified against the target's name inside it.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_redirects: int = 3,
        max_body_bytes: int = MAX_BODY_BYTES,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self.max_redirects = max_redirects
        self.max_body_bytes = max_body_bytes
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        hdrs = dict(headers)
        asked = host_of(url)
        for _ in range(self.max_redirects + 1):
            try:
                parts = urlsplit(url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                _ = parts.port  # raises ValueError when the port is not a number 0-65535
            except ValueError:
                ok = False
            if not ok:
                raise PlatformError(f"cannot request {safe_url(url)}: not a valid http(s) URL")
            try:
                response = self._once(method, url, hdrs, connect_timeout, read_timeout, body)
            except (UnicodeError, http.client.InvalidURL) as exc:
                # Not retryable. The text may quote a header value, so only its type is kept.
                raise PlatformError(
                    f"cannot request {safe_url(url)} ({type(exc).__name__})"
                ) from None
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or method not in ("GET", "HEAD") or not location:
                if host_of(url) != asked:  # answered by another host
                    response = dataclasses.replace(response, redirected_to=host_of(url))
                return response
            target = urljoin(url, location.strip())
            new = urlsplit(target)
            if parts.scheme == "https" and new.scheme != "https":
                raise PlatformError(
                    f"refused a redirect from {safe_url(url)} to {safe_url(target)} "
                    "(https must not fall back to plain http)"
                )
            if new.scheme not in ("http", "https"):
                raise PlatformError(f"refused a redirect to {safe_url(target)}")
            if (new.hostname, new.port) != (parts.hostname, parts.port):
                hdrs = {k: v for k, v in hdrs.items() if k.lower() not in _AUTH_HEADERS}
            log.debug("redirected (HTTP %d) to %s", response.status, safe_url(target))
            url = target
        raise PlatformError(f"too many redirects (more than {self.max_redirects})")

    def _once(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        proxy = self._proxy(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, parts.port, timeout=connect_timeout, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            if proxy is None:
                conn.connect()
            else:
                self._connect_through(conn, proxy, url, connect_timeout)
            sock = conn.sock
            deadline = time.monotonic() + read_timeout
            if sock is not None:
                sock.settimeout(read_timeout)
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            chunks: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no complete answer within {read_timeout:g} s")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.settimeout(remaining)
                chunk = resp.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PlatformError(
                        f"the answer from {host} is larger than "
                        f"{self.max_body_bytes // (1024 * 1024)} MiB; refused"
                    )
                chunks.append(chunk)
            answer_headers = Headers(resp.getheaders())
            _check_complete(answer_headers, size, host)
            return HttpResponse(resp.status, answer_headers, b"".join(chunks))
        except http.client.IncompleteRead as exc:  # a chunked body that stopped early
            raise TruncatedAnswer(
                f"the answer from {host} was cut short after {len(exc.partial)} bytes"
            ) from None
        except http.client.HTTPException as exc:
            # Malformed answers: treat as a network failure (retryable).
            raise ConnectionError(f"bad HTTP answer ({type(exc).__name__})") from exc
        finally:
            conn.close()

    def _proxy(self, url: str) -> ProxyServer | None:
        """The proxy for ``url`` by the environment (None: direct), logged without
        credentials: INFO the first time, DEBUG afterwards."""
        proxy = proxy_for(url, self.environ)
        host, port = target_of(url)
        if proxy is not None:
            log_proxy_use(log, proxy.display, host_port(host, port))
        elif proxy_bypassed(url, self.environ):
            log.debug("no proxy for %s: listed in no_proxy", host_port(host, port))
        return proxy

    def _connect_through(
        self, conn: http.client.HTTPConnection, proxy: ProxyServer, url: str, timeout: float
    ) -> None:
        """Open ``conn`` through a CONNECT tunnel (then TLS to the target for https)."""
        host, port = target_of(url)
        raw = open_tunnel(proxy, host, port, timeout, USER_AGENT)
        try:
            raw.settimeout(timeout)  # the TLS handshake gets its own connect timeout
            if isinstance(conn, http.client.HTTPSConnection):
                conn.sock = self._context().wrap_socket(raw, server_hostname=host)
            else:
                conn.sock = raw
        except BaseException:
            raw.close()
            raise


class TruncatedAnswer(ConnectionError):
    """The connection closed before the whole body arrived (retryable, like a reset)."""


def _check_complete(headers: Mapping[str, str], received: int, host: str) -> None:
    """Raise :class:`TruncatedAnswer` when fewer bytes came than ``Content-Length`` said
    (``http.client`` returns a short body without complaint when the peer closes)."""
    declared = headers.get("content-length", "").strip()
    if declared.isdigit() and received < int(declared):
        raise TruncatedAnswer(
            f"the answer from {host} was cut short ({received} of {int(declared)} bytes)"
        )
