"""What a failed answer means, in words a field technician understands: error bodies in
every shape compatible servers use, ``Retry-After``, HTML where JSON was expected, and
the signed URL wherever a server nests it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from hello_device.core import boundedjson
from hello_device.core.text import one_line
from hello_device.errors import PlatformError

log = logging.getLogger(__name__)

DETAIL_MAX_CHARS = 200
"""Error details quoted from a response body are cut to this length."""


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
        data: Any = boundedjson.loads(body) if body else None
    except ValueError:  # not JSON, not UTF-8, or nested too deep
        data = None
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, str):
            return one_line(detail)
        if isinstance(detail, dict):
            message = detail.get("message") or detail.get("msg") or detail.get("detail")
            status = detail.get("status") or detail.get("code")
            parts = [str(p) for p in (status, message) if isinstance(p, (str, int))]
            if parts:
                return one_line(": ".join(parts))
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
                return one_line("; ".join(msgs))
        error = data.get("error")
        if isinstance(error, dict):
            code, message, details = error.get("code"), error.get("message"), error.get("details")
            text = ": ".join(str(p) for p in (code, message) if isinstance(p, (str, int)))
            if isinstance(details, str) and details:
                text = f"{text} ({details})" if text else details
            elif isinstance(details, (dict, list)) and details:
                text = f"{text} ({json.dumps(details, ensure_ascii=False)})"
            if text:
                return one_line(text)
        if isinstance(error, str):
            message = data.get("message")
            return one_line(f"{error}: {message}" if isinstance(message, str) else error)
        message = data.get("message")
        if isinstance(message, str):
            return one_line(message)
        return ""
    if data is None and body and not _looks_like_html(body, media):
        try:
            return one_line(body[:1000].decode("utf-8", errors="replace"))
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


def json_object(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or one :class:`PlatformError` line saying what came
    instead (HTML, another media type, malformed or too deep JSON, not an object)."""
    media = _media_type(headers)
    if _looks_like_html(body, media):
        raise PlatformError(
            f"the platform answered with HTML instead of JSON (HTTP {status}) — "
            "is api_base_url right?"
        )
    try:
        data = boundedjson.loads(body)
    except boundedjson.JsonTooDeep as exc:
        raise PlatformError(f"the platform answered with {exc} (HTTP {status}); refused") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        if media and "json" not in media:
            raise PlatformError(
                f"the platform answered with {one_line(media, 60)} instead of JSON "
                f"(HTTP {status}) — is api_base_url right?"
            ) from None
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        hint = "" if "json" in media else " — is api_base_url right?"
        raise PlatformError(
            f"the platform answered with malformed JSON{where} (HTTP {status}, "
            f"{len(body)} bytes){hint}"
        ) from None
    if not isinstance(data, dict):
        raise PlatformError(
            f"the platform answered with a JSON {type(data).__name__} instead of an "
            f"object (HTTP {status})"
        )
    return data
