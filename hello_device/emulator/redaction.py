"""Log redaction: websockets' debug log prints request lines and headers."""

from __future__ import annotations

import logging
import re

from websockets.datastructures import Headers

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
_WS_LOG.setLevel(logging.WARNING)  # websockets logs every request at INFO; raise it to see them
_WS_REDACT = _RedactFilter()
_WS_LOG.addFilter(_WS_REDACT)


def _mask_headers(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.raw_items():
        lower = key.lower()
        if lower == "xi-api-key":
            out[lower] = "***"
        elif lower == "authorization":
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[lower] = f"{scheme} ***".strip()
        else:
            out[lower] = value
    return out
