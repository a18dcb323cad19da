"""Log redaction: the emulator's debug log of requests prints request lines and headers
(logger ``hello_device.emulator.ws``, at DEBUG; WARNING by default)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_SIGNATURE_RE = re.compile(r"(conversation_signature=)[^&\s\"']+")
_HEADER_RE = re.compile(r"(?i)((?:xi-api-key|authorization)\s*:\s*(?:bearer\s+)?)\S+")


class _RedactFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SIGNATURE_RE.sub(r"\1***", _HEADER_RE.sub(r"\1***", message))
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_WS_LOG = logging.getLogger("hello_device.emulator.ws")
_WS_LOG.setLevel(logging.WARNING)  # every request line and header at DEBUG; lower it to see them
_WS_REDACT = _RedactFilter()
_WS_LOG.addFilter(_WS_REDACT)


def _mask_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers:
        lower = key.lower()
        if lower == "xi-api-key":
            out[lower] = "***"
        elif lower == "authorization":
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[lower] = f"{scheme} ***".strip()
        else:
            out[lower] = value
    return out


def _log_request(
    method: str, target: str, version: str, headers: Iterable[tuple[str, str]]
) -> None:
    """The request line and headers at DEBUG, through the redacting filter."""
    if not _WS_LOG.isEnabledFor(logging.DEBUG):
        return
    _WS_LOG.debug("< %s %s HTTP/%s", method, target, version)
    for key, value in headers:
        _WS_LOG.debug("< %s: %s", key, value)
