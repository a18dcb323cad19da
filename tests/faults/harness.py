"""The fault suite's harness: a real daemon against a real, misbehaving platform.

Each case runs the real :class:`~hello_device.daemon.Daemon` (file audio backend: the only
part replaced, because there is no sound card here) against the bundled emulator on a
real loopback WebSocket, with a fault injected; REST faults go through
:class:`~tests.faults.restproxy.RestFaultProxy`, a real TCP server in front of the
emulator. Cases run concurrently in one event loop, so a whole matrix costs the time of
its slowest case.

What every case checks (:func:`check_logs` and :class:`Case`):

* no traceback and no record above WARNING that the case did not expect, in everything
  the daemon logged (records are formatted as the real handler does, exceptions
  included), and every message a single bounded line that can be written as UTF-8;
* the API key and every signed-URL token the emulator handed out appear nowhere;
* the daemon is still running when the case ends (or ended with the documented code);
* it recovered: a conversation after the fault heard the user (the emulator found an
  utterance in it) and the device received the agent's answer;
* connections and REST requests per minute stay within what the backoff allows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.logs import MESSAGE_MAX_CHARS
from hello_device.settings import (
    Settings,
    parse_settings,
)
from tests.conftest import UNIT

KEY = "sk_fault_suite_key_0123456789abcdef"


class Capture(logging.Handler):
    """Every record of every logger, formatted as the real stderr handler formats it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@contextmanager
def capture_logs() -> Iterator[Capture]:
    root = logging.getLogger()
    handler = Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    noisy = logging.getLogger("websockets")
    old_noisy = noisy.level
    noisy.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        noisy.setLevel(old_noisy)


def check_logs(capture: Capture, secrets: list[str], allowed_errors: tuple[str, ...] = ()) -> None:
    """No traceback, no secret, one bounded line of UTF-8 per message, only expected
    errors."""
    for record, line in zip(capture.records, capture.lines, strict=True):
        message = record.getMessage()
        assert "Traceback" not in line, line[:2000]
        assert record.exc_info is None, message
        for secret in secrets:
            assert secret not in line, f"secret in log line: {line[:300]}"
        if record.name.startswith("hello_device") and not record.name.startswith(
            "hello_device.emulator"
        ):
            assert len(message) <= MESSAGE_MAX_CHARS, message[:300]
            assert "\n" not in message and "\r" not in message and "\x1b" not in message, message
            # journald takes UTF-8: a lone surrogate (a JSON "\udc80" escape) loses the record
            assert is_utf8(message), ascii(message[:300])
        if record.levelno >= logging.ERROR and record.name.startswith("hello_device"):
            if record.name.startswith("hello_device.emulator"):
                continue  # the misbehaving platform's own complaints
            assert any(a in message for a in allowed_errors), f"unexpected error: {message}"


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def speech_loop(path: Path, source: Path, times: int = 3) -> Path:
    """``source`` repeated: a user who keeps talking, utterance after utterance."""
    with wave.open(str(source), "rb") as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        for _ in range(times):
            w.writeframes(frames)
    return path


def settings_for(
    tmp_path: Path, rest_url: str, ws_url: str | None, input_wav: Path, **sections: Any
) -> Settings:
    data: dict[str, Any] = {
        "device": {"id": "fault-device", "name": "Fault kiosk"},
        "platform": {
            "agent_id": "demo-agent",
            "api_base_url": rest_url,
            "api_key": KEY,
            "keepalive_interval_s": 1.0,
            "keepalive_timeout_s": 1.0,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 2.0,
            "reconnect_max_backoff_s": 4.0,
        },
        "conversation": {"start": "auto", "connect_timeout_s": 3.0, "restart_delay_s": 0.5},
        "audio": {
            "backend": "file",
            "input_file": str(input_wav),
            "output_file": str(tmp_path / "out.wav"),
        },
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp_path / "state")},
        "local_api": {"enabled": False},  # many daemons at once: no port to share
    }
    if ws_url:
        data["platform"]["ws_url"] = ws_url
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, str(tmp_path / "config.toml"), env={})


@dataclasses.dataclass
class Case:
    """One daemon, one emulator, one fault; :meth:`run` returns when it recovered."""

    name: str
    tmp_path: Path
    input_wav: Path
    config: EmulatorConfig
    sections: dict[str, Any] = dataclasses.field(default_factory=dict)
    via_proxy: bool = False
    setup: Callable[[Case], None] | None = None
    recovered_after: int = 2
    """Recovery means a conversation numbered at least this heard the user and answered."""
    limit_s: float = 30.0
    daemon: Daemon | None = None
    emulator: Emulator | None = None
    proxy: Any = None
    started: float = 0.0
    recovered_at: float | None = None
    code: int | None = None

    async def run(self, during: Callable[[Case], Awaitable[None]] | None = None) -> Case:
        from .restproxy import RestFaultProxy

        self.tmp_path.mkdir(parents=True, exist_ok=True)
        async with Emulator(self.config) as emu:
            self.emulator = emu
            rest_url, ws_url = emu.http_url, None
            if self.via_proxy:
                self.proxy = RestFaultProxy(emu.port)
                await self.proxy.__aenter__()
                rest_url = self.proxy.url
                ws_url = emu.ws_url.split("?")[0]
            try:
                settings = settings_for(
                    self.tmp_path, rest_url, ws_url, self.input_wav, **self.sections
                )
                if self.setup is not None:
                    self.setup(self)
                self.daemon = Daemon(settings, clock=asyncio.get_running_loop().time)
                self.started = time.monotonic()
                task = asyncio.create_task(self.daemon.run())
                try:
                    waits: list[Awaitable[None]] = [self._until_recovered()]
                    if during is not None:
                        waits.append(during(self))
                    await asyncio.wait_for(asyncio.gather(*waits), self.limit_s * UNIT)
                    assert not task.done(), f"{self.name}: the daemon ended early"
                finally:
                    self.daemon.stop()
                    self.code = await asyncio.wait_for(task, 10 * UNIT)
            finally:
                if self.proxy is not None:
                    await self.proxy.__aexit__(None, None, None)
        return self

    async def _until_recovered(self) -> None:
        assert self.daemon is not None
        await until(self.daemon, self.recovered)
        self.recovered_at = time.monotonic()

    def recovered(self) -> bool:
        """A conversation numbered ``recovered_after`` or later heard an utterance, and the
        device queued agent audio in a session after the fault."""
        emu, daemon = self.emulator, self.daemon
        assert emu is not None and daemon is not None
        later = emu.conversations[self.recovered_after - 1 :]
        heard = any(c.utterances and c.agent_audio_sent_s > 0 for c in later)
        answered = any(
            s.stats.audio_events > 0
            for s in daemon.sessions
            if s.conversation_id in {c.conversation_id for c in later}
        )
        return heard and answered

    def connections_per_minute(self) -> float:
        assert self.emulator is not None and self.recovered_at is not None
        minutes = max((self.recovered_at - self.started) / 60.0, 1 / 60)
        return len(self.emulator.conversations) / minutes


async def until(daemon: Daemon, predicate: Callable[[], bool]) -> None:
    """Until ``predicate()`` holds, checked at each of the daemon's state changes and
    after each conversation attempt; the caller bounds the wait."""
    changed = asyncio.Event()

    def listener(*_: object) -> None:
        changed.set()

    daemon.state.add_listener(listener)
    daemon.listeners.append(listener)
    try:
        while not predicate():
            changed.clear()
            await changed.wait()
    finally:
        daemon.state.remove_listener(listener)
        daemon.listeners.remove(listener)


def rms_dbfs(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(x**2) + 1e-9) / 32768.0))


async def run_all(
    cases: list[Case], during: Callable[[Case], Awaitable[None]] | None = None
) -> list[Case]:
    """Run every case concurrently; report all failures at once, by case name."""
    results = await asyncio.gather(*(c.run(during) for c in cases), return_exceptions=True)
    failures = [
        f"{c.name}: {type(r).__name__}: {r}"
        for c, r in zip(cases, results, strict=True)
        if isinstance(r, BaseException)
    ]
    assert not failures, "\n".join(failures)
    return cases
