"""The session's outgoing microphone audio: a bounded queue the app fills frame by frame
(never blocking), and the task that sends it, one message per frame, in order."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from hello_device.audio.convert import MicEncoder
from hello_device.conversation.connect import Socket
from hello_device.conversation.listener import SessionStats

UPLINK_BACKLOG_S = 10.0
"""Audio held while the socket is not yet streaming, or while the network holds the
sender back (the first words after a voice or wake-word trigger wait here while the
connection opens); beyond it the oldest frames are dropped."""


class UplinkQueue:
    """Frames waiting for the socket, with their capture times."""

    def __init__(self, frame_ms: int, stats: SessionStats) -> None:
        self.stats = stats
        self._frames: collections.deque[tuple[bytes, float]] = collections.deque(
            maxlen=int(UPLINK_BACKLOG_S * 1000 / frame_ms)
        )
        self._ready = asyncio.Event()

    def put(self, pcm: bytes, captured_at: float) -> None:
        """Queue one frame; a full queue drops (and counts) its oldest."""
        frames = self._frames
        if len(frames) == frames.maxlen:
            self.stats.frames_dropped += 1
        frames.append((pcm, captured_at))
        self._ready.set()

    async def send(
        self,
        ws: Socket,
        encoder: MicEncoder,
        message: Callable[[bytes], bytes],
        clock: Callable[[], float],
    ) -> None:
        """Send the queued frames as they come, each as one message, as fast as the
        socket takes them (a backlog goes out faster than real time)."""
        frames, ready, stats = self._frames, self._ready, self.stats
        while True:
            while not frames:
                ready.clear()
                await ready.wait()
            pcm, captured_at = frames.popleft()
            wire = encoder.encode(pcm)
            if not wire:  # a resampler still filling (first frame of a stream)
                continue
            await ws.send(message(wire), text=True)
            stats.frames_sent += 1
            latency = clock() - captured_at
            stats.wire_latency_s.append(latency)
            if stats.on_wire_latency is not None:
                stats.on_wire_latency(latency)
