"""Management REST API client, agent-configuration mapping, on-disk cache and refresh logic.

Four pieces, each usable alone:

* :class:`PlatformClient` — ``GET /v1/convai/agents/{id}`` and the signed-URL endpoints
  (with the fallbacks of PROTOCOL.md §1), retries with exponential backoff and full jitter
  on 429, 5xx and network errors, honouring ``Retry-After``; every failure becomes one
  clear :class:`~hello_device.errors.PlatformError` line a field technician understands.
* :func:`map_agent_config` — the platform's JSON, read defensively with every alias, into
  a frozen :class:`AgentProfile`; :func:`effective_settings` merges it with the TOML file
  (a value set explicitly in the file wins) for ``config show``.
* :class:`AgentConfigCache` — the last good configuration under ``state.dir``, written
  atomically with mode 0600; a corrupt file is renamed aside, never fatal.
* :class:`AgentConfigProvider` — boot (fetch, else cache, else offline), background
  retries, refresh at conversation boundaries and on SIGHUP. The app drives it.

Why the standard library for HTTP: the device makes a handful of small GET requests at
boot and at conversation boundaries. ``http.client`` in a worker thread
(:func:`in_daemon_thread`) does that with no extra dependency to install, audit and
update on the board, no import cost at boot (httpx/aiohttp pull in dozens of modules,
hundreds of milliseconds on a Pi Zero), and it lets us set the connect and read timeouts
separately and control redirects (no https→http downgrade, no API key sent to another
host). The :class:`Transport` protocol keeps it replaceable: tests hand in a scripted fake.

Secrets: the API key is only ever put in one request header; every text that may reach
an exception or a log line (error bodies included) is scrubbed of it. A signed URL is
returned to the caller and never stored or logged beyond ``scheme://host/path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import http.client
import json
import logging
import math
import os
import random
import re
import socket
import ssl
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from hello_device import __version__
from hello_device.config import (
    AUDIO_FORMATS,
    SECTIONS,
    PlatformSettings,
    Settings,
    dump_settings,
    is_secure_or_loopback,
)
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    PlatformError,
    PlatformUnavailable,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

USER_AGENT = (
    f"hello-device/{__version__} (python {sys.version_info.major}.{sys.version_info.minor})"
)
DEFAULT_AUDIO_FORMAT = "pcm_16000"
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Answers larger than this are refused (an agent configuration is a few kilobytes)."""
DETAIL_MAX_CHARS = 200
"""Error details quoted from a response body are cut to this length."""

_REDIRECTS = (301, 302, 303, 307, 308)
_AUTH_HEADERS = ("xi-api-key", "authorization")

# --------------------------------------------------------------------------- transport


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

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))


class Transport(Protocol):
    """Sends one request and returns the answer (blocking; run in a worker thread).

    Network failures and timeouts raise :class:`OSError` (``TimeoutError`` included);
    any HTTP status, even 500, is an answer, not an exception.
    """

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> HttpResponse: ...


class UrllibTransport:
    """The real transport: :mod:`http.client` with TLS verification and two timeouts.

    ``connect_timeout`` bounds the TCP connect and the TLS handshake; ``read_timeout``
    bounds the whole wait for the answer, from sending the request to the last byte of
    the body. Redirects are followed for GET (at most ``max_redirects``), never from
    https to http, and the auth headers are dropped when the host changes. (Name kept
    from the design notes; :mod:`urllib.request` cannot separate the two timeouts.)
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_redirects: int = 3,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._ssl_context = ssl_context
        self.max_redirects = max_redirects
        self.max_body_bytes = max_body_bytes

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
    ) -> HttpResponse:
        hdrs = dict(headers)
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
                response = self._once(method, url, hdrs, connect_timeout, read_timeout)
            except (UnicodeError, http.client.InvalidURL) as exc:
                # Not retryable. The text may quote a header value, so only its type is kept.
                raise PlatformError(
                    f"cannot request {safe_url(url)} ({type(exc).__name__})"
                ) from None
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return response
            if not location:
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
    ) -> HttpResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, parts.port, timeout=connect_timeout, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.connect()
            sock = conn.sock
            deadline = time.monotonic() + read_timeout
            if sock is not None:
                sock.settimeout(read_timeout)
            conn.request(method, target, headers=headers)
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
            return HttpResponse(resp.status, Headers(resp.getheaders()), b"".join(chunks))
        except http.client.HTTPException as exc:
            # Malformed or truncated answers: treat as a network failure (retryable).
            raise ConnectionError(f"bad HTTP answer ({type(exc).__name__})") from exc
        finally:
            conn.close()


# --------------------------------------------------------------------------- helpers


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: no user info, no query (tokens), no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _host_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or url
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return url


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _clean(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    """One line, no control characters, at most ``limit`` characters."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def describe_os_error(exc: BaseException, read_timeout: float | None = None) -> str:
    """A short, secret-free reason for a network (or file) failure."""
    if isinstance(exc, TimeoutError):
        detail = str(exc)
        if detail and "within" in detail:
            return detail
        return "timed out" if read_timeout is None else f"no answer within {read_timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return f"host name not resolved ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "certificate rejected"
        return f"TLS certificate rejected: {reason} (is the system clock right?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _looks_like_html(body: bytes, media_type: str) -> bool:
    if "html" in media_type:
        return True
    head = body[:256].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def error_detail(body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """The human part of an error body, in any of the shapes compatible servers use.

    ``{"detail": "…"}``, ``{"detail": {"status", "message"}}``, ``{"detail": [{"msg",
    "loc"}]}`` (validation errors), ``{"error": {"code", "message", "details"}}``,
    ``{"error": "…"}``, ``{"message": "…"}``, or a short plain-text body. Never HTML.
    """
    media = _media_type(headers or {})
    try:
        data: Any = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, str):
            return _clean(detail)
        if isinstance(detail, dict):
            message = detail.get("message") or detail.get("msg") or detail.get("detail")
            status = detail.get("status") or detail.get("code")
            parts = [str(p) for p in (status, message) if isinstance(p, (str, int))]
            if parts:
                return _clean(": ".join(parts))
        if isinstance(detail, list):
            msgs = []
            for item in detail:
                if isinstance(item, dict):
                    msg = item.get("msg") or item.get("message")
                    loc = item.get("loc")
                    where = ".".join(str(x) for x in loc) if isinstance(loc, list) else ""
                    if isinstance(msg, str):
                        msgs.append(f"{where}: {msg}" if where else msg)
                elif isinstance(item, str):
                    msgs.append(item)
            if msgs:
                return _clean("; ".join(msgs))
        error = data.get("error")
        if isinstance(error, dict):
            code, message, details = error.get("code"), error.get("message"), error.get("details")
            text = ": ".join(str(p) for p in (code, message) if isinstance(p, (str, int)))
            if isinstance(details, str) and details:
                text = f"{text} ({details})" if text else details
            elif isinstance(details, (dict, list)) and details:
                text = f"{text} ({json.dumps(details, ensure_ascii=False)})"
            if text:
                return _clean(text)
        if isinstance(error, str):
            message = data.get("message")
            return _clean(f"{error}: {message}" if isinstance(message, str) else error)
        message = data.get("message")
        if isinstance(message, str):
            return _clean(message)
        return ""
    if data is None and body and not _looks_like_html(body, media):
        try:
            return _clean(body[:1000].decode("utf-8", errors="replace"))
        except Exception:  # pragma: no cover - decode with errors="replace" does not fail
            return ""
    return ""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def find_signed_url(data: Any, depth: int = 3) -> str | None:
    """The first string under a ``signed_url`` key, searched breadth-first ``depth`` deep."""
    level: list[Any] = [data]
    for _ in range(depth + 1):
        nested: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                value = node.get("signed_url")
                if isinstance(value, str) and value:
                    return value
                nested.extend(v for v in node.values() if isinstance(v, (dict, list)))
            elif isinstance(node, list):
                nested.extend(v for v in node if isinstance(v, (dict, list)))
        level = nested
    return None


# --------------------------------------------------------------------------- client


T = TypeVar("T")


def in_daemon_thread(func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking call in a daemon thread and await its result.

    Unlike :func:`asyncio.to_thread`, the process never waits for the thread at exit: a
    request stuck on a silent server (up to its read timeout) must not delay a SIGTERM.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = func(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=work, name="hello-device-http", daemon=True).start()
    return future


class PlatformClient:
    """Async client of the management REST API over a (blocking) :class:`Transport`.

    Requests run in a worker thread. Retryable failures (network errors, timeouts, 429,
    408, 5xx) are retried up to ``max_attempts`` times in all, with exponential backoff
    and full jitter (``base_backoff_s`` doubling up to ``max_backoff_s``), or exactly the
    server's ``Retry-After`` when it sends one. A ``Retry-After`` longer than
    ``max_retry_after_s`` ends the call at once with :class:`PlatformUnavailable` whose
    ``retry_after`` tells the caller when to come back.
    """

    def __init__(
        self,
        settings: PlatformSettings,
        transport: Transport | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_attempts: int = 5,
        clock: Clock = time.time,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.settings = settings
        self.transport: Transport = transport if transport is not None else UrllibTransport()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.max_attempts = max_attempts
        self._clock = clock
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._base = settings.api_base_url.rstrip("/")
        self.host = _host_of(settings.api_base_url)
        key = settings.api_key.reveal() if settings.api_key else ""
        self._key = key
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if key:
            if settings.auth_header == "bearer":
                self._headers["Authorization"] = f"Bearer {key}"
            else:
                self._headers["xi-api-key"] = key
        self._signed_url_form: int | None = None

    # ------------------------------------------------------------------ public API

    async def fetch_agent_config(self, *, attempts: int | None = None) -> dict[str, Any]:
        """The agent's configuration as the platform returns it (a JSON object)."""
        agent = self.settings.agent_id
        path = f"/v1/convai/agents/{quote(agent, safe='')}"
        response = await self._get(path, attempts=attempts)
        self._raise_for_status(response)
        return self._json_object(response)

    async def get_signed_url(self, *, attempts: int | None = None) -> str:
        """A fresh signed conversation URL (``wss://…``); never cache or log it whole.

        Tries ``/v1/convai/conversation/get-signed-url``, then on 404 (or 405)
        ``/v1/convai/agents/{id}/signed-url`` and ``/v1/convai/agents/{id}/link``; the
        form that answered is remembered for the next conversation.
        """
        agent = quote(self.settings.agent_id, safe="")
        forms = [
            f"/v1/convai/conversation/get-signed-url?agent_id={agent}",
            f"/v1/convai/agents/{agent}/signed-url",
            f"/v1/convai/agents/{agent}/link",
        ]
        order = list(range(len(forms)))
        if self._signed_url_form is not None:
            order.remove(self._signed_url_form)
            order.insert(0, self._signed_url_form)
        last: HttpResponse | None = None
        for index in order:
            response = await self._get(forms[index], attempts=attempts)
            if response.status in (404, 405):
                log.debug(
                    "signed URL: %s answered HTTP %d; trying the next form",
                    forms[index].split("?")[0],
                    response.status,
                )
                last = response
                continue
            self._raise_for_status(response)
            data = self._json_object(response)
            url = find_signed_url(data)
            if url is None:
                raise PlatformError(
                    f"the platform at {self.host} answered without a signed_url "
                    f"({forms[index].split('?')[0]})"
                )
            self._check_ws_url(url)
            self._signed_url_form = index
            log.debug("signed URL obtained: %s (query hidden)", safe_url(url))
            return url
        assert last is not None
        raise AgentNotFoundError(
            f"no agent with id {self.settings.agent_id} at {self.host}, or the platform "
            f"offers no signed URL (all {len(forms)} signed-URL endpoints answered "
            f"HTTP {last.status})"
        )

    # ------------------------------------------------------------------ internals

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return text

    def _check_ws_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("ws", "wss") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise PlatformError(
                f"the platform at {self.host} returned a signed URL that is not ws:// or "
                f"wss:// ({self.redact(safe_url(url))})"
            )
        if not self.settings.allow_insecure and not is_secure_or_loopback(url):
            raise PlatformError(
                f"the platform at {self.host} returned a plain ws:// signed URL "
                f"({safe_url(url)}); refused (set platform.allow_insecure to accept it)"
            )

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0.0, ceiling)

    async def _get(self, path: str, *, attempts: int | None) -> HttpResponse:
        """GET with retries; the first non-retryable answer (2xx, 3xx, 4xx) is returned."""
        url = self._base + path
        total = self.max_attempts if attempts is None else max(1, attempts)
        connect_t = self.settings.connect_timeout_s
        read_t = self.settings.read_timeout_s
        reason = ""
        retry_after: float | None = None
        for attempt in range(1, total + 1):
            retry_after = None
            started = time.monotonic()
            try:
                response = await in_daemon_thread(
                    self.transport.request, "GET", url, dict(self._headers), connect_t, read_t
                )
            except OSError as exc:
                reason = f"cannot reach {self.host}: {describe_os_error(exc, read_t)}"
                reason = self.redact(_clean(reason, 300))
                log.debug(
                    "GET %s failed (attempt %d/%d): %s", safe_url(url), attempt, total, reason
                )
            else:
                elapsed_ms = (time.monotonic() - started) * 1000.0
                log.debug(
                    "GET %s -> HTTP %d in %.0f ms (attempt %d/%d)",
                    safe_url(url),
                    response.status,
                    elapsed_ms,
                    attempt,
                    total,
                )
                if not (response.status in (408, 429) or response.status >= 500):
                    return response
                detail = self.redact(error_detail(response.body, response.headers))
                if response.status == 429:
                    reason = f"the platform at {self.host} is rate-limiting us (HTTP 429)"
                else:
                    reason = f"the platform at {self.host} answered HTTP {response.status}"
                if detail:
                    reason = f"{reason}: {detail}"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
                if retry_after is not None and retry_after > self.max_retry_after_s:
                    raise PlatformUnavailable(
                        f"{reason} (asked to retry in {retry_after:.0f} s)",
                        retry_after=retry_after,
                    )
            if attempt == total:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.debug("retrying in %.2f s", delay)
            await self._sleep(delay)
        suffix = f" (gave up after {total} attempts)" if total > 1 else ""
        raise PlatformUnavailable(f"{reason}{suffix}", retry_after=retry_after)

    def _not_found_message(self, response: HttpResponse) -> str:
        message = f"no agent with id {self.settings.agent_id} at {self.host} (HTTP 404)"
        media = _media_type(response.headers)
        if _looks_like_html(response.body, media):
            message += "; the answer was an HTML page — is api_base_url right?"
        else:
            detail = self.redact(error_detail(response.body, response.headers))
            if detail:
                message += f": {detail}"
        return message

    def _raise_for_status(self, response: HttpResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        detail = self.redact(error_detail(response.body, response.headers))
        if status in (401, 403):
            if self._key:
                message = f"the platform refused the API key (HTTP {status})"
            else:
                message = (
                    f"the platform refused the request: no API key is configured (HTTP {status})"
                )
            message += f" at {self.host}"
            if detail:
                message += f": {detail}"
            message += (
                "; check platform.api_key, platform.api_key_file or HELLO_DEVICE_API_KEY, "
                "and platform.auth_header"
            )
            raise AuthError(message)
        if status == 404:
            raise AgentNotFoundError(self._not_found_message(response))
        if 300 <= status < 400:
            raise PlatformError(
                f"the platform at {self.host} answered with a redirect (HTTP {status}) that "
                "was not followed — is api_base_url right?"
            )
        message = f"the platform at {self.host} rejected the request (HTTP {status})"
        if detail:
            message += f": {detail}"
        raise PlatformError(message)

    def _json_object(self, response: HttpResponse) -> dict[str, Any]:
        status = response.status
        media = _media_type(response.headers)
        if _looks_like_html(response.body, media):
            raise PlatformError(
                f"the platform answered with HTML instead of JSON (HTTP {status}) — "
                "is api_base_url right?"
            )
        try:
            data = json.loads(response.body)
        except (ValueError, UnicodeDecodeError) as exc:
            if media and "json" not in media:
                raise PlatformError(
                    f"the platform answered with {_clean(media, 60)} instead of JSON "
                    f"(HTTP {status}) — is api_base_url right?"
                ) from None
            where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise PlatformError(
                f"the platform answered with invalid JSON{where} (HTTP {status}) — "
                "is api_base_url right?"
            ) from None
        if not isinstance(data, dict):
            raise PlatformError(
                f"the platform answered with a JSON {type(data).__name__} instead of an "
                f"object (HTTP {status})"
            )
        return data


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class AgentProfile:
    """What the device uses from the agent's configuration (every field may be absent)."""

    agent_id: str | None = None
    name: str | None = None
    user_input_audio_format: str = DEFAULT_AUDIO_FORMAT
    """Format of the microphone audio the device sends."""
    agent_output_audio_format: str = DEFAULT_AUDIO_FORMAT
    """Format of the agent audio the device receives."""
    first_message: str | None = None
    language: str | None = None
    turn_timeout_s: float | None = None
    silence_duration_ms: int | None = None
    """Silence that ends a user turn (a hint for the local VAD)."""
    prefix_padding_ms: int | None = None
    """Speech pre-roll (a hint for the local VAD)."""
    vad_threshold: float | None = None
    max_duration_s: float | None = None
    private: bool = False
    """The agent needs a signed URL."""


_MISSING = object()


def _dig(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _first(raw: Mapping[str, Any], paths: Iterable[str], kind: str) -> Any:
    """The first value at ``paths`` that has the right kind; wrong kinds are logged."""
    for path in paths:
        value = _dig(raw, path)
        if value is _MISSING or value is None:
            continue
        converted = _convert(value, kind)
        if converted is _MISSING:
            log.debug(
                "agent configuration: ignoring %s (%s, expected %s)",
                path,
                type(value).__name__,
                kind,
            )
            continue
        return converted
    return None


def _convert(value: Any, kind: str) -> Any:
    if kind == "str":
        return value if isinstance(value, str) else _MISSING
    if kind == "bool":
        return value if isinstance(value, bool) else _MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _MISSING
    if not math.isfinite(value):
        return _MISSING
    if kind == "seconds":  # any finite number (turn_timeout may be -1: disabled)
        return float(value)
    if kind == "duration":
        return float(value) if value >= 0 else _MISSING
    if kind == "ms":
        return round(value) if value >= 0 else _MISSING
    if kind == "unit":
        return float(value) if 0.0 <= value <= 1.0 else _MISSING
    raise ValueError(kind)  # pragma: no cover - programming error


def _turn_hint_paths(name: str) -> list[str]:
    return [
        f"conversation_config.turn_detection.{name}",
        f"conversation_config.turn.{name}",
        f"turn_detection.{name}",
        f"turn.{name}",
    ]


def _audio_format(raw: Mapping[str, Any], paths: list[str], what: str) -> str:
    value = _first(raw, paths, "str")
    if value is None:
        return DEFAULT_AUDIO_FORMAT
    name = str(value).strip().lower()
    if name in AUDIO_FORMATS:
        return name
    log.warning(
        "agent configuration: unknown %s %r; using %s",
        what,
        _clean(value, 40),
        DEFAULT_AUDIO_FORMAT,
    )
    return DEFAULT_AUDIO_FORMAT


def map_agent_config(raw: Mapping[str, Any]) -> AgentProfile:
    """Read the platform's agent configuration defensively (every alias, never raises)."""
    if not isinstance(raw, Mapping):
        log.debug("agent configuration: not an object (%s); using defaults", type(raw).__name__)
        return AgentProfile()
    enable_auth = _first(raw, ["platform_settings.auth.enable_auth"], "bool")
    mode = _first(raw, ["platform_settings.auth.mode"], "str")
    private = enable_auth is True or (isinstance(mode, str) and mode.lower() == "private")
    language = _first(
        raw, ["conversation_config.agent.language", "conversation_config.stt.language"], "str"
    )
    return AgentProfile(
        agent_id=_first(raw, ["agent_id"], "str"),
        name=_first(raw, ["name"], "str"),
        user_input_audio_format=_audio_format(
            raw, ["conversation_config.asr.user_input_audio_format"], "user_input_audio_format"
        ),
        agent_output_audio_format=_audio_format(
            raw,
            [
                "conversation_config.tts.agent_output_audio_format",
                "conversation_config.tts.output_format",
            ],
            "agent_output_audio_format",
        ),
        first_message=_first(raw, ["conversation_config.agent.first_message"], "str"),
        language=language.strip() if isinstance(language, str) and language.strip() else None,
        turn_timeout_s=_first(raw, ["conversation_config.turn.turn_timeout"], "seconds"),
        silence_duration_ms=_first(raw, _turn_hint_paths("silence_duration_ms"), "ms"),
        prefix_padding_ms=_first(raw, _turn_hint_paths("prefix_padding_ms"), "ms"),
        vad_threshold=_first(raw, _turn_hint_paths("threshold"), "unit"),
        max_duration_s=_first(
            raw, ["conversation_config.conversation.max_duration_seconds"], "duration"
        ),
        private=private,
    )


PLATFORM_KEYS: dict[str, str] = {
    "conversation.first_message": "first_message",
    "conversation.language": "language",
    "conversation.max_duration_s": "max_duration_s",
    "vad.end_silence_ms": "silence_duration_ms",
    "vad.preroll_ms": "prefix_padding_ms",
}
"""Settings the platform can supply (dotted key -> :class:`AgentProfile` field)."""

PLATFORM_ROWS: dict[str, str] = {
    "platform.user_input_audio_format": "user_input_audio_format",
    "platform.agent_output_audio_format": "agent_output_audio_format",
    "platform.private": "private",
    "platform.turn_timeout_s": "turn_timeout_s",
}
"""Read-only rows that only the platform supplies (dotted key -> profile field)."""


def explicit_keys(path: str | os.PathLike[str] | None) -> set[str]:
    """Dotted keys present in a TOML file (``section.key``); empty if it cannot be read."""
    if path is None:
        return set()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()
    keys: set[str] = set()
    for section, table in data.items():
        if isinstance(table, dict):
            keys.update(f"{section}.{key}" for key in table)
        else:
            keys.add(section)
    return keys


def effective_settings(
    settings: Settings,
    profile: AgentProfile | None,
    profile_source: str,
    explicit: set[str] | None = None,
) -> list[tuple[str, object, str]]:
    """Every setting as ``(dotted key, value, source)``, secrets masked as ``***``.

    ``source`` is ``default``, ``file`` (set in the TOML file), ``environment`` (the API
    key from ``HELLO_DEVICE_API_KEY``), or ``profile_source`` (``platform`` or ``cache``)
    for values the agent configuration supplies and the file does not set. ``explicit``
    defaults to :func:`explicit_keys` of ``settings.source``. The read-only
    ``platform.*`` rows of :data:`PLATFORM_ROWS` follow the ``[platform]`` section.
    """
    if explicit is None:
        explicit = explicit_keys(settings.source) if settings.source != "<defaults>" else set()
    use_profile = profile is not None and profile_source not in ("none", "default")
    rows: list[tuple[str, object, str]] = []
    for section, values in dump_settings(settings).items():
        for name, file_value in values.items():
            key = f"{section}.{name}"
            value: object = file_value
            source = "file" if key in explicit else "default"
            if key == "platform.api_key":
                if settings.api_key_source == "environment":
                    source = "environment"
                elif settings.api_key_source in ("file", "key file"):
                    source = "file"
            field_name = PLATFORM_KEYS.get(key)
            if field_name and source == "default" and use_profile:
                assert profile is not None
                platform_value = getattr(profile, field_name)
                if platform_value is not None:
                    value, source = platform_value, profile_source
            rows.append((key, value, source))
        if section == "platform":
            for key, field_name in PLATFORM_ROWS.items():
                if use_profile:
                    assert profile is not None
                    rows.append((key, getattr(profile, field_name), profile_source))
                else:
                    rows.append((key, getattr(AgentProfile(), field_name), "default"))
    return rows


def apply_profile(
    settings: Settings, profile: AgentProfile | None, explicit: set[str] | None = None
) -> Settings:
    """Settings with the platform's local-behaviour hints where the file sets nothing.

    Only ``vad.end_silence_ms``, ``vad.preroll_ms`` and ``conversation.max_duration_s``
    are replaced (clamped to their allowed ranges). ``conversation.first_message`` and
    ``conversation.language`` are deliberately left alone: the app sends those as
    conversation overrides, which must carry only what the file sets (an agent that does
    not allow overrides closes the socket with 1008).
    """
    if profile is None:
        return settings
    if explicit is None:
        explicit = explicit_keys(settings.source) if settings.source != "<defaults>" else set()
    changes: dict[str, dict[str, Any]] = {}
    for key in ("vad.end_silence_ms", "vad.preroll_ms", "conversation.max_duration_s"):
        if key in explicit:
            continue
        value = getattr(profile, PLATFORM_KEYS[key])
        if value is None:
            continue
        section, name = key.split(".")
        cls = SECTIONS[section]
        meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
        lo, hi = meta.get("min"), meta.get("max")
        clamped = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
        if clamped != value:
            log.debug("platform value for %s (%s) clamped to %s", key, value, clamped)
        changes.setdefault(section, {})[name] = clamped
    if not changes:
        return settings
    replaced = {
        section: dataclasses.replace(getattr(settings, section), **values)
        for section, values in changes.items()
    }
    return dataclasses.replace(settings, **replaced)


# --------------------------------------------------------------------------- cache

_AGENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TMP_MAX_AGE_S = 600.0


@dataclass(frozen=True)
class CachedConfig:
    """A configuration read back from the cache."""

    raw: dict[str, Any]
    fetched_at: float
    """When it was fetched (epoch seconds)."""
    age_s: float
    """Seconds since then (negative if the clock is behind, e.g. a Pi before NTP)."""
    path: Path


class AgentConfigCache:
    """The last good agent configuration, one JSON file per agent under ``state_dir``.

    File ``agent-<agent_id>.json``: ``{"fetched_at": epoch, "agent_id": id, "config":
    raw}``. Written atomically (temporary file in the same directory, mode 0600, fsync,
    rename, fsync of the directory). Signed URLs never go here.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *, clock: Clock = time.time) -> None:
        self.dir = Path(state_dir)
        self._clock = clock
        self._warned: set[Path] = set()

    def path(self, agent_id: str) -> Path:
        if not _AGENT_ID.match(agent_id):
            raise ValueError("agent id must match [A-Za-z0-9_-]{1,128}")
        return self.dir / f"agent-{agent_id}.json"

    def save(self, agent_id: str, raw: Mapping[str, Any], fetched_at: float | None = None) -> Path:
        """Write atomically; raise :class:`OSError` if the state directory is not usable."""
        final = self.path(agent_id)
        when = self._clock() if fetched_at is None else fetched_at
        payload = json.dumps(
            {"fetched_at": when, "agent_id": agent_id, "config": raw},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_temps(final)
        tmp = self.dir / f".{final.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()
        log.debug("agent configuration cached in %s", final)
        return final

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass  # some file systems cannot fsync a directory; the rename still happened
        finally:
            os.close(dfd)

    def _remove_stale_temps(self, final: Path) -> None:
        """Temporary files left by a power cut mid-write (older than 10 min)."""
        now = time.time()
        for leftover in self.dir.glob(f".{final.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > _TMP_MAX_AGE_S:
                    leftover.unlink()

    def load(self, agent_id: str, *, quarantine: bool = True) -> CachedConfig | None:
        """The cached configuration, or None (missing, unreadable or corrupt; never raises).

        A corrupt file is renamed to ``agent-<id>.json.corrupt-<UTC timestamp>`` and
        reported once at WARNING (``quarantine=False`` only reports: for read-only tools).
        """
        try:
            path = self.path(agent_id)
        except ValueError:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except PermissionError:
            self._warn(path, "%s: cannot read the cached agent configuration (permission denied)")
            return None
        except OSError as exc:
            self._corrupt(path, f"unreadable ({describe_os_error(exc)})", quarantine)
            return None
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            self._corrupt(path, "not valid JSON", quarantine)
            return None
        if not isinstance(doc, dict):
            self._corrupt(path, "not a JSON object", quarantine)
            return None
        config, fetched_at, cached_id = (
            doc.get("config"),
            doc.get("fetched_at"),
            doc.get("agent_id"),
        )
        if not isinstance(config, dict):
            self._corrupt(path, "no configuration object in it", quarantine)
            return None
        if (
            isinstance(fetched_at, bool)
            or not isinstance(fetched_at, (int, float))
            or not math.isfinite(fetched_at)
        ):
            self._corrupt(path, "no valid fetched_at time in it", quarantine)
            return None
        if cached_id != agent_id:
            self._corrupt(path, "it holds another agent's configuration", quarantine)
            return None
        return CachedConfig(
            raw=config,
            fetched_at=float(fetched_at),
            age_s=self._clock() - float(fetched_at),
            path=path,
        )

    def _warn(self, path: Path, message: str, *args: object) -> None:
        if path in self._warned:
            log.debug(message, path, *args)
        else:
            self._warned.add(path)
            log.warning(message, path, *args)

    def _corrupt(self, path: Path, why: str, quarantine: bool) -> None:
        if not quarantine:
            self._warn(path, "%s: the cached agent configuration is corrupt (%s); ignored", why)
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            self._warn(
                path,
                "%s: the cached agent configuration is corrupt (%s) and could not be renamed "
                "aside (%s); ignored",
                why,
                describe_os_error(exc),
            )
            return None
        self._warned.discard(path)
        log.warning(
            "%s: the cached agent configuration is corrupt (%s); renamed to %s and ignored",
            path,
            why,
            aside.name,
        )
        return None


# --------------------------------------------------------------------------- provider


def format_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 12 min``, ``2 d 4 h``; a negative age is "unknown"."""
    if seconds < 0:
        return "unknown: the clock is behind the fetch time"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


class AgentConfigProvider:
    """The agent configuration the app uses, and how it is kept up to date.

    The app calls :meth:`boot` once, runs :meth:`run_background` as a task for the
    daemon's life, and at every conversation boundary calls :meth:`take_update` (then
    :meth:`refresh_if_stale` at the start of a conversation). SIGHUP calls
    :meth:`request_refresh`. All methods must be called from the event loop's thread.

    ``status``: ``online`` (the last attempt reached the platform), ``cached`` (it did
    not; running on an older copy), ``offline`` (it did not and there is no copy at
    all), ``error`` (the platform refused us: key, agent id; a human must act).
    ``on_change`` (optional) is called after every change of status or of the pending
    update, e.g. to update LEDs and the systemd STATUS line.
    """

    def __init__(
        self,
        settings: Settings,
        client: PlatformClient,
        cache: AgentConfigCache,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_change: Callable[[AgentConfigProvider], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._cache = cache
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.on_change = on_change
        self._agent_id = settings.platform.agent_id
        self._current: AgentProfile | None = None
        self._current_raw: dict[str, Any] | None = None
        self._source = "none"
        self._fetched_at: float | None = None
        self._pending: tuple[AgentProfile, dict[str, Any], float] | None = None
        self._last_success: float | None = None
        self._status = "offline"
        self._status_message = "not started"
        self._refresh_requested = False
        self._retry_after: float | None = None
        self._last_logged: str | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: Transport | None = None, **kwargs: Any
    ) -> AgentConfigProvider:
        """A provider with the real client and the cache under ``settings.state.dir``."""
        client = PlatformClient(settings.platform, transport)
        return cls(settings, client, AgentConfigCache(settings.state.dir), **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def current(self) -> AgentProfile | None:
        """The profile in use (None: no configuration yet; use defaults)."""
        return self._current

    @property
    def current_raw(self) -> dict[str, Any] | None:
        """The platform's JSON behind :attr:`current`."""
        return self._current_raw

    @property
    def source(self) -> str:
        """Where :attr:`current` came from: ``platform``, ``cache`` or ``none``."""
        return self._source

    @property
    def status(self) -> str:
        return self._status

    @property
    def status_message(self) -> str:
        return self._status_message

    @property
    def fetched_at(self) -> float | None:
        """When :attr:`current` was fetched (epoch seconds)."""
        return self._fetched_at

    @property
    def pending(self) -> AgentProfile | None:
        """A newer profile waiting for the next conversation boundary."""
        return self._pending[0] if self._pending else None

    # ------------------------------------------------------------------ boot

    async def boot(self, timeout: float | None = None) -> AgentProfile | None:  # noqa: ASYNC109
        """One fetch; on failure the cache; neither: offline and None. Never raises for
        network or HTTP problems (a refused key or unknown agent sets status ``error``)."""
        try:
            raw = await self._fetch_once(timeout)
        except PlatformError as exc:
            failure = exc
        else:
            now = self._clock()
            self._adopt(raw, now, "platform")
            self._save(raw, now)
            self._last_success = now
            self._set_status("online", f"agent configuration fetched from {self._client.host}")
            log.info(
                "agent configuration fetched from %s (agent %s)",
                self._client.host,
                self._current.name if self._current and self._current.name else self._agent_id,
            )
            return self._current

        cached = self._cache.load(self._agent_id)
        if cached is not None:
            self._adopt(cached.raw, cached.fetched_at, "cache")
            self._last_success = cached.fetched_at
        self._last_logged = str(failure)
        if isinstance(failure, PlatformUnavailable):
            self._retry_after = failure.retry_after
            if cached is not None:
                message = (
                    f"platform unreachable ({failure}); using the agent configuration cached "
                    f"at {format_time(cached.fetched_at)} (age {format_age(cached.age_s)})"
                )
                self._set_status("cached", message)
            else:
                message = (
                    f"platform unreachable ({failure}) and no cached agent configuration; "
                    "running offline and retrying in the background"
                )
                self._set_status("offline", message)
            log.warning("%s", message)
        else:
            if cached is not None:
                message = (
                    f"{failure}; using the agent configuration cached at "
                    f"{format_time(cached.fetched_at)} (age {format_age(cached.age_s)})"
                )
            else:
                message = f"{failure}; no cached agent configuration"
            self._set_status("error", message)
            log.error("%s", message)
        return self._current

    # ------------------------------------------------------------------ background

    async def run_background(self) -> None:
        """Retry until online, then wait for :meth:`request_refresh`; runs until cancelled.

        One attempt per backoff step: 1 s doubling to ``platform.reconnect_max_backoff_s``,
        each wait jittered to between half and all of the step (so a refused key is never
        hammered), and never shorter than a ``Retry-After`` the platform asked for.
        """
        cap = max(1.0, self._settings.platform.reconnect_max_backoff_s)
        step = 1.0
        while True:
            try:
                if self._status == "online" and not self._refresh_requested:
                    step = 1.0
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if not (self._status == "online" and self._refresh_requested):
                    delay = self._rng.uniform(step / 2.0, step)
                    if self._retry_after is not None:
                        delay = max(delay, min(self._retry_after, cap))
                        self._retry_after = None
                    await self._sleep(delay)
                    step = min(step * 2.0, cap)
                await self._attempt(None, apply_now=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # a background loop must not die
                log.exception("agent configuration refresh failed unexpectedly")
                await self._sleep(cap)

    def request_refresh(self) -> None:
        """Mark the configuration stale (SIGHUP): fetched in the background, applied at
        the next conversation boundary."""
        self._refresh_requested = True
        self._wake.set()

    def take_update(self) -> AgentProfile | None:
        """At a conversation boundary: make a pending newer profile current and return it."""
        if self._pending is None:
            return None
        profile, raw, fetched_at = self._pending
        self._pending = None
        self._adopt(raw, fetched_at, "platform", profile)
        log.info("applying the newer agent configuration fetched at %s", format_time(fetched_at))
        self._changed()
        return profile

    def is_stale(self) -> bool:
        """True when a refresh was requested or the freshest copy is older than
        ``platform.config_max_age_s`` (or its age is unknown)."""
        if self._refresh_requested or self._last_success is None:
            return True
        age = self._clock() - self._last_success
        return age < 0 or age >= self._settings.platform.config_max_age_s

    async def refresh_if_stale(self, timeout: float = 3.0) -> bool:  # noqa: ASYNC109
        """At the start of a conversation: fetch once if stale; True if a new copy is now
        current. On failure the current copy stays (and background retries resume)."""
        if not self.is_stale():
            return False
        if self._lock.locked():
            log.debug("refresh skipped: a background fetch is under way")
            return False
        return await self._attempt(timeout, apply_now=True)

    # ------------------------------------------------------------------ internals

    async def _fetch_once(self, limit: float | None) -> dict[str, Any]:
        """One attempt; every failure becomes a PlatformError (the daemon must not die)."""
        coro = self._client.fetch_agent_config(attempts=1)
        try:
            if limit is None:
                return await coro
            return await asyncio.wait_for(coro, limit)
        except TimeoutError:
            raise PlatformUnavailable(
                f"no answer from {self._client.host} within {limit:g} s"
            ) from None
        except PlatformError:
            raise
        except Exception as exc:
            # A bug or an unexpected transport failure: report it with its traceback
            # (key scrubbed), then treat it like any refusal.
            trace = self._client.redact(traceback.format_exc())
            log.error("unexpected failure while fetching the agent configuration:\n%s", trace)
            raise PlatformError(
                f"unexpected {type(exc).__name__} while fetching the agent configuration "
                "(see the log)"
            ) from None

    async def _attempt(self, limit: float | None, apply_now: bool) -> bool:
        async with self._lock:
            if not apply_now and self._status == "online" and not self._refresh_requested:
                return False  # a conversation-start refresh got there first
            try:
                raw = await self._fetch_once(limit)
            except PlatformError as exc:
                self._on_failure(exc)
                return False
            self._on_success(raw, apply_now)
            return apply_now

    def _on_success(self, raw: dict[str, Any], apply_now: bool) -> None:
        now = self._clock()
        self._save(raw, now)
        self._last_success = now
        self._refresh_requested = False
        self._retry_after = None
        recovered = self._status != "online"
        if apply_now or raw == self._current_raw:
            self._pending = None
            self._adopt(raw, now, "platform")
        else:
            self._pending = (map_agent_config(raw), raw, now)
            log.info(
                "a newer agent configuration was fetched; it applies at the next "
                "conversation boundary"
            )
        if recovered:
            log.info("platform reachable again (%s)", self._client.host)
        self._last_logged = None
        self._set_status("online", f"agent configuration fetched from {self._client.host}")

    def _on_failure(self, exc: PlatformError) -> None:
        message = str(exc)
        unavailable = isinstance(exc, PlatformUnavailable)
        if message != self._last_logged:
            log.log(logging.WARNING if unavailable else logging.ERROR, "%s", message)
            self._last_logged = message
        else:
            log.debug("%s (again)", message)
        if isinstance(exc, PlatformUnavailable):
            self._retry_after = exc.retry_after
            if self._current is not None or self._pending is not None:
                when = format_time(self._fetched_at) if self._fetched_at is not None else "?"
                self._set_status(
                    "cached", f"platform unreachable ({message}); using the copy from {when}"
                )
            else:
                self._set_status(
                    "offline",
                    f"platform unreachable ({message}) and no agent configuration yet",
                )
        else:
            self._set_status("error", message)
        self._wake.set()

    def _adopt(
        self,
        raw: dict[str, Any],
        fetched_at: float,
        source: str,
        profile: AgentProfile | None = None,
    ) -> None:
        self._current = profile if profile is not None else map_agent_config(raw)
        self._current_raw = raw
        self._fetched_at = fetched_at
        self._source = source

    def _save(self, raw: dict[str, Any], fetched_at: float) -> None:
        try:
            self._cache.save(self._agent_id, raw, fetched_at)
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "cannot write the agent configuration cache in %s: %s (continuing without)",
                self._cache.dir,
                describe_os_error(exc) if isinstance(exc, OSError) else exc,
            )

    def _set_status(self, status: str, message: str) -> None:
        self._status = status
        self._status_message = message
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("on_change callback failed")


__all__ = [
    "PLATFORM_KEYS",
    "PLATFORM_ROWS",
    "USER_AGENT",
    "AgentConfigCache",
    "AgentConfigProvider",
    "AgentProfile",
    "CachedConfig",
    "Headers",
    "HttpResponse",
    "PlatformClient",
    "Transport",
    "UrllibTransport",
    "apply_profile",
    "describe_os_error",
    "effective_settings",
    "error_detail",
    "explicit_keys",
    "find_signed_url",
    "format_age",
    "format_time",
    "map_agent_config",
    "parse_retry_after",
    "safe_url",
]
