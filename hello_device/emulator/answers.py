"""The plumbing the REST endpoints share: a request and an answer independent of the HTTP
server, the platform's error bodies, query parameters and pagination."""

from __future__ import annotations

import http
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Call:
    """One REST request."""

    method: str
    path: str
    """Path without the query string."""
    target: str
    """Path with its query string, as sent."""
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    """Case-insensitive (aiohttp's)."""
    body: bytes = b""
    host: str | None = None

    def json(self) -> Any:
        """The body decoded, None when empty; raises :class:`_Invalid` when not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Invalid(
                [_error(["body"], f"JSON decode error: {exc}", "json_invalid")]
            ) from None

    def json_or_none(self) -> Any:
        """The body decoded, or None (empty or not JSON); what :class:`RestRecord` keeps."""
        try:
            return self.json()
        except _Invalid:
            return None


@dataclass
class _Answer:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    body: bytes | None = None

    def encoded(self) -> bytes:
        return self.body if self.body is not None else json.dumps(self.payload).encode()


class _Invalid(Exception):
    """A request that fails validation: answered 422 with these FastAPI-style errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid")
        self.errors = errors


def _error(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _json(status: int, payload: Any, extra: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, payload, dict(extra or {}))


def _unprocessable(errors: list[dict[str, Any]]) -> _Answer:
    return _json(422, {"detail": errors})


def _not_found(kind: str, ident: str) -> _Answer:
    """``{"detail": {"status": "<kind>_not_found", "message": "<Kind> with id … not found"}}``."""
    return _json(
        404,
        {
            "detail": {
                "status": f"{kind}_not_found",
                "message": f"{kind.capitalize()} with id {ident} not found",
            }
        },
    )


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


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _int_param(
    query: dict[str, list[str]], name: str, default: int, low: int, high: int | None
) -> int:
    """An integer query parameter within bounds; :class:`_Invalid` (loc query.name) if not."""
    raw = _first(query, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid(
            [_error(["query", name], "Input should be a valid integer", "int_parsing")]
        ) from None
    if value < low:
        msg = f"Input should be greater than or equal to {low}"
        raise _Invalid([_error(["query", name], msg, "greater_than_equal")])
    if high is not None and value > high:
        msg = f"Input should be less than or equal to {high}"
        raise _Invalid([_error(["query", name], msg, "less_than_equal")])
    return value


def _cursor_page(
    items: Sequence[T], key: str, query: dict[str, list[str]], ident: str
) -> tuple[list[T], str | None]:
    """A page of ``items`` after the cursor (the id of the first item of the page; items are
    mappings with ``key`` as their id), and the next cursor (None on the last page)."""
    size = _int_param(query, "page_size", 30, 1, 100)
    cursor = _first(query, "cursor")
    start = 0
    if cursor:
        ids = [_get(item, key) for item in items]
        if cursor not in ids:
            raise _Invalid([_error(["query", "cursor"], f"Unknown {ident} cursor {cursor!r}")])
        start = ids.index(cursor)
    page = list(items[start : start + size])
    rest = items[start + size :]
    return page, (_get(rest[0], key) if rest else None)


def _numbered_page(
    items: Sequence[T], query: dict[str, list[str]]
) -> tuple[list[T], dict[str, Any]]:
    """The ``page``/``page_size`` variant: a page (1-based) and its ``pagination`` object."""
    size = _int_param(query, "page_size", 30, 1, 100)
    page = _int_param(query, "page", 1, 1, None)
    total_pages = max(1, -(-len(items) // size))
    chunk = list(items[(page - 1) * size : page * size])
    pagination = {
        "page": page,
        "page_size": size,
        "total_pages": total_pages,
        "has_more": page < total_pages,
    }
    return chunk, pagination


def _get(item: Any, key: str) -> str:
    return str(item[key])
