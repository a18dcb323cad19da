"""Signals to the real ``hello-device run`` process: a SIGHUP storm, and a SIGTERM that
must end the process however stuck it is."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hello_device.emulator import EmulatorConfig
from hello_device.testing.notify import NotifySocket
from tests.conftest import UNIT
from tests.daemon.test_service import KEY, EmulatorThread, start_daemon, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock", time_scale=UNIT)
    yield s
    s.close()


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll another process's visible progress until ``condition`` holds (bounded)."""
    deadline = time.monotonic() + timeout * UNIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _blocked_on_fifo(pid: int) -> bool:
    """The process's main thread sleeps in the kernel opening a FIFO (no reader yet)."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "fifo" in wchan or "wait_for_partner" in wchan


def test_sighup_storm_coalesces(notify: NotifySocket, tmp_path: Path) -> None:
    """Item 8: 20 SIGHUPs in 2 s made 20 REST requests. Now one reload is in flight and
    one pending at most: the boot fetch, one at the first SIGHUP, one after the spacing."""
    emulator = EmulatorThread(EmulatorConfig(api_key=KEY))
    emu = emulator.emu
    try:
        config = tmp_path / "config.toml"
        write_config(config, emu, tmp_path, "Lobby")
        config.write_text(config.read_text().replace('start = "auto"', 'start = "button"'))
        proc = start_daemon(config, notify)
        try:
            notify.receive_until(lambda m: m.startswith("READY=1"), 20)
            assert len(emu.rest_requests) == 1
            for _ in range(20):
                proc.send_signal(signal.SIGHUP)
                time.sleep(0.1)  # the storm's own pace, not a synchronisation
            # The pending refresh comes after the spacing (5 s); then nothing more.
            wait_until(lambda: len(emu.rest_requests) >= 3, 15)
            time.sleep(2 * UNIT)  # an observation window: no fourth request follows
            requests = len(emu.rest_requests)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10 * UNIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        emulator.close()
    assert requests == 3, requests
    assert proc.returncode == 0
    assert err.count("reload requested") <= 20 and "Traceback" not in err


def test_sigterm_ends_a_stuck_process_within_the_deadline(
    notify: NotifySocket, tmp_path: Path
) -> None:
    """Item 7, the general rule: whatever a thread (here the event loop itself, stuck
    opening an output FIFO that nobody reads) is doing, SIGTERM ends the process; if the
    clean stop cannot finish, it exits at the hard deadline with status 1 and says so."""
    emulator = EmulatorThread(EmulatorConfig(api_key=KEY))
    try:
        config = tmp_path / "config.toml"
        write_config(config, emulator.emu, tmp_path, "Lobby")
        os.mkfifo(tmp_path / "out.wav")  # opening it for writing blocks: no reader
        proc = start_daemon(config, notify)
        try:
            # The daemon fetched its configuration, then blocked in the backend's open().
            wait_until(lambda: _blocked_on_fifo(proc.pid), 20)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10 * UNIT)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        emulator.close()
    assert proc.returncode == 1
    assert "did not stop within 1.8 s of SIGTERM; exiting now" in err
    assert took < 10 * UNIT  # the figure itself (≤ 2 s) is measured in bench/bench_faults.py
