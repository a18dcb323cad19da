"""Text from peers made safe for a log line: control characters escaped, shortened with
a count of what was left out."""

from __future__ import annotations

from hello_device.core.text import (
    peer,
)

# ------------------------------------------------------------------------- peer text


def test_peer_escapes_controls_and_counts_what_it_leaves_out() -> None:
    forged = "hi\n2026-01-01 ERROR forged\x1b[31m\r\u2028\u202e"
    out = peer(forged)
    assert "\n" not in out and "\x1b" not in out and "\u2028" not in out and "\u202e" not in out
    assert out == "hi\\n2026-01-01 ERROR forged\\x1b[31m\\r\\u2028\\u202e"
    big = peer("x" * 1_000_000)
    assert big == "x" * 300 + "…(999700 more)"
    # Escapes never push it past the limit, and are never cut in half.
    dense = peer("\x01" * 500, limit=10)
    assert dense.startswith("\\x01\\x01…") and dense.endswith("(498 more)")
    assert peer("short") == "short" and peer(42) == "42"
