"""A systemd notification socket for tests: what ``sd_notify`` sends, as systemd reads it.

Bind it, hand its path to the daemon as ``NOTIFY_SOCKET``, then wait for ``READY=1``,
``STATUS=...`` or ``WATCHDOG=1``. It is read continuously, as systemd reads its own: an
unread socket fills up and blocks the sender.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotifySocket"]


class NotifySocket:
    """A bound ``AF_UNIX`` datagram socket with a reader thread; ``time_scale``
    multiplies every timeout (slow machines, CI)."""

    def __init__(self, path: Path, *, time_scale: float = 1.0) -> None:
        self.path = str(path)
        self.time_scale = time_scale
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        self._inbox: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="notify-reader")
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self._inbox.put(data.decode())

    def receive_until(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> list[str]:
        """Collect datagrams until ``predicate(message)`` holds for one (AssertionError
        after ``timeout`` seconds); return every message collected so far."""
        deadline = time.monotonic() + timeout * self.time_scale
        while True:
            try:
                message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching notification; got {self.messages}") from None
            self.messages.append(message)
            if predicate(message):
                return self.messages

    def drain(self) -> list[str]:
        """Everything received so far, without waiting; clears the list."""
        while True:
            try:
                self.messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        out, self.messages = self.messages, []
        return out

    def close(self) -> None:
        """Stop reading and close the socket."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(2)
