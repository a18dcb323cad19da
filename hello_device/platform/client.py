"""The management REST API client: the agent configuration and signed URLs.

Requests run in a daemon thread over a :class:`~hello_device.platform.http.Transport`.
Every failure becomes one clear :class:`~hello_device.errors.PlatformError` line; the
API key is only ever put in one request header and scrubbed from every text that may
reach an exception or a log line. A signed URL is returned to the caller and never
stored or logged beyond ``scheme://host/path``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from typing import Any
from urllib.parse import quote, urlsplit

from hello_device.aio import Clock, Sleep, in_daemon_thread
from hello_device.core.backoff import Backoff
from hello_device.core.text import one_line, redact
from hello_device.core.urls import host_of, is_secure_or_loopback, safe_url
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    NotFoundError,
    PlatformError,
    PlatformUnavailable,
    describe_os_error,
)
from hello_device.platform.diagnosis import (
    _looks_like_html,
    _media_type,
    error_detail,
    find_signed_url,
    json_object,
    parse_retry_after,
)
from hello_device.platform.http import (
    USER_AGENT,
    HttpResponse,
    Transport,
    TruncatedAnswer,
    UrllibTransport,
)
from hello_device.settings import PlatformSettings

log = logging.getLogger(__name__)


class PlatformClient:
    """Async client of the management REST API over a (blocking) :class:`Transport`.

    Requests run in a worker thread. Retryable failures (network errors, timeouts, 429,
    408, 5xx) are retried up to ``max_attempts`` times in all, with exponential backoff
    and jitter (:mod:`hello_device.core.backoff`) (``base_backoff_s`` doubling up to ``max_backoff_s``), or exactly the
    server's ``Retry-After`` when it sends one. A ``Retry-After`` longer than
    ``max_retry_after_s`` ends the call at once with :class:`PlatformUnavailable` whose
    ``retry_after`` tells the caller when to come back.

    A ``Retry-After`` binds every later request of this client, whatever path it comes
    from (boot, background refresh, signed URL): until it has passed, a call that may
    make only one attempt fails at once with :class:`PlatformUnavailable` (nothing is
    sent), and a call that may retry waits for it first.
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
        monotonic: Clock = time.monotonic,
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
        self._monotonic = monotonic
        self._not_before = -math.inf
        """``monotonic()`` time before which no request may go (the last Retry-After)."""
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._base = settings.api_base_url.rstrip("/")
        self.host = host_of(settings.api_base_url)
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

    async def request_json(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        attempts: int | None = None,
        not_found: str | None = None,
    ) -> dict[str, Any]:
        """``method path`` (with ``payload`` as a JSON body) and its JSON object answer.

        GET, PUT and PATCH are retried like every request; a POST (not idempotent: it may
        create a second tool) only when the platform cannot have acted on it (429, or the
        connection refused). ``not_found``: the message of a 404 (default: the agent's).
        """
        body = None if payload is None else json.dumps(payload).encode()
        response = await self._send(
            method, path, attempts=attempts, body=body, idempotent=method != "POST"
        )
        self._raise_for_status(response, not_found)
        if response.status == 204 or not response.body.strip():
            return {}
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
        return redact(text, [self._key]) if self._key else text

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
        return Backoff(self.max_backoff_s, base=self.base_backoff_s).delay(attempt, self._rng)

    @property
    def retry_after_remaining(self) -> float:
        """Seconds until the platform's last ``Retry-After`` has passed (0: none pending)."""
        return max(0.0, self._not_before - self._monotonic())

    async def _get(self, path: str, *, attempts: int | None) -> HttpResponse:
        """GET with retries; the first non-retryable answer (2xx, 3xx, 4xx) is returned."""
        return await self._send("GET", path, attempts=attempts)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        attempts: int | None,
        body: bytes | None = None,
        idempotent: bool = True,
    ) -> HttpResponse:
        """One request with retries; the first non-retryable answer is returned. A request
        that is not ``idempotent`` is retried only after a 429 or a refused connection."""
        url = self._base + path
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        total = self.max_attempts if attempts is None else max(1, attempts)
        connect_t = self.settings.connect_timeout_s
        read_t = self.settings.read_timeout_s
        reason = ""
        retry_after: float | None = None
        for attempt in range(1, total + 1):
            await self._respect_retry_after(attempt, total)
            retry_after = None
            started = time.monotonic()
            try:
                response = await in_daemon_thread(
                    self.transport.request,
                    method,
                    url,
                    dict(headers),
                    connect_t,
                    read_t,
                    body,
                    name="http",
                )
            except TruncatedAnswer as exc:
                reason = self.redact(one_line(str(exc), 300))
                log.debug(
                    "%s %s (attempt %d/%d): %s", method, safe_url(url), attempt, total, reason
                )
                unsent = False
            except OSError as exc:
                reason = f"cannot reach {self.host}: {describe_os_error(exc, read_t)}"
                reason = self.redact(one_line(reason, 300))
                log.debug(
                    "%s %s failed (attempt %d/%d): %s",
                    method,
                    safe_url(url),
                    attempt,
                    total,
                    reason,
                )
                unsent = isinstance(exc, ConnectionRefusedError)
            else:
                elapsed_ms = (time.monotonic() - started) * 1000.0
                log.debug(
                    "%s %s -> HTTP %d in %.0f ms (attempt %d/%d)",
                    method,
                    safe_url(url),
                    response.status,
                    elapsed_ms,
                    attempt,
                    total,
                )
                if not (response.status in (408, 429) or response.status >= 500):
                    return response
                detail = self.redact(error_detail(response.body, response.headers))
                unsent = response.status == 429
                if response.status == 429:
                    reason = f"the platform at {self.host} is rate-limiting us (HTTP 429)"
                else:
                    reason = f"the platform at {self.host} answered HTTP {response.status}"
                if detail:
                    reason = f"{reason}: {detail}"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
                if retry_after is not None:
                    self._not_before = max(self._not_before, self._monotonic() + retry_after)
                if retry_after is not None and retry_after > self.max_retry_after_s:
                    raise PlatformUnavailable(
                        f"{reason} (asked to retry in {retry_after:.0f} s)",
                        retry_after=retry_after,
                    )
            if attempt == total or not (idempotent or unsent):
                break
            if retry_after is None:  # else the next attempt waits for it (above)
                delay = self._backoff(attempt)
                log.debug("retrying in %.2f s", delay)
                await self._sleep(delay)
        suffix = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
        raise PlatformUnavailable(f"{reason}{suffix}", retry_after=retry_after)

    async def _respect_retry_after(self, attempt: int, total: int) -> None:
        """Before an attempt: wait out a pending ``Retry-After`` when this call may retry
        (and it is short enough); otherwise fail at once without sending anything."""
        wait = self.retry_after_remaining
        if wait <= 0:
            return
        if attempt == 1 and (total == 1 or wait > self.max_retry_after_s):
            raise PlatformUnavailable(
                f"the platform at {self.host} asked us to wait; next request in {wait:.0f} s",
                retry_after=wait,
            )
        log.debug("waiting %.2f s as the platform asked (Retry-After)", wait)
        await self._sleep(wait)

    def _not_found_message(self, response: HttpResponse, what: str | None = None) -> str:
        what = what or f"no agent with id {self.settings.agent_id}"
        message = f"{what} at {self.host} (HTTP 404)"
        media = _media_type(response.headers)
        if _looks_like_html(response.body, media):
            message += "; the answer was an HTML page — is api_base_url right?"
        else:
            detail = self.redact(error_detail(response.body, response.headers))
            if detail:
                message += f": {detail}"
        return message

    def _raise_for_status(self, response: HttpResponse, not_found: str | None = None) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        detail = self.redact(error_detail(response.body, response.headers))
        if response.redirected_to is not None:
            # Not the platform's verdict on our key or agent: a redirect (a captive
            # portal, a misrouted proxy) led to another host, which refused the request.
            raise PlatformError(
                f"the platform at {self.host} redirected to {response.redirected_to}, which "
                f"answered HTTP {status}" + (f": {detail}" if detail else "")
            )
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
            raise AuthError(message, status=status)
        if status == 404:
            if not_found is not None:
                raise NotFoundError(self._not_found_message(response, not_found), status=404)
            raise AgentNotFoundError(self._not_found_message(response), status=404)
        if 300 <= status < 400:
            raise PlatformError(
                f"the platform at {self.host} answered with a redirect (HTTP {status}) that "
                "was not followed — is api_base_url right?"
            )
        message = f"the platform at {self.host} rejected the request (HTTP {status})"
        if detail:
            message += f": {detail}"
        raise PlatformError(message, status=status)

    def _json_object(self, response: HttpResponse) -> dict[str, Any]:
        return json_object(response.status, response.headers, response.body)
