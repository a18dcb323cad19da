"""Helpers for the audio backend tests: a bounded asyncio runner, a running backend
with what it delivered, and signal measurements."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.backends.base import Frame
from hello_device.audio.backends.pyaudio import (
    PyAudioBackend,
)
from hello_device.audio.player import Player
from hello_device.settings import AudioSettings
from hello_device.testing.fake_pyaudio import (
    FakeHost,
)
from tests.conftest import UNIT


def asynctest(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (bounded); fixtures pass through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 90 * UNIT))

    return wrapper


async def wait_until(pred: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``pred`` until true; fail after ``within`` seconds (scaled by UNIT)."""
    deadline = time.monotonic() + within * UNIT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within * UNIT:.1f} s")
        await asyncio.sleep(0.005)


@dataclass
class Run:
    backend: PyAudioBackend
    frames: list[Frame]
    statuses: list[str | None]
    frame_threads: set[int]

    def problems(self) -> list[str]:
        return [s for s in self.statuses if s]


@contextlib.asynccontextmanager
async def running(backend: PyAudioBackend) -> AsyncIterator[Run]:
    run = Run(backend, [], [], set())

    def on_frame(frame: Frame) -> None:
        run.frame_threads.add(threading.get_ident())
        run.frames.append(frame)

    task = asyncio.create_task(backend.run(on_frame, run.statuses.append))
    try:
        yield run
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5 * UNIT)


def make_backend(
    host: FakeHost, player: Player | None = None, **settings: Any
) -> tuple[PyAudioBackend, Player]:
    player = player or Player(16000)
    audio = AudioSettings(reopen_max_backoff_s=0.5, **settings)
    backend = PyAudioBackend(
        audio,
        player,
        pyaudio_factory=host.factory,
        stall_timeout_s=0.3,
        start_grace_s=0.5,
        check_interval_s=0.02,
        backoff_base_s=0.02,
    )
    return backend, player


def dominant_hz(x: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    return k * rate / len(x)


def user_visible(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def envelope_db(x: NDArray[np.int16], rate: int, hop_s: float = 0.01) -> NDArray[np.float64]:
    hop = round(rate * hop_s)
    n = len(x) // hop
    blocks = x[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(blocks**2, axis=1)) + 1e-3
    return np.asarray(20 * np.log10(rms / 32768.0))


async def frames_for(run: Run, seconds: float) -> None:
    target = len(run.frames) + round(seconds * 50)
    await wait_until(lambda: len(run.frames) >= target, within=seconds + 5)
