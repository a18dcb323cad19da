"""The interface every audio backend implements (PyAudio, file, in-memory).

A backend owns the sound card (or its stand-in). It captures the microphone and hands
each frame (16 kHz mono int16, ``frame_ms`` long) to ``on_frame`` **on the event loop
thread**; it plays by pulling from a :class:`~hello_device.audio.player.Player`, whose
``rate`` it sets to the rate the output runs at. It opens, supervises and reopens its
devices itself, with backoff, and never lets a device fault end the daemon.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Frame:
    """One captured frame (read-only by convention; not frozen, which would make the
    one-per-frame construction three times slower)."""

    pcm: bytes
    """16 kHz mono signed 16-bit little-endian samples, ``frame_ms`` long."""
    index: int
    """Running frame number since the backend started (gaps mean dropped frames)."""
    captured_at: float
    """``time.monotonic()`` when its last sample was captured (best estimate)."""


FrameSink = Callable[[Frame], None]
StatusSink = Callable[[str | None], None]
"""Called with a one-line problem description when the audio path fails, and with
``None`` when it works again."""


class AudioBackend(abc.ABC):
    """Base class of the backends; see the module docstring for the contract."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        """Set once the devices are open and audio moves (drives READY=1)."""
        self.finished = asyncio.Event()
        """Set when the backend has nothing more to do (the file backend at the end of
        its input); the daemon then stops cleanly."""
        self.frames_captured = 0
        """Frames delivered so far; the watchdog checks that it advances."""

    @abc.abstractmethod
    async def run(self, on_frame: FrameSink, on_status: StatusSink | None = None) -> None:
        """Open the devices and move audio until cancelled (or finished).

        Device faults are logged, reported through ``on_status`` and retried with
        backoff; they never raise out of here.
        """
