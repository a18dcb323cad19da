"""A real HTTP proxy for tests: Debian's ``tinyproxy``, started in the foreground.

Each :class:`TinyProxy` runs its own ``tinyproxy -d -c CONF`` on a free loopback port
with its configuration and log in a directory of the test's; no system service is
involved. Its log (``LogLevel Connect``) has one ``Request`` line per request it read,
written before it contacts the target, so once a client has its answer the line is
there: :meth:`TinyProxy.requests` is what the proxy saw, and an empty list means the
client did not come this way.

Without tinyproxy installed the tests skip, except under ``CI=true`` where they fail:
CI installs it (``scripts/dev.sh``), so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import UNIT

_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")


def tinyproxy_executable() -> str:
    """Path of tinyproxy; skips the test without it (fails it under ``CI=true``)."""
    found = shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/sbin:/usr/bin")
    if found is None:
        reason = "tinyproxy is not installed (apt-get install tinyproxy)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it (scripts/dev.sh APT_PACKAGES)")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TinyProxy:
    """One tinyproxy process; ``extra`` lines go into its configuration file."""

    def __init__(self, executable: str, directory: Path, extra: Sequence[str] = ()) -> None:
        self.executable = executable
        self.directory = directory
        self.extra = list(extra)
        self.port = 0
        self.log = directory / "tinyproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}{self.address}"

    def start(self, ready_s: float = 10.0) -> None:
        """Start it and wait (bounded) until it accepts connections.

        The free port is found by binding port 0 and closing it, so another program
        may take it first: tinyproxy then exits and a new port is tried.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for _ in range(3):
            self.port = _free_port()
            conf = self.directory / "tinyproxy.conf"
            lines = [
                f"Port {self.port}",
                "Listen 127.0.0.1",
                "Timeout 30",
                f'LogFile "{self.log}"',
                "LogLevel Connect",
                "MaxClients 50",
                "Allow 127.0.0.1",
                # No ConnectPort line: CONNECT to every port (the tests' servers use
                # random ones) unless a test adds its own.
                *self.extra,
            ]
            conf.write_text("\n".join(lines) + "\n")
            with open(self.directory / "stdout.txt", "ab") as out:
                self._proc = subprocess.Popen(
                    [self.executable, "-d", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(ready_s * UNIT):
                return
            failures.append(self._output())
            self.stop()
        raise RuntimeError("tinyproxy did not start:\n" + "\n---\n".join(failures))

    def _wait_ready(self, limit_s: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False  # it exited: the port was taken, or a bad configuration
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return True
            except OSError:
                pass
            try:  # the pause between tries, and it notices an exit at once
                self._proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
        return False

    def _output(self) -> str:
        texts = []
        for path in (self.directory / "stdout.txt", self.log):
            if path.exists():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts)

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request it read, in order: ``("CONNECT", "h:p")``."""
        if not self.log.exists():
            return []
        return _REQUEST.findall(self.log.read_text(errors="replace"))

    def connects(self) -> list[str]:
        """The targets of its CONNECT requests."""
        return [target for method, target in self.requests() if method == "CONNECT"]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5 * UNIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5 * UNIT)
