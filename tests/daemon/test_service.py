"""systemd integration: a real unix datagram socket as NOTIFY_SOCKET, real signals to a
real ``hello-device run`` process, the real emulator; journald itself cannot run here
(no systemd as PID 1), so journal records go to a recording sender instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hello_device.audio.backends.file import FileBackend
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.logs import setup_logging
from hello_device.systemd import Notifier
from hello_device.testing.notify import NotifySocket
from tests.conftest import UNIT
from tests.e2e import make_settings, silence_wav
from tests.soundserver import SoundServer, sound_server  # noqa: F401

KEY = "sk_service_test_key_0123456789"


class LogEvent(logging.Handler):
    """Lets a test await the next log record of a logger that contains some text."""

    def __init__(self, logger: str, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.logger = logging.getLogger(logger)
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        self.event: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage() and self.event is not None:
            self.event.set()

    async def wait_for_next(self) -> None:
        self.event = asyncio.Event()
        await asyncio.wait_for(self.event.wait(), 5 * UNIT)

    def close(self) -> None:
        self.logger.removeHandler(self)
        super().close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock", time_scale=UNIT)
    yield s
    s.close()


def test_notifier_sends_to_the_socket_and_is_silent_without_one(notify: NotifySocket) -> None:
    n = Notifier(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "4000000"})
    n.ready("idle")
    n.status("listening")
    n.status("listening")  # unchanged: not sent twice
    n.watchdog()
    notify.receive_until(lambda m: m == "WATCHDOG=1")
    assert notify.messages == ["READY=1\nSTATUS=idle", "STATUS=listening", "WATCHDOG=1"]
    assert n.watchdog_interval() == 2.0
    quiet = Notifier(env={})
    assert not quiet.enabled and quiet.notify("READY=1") is False
    assert quiet.watchdog_interval() is None
    other_pid = Notifier(env={"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval() is None


class StallingBackend(FileBackend):
    """The real file backend whose microphone stops delivering on request, like a stuck
    sound card (a real stall cannot be provoked on a file)."""

    stalled = False

    async def run(self, on_frame: Any, on_status: Any = None) -> None:
        def maybe(frame: Any) -> None:
            if not self.stalled:
                on_frame(frame)
            else:
                self.frames_captured -= 1  # the callback never came

        await super().run(maybe, on_status)


def test_ready_status_and_watchdog_follow_the_audio_loop(
    notify: NotifySocket, tmp_path: Path
) -> None:
    env = {
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "100000",  # WatchdogSec=0.1 s: a ping every 50 ms
        "WATCHDOG_PID": str(os.getpid()),
    }

    async def scenario() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            settings = make_settings(tmp_path, emu, silence_wav(tmp_path / "s.wav", 30.0))
            daemon = Daemon(settings, notifier=Notifier(env=env), audio_ready_grace_s=0.5)
            backend = StallingBackend(settings.audio, daemon.player)
            daemon.backend = backend
            run = asyncio.create_task(daemon.run())
            await asyncio.wait_for(daemon.ready.wait(), 10 * UNIT)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, notify.receive_until, lambda m: "conversation conv_" in m
            )
            await loop.run_in_executor(None, notify.receive_until, lambda m: m == "WATCHDOG=1")
            # The microphone stalls: the daemon notices at its next watchdog check and
            # stops pinging (systemd would restart it). Between two such checks no
            # WATCHDOG=1 may arrive.
            backend.stalled = True
            await stall_noticed.wait_for_next()
            notify.drain()
            await stall_noticed.wait_for_next()
            await stall_noticed.wait_for_next()
            assert "WATCHDOG=1" not in notify.drain()
            backend.stalled = False  # it recovers: the pings resume
            await loop.run_in_executor(None, notify.receive_until, lambda m: m == "WATCHDOG=1")
            daemon.stop()
            assert await asyncio.wait_for(run, 10 * UNIT) == 0

    stall_noticed = LogEvent("hello_device.daemon", "not feeding the watchdog")
    try:
        asyncio.run(scenario())
    finally:
        stall_noticed.close()


def test_ready_comes_only_after_audio_and_configuration(
    notify: NotifySocket, tmp_path: Path
) -> None:
    events: list[str] = []

    async def scenario() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            settings = make_settings(tmp_path, emu, silence_wav(tmp_path / "s.wav", 1.0))
            notifier = Notifier(env={"NOTIFY_SOCKET": notify.path})
            original = notifier.notify

            def spy(message: str) -> bool:
                events.append(f"{message.splitlines()[0]} frames={daemon.backend.ready.is_set()}")
                events.append(f"profile={daemon.profile is not None}")
                return original(message)

            notifier.notify = spy  # type: ignore[method-assign]
            daemon = Daemon(settings, notifier=notifier)
            assert await asyncio.wait_for(daemon.run(), 20 * UNIT) == 0

    asyncio.run(scenario())
    first = events.index(next(e for e in events if e.startswith("READY=1")))
    assert events[first] == "READY=1 frames=True" and events[first + 1] == "profile=True"
    assert not any(e.startswith("STATUS=") for e in events[:first])
    assert any(e.startswith("STOPPING=1") for e in events)


def test_journal_records_carry_structured_fields(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []

    def sender(MESSAGE: str, **fields: Any) -> None:  # journal.send's parameter name
        sent.append({"MESSAGE": MESSAGE, **fields})

    assert setup_logging("INFO", "journal", journal_sender=sender) == "journal"
    try:

        async def scenario() -> None:
            async with Emulator(EmulatorConfig()) as emu:
                settings = make_settings(tmp_path, emu, silence_wav(tmp_path / "s.wav", 1.0))
                assert await asyncio.wait_for(Daemon(settings).run(), 20 * UNIT) == 0

        asyncio.run(scenario())
    finally:
        setup_logging("WARNING", "stderr")
    started = [r for r in sent if "started (mic" in r["MESSAGE"]]
    assert started and started[0]["CONVERSATION_ID"].startswith("conv_")
    assert all(r.get("DEVICE_ID") == "test-device" for r in sent)
    assert {r.get("DEVICE_STATE") for r in sent} >= {"idle", "listening"}


# ----------------------------------------------------- the real process, real signals


class EmulatorThread:
    """The emulator on its own event loop in a thread, so a daemon process can use it."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.emu = Emulator(config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.emu.start())

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout * UNIT)

    def close(self) -> None:
        self.call(self.emu.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    e = EmulatorThread(EmulatorConfig(api_key=KEY))
    yield e
    e.close()


def write_config(path: Path, emu: Emulator, tmp_path: Path, name: str) -> None:
    silence_wav(tmp_path / "mic.wav", 120.0)
    path.write_text(
        f"""
[device]
id = "unit-1"
name = "{name}"
[platform]
agent_id = "demo-agent"
api_base_url = "{emu.http_url}"
api_key_file = "key"
[conversation]
start = "auto"
restart_delay_s = 0.1
[audio]
backend = "file"
input_file = "mic.wav"
output_file = "out.wav"
[earcons]
enabled = false
[state]
dir = "{tmp_path / "state"}"
"""
    )


def start_daemon(config: Path, notify: NotifySocket) -> subprocess.Popen[str]:
    (config.parent / "key").write_text(KEY)
    (config.parent / "key").chmod(0o600)
    env = {**os.environ, "NOTIFY_SOCKET": notify.path}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hello_device",
            "--log-level",
            "DEBUG",
            "run",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_sigterm_closes_the_conversation_cleanly_and_exits_0(
    emulator: EmulatorThread, notify: NotifySocket, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    write_config(config, emulator.emu, tmp_path, "Lobby")
    proc = start_daemon(config, notify)
    try:
        notify.receive_until(lambda m: m.startswith("READY=1"), 20)
        notify.receive_until(lambda m: "listening — conversation conv_" in m, 20)
        record = emulator.call(emulator.emu.wait_conversation(1))
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10 * UNIT)
        stopped_after = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert record.close_code == 1000
    notify.receive_until(lambda m: m == "STOPPING=1", 5)
    assert KEY not in out + err  # even at DEBUG
    print(f"stopped {stopped_after * 1000:.0f} ms after SIGTERM")


def test_sighup_reloads_at_the_next_boundary_and_keeps_a_good_config(
    emulator: EmulatorThread, notify: NotifySocket, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    write_config(config, emulator.emu, tmp_path, "Lobby")
    proc = start_daemon(config, notify)
    try:
        notify.receive_until(lambda m: m.startswith("READY=1"), 20)
        first = emulator.call(emulator.emu.wait_conversation(1))
        emulator.call(asyncio.wait_for(first.initiated.wait(), 10))
        write_config(config, emulator.emu, tmp_path, "Front desk")
        proc.send_signal(signal.SIGHUP)
        # Not in the middle of a conversation: applied when this one ends.
        emulator.call(emulator.emu.end_conversation(1000))
        second = emulator.call(emulator.emu.wait_conversation(2))
        emulator.call(asyncio.wait_for(second.initiated.wait(), 10))
        config.write_text("[platform\nagent_id = 'broken")  # a technician's typo
        proc.send_signal(signal.SIGHUP)
        emulator.call(emulator.emu.end_conversation(1000))
        third = emulator.call(emulator.emu.wait_conversation(3))
        emulator.call(asyncio.wait_for(third.initiated.wait(), 10))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10 * UNIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            print(proc.communicate()[1][-3000:])
    assert proc.returncode == 0
    assert first.init is not None and second.init is not None and third.init is not None
    assert first.init["dynamic_variables"]["device_name"] == "Lobby"
    assert second.init["dynamic_variables"]["device_name"] == "Front desk"
    assert third.init["dynamic_variables"]["device_name"] == "Front desk"  # kept
    assert "reload refused, keeping the running configuration" in err
    assert "invalid TOML" in err
    assert KEY not in err


def test_sigterm_is_not_held_up_by_a_platform_that_never_answers(
    notify: NotifySocket, tmp_path: Path
) -> None:
    """A black-hole platform (accepts, never answers) with a 30 s read timeout: the
    daemon still becomes ready (no cache: offline) and exits at once on SIGTERM."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    config = tmp_path / "config.toml"
    silence_wav(tmp_path / "mic.wav", 60.0)
    config.write_text(
        f"""
[platform]
agent_id = "demo-agent"
api_base_url = "http://127.0.0.1:{hole.getsockname()[1]}"
read_timeout_s = 30.0
[conversation]
start = "button"
[audio]
backend = "file"
input_file = "mic.wav"
output_file = "out.wav"
[state]
dir = "{tmp_path / "state"}"
"""
    )
    env = {**os.environ, "NOTIFY_SOCKET": notify.path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hello_device", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # With no cache, boot waits for the platform: connect_timeout_s (5 s) at most...
        notify.receive_until(lambda m: m.startswith("READY=1"), 40)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5 * UNIT)  # ...but a stop never waits for it
    finally:
        hole.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]


@pytest.mark.sound
def test_missing_microphone_reports_ready_with_the_error_and_stays_alive(
    sound_server: SoundServer,  # noqa: F811
    notify: NotifySocket,
    tmp_path: Path,
) -> None:
    """No such microphone: the backend keeps retrying; after the grace period the daemon
    reports READY=1 with the problem in STATUS and feeds the watchdog, so systemd does not
    restart it in a loop (and give up) while someone fetches the USB microphone."""
    env = {
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "400000",
        "WATCHDOG_PID": str(os.getpid()),
    }

    async def scenario() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            settings = make_settings(
                tmp_path,
                emu,
                silence_wav(tmp_path / "s.wav", 1.0),
                audio={"backend": "pyaudio", "input_device": "no-such-microphone"},
                conversation={"start": "button"},
            )
            daemon = Daemon(settings, notifier=Notifier(env=env), audio_ready_grace_s=0.5)
            run = asyncio.create_task(daemon.run())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, notify.receive_until, lambda m: m.startswith("READY=1"), 20
            )
            await loop.run_in_executor(None, notify.receive_until, lambda m: m == "WATCHDOG=1")
            await loop.run_in_executor(None, notify.receive_until, lambda m: m == "WATCHDOG=1")
            daemon.stop()
            assert await asyncio.wait_for(run, 10 * UNIT) == 0

    asyncio.run(scenario())
    ready = next(m for m in notify.messages if m.startswith("READY=1"))
    assert "error" in ready and "no-such-microphone" in ready, ready
