"""Log handler setup: journald under systemd, else standard error; secrets redacted.

Only the CLI calls :func:`setup_logging`; every module just uses
``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import collections
import logging
import os
import sys

from hello_device.core.text import escape_controls, redact, shorten

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

MESSAGE_MAX_CHARS = 2000
"""Backstop: no log message is longer than this, whatever a call site passed."""


class RedactFilter(logging.Filter):
    """Replaces every known secret in a record's final message with ``***``.

    Applied on handlers, so it sees records from every logger. Secrets are added at run
    time (the API key once loaded; signed-URL tokens as they are fetched).
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._transient: collections.deque[str] = collections.deque(maxlen=8)

    def add(self, secret: str | None) -> None:
        """A long-lived secret (the API key): redacted for the life of the process."""
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def add_transient(self, secret: str | None) -> None:
        """A short-lived secret (a signed URL's token): only the last few are kept."""
        if secret and len(secret) >= 8 and secret not in self._transient:
            self._transient.append(secret)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced (for what leaves by other ways than
        the log: the local API's answers)."""
        if not self._secrets and not self._transient:
            return text
        return redact(text, [*self._secrets, *self._transient])

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets and not self._transient:
            return True
        secrets = [*self._secrets, *self._transient]
        message = record.getMessage()
        redacted = redact(message, secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


REDACTOR = RedactFilter()


class OneLineFilter(logging.Filter):
    """The backstop behind :func:`peer`: every message leaves as one bounded line.

    Control characters are escaped and the message is cut to :data:`MESSAGE_MAX_CHARS`.
    Tracebacks (``exc_info``) are formatted separately and keep their lines. Installed
    on the handler after :data:`REDACTOR`, so the redaction sees the original text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = shorten(escape_controls(message), MESSAGE_MAX_CHARS)
        if safe != message:
            record.msg, record.args = safe, None
        return True


ONE_LINE = OneLineFilter()


def under_systemd(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


LOG_CONTEXT: dict[str, str] = {}
"""Structured journald fields stamped on every record (``DEVICE_ID``, ``DEVICE_STATE``,
``CONVERSATION_ID``); the app keeps them current with :func:`set_log_context`."""


def set_log_context(**fields: str | None) -> None:
    """Set (or, with None, remove) structured journald fields for the records to come."""
    for key, value in fields.items():
        if value is None:
            LOG_CONTEXT.pop(key, None)
        else:
            LOG_CONTEXT[key] = value


class JournalFields(logging.Filter):
    """Stamps :data:`LOG_CONTEXT` on each record; systemd's JournalHandler sends record
    attributes as journal fields, so ``journalctl CONVERSATION_ID=conv_…`` finds them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in LOG_CONTEXT.items():
            setattr(record, key, value)
        return True


def setup_logging(
    level: str = "INFO",
    target: str = "auto",
    journal_sender: object | None = None,
) -> str:
    """Install one handler on the root logger; return which one ("journal"/"stderr").

    ``journal_sender`` replaces systemd's ``journal.send`` (tests, where no journald runs).
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler | None = None
    chosen = "stderr"
    if target == "journal" or (target == "auto" and under_systemd()):
        try:
            from systemd import journal  # type: ignore[attr-defined]

            kwargs = {"sender_function": journal_sender} if journal_sender else {}
            handler = journal.JournalHandler(SYSLOG_IDENTIFIER="hello-device", **kwargs)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            handler.addFilter(JournalFields())
            chosen = "journal"
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(REDACTOR)
    handler.addFilter(ONE_LINE)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("websockets", "asyncio"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if level.upper() == "DEBUG" and noisy != "websockets" else logging.WARNING
        )
    return chosen
