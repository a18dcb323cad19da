"""The REST API, independent of the HTTP server: the routes, the API key check, injected
failures and delays, and the subset the device boots with (the agent configuration and the
signed-URL endpoints). The management endpoints are in :mod:`.management` and
:mod:`.history`."""

from __future__ import annotations

import asyncio
import datetime
import hmac
import logging
import re
import secrets
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hello_device.emulator.answers import (
    _Answer,
    _Call,
    _error,
    _failure_body,
    _first,
    _format_retry_after,
    _host_port,
    _Invalid,
    _json,
    _not_found,
    _phrase,
    _unprocessable,
)
from hello_device.emulator.config import (
    CONVERSATION_PATH,
    SIGNED_URL_PATH,
    EmulatorConfig,
    RestRecord,
    _RestFailure,
)
from hello_device.emulator.history import _History
from hello_device.emulator.management import _Management
from hello_device.emulator.redaction import _mask_headers

__all__ = ["_RestApi", "_host_port"]

log = logging.getLogger(__name__)

_Handler = Callable[..., _Answer]


class _RestApi(_Management, _History):
    """The REST API (a part of :class:`~hello_device.emulator.server.Emulator`, which sets
    these attributes)."""

    config: EmulatorConfig
    host: str
    port: int
    ssl_context: ssl.SSLContext | None
    rest_requests: list[RestRecord]
    rest_delay_s: float
    rest_pending: int
    tokens_issued: list[str]
    _failures: list[_RestFailure]
    _signatures: dict[str, tuple[str, float]]
    _stopping: asyncio.Event | None

    def _routes(self) -> list[tuple[re.Pattern[str], dict[str, _Handler]]]:
        seg = "([^/]+)"
        table: list[tuple[str, dict[str, _Handler]]] = [
            (SIGNED_URL_PATH, {"GET": self._get_signed_url_primary}),
            (f"/v1/convai/agents/{seg}/signed-url", {"GET": self._get_signed_url_a}),
            (f"/v1/convai/agents/{seg}/link", {"GET": self._get_signed_url_b}),
            ("/v1/convai/agents", {"GET": self._list_agents}),
            (
                f"/v1/convai/agents/{seg}",
                {"GET": self._get_agent, "PATCH": self._update_agent, "PUT": self._update_agent},
            ),
            ("/v1/convai/tools", {"GET": self._list_tools, "POST": self._create_tool}),
            (
                f"/v1/convai/tools/{seg}",
                {"GET": self._get_tool, "PATCH": self._update_tool, "PUT": self._update_tool},
            ),
            ("/v1/convai/conversations", {"GET": self._list_conversations}),
            (f"/v1/convai/conversations/{seg}", {"GET": self._get_conversation}),
            (f"/v1/convai/conversations/{seg}/feedback", {"POST": self._post_feedback}),
        ]
        return [(re.compile(f"^{pattern}$"), methods) for pattern, methods in table]

    async def _serve_rest(self, call: _Call) -> _Answer:
        """Answer one REST request (after ``rest_delay_s``), record it and log it."""
        if self.rest_delay_s > 0 and self._stopping is not None:
            self.rest_pending += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), self.rest_delay_s)
            except TimeoutError:
                pass
            finally:
                self.rest_pending -= 1
        answer = self._rest(call)
        self.rest_requests.append(
            RestRecord(
                call.method,
                call.target,
                _mask_headers(call.headers.items()),
                answer.status,
                time.monotonic(),
                call.json_or_none(),
            )
        )
        log.info("REST %s %s -> %d", call.method, call.path, answer.status)
        return answer

    def _rest(self, call: _Call) -> _Answer:
        if self._failures:
            return self._injected_failure()
        if not self._authorised(call.headers):
            return _json(401, _failure_body(401))
        path = call.path.rstrip("/") or "/"
        for pattern, methods in self._routes():
            match = pattern.match(path)
            if match is None:
                continue
            handler = methods.get(call.method)
            if handler is None:
                allow = ", ".join(methods)
                return _json(405, {"detail": "Method Not Allowed"}, {"Allow": allow})
            try:
                return handler(call, *match.groups())
            except _Invalid as exc:
                return _unprocessable(exc.errors)
        return _json(404, _failure_body(404))

    def _injected_failure(self) -> _Answer:
        failure = self._failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self._failures.pop(0)
        extra = {}
        if failure.retry_after is not None:
            extra["Retry-After"] = _format_retry_after(failure.retry_after)
        if failure.body is not None:
            body = failure.body.encode()
        elif "html" in failure.content_type:
            phrase = _phrase(failure.status)
            body = f"<html><body><h1>{failure.status} {phrase}</h1></body></html>".encode()
        else:
            return _Answer(failure.status, _failure_body(failure.status), extra)
        return _Answer(failure.status, None, extra, failure.content_type, body)

    def _authorised(self, headers: Any) -> bool:
        key = self.config.api_key
        if not key:
            return True
        offered = headers.get("xi-api-key")
        if offered is None:
            auth = headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            offered = value.strip() if scheme.lower() == "bearer" else None
        return offered is not None and hmac.compare_digest(offered.encode(), key.encode())

    # -- signed URLs -------------------------------------------------------------------

    def _get_signed_url_primary(self, call: _Call) -> _Answer:
        if self.config.signed_url_form != "primary":
            return _json(404, _failure_body(404))
        agent_id = _first(call.query, "agent_id")
        if agent_id is None:
            raise _Invalid([_error(["query", "agent_id"], "Field required", "missing")])
        return self._signed_url_answer(call, agent_id, "primary")

    def _get_signed_url_a(self, call: _Call, agent_id: str) -> _Answer:
        if self.config.signed_url_form != "a":
            return _json(404, _failure_body(404))
        return self._signed_url_answer(call, agent_id, "a")

    def _get_signed_url_b(self, call: _Call, agent_id: str) -> _Answer:
        if self.config.signed_url_form != "b":
            return _json(404, _failure_body(404))
        return self._signed_url_answer(call, agent_id, "b")

    def _signed_url_answer(self, call: _Call, agent_id: str, form: str) -> _Answer:
        if agent_id != self.config.agent_id:
            return _not_found("agent", agent_id)
        token = secrets.token_urlsafe(24)
        self.tokens_issued.append(token)
        now = time.monotonic()
        self._signatures = {k: v for k, v in self._signatures.items() if v[1] > now}
        ttl = self.config.signed_url_ttl_s
        self._signatures[token] = (agent_id, now + ttl)
        host = call.host or _host_port(self.host, self.port)
        scheme = "wss" if self.ssl_context else "ws"
        url = (
            f"{scheme}://{host}{CONVERSATION_PATH}?agent_id={quote(agent_id, safe='')}"
            f"&conversation_signature={token}"
        )
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)
        expires_at = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
        if form == "primary":
            return _json(200, {"signed_url": url})
        if form == "a":
            return _json(200, {"signed_url": url, "expires_at": expires_at})
        return _json(200, {"link": {"signed_url": url, "expires_at": expires_at}})

    def _consume_signature(self, token: str, agent_id: str) -> bool:
        entry = self._signatures.pop(token, None)
        return entry is not None and entry[0] == agent_id and time.monotonic() < entry[1]
