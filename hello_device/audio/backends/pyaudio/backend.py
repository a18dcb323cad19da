"""The PyAudio backend: supervision (open, watch, reopen with backoff), the capture
queue drained on the event loop, and the PortAudio callbacks (see the package docstring)."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from hello_device.aio import in_daemon_thread
from hello_device.audio import CAPTURE_RATE
from hello_device.audio.backends.base import (
    AudioBackend,
    Frame,
    FrameSink,
    StatusSink,
)
from hello_device.audio.convert import CaptureConverter
from hello_device.audio.player import Player
from hello_device.core.backoff import Backoff
from hello_device.errors import AudioDeviceError
from hello_device.settings import AudioSettings

try:  # the import must not be what breaks `hello-device check-config` on a bare host
    import pyaudio as _pyaudio
except ImportError:  # pragma: no cover - pyaudio is a dependency
    _pyaudio = None

from hello_device.audio.backends.pyaudio.constants import (
    BACKOFF_BASE_S,
    CAPTURE_QUEUE_CHUNKS,
    CHECK_INTERVAL_S,
    CLOSE_TIMEOUT_S,
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_OUTPUT_UNDERFLOW,
    STABLE_S,
    STALL_TIMEOUT_S,
    START_GRACE_S,
    output_block_ms_for,
)
from hello_device.audio.backends.pyaudio.health import GlitchSummary, Liveness, stream_problem
from hello_device.audio.backends.pyaudio.streams import OpenStreams, PortAudioWorker, StreamOpener

log = logging.getLogger(__name__)

T = TypeVar("T")


class PyAudioBackend(AudioBackend):
    """The ``pyaudio`` audio backend (see the module docstring).

    ``pyaudio_factory`` builds the PortAudio host (``pyaudio.PyAudio``; tests pass a
    fake); ``clock`` is the monotonic clock used for timestamps and stall detection.
    The remaining keywords exist so tests can shorten the fault timings and benchmarks
    can try other block sizes.
    """

    def __init__(
        self,
        settings: AudioSettings,
        player: Player,
        *,
        pyaudio_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        start_grace_s: float = START_GRACE_S,
        check_interval_s: float = CHECK_INTERVAL_S,
        backoff_base_s: float = BACKOFF_BASE_S,
        capture_queue_chunks: int = CAPTURE_QUEUE_CHUNKS,
        output_block_ms: int | None = None,
    ) -> None:
        super().__init__()
        if pyaudio_factory is None:
            if _pyaudio is None:  # pragma: no cover
                raise AudioDeviceError("PyAudio is not installed (pip install pyaudio)")
            pyaudio_factory = _pyaudio.PyAudio
        self.settings = settings
        self.player = player
        self._clock = clock
        self._rng = rng or random.Random()
        self._stall_s = stall_timeout_s
        self._grace_s = max(start_grace_s, stall_timeout_s)
        self._check_s = check_interval_s
        self._backoff_base = backoff_base_s
        self.frame_ms = settings.frame_ms
        self.output_block_ms = output_block_ms or output_block_ms_for(settings.output_buffer_ms)
        """Playback callback period (PortAudio's device buffer is about two of them)."""

        # Counters (read them from the loop; the callbacks only increment).
        self.frames_dropped = 0
        """Capture frames dropped because the event loop fell behind."""
        self.underflows = 0
        """Playback callbacks PortAudio flagged with ``paOutputUnderflow``."""
        self.overflows = 0
        """Capture callbacks PortAudio flagged with ``paInputOverflow``."""
        self.faults = 0
        """Fault incidents so far (each may take several attempts to recover)."""
        self.open_attempts = 0
        """Attempts to open the devices so far (successful or not)."""
        self.backoff_history: collections.deque[float] = collections.deque(maxlen=32)
        """The most recent reopen delays, in seconds."""
        self.chunk_entry_time = 0.0
        """``clock()`` at the capture callback's entry for the chunk being delivered
        (for latency measurements in ``on_frame``)."""
        self.streams: OpenStreams | None = None
        """The open streams and their formats (None while closed)."""

        # Shared with the PortAudio callback threads.
        self._chunks: collections.deque[tuple[bytes, float, Mapping[str, float]]] = (
            collections.deque(maxlen=max(1, capture_queue_chunks))
        )
        self._queue_max = max(1, capture_queue_chunks)
        self._dropped_chunks = 0
        self._wake_pending = False
        self._last_in_cb: float | None = None
        self._last_out_cb: float | None = None
        self._out_channels = 1
        self._out_lag = 0.0
        self._callback_error: BaseException | None = None

        # Event-loop state.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frame: FrameSink = _ignore_frame
        self._converter: CaptureConverter | None = None
        self._dropped_seen = 0
        self._index = 0
        self._fed = 0  # input frames fed to the converter since the streams opened
        self._emitted = 0  # 16 kHz samples delivered since the streams opened
        self._opened_at = 0.0
        self._frame_errors = 0
        self._latency_warned = False
        self._last_unexpected: str | None = None

        # PortAudio itself, driven from worker threads one call at a time.
        opener = StreamOpener(
            settings, self.frame_ms, self.output_block_ms, self._on_input, self._on_output
        )
        self._worker = PortAudioWorker(pyaudio_factory, opener)

    # ------------------------------------------------------------------ public

    @property
    def output_delay_s(self) -> float:
        """How far ahead of playing the last playback block was requested, as PortAudio
        reports it (``output_buffer_dac_time - current_time``)."""
        return self._out_lag

    async def run(self, on_frame: FrameSink, on_status: StatusSink | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_frame = on_frame
        attempt = 0  # failed attempts in a row (reset once the streams ran STABLE_S)
        incident_since: float | None = None
        incident_attempts = 0
        reported: str | None = None
        try:
            while True:
                self.open_attempts += 1
                incident_attempts += 1
                problem = await self._open()
                if problem is None:
                    if incident_since is not None:
                        log.info(
                            "audio works again after %.1f s (%d attempts)",
                            self._clock() - incident_since,
                            incident_attempts,
                        )
                    incident_since = None
                    incident_attempts = 0
                    reported = None
                    _report(on_status, None)
                    started = self._clock()
                    problem = await self._watch()
                    if self._clock() - started >= STABLE_S:
                        attempt = 0
                await self._close()
                # What was queued can no longer play on time; don't let it play late.
                self.player.flush()
                attempt += 1
                if incident_since is None:
                    self.faults += 1
                    incident_since = self._clock()
                    log.warning("audio problem: %s; reopening the sound card", problem)
                else:
                    log.debug("audio still failing (attempt %d): %s", incident_attempts, problem)
                if problem != reported:
                    reported = problem
                    _report(on_status, problem)
                delay = self._backoff(attempt)
                self.backoff_history.append(delay)
                log.debug("audio: next attempt in %.2f s", delay)
                await asyncio.sleep(delay)
        finally:
            await self._shutdown()

    # ------------------------------------------------------------------ supervision

    async def _open(self) -> str | None:
        """Open and start both streams; the problem if that failed, else None."""
        try:
            streams = await self._in_thread(self._worker.open)
            self._activate(streams)
            await self._in_thread(functools.partial(self._worker.start, streams))
        except AudioDeviceError as exc:
            return str(exc)
        except Exception as exc:
            problem = f"unexpected error while opening the sound card: {exc!r}"
            if problem != self._last_unexpected:  # a traceback once, not per retry
                self._last_unexpected = problem
                log.exception("unexpected error while opening the sound card")
            return problem
        self._last_unexpected = None
        return None

    async def _watch(self) -> str:
        """Check the streams every ``check_interval_s``; return the first problem."""
        glitches = GlitchSummary(self._clock(), self._glitch_counts())
        while True:
            await asyncio.sleep(self._check_s)
            problem = self._health()
            if problem is not None:
                return problem
            glitches.update(self._clock(), self._glitch_counts())

    def _glitch_counts(self) -> tuple[int, int, int]:
        return (self.underflows, self.overflows, self.frames_dropped)

    def _health(self) -> str | None:
        """A one-line problem description, or None while both streams are fine."""
        if self.streams is None:
            return "the sound card was closed"
        seen = Liveness(self._last_in_cb, self._last_out_cb, self._callback_error, self._opened_at)
        return stream_problem(
            self.streams, seen, self._clock(), grace_s=self._grace_s, stall_s=self._stall_s
        )

    def _backoff(self, attempt: int) -> float:
        cap = self.settings.reopen_max_backoff_s
        return Backoff(cap, base=self._backoff_base).delay(attempt, self._rng)

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self._in_thread(self._worker.close), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("PortAudio did not close the streams within %.0f s", CLOSE_TIMEOUT_S)
        except Exception:
            log.exception("error while closing the sound card")
        self._deactivate()

    async def _shutdown(self) -> None:
        await self._close()
        self._on_frame = _ignore_frame

    # ------------------------------------------------------------------ loop side

    def _activate(self, s: OpenStreams) -> None:
        """Prepare the loop side for freshly opened (not yet started) streams."""
        self.streams = s
        self._converter = CaptureConverter(s.in_rate, s.in_channels, s.channel, self.frame_ms)
        self._chunks.clear()
        self._dropped_seen = self._dropped_chunks
        self._fed = 0
        self._emitted = 0
        self._last_in_cb = None
        self._last_out_cb = None
        self._callback_error = None
        self._out_channels = s.out_channels
        self._opened_at = self._clock()
        if self.player.rate != s.out_rate:
            self.player.set_rate(s.out_rate)
        s.log_formats(self.frame_ms, self.output_block_ms)
        limit = self.settings.output_buffer_ms
        if s.out_latency * 1000 > limit and not self._latency_warned:
            self._latency_warned = True
            log.warning(
                "the loudspeaker buffers %.0f ms, more than audio.output_buffer_ms = %d "
                "(PyAudio cannot request a smaller device buffer; flushes take that long)",
                s.out_latency * 1000,
                limit,
            )

    def _deactivate(self) -> None:
        self.streams = None
        self._converter = None
        self._chunks.clear()

    def _drain(self) -> None:
        """Event loop: convert and deliver every queued capture chunk."""
        self._wake_pending = False
        chunks = self._chunks
        converter = self._converter
        if converter is None:
            chunks.clear()
            return
        dropped = self._dropped_chunks - self._dropped_seen
        if dropped:
            self._dropped_seen += dropped
            self.frames_dropped += dropped  # a chunk is one frame_ms long
            self._index += dropped
        while chunks:
            try:
                data, entry, time_info = chunks.popleft()
            except IndexError:  # pragma: no cover - emptied concurrently
                break
            self._deliver(converter, data, entry, time_info)

    def _deliver(
        self,
        converter: CaptureConverter,
        data: bytes,
        entry: float,
        time_info: Mapping[str, float],
    ) -> None:
        in_rate = converter.in_rate
        n = len(data) // (2 * converter.in_channels)
        last = _last_sample_time(entry, time_info, n, in_rate)
        self._fed += n
        frames = converter.feed(data)
        if not frames:
            return
        frame_samples = converter.frame_bytes // 2
        self.chunk_entry_time = entry
        for pcm in frames:
            self._emitted += frame_samples
            held_back = self._fed / in_rate - self._emitted / CAPTURE_RATE
            frame = Frame(pcm, self._index, last - max(0.0, held_back))
            self._index += 1
            self.frames_captured += 1
            if not self.ready.is_set():
                self.ready.set()
            try:
                self._on_frame(frame)
            except Exception:
                self._frame_errors += 1
                if self._frame_errors == 1:
                    log.exception("on_frame failed (later failures are counted, not logged)")

    # ------------------------------------------------------------------ PortAudio threads

    def _on_input(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[None, int]:
        """Capture callback (PortAudio thread): queue the bytes and wake the loop."""
        try:
            now = self._clock()
            self._last_in_cb = now
            if status & PA_INPUT_OVERFLOW:
                self.overflows += 1
            if in_data:
                chunks = self._chunks
                if len(chunks) >= self._queue_max:
                    self._dropped_chunks += 1  # append() below pushes the oldest out
                chunks.append((in_data, now, time_info))
                if not self._wake_pending:
                    self._wake_pending = True
                    loop = self._loop
                    if loop is not None:
                        loop.call_soon_threadsafe(self._drain)
        except BaseException as exc:  # never raise into PortAudio
            self._callback_error = exc
        return (None, PA_CONTINUE)

    def _on_output(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes, int]:
        """Playback callback (PortAudio thread): pull ``frame_count`` samples."""
        channels = self._out_channels
        try:
            self._last_out_cb = self._clock()
            if status & PA_OUTPUT_UNDERFLOW:
                self.underflows += 1
            self._out_lag = time_info.get("output_buffer_dac_time", 0.0) - time_info.get(
                "current_time", 0.0
            )
            data = self.player.read(frame_count)
            if channels == 2:
                mono = np.frombuffer(data, dtype=np.int16)
                data = np.repeat(mono, 2).tobytes()
            return (data, PA_CONTINUE)
        except BaseException as exc:  # never raise into PortAudio
            self._callback_error = exc
            return (bytes(2 * frame_count * channels), PA_CONTINUE)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run a blocking PortAudio call in a daemon thread and await its result."""
        return await in_daemon_thread(fn, name="portaudio")


def _ignore_frame(frame: Frame) -> None:
    """The frame sink while not running."""


def _report(on_status: StatusSink | None, problem: str | None) -> None:
    if on_status is None:
        return
    try:
        on_status(problem)
    except Exception:
        log.exception("on_status failed")


def _last_sample_time(entry: float, time_info: Mapping[str, float], n: int, rate: int) -> float:
    """Monotonic time of a capture chunk's last sample.

    PortAudio gives the first sample's ADC time and the callback's current time on its
    own clock; their difference is how long ago the first sample was captured. Without
    a plausible pair, the callback's entry time is the best estimate.
    """
    try:
        adc = float(time_info.get("input_buffer_adc_time", 0.0))
        now = float(time_info.get("current_time", 0.0))
    except (TypeError, ValueError, AttributeError):
        return entry
    if adc > 0.0 and now > 0.0:
        age = now - adc
        if 0.0 <= age <= 1.0:
            return min(entry, entry - age + (n - 1) / rate)
    return entry
