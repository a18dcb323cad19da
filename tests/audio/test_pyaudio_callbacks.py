"""The PyAudio backend's callbacks only enqueue; conversion, timestamps and the
capture queue run on the event loop (on the fake PortAudio host)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

import numpy as np
import pytest

from hello_device.audio.backends.base import Frame
from hello_device.audio.backends.pyaudio import (
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_OUTPUT_UNDERFLOW,
)
from hello_device.audio.backends.pyaudio import backend as pyaudio_backend
from hello_device.audio.convert import CaptureConverter
from hello_device.testing.fake_pyaudio import (
    pulse_like,
    sine,
)
from tests.audio.support import asynctest, make_backend, running, wait_until


@asynctest
async def test_callbacks_only_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    feed_threads: set[int] = set()
    real_feed = CaptureConverter.feed

    def spy_feed(self: Any, raw: bytes) -> list[bytes]:
        feed_threads.add(threading.get_ident())
        return real_feed(self, raw)

    monkeypatch.setattr(CaptureConverter, "feed", spy_feed)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 10)
        stream_threads = host.live("input")[0].thread_ids
    loop_thread = threading.get_ident()
    assert feed_threads == {loop_thread} and run.frame_threads == {loop_thread}
    assert loop_thread not in stream_threads

    # Called directly: the callback only queues; nothing converts until the loop runs.
    class NoNumpy:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"numpy.{name} used in the capture callback")

    feed_threads.clear()
    backend2, _ = make_backend(host)
    backend2._loop = asyncio.get_running_loop()
    backend2._converter = CaptureConverter(16000, 1, "mix", 20)
    monkeypatch.setattr(pyaudio_backend, "np", NoNumpy())
    chunk = sine(440, 16000, 0, 320).tobytes()
    assert backend2._on_input(chunk, 320, {}, 0) == (None, PA_CONTINUE)
    assert backend2._on_input(chunk, 320, {}, PA_INPUT_OVERFLOW) == (None, PA_CONTINUE)
    assert backend2._callback_error is None
    assert len(backend2._chunks) == 2 and not feed_threads and backend2.frames_captured == 0
    assert backend2.overflows == 1
    await asyncio.sleep(0)  # one loop iteration runs the (single) scheduled drain
    assert backend2.frames_captured == 2 and feed_threads == {loop_thread}


@asynctest
async def test_capture_queue_drops_oldest_when_the_loop_falls_behind() -> None:
    backend, _ = make_backend(pulse_like())
    backend._queue_max = 10
    backend._chunks = collections.deque(maxlen=10)
    backend._loop = asyncio.get_running_loop()
    backend._converter = CaptureConverter(16000, 1, "mix", 20)
    got: list[Frame] = []
    backend._on_frame = got.append
    for i in range(40):  # the loop does not run in between: it has fallen behind
        backend._on_input(np.full(320, i, dtype=np.int16).tobytes(), 320, {}, 0)
    await asyncio.sleep(0)
    assert backend.frames_dropped == 30
    assert [f.index for f in got] == list(range(30, 40))  # the newest survive
    assert [int(np.frombuffer(f.pcm, np.int16)[0]) for f in got] == list(range(30, 40))
    assert backend.frames_captured == 10


@asynctest
async def test_underflow_flags_are_counted() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 2)
        host.live("output")[0].status_flags.extend([PA_OUTPUT_UNDERFLOW] * 3)
        await wait_until(lambda: backend.underflows == 3)
        assert backend.output_delay_s == pytest.approx(0.02, abs=1e-6)


@asynctest
async def test_frame_timestamps_follow_the_adc_clock() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 20)
        now = time.monotonic()
    stamps = np.array([f.captured_at for f in run.frames[:20]])
    steps = np.diff(stamps)
    assert np.all(steps > 0)
    assert abs(float(np.median(steps)) - 0.020) < 0.003
    assert stamps[-1] < now


@asynctest
async def test_on_frame_errors_do_not_stop_capture(caplog: pytest.LogCaptureFixture) -> None:
    backend, _ = make_backend(pulse_like())
    calls = 0

    def bad(frame: Frame) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("consumer bug")

    task = asyncio.create_task(backend.run(bad))
    try:
        await wait_until(lambda: calls >= 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sum("on_frame failed" in r.getMessage() for r in caplog.records) == 1
