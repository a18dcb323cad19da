"""Log hygiene: a peer's text is one bounded line that every log target can write."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from hello_device.core.text import (
    escape_controls,
    peer,
)
from hello_device.logs import (
    MESSAGE_MAX_CHARS,
    ONE_LINE,
    setup_logging,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x85\x9b", "\\x85\\x9b"),
        ("line\u2028sep\u202eevil", "line\\u2028sep\\u202eevil"),
        ("\udc80\ud800x\udfff", "\\udc80\\ud800x\\udfff"),
        ("日本語 é 🎙️", "日本語 é 🎙️"),
    ],
    ids=["newlines", "ansi", "c1", "separators-bidi", "lone-surrogates", "printable-unicode"],
)
def test_escape_controls(text: str, shown: str) -> None:
    assert escape_controls(text) == shown
    assert peer(text) == shown
    shown.encode("utf-8")  # strict: what journald needs


def test_peer_escapes_a_lone_surrogate_within_its_limit() -> None:
    """Found by the fuzzer: a JSON string may carry "\\udc80", which UTF-8 cannot encode;
    peer() passed it through."""
    text = "\udc80" * 1000
    shown = peer(text, 30)
    assert shown.startswith("\\udc80" * 5) and shown.endswith("…(995 more)")
    shown.encode("utf-8")


def test_journal_gets_records_with_lone_surrogates(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """systemd.journal.send encodes MESSAGE as strict UTF-8: a lone surrogate raised
    inside the handler, the record was lost and "--- Logging error ---" went to stderr.
    The one-line backstop escapes it even where a call site forgot peer()."""
    sent: list[str] = []

    def sender(MESSAGE: str, **fields: Any) -> None:  # journal.send's parameter name
        MESSAGE.encode("utf-8")  # as sendv() does
        sent.append(MESSAGE)

    assert setup_logging("INFO", "journal", journal_sender=sender) == "journal"
    try:
        log = logging.getLogger("hello_device.test_logs")
        log.info("user: %s", peer("hi \udc80"))
        log.info("raw: %s", "\ud800" * (MESSAGE_MAX_CHARS + 10))
    finally:
        setup_logging("WARNING", "stderr")
    assert "Logging error" not in capsys.readouterr().err
    assert len(sent) == 2
    assert sent[0].endswith("user: hi \\udc80")
    assert "\\ud800" in sent[1] and "more)" in sent[1]


def test_one_line_filter_bounds_any_message() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ONE_LINE)
    logger = logging.getLogger("hello_device.test_one_line")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("from a careless call site: %s", "a\nb" + "y" * 10_000)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("\n") == 1 and "a\\nb" in text
    assert len(text) < MESSAGE_MAX_CHARS + 40 and "more)" in text
    assert escape_controls("tab\there") == "tab\\there"
