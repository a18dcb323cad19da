"""The PyAudio backend survives faults a real sound server cannot stage: devices
missing at start, streams dying, USB unplug and replug, stalls, streams that never start
(on the fake PortAudio host)."""

from __future__ import annotations

import itertools
import logging
import time

import pytest

from hello_device.testing.fake_pyaudio import (
    FakeDevice,
    FakeHost,
    FakeStream,
    pulse_like,
    usb_mic,
)
from tests.audio.support import asynctest, make_backend, running, wait_until


@asynctest
async def test_device_missing_at_start_retries_with_backoff_then_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hello_device")
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2)], default_in=-1, default_out=0)
    backend, _ = make_backend(host, input_device="usb")
    async with running(backend) as run:
        await wait_until(lambda: backend.open_attempts >= 5)
        assert not backend.ready.is_set()
        assert len(run.problems()) == 1  # reported once, not per attempt
        assert "no microphone (input device) matches 'usb'" in run.problems()[0]
        assert "'bcm2835 Headphones'" not in run.problems()[0]  # it lists input devices
        delays = list(backend.backoff_history)
        assert all(b >= a * 0.99 for a, b in itertools.pairwise(delays))
        assert delays[-1] > delays[0]
        assert max(delays) <= 0.5  # audio.reopen_max_backoff_s
        host.plug(usb_mic())
        await wait_until(lambda: len(run.frames) >= 3)
        assert run.statuses[-1] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "reopening" in warnings[0].getMessage()
    assert sum("works again" in r.getMessage() for r in caplog.records) == 1
    assert backend.faults == 1
    assert host.all_closed


@asynctest
async def test_stream_dying_mid_run_is_reopened(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hello_device")
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        host.live("input")[0].die()
        await wait_until(lambda: len(run.problems()) == 1)
        assert "stopped" in run.problems()[0]
        await wait_until(lambda: run.statuses[-1] is None and len(host.instances) == 2)
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)
    assert host.instances[0].terminated  # PortAudio restarted, so new devices are seen
    assert backend.faults == 1
    indices = [f.index for f in run.frames]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert host.all_closed


@asynctest
async def test_usb_unplug_and_replug() -> None:
    host = FakeHost([FakeDevice("spk", 0, 2), usb_mic()], default_in=1, default_out=0)
    backend, _ = make_backend(host, input_device="USB PnP")
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        host.unplug(usb_mic().name)
        await wait_until(lambda: backend.open_attempts >= 4)
        assert not host.live("input")
        assert len(run.problems()) == 2  # "stopped", then "no microphone matches"
        assert "matches 'USB PnP'" in run.problems()[-1]
        host.plug(usb_mic())
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)
        assert run.statuses[-1] is None
    assert backend.faults == 1


@asynctest
async def test_stalled_capture_is_a_fault() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        stalled_at = time.monotonic()
        host.live("input")[0].stall()
        await wait_until(lambda: len(run.problems()) == 1)
        detected = time.monotonic() - stalled_at
        assert "stalled (no audio callback for" in run.problems()[0]
        assert detected >= 0.3 * 0.9  # the stall timeout, not earlier
        await wait_until(lambda: run.statuses[-1] is None)
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)


@asynctest
async def test_stream_that_never_starts_is_a_fault() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    original = FakeStream.start_stream

    def start_stalled(self: FakeStream) -> None:
        original(self)
        if self.input and len(host.instances) == 1:
            self.stall()

    FakeStream.start_stream = start_stalled  # type: ignore[method-assign]
    try:
        async with running(backend) as run:
            await wait_until(lambda: len(run.problems()) == 1)
            assert "never started" in run.problems()[0]
            await wait_until(lambda: len(run.frames) >= 3)
    finally:
        FakeStream.start_stream = original  # type: ignore[method-assign]


@asynctest
async def test_run_never_raises_and_cleans_up(caplog: pytest.LogCaptureFixture) -> None:
    host = pulse_like()
    host.init_error = OSError(-9999, "Unanticipated host error")
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: backend.open_attempts >= 3)
        assert run.problems() == ["PortAudio failed to start: Unanticipated host error"]
        host.init_error = RuntimeError("a bug somewhere")
        await wait_until(lambda: len(run.problems()) == 2)
        host.init_error = None
        host.open_error = TypeError("an unexpected bug")
        attempts = backend.open_attempts
        await wait_until(lambda: backend.open_attempts >= attempts + 3)
        assert "unexpected error while opening the sound card" in run.problems()[-1]
        host.open_error = None
        await wait_until(lambda: len(run.frames) >= 2)
    assert host.all_closed and host.instances and backend.streams is None
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # once, not once per retry
