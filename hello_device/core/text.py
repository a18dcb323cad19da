"""Text from peers and secrets, made safe for one log line (pure: no I/O).

:func:`peer` is the one door through which anything a peer chose (the platform's
transcripts and errors, a header, a tool name) reaches a log line; :func:`redact` is the
one place secrets are scrubbed from a text; :func:`one_line` squeezes a diagnostic into
one short line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PEER_TEXT_CHARS = 300
"""Longest excerpt of a peer's text (transcript, error message, tool name) in a log line."""

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides
# that can fake a line break or reorder what a reader sees; and lone surrogates, which a
# peer's JSON can carry ("\udc80") but UTF-8 cannot: journald would drop the record.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(_escape_char, text)


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, then ``…(N more)``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text) - limit} more)"


def peer(value: object, limit: int = PEER_TEXT_CHARS) -> str:
    """Text a peer sent, safe for one log line: control characters escaped, shortened.

    Everything the platform (or any other peer) chooses goes through this before it is
    logged: transcripts, agent responses, error messages, tool names, close reasons. A
    server can then neither flood the journal nor forge a line. The result holds at most
    ``limit`` characters of (escaped) text, then ``…(N more)`` counting what was left
    out; only the first ``limit`` characters are examined, so a megabyte costs no more
    than a line.
    """
    text = value if isinstance(value, str) else str(value)
    shown = escape_controls(text[:limit])
    kept = min(len(text), limit)
    if len(shown) > limit:  # escapes made it longer: keep whole escapes only
        pieces = [escape_controls(c) for c in text[:limit]]
        shown, kept = "", 0
        for piece in pieces:
            if len(shown) + len(piece) > limit:
                break
            shown += piece
            kept += 1
    if kept < len(text):
        return f"{shown}…({len(text) - kept} more)"
    return shown


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def one_line(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters: whitespace (line breaks included) runs
    collapsed to one space, control characters escaped, an ellipsis where it was cut."""
    text = escape_controls(" ".join(text.split()))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
