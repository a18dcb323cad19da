"""The REST subset of the platform the device uses, answered from websockets'
``process_request`` hook: the agent configuration and the signed-URL endpoints, with
an API key check, injected failures and delays."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hmac
import http
import json
import logging
import math
import secrets
import ssl
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hello_device.emulator.config import (
    _AGENT_RE,
    _DEFAULT_MAX_DURATION_S,
    _LINK_B_RE,
    _SIGNED_A_RE,
    CONVERSATION_PATH,
    SIGNED_URL_PATH,
    EmulatorConfig,
    RestRecord,
    _RestFailure,
)
from hello_device.emulator.connection import _first
from hello_device.emulator.redaction import _mask_headers

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------


def _json_response(
    status: int,
    payload: Any,
    extra_headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    body: bytes | None = None,
) -> Response:
    if body is None:
        body = json.dumps(payload).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
    )
    for key, value in (extra_headers or {}).items():
        headers[key] = value
    return Response(status, _phrase(status), headers, body)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _failure_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "detail": {
                "status": "too_many_concurrent_requests",
                "message": "Too many requests; try again later.",
            }
        }
    if status == 401:
        return {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
    if status == 404:
        return {"detail": "Not Found"}
    return {"detail": _phrase(status)}


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _RestApi:
    """The REST subset the device uses: agent configuration and signed URLs (a part of
    :class:`~hello_device.emulator.server.Emulator`, which sets these attributes)."""

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

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        split = urlsplit(request.path)
        if split.path.rstrip("/") == CONVERSATION_PATH:
            return None  # the WebSocket handshake goes on
        if self.rest_delay_s > 0 and self._stopping is not None:
            self.rest_pending += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), self.rest_delay_s)
            except TimeoutError:
                pass
            finally:
                self.rest_pending -= 1
        response = self._rest(request, split.path, parse_qs(split.query))
        self.rest_requests.append(
            RestRecord(
                "GET",
                request.path,
                _mask_headers(request.headers),
                response.status_code,
                time.monotonic(),
            )
        )
        log.info("REST GET %s -> %d", split.path, response.status_code)
        return response

    def _rest(self, request: Request, path: str, query: dict[str, list[str]]) -> Response:
        if self._failures:
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
                body = json.dumps(_failure_body(failure.status)).encode()
            return _json_response(failure.status, None, extra, failure.content_type, body)

        if not self._authorised(request.headers):
            return _json_response(401, _failure_body(401))

        cfg = self.config
        if path == SIGNED_URL_PATH:
            if cfg.signed_url_form != "primary":
                return _json_response(404, _failure_body(404))
            agent_id = _first(query, "agent_id")
            if agent_id is None:
                return _json_response(
                    422,
                    {
                        "detail": [
                            {
                                "loc": ["query", "agent_id"],
                                "msg": "Field required",
                                "type": "missing",
                            }
                        ]
                    },
                )
            return self._signed_url_answer(request, agent_id, "primary")
        for form, pattern in (("a", _SIGNED_A_RE), ("b", _LINK_B_RE)):
            match = pattern.match(path)
            if match:
                if cfg.signed_url_form != form:
                    return _json_response(404, _failure_body(404))
                return self._signed_url_answer(request, match.group(1), form)
        if path == "/v1/convai/agents":  # the list, as a technician's setup searches it
            search = (_first(query, "search") or "").lower()
            name = f"hello-device emulator ({cfg.agent_id})"
            hits = [{"agent_id": cfg.agent_id, "name": name}]
            agents = [a for a in hits if search in a["name"].lower() or search in a["agent_id"]]
            return _json_response(200, {"agents": agents, "next_cursor": None, "has_more": False})
        match = _AGENT_RE.match(path)
        if match:
            if match.group(1) != cfg.agent_id:
                return self._unknown_agent(match.group(1))
            return _json_response(200, self.agent_document())
        return _json_response(404, _failure_body(404))

    def _authorised(self, headers: Headers) -> bool:
        key = self.config.api_key
        if not key:
            return True
        offered = headers.get("xi-api-key")
        if offered is None:
            auth = headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            offered = value.strip() if scheme.lower() == "bearer" else None
        return offered is not None and hmac.compare_digest(offered.encode(), key.encode())

    def _unknown_agent(self, agent_id: str) -> Response:
        return _json_response(
            404,
            {
                "detail": {
                    "status": "agent_not_found",
                    "message": f"Agent with id {agent_id} not found",
                }
            },
        )

    def _signed_url_answer(self, request: Request, agent_id: str, form: str) -> Response:
        if agent_id != self.config.agent_id:
            return self._unknown_agent(agent_id)
        token = secrets.token_urlsafe(24)
        self.tokens_issued.append(token)
        now = time.monotonic()
        self._signatures = {k: v for k, v in self._signatures.items() if v[1] > now}
        ttl = self.config.signed_url_ttl_s
        self._signatures[token] = (agent_id, now + ttl)
        host = request.headers.get("Host") or _host_port(self.host, self.port)
        scheme = "wss" if self.ssl_context else "ws"
        url = (
            f"{scheme}://{host}{CONVERSATION_PATH}?agent_id={quote(agent_id, safe='')}"
            f"&conversation_signature={token}"
        )
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)
        expires_at = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
        if form == "primary":
            return _json_response(200, {"signed_url": url})
        if form == "a":
            return _json_response(200, {"signed_url": url, "expires_at": expires_at})
        return _json_response(200, {"link": {"signed_url": url, "expires_at": expires_at}})

    def _consume_signature(self, token: str, agent_id: str) -> bool:
        entry = self._signatures.pop(token, None)
        return entry is not None and entry[0] == agent_id and time.monotonic() < entry[1]

    def agent_document(self) -> dict[str, Any]:
        """The agent configuration as ``GET /v1/convai/agents/{id}`` returns it."""
        cfg = self.config
        now = int(time.time())
        tools: list[dict[str, Any]] = []
        if cfg.tool_call is not None:
            tools.append(
                {
                    "type": "client",
                    "name": cfg.tool_call[0],
                    "description": "Tool the emulator calls after the first user turn",
                    "expects_response": True,
                }
            )
        return {
            "agent_id": cfg.agent_id,
            "name": f"hello-device emulator ({cfg.agent_id})",
            "conversation_config": {
                "asr": {
                    "quality": "high",
                    "provider": "elevenlabs",
                    "user_input_audio_format": cfg.input_format,
                    "keywords": [],
                },
                "turn": {"turn_timeout": cfg.turn_timeout_s, "mode": "turn"},
                "tts": {
                    "model_id": "eleven_flash_v2",
                    "voice_id": "emulator-parrot",
                    "agent_output_audio_format": cfg.output_format,
                },
                "conversation": {
                    "text_only": False,
                    "max_duration_seconds": (
                        math.ceil(cfg.max_duration_s)
                        if cfg.max_duration_s > 0
                        else _DEFAULT_MAX_DURATION_S
                    ),
                    "client_events": [
                        "audio",
                        "interruption",
                        "agent_response",
                        "user_transcript",
                        "agent_response_correction",
                        "client_tool_call",
                        "conversation_initiation_metadata",
                        "ping",
                    ],
                },
                "agent": {
                    "first_message": cfg.first_message or "",
                    "language": cfg.language,
                    "prompt": {
                        "prompt": "You are a parrot: repeat what the user says.",
                        "llm": "none",
                        "tools": tools,
                    },
                },
            },
            "metadata": {"created_at_unix_secs": now, "updated_at_unix_secs": now},
            "platform_settings": {
                "auth": {"enable_auth": cfg.private, "allowlist": [], "shareable_token": None}
            },
            "tags": ["emulator"],
        }
