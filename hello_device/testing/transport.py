"""A scripted HTTP transport for the platform client: answers and failures, in order."""

from __future__ import annotations

import json
from typing import Any

from hello_device.platform.http import HttpResponse

__all__ = ["ScriptedTransport", "json_response"]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    """An answer with a JSON body (and ``Content-Type: application/json``)."""
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    return HttpResponse(status, all_headers, json.dumps(body).encode())


class ScriptedTransport:
    """Plays a script of answers (:class:`HttpResponse`) and failures (exceptions), in
    order; once the script is spent, every request is refused. Hand it to
    :class:`~hello_device.platform.client.PlatformClient` as its ``transport``; ``calls``
    records every request (method, URL, headers, timeouts)."""

    def __init__(self, *script: HttpResponse | BaseException) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str, dict[str, str], float, float]] = []
        self.bodies: list[bytes | None] = []
        """The body of every request so far (None: none), in the order of ``calls``."""

    def add(self, *items: HttpResponse | BaseException) -> None:
        """Append answers or failures to the script."""
        self.script.extend(items)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        self.calls.append((method, url, dict(headers), connect_timeout, read_timeout))
        self.bodies.append(body)
        if not self.script:
            raise ConnectionRefusedError(111, "Connection refused")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def json_bodies(self) -> list[Any]:
        """Every request's body decoded as JSON (None where there was none)."""
        return [json.loads(b) if b else None for b in self.bodies]

    @property
    def urls(self) -> list[str]:
        """The URL of every request so far."""
        return [c[1] for c in self.calls]
