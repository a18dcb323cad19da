"""A real Mosquitto broker (Debian's ``mosquitto``) on a free loopback port, with a
password file: started, stopped and restarted by the tests."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import UNIT, needs_tool

USER, PASSWORD = "kiosk", "broker-password-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, folder: Path) -> None:
        self.binary = needs_tool("mosquitto", "mosquitto")
        passwd = needs_tool("mosquitto_passwd", "mosquitto")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.passwords = folder / "passwords"
        subprocess.run(
            [passwd, "-b", "-c", str(self.passwords), USER, PASSWORD], check=True, timeout=30
        )
        self.passwords.chmod(0o600)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.passwords}\n"
            "persistence false\n"
            f"user {getpass.getuser()}\n"  # as root it would switch to 'mosquitto'
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "mosquitto.log").open("ab"),
        )
        deadline = time.monotonic() + 10 * UNIT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def password_file(self, folder: Path, password: str = PASSWORD) -> Path:
        path = folder / "mqtt-password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        return path
