"""systemd integration: sd_notify (READY, STATUS, WATCHDOG, STOPPING) and watchdog timing.

Uses systemd-python's ``systemd.daemon.notify`` when it is installed; otherwise (macOS,
a venv without it) a few lines of stdlib send the same datagram, so the daemon behaves
the same everywhere. Everything is a no-op when ``NOTIFY_SOCKET`` is unset.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _stdlib_notify(message: str, env: Mapping[str, str]) -> bool:
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), address)
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False
    return True


def _systemd_notify() -> Callable[[str], bool] | None:
    try:
        from systemd import daemon  # type: ignore[attr-defined]
    except ImportError:
        return None

    def send(message: str) -> bool:
        return bool(daemon.notify(message))

    return send


class Notifier:
    """Talks to systemd's notify socket; silent when there is none."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ) if env is None else dict(env)
        self.enabled = bool(self.env.get("NOTIFY_SOCKET"))
        use_lib = env is None  # the library reads os.environ itself
        self._send = (_systemd_notify() if use_lib else None) or (
            lambda m: _stdlib_notify(m, self.env)
        )
        self._last_status = ""

    def notify(self, message: str) -> bool:
        if not self.enabled:
            return False
        return self._send(message)

    def ready(self, status: str | None = None) -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def reloading(self) -> None:
        self.notify("RELOADING=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None if unset."""
        usec = self.env.get("WATCHDOG_USEC")
        pid = self.env.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(0.05, int(usec) / 1e6 / 2)
        except ValueError:
            return None
