"""Real sound cards through PortAudio (PyAudio), in callback mode.

Two streams, opened separately on the configured devices (see
:mod:`hello_device.audio.devices` for how ``audio.input_device`` and
``audio.output_device`` are matched):

* **capture**: at the first rate of 16000, 48000, 44100, 32000, 22050, 24000, 8000 Hz (then
  the device's default) that PortAudio accepts *and* that actually opens, with up to two
  channels (more when ``audio.input_channel`` needs them), ``frame_ms`` per callback.
  The callback only appends ``(bytes, time)`` to a bounded queue and, unless one is
  already pending, schedules a drain with ``loop.call_soon_threadsafe``. On the event
  loop the drain runs the :class:`~hello_device.audio.convert.CaptureConverter`
  (channel pick or mix, resampling to 16 kHz) and hands each
  :class:`~hello_device.audio.backends.base.Frame` to ``on_frame``. If the loop falls behind,
  the queue drops its oldest chunk; :attr:`PyAudioBackend.frames_dropped` counts them
  and frame indices skip accordingly.
* **playback**: mono (stereo with both channels equal if the device refuses mono) at the
  first accepted rate of the same list, in blocks of a quarter of
  ``audio.output_buffer_ms`` (:func:`output_block_ms_for`: 15 ms at the default 60 ms,
  at least 10 ms). The callback returns ``player.read(n)``; the
  :class:`~hello_device.audio.player.Player` is set to this rate.

Device buffer: PyAudio 0.2.14 always asks PortAudio for the device's
``defaultLowOutputLatency`` (its ``open()`` has no latency parameter, and the host-API
specific stream info is only used on macOS), so the only lever is the block size:
PortAudio's ALSA buffer comes out at two blocks. The backend logs the latency PortAudio
reports and warns once if it is above ``audio.output_buffer_ms``. Measured through
PulseAudio (``bench/bench_audio.py``), push to speaker with an empty queue is p99 ~30 ms
with 10 ms blocks, ~46 ms with 15 ms and ~61 ms with 20 ms, and 60 s of playback showed
3-7 underflows with 10 ms blocks, 0-1 with 15 ms and none with 20 ms: hence a quarter of
the budget.

Timestamps: ``Frame.captured_at`` is the ``time.monotonic()`` of the frame's last
sample: the callback's ``input_buffer_adc_time`` mapped onto the monotonic clock when
PortAudio provides it (else the callback's entry time), minus whatever the converter
still holds back.

Faults: a device missing at start, a failed open, a stream that is no longer active, a
stream whose callbacks stop for :data:`STALL_TIMEOUT_S` (USB unplug), or an exception
inside a callback is logged once per incident, reported through ``on_status``, and the
whole set-up (PortAudio included, so newly plugged devices are found) is torn down and
retried with exponential backoff and jitter up to ``audio.reopen_max_backoff_s``; the
player is flushed (what it held would play late). When it works again ``on_status(None)``
is called. :meth:`PyAudioBackend.run` only ever ends by
cancellation; it then closes the streams and terminates PortAudio.

PortAudio calls that may block (initialising, opening, starting, closing) run in a
short-lived daemon thread, one at a time, so the event loop never waits on a sound card.
ALSA and JACK would print pages of probing noise to standard error while PortAudio
initialises; :func:`~hello_device.audio.alsa_quiet.silence_probe_noise` sends it to the
debug log through the libraries' own error hooks (standard error itself is left alone).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import numpy as np

from hello_device.aio import in_daemon_thread
from hello_device.audio import CAPTURE_RATE
from hello_device.audio.alsa_quiet import noise_count, silence_probe_noise
from hello_device.audio.backends.base import (
    AudioBackend,
    Frame,
    FrameSink,
    StatusSink,
)
from hello_device.audio.convert import CaptureConverter
from hello_device.audio.devices import (
    PA_INT16,
    DeviceInfo,
    Kind,
    describe_error,
    find_device,
    supported_rates,
)
from hello_device.audio.player import Player
from hello_device.core.backoff import Backoff
from hello_device.errors import AudioDeviceError
from hello_device.settings import AudioSettings

try:  # the import must not be what breaks `hello-device check-config` on a bare host
    import pyaudio as _pyaudio
except ImportError:  # pragma: no cover - pyaudio is a dependency
    _pyaudio = None

__all__ = [
    "STALL_TIMEOUT_S",
    "PyAudioBackend",
    "output_block_ms_for",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PA_CONTINUE: Final = 0
"""``paContinue``."""
PA_INPUT_OVERFLOW: Final = 0x2
"""``paInputOverflow`` callback status flag."""
PA_OUTPUT_UNDERFLOW: Final = 0x4
"""``paOutputUnderflow`` callback status flag."""

MIN_OUTPUT_BLOCK_MS: Final = 10
MAX_OUTPUT_BLOCK_MS: Final = 50


def output_block_ms_for(output_buffer_ms: int) -> int:
    """Playback callback period for an ``audio.output_buffer_ms`` budget.

    A sample pushed into an empty queue waits up to one block for the next callback,
    then about two blocks in PortAudio's buffer, plus whatever the host adds: a quarter
    of the budget per block keeps the whole inside it. 15 ms at the default 60 ms;
    never under 10 ms (Python callbacks) nor over 50 ms.
    """
    return max(MIN_OUTPUT_BLOCK_MS, min(MAX_OUTPUT_BLOCK_MS, output_buffer_ms // 4))


STALL_TIMEOUT_S: Final = 1.0
"""A stream whose callback has not run for this long is considered dead."""
START_GRACE_S: Final = 3.0
"""How long a freshly started stream may take to deliver its first callback (sound
servers can take a few hundred milliseconds)."""
CHECK_INTERVAL_S: Final = 0.25
"""How often the streams' health is checked."""
CAPTURE_QUEUE_CHUNKS: Final = 25
"""Capture chunks (of ``frame_ms`` each) waiting for the loop before the oldest is dropped."""
BACKOFF_BASE_S: Final = 0.5
"""First reopen delay (before jitter); doubles per failed attempt."""
STABLE_S: Final = 10.0
"""Streams that ran this long reset the backoff."""
CLOSE_TIMEOUT_S: Final = 3.0
"""Longest wait for PortAudio to close the streams on exit."""
GLITCH_REPORT_S: Final = 60.0
"""At most one warning summing up underflows, overflows and drops per this period."""


@dataclass(slots=True)
class _Streams:
    """What one successful open produced (owned by the PortAudio worker)."""

    pa: Any
    capture: Any
    playback: Any
    mic: DeviceInfo
    speaker: DeviceInfo
    in_rate: int
    in_channels: int
    channel: int | Literal["mix"]
    out_rate: int
    out_channels: int
    in_latency: float
    out_latency: float


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
        self._factory = pyaudio_factory
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
        self.streams: _Streams | None = None
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
        self._channel_warned = False

        # The PortAudio worker's state (only touched with _pa_lock held).
        self._pa_lock = threading.Lock()
        self._pa: Any = None
        self._open_streams: list[Any] = []

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
            streams = await self._in_thread(self._open_sync)
            self._activate(streams)
            await self._in_thread(self._start_sync)
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
        """Check the streams every ``check_interval_s``; return the first problem.

        Glitches (underflows, overflows, dropped frames) are summed up in one warning
        per :data:`GLITCH_REPORT_S` at most.
        """
        seen = (self.underflows, self.overflows, self.frames_dropped)
        next_report = self._clock() + GLITCH_REPORT_S
        while True:
            await asyncio.sleep(self._check_s)
            problem = self._health()
            if problem is not None:
                return problem
            if self._clock() >= next_report:
                next_report = self._clock() + GLITCH_REPORT_S
                now = (self.underflows, self.overflows, self.frames_dropped)
                if now != seen:
                    under, over, dropped = (a - b for a, b in zip(now, seen, strict=True))
                    seen = now
                    log.warning(
                        "audio glitches in the last %.0f s: %d playback underflows, "
                        "%d capture overflows, %d captured frames dropped (event loop late)",
                        GLITCH_REPORT_S,
                        under,
                        over,
                        dropped,
                    )

    def _health(self) -> str | None:
        """A one-line problem description, or None while both streams are fine."""
        s = self.streams
        if s is None:
            return "the sound card was closed"
        err = self._callback_error
        if err is not None:
            return f"audio callback failed: {err!r}"
        now = self._clock()
        for what, dev, stream, last in (
            ("microphone", s.mic, s.capture, self._last_in_cb),
            ("loudspeaker", s.speaker, s.playback, self._last_out_cb),
        ):
            try:
                active = bool(stream.is_active())
            except Exception as exc:
                return f"{what} {dev.label} failed: {describe_error(exc)}"
            if not active:
                return f"{what} {dev.label} stopped (its stream is no longer active)"
            if last is None:
                if now - self._opened_at >= self._grace_s:
                    return (
                        f"{what} {dev.label} never started "
                        f"(no audio {self._grace_s:.1f} s after opening)"
                    )
            elif now - last >= self._stall_s:
                return f"{what} {dev.label} stalled (no audio callback for {now - last:.1f} s)"
        return None

    def _backoff(self, attempt: int) -> float:
        cap = self.settings.reopen_max_backoff_s
        return Backoff(cap, base=self._backoff_base).delay(attempt, self._rng)

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self._in_thread(self._close_sync), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("PortAudio did not close the streams within %.0f s", CLOSE_TIMEOUT_S)
        except Exception:
            log.exception("error while closing the sound card")
        self._deactivate()

    async def _shutdown(self) -> None:
        await self._close()
        self._on_frame = _ignore_frame

    # ------------------------------------------------------------------ loop side

    def _activate(self, s: _Streams) -> None:
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
        log.info(
            "microphone %s: %d Hz, %d channel%s (%s), %d ms blocks, latency %.0f ms",
            s.mic.label,
            s.in_rate,
            s.in_channels,
            "s" if s.in_channels != 1 else "",
            "mix" if s.channel == "mix" else f"channel {s.channel}",
            self.frame_ms,
            s.in_latency * 1000,
        )
        log.info(
            "loudspeaker %s: %d Hz, %s, %d ms blocks, latency %.0f ms",
            s.speaker.label,
            s.out_rate,
            "mono" if s.out_channels == 1 else "stereo (mono duplicated)",
            self.output_block_ms,
            s.out_latency * 1000,
        )
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

    def _open_sync(self) -> _Streams:
        """Worker thread: start PortAudio, find both devices, open both streams."""
        with self._pa_lock:
            self._close_locked()
            silence_probe_noise()
            noise = noise_count()
            try:
                pa = self._factory()
            except Exception as exc:
                raise AudioDeviceError(f"PortAudio failed to start: {describe_error(exc)}") from exc
            finally:
                if noise_count() > noise:
                    log.debug(
                        "ALSA/JACK: %d probe messages as PortAudio started", noise_count() - noise
                    )
            self._pa = pa
            s = self.settings
            mic = find_device(pa, s.input_device, "input")
            speaker = find_device(pa, s.output_device, "output")
            capture, in_rate, in_channels, channel, in_latency = self._open_capture(pa, mic)
            playback, out_rate, out_channels, out_latency = self._open_playback(pa, speaker)
            return _Streams(
                pa,
                capture,
                playback,
                mic,
                speaker,
                in_rate,
                in_channels,
                channel,
                out_rate,
                out_channels,
                in_latency,
                out_latency,
            )

    def _open_capture(
        self, pa: Any, mic: DeviceInfo
    ) -> tuple[Any, int, int, int | Literal["mix"], float]:
        wanted_channel = self.settings.input_channel
        maxc = mic.max_input_channels
        if wanted_channel != "mix" and int(wanted_channel) >= maxc:
            if not self._channel_warned:
                self._channel_warned = True
                log.warning(
                    "audio.input_channel = %s but microphone %s has %d channel%s; mixing them",
                    wanted_channel,
                    mic.label,
                    maxc,
                    "s" if maxc != 1 else "",
                )
            wanted_channel = "mix"
        need = 2 if wanted_channel == "mix" else int(wanted_channel) + 1
        options = list(dict.fromkeys([min(maxc, need), maxc]))
        stream, rate, channels, latency = self._open_first(pa, mic, "input", options)
        channel: int | Literal["mix"] = (
            "mix" if wanted_channel == "mix" or channels == 1 else int(wanted_channel)
        )
        return stream, rate, channels, channel, latency

    def _open_playback(self, pa: Any, speaker: DeviceInfo) -> tuple[Any, int, int, float]:
        options = [c for c in (1, 2) if c <= speaker.max_output_channels]
        return self._open_first(pa, speaker, "output", options)

    def _open_first(
        self, pa: Any, dev: DeviceInfo, kind: Kind, channel_options: list[int]
    ) -> tuple[Any, int, int, float]:
        """Open ``dev`` with the first (channels, rate) that PortAudio accepts and opens."""
        failures: list[str] = []
        tried_rates: list[int] = []
        for channels in channel_options:
            rates = supported_rates(pa, dev, kind, channels)
            tried_rates += rates
            for rate in rates:
                try:
                    stream = self._open_stream(pa, dev, kind, rate, channels)
                except (OSError, ValueError) as exc:
                    failures.append(f"{rate} Hz x{channels}: {describe_error(exc)}")
                    log.debug(
                        "%s %s refused %d Hz, %d ch: %s", kind, dev.label, rate, channels, exc
                    )
                    continue
                self._open_streams.append(stream)
                try:
                    latency = float(
                        stream.get_input_latency()
                        if kind == "input"
                        else stream.get_output_latency()
                    )
                except Exception:
                    latency = 0.0
                return stream, rate, channels, latency
        what = "microphone" if kind == "input" else "loudspeaker"
        if not tried_rates:
            counts = " or ".join(str(c) for c in channel_options) or "any number of"
            raise AudioDeviceError(
                f"{what} {dev.label} accepts none of the sample rates we can use "
                f"(16000, 48000, 44100, 32000, 22050, 24000, 8000 or {dev.default_rate} Hz) "
                f"with {counts} channels"
            )
        raise AudioDeviceError(f"cannot open {what} {dev.label}: {failures[-1].split(': ', 1)[-1]}")

    def _open_stream(self, pa: Any, dev: DeviceInfo, kind: Kind, rate: int, channels: int) -> Any:
        if kind == "input":
            return pa.open(
                rate=rate,
                channels=channels,
                format=PA_INT16,
                input=True,
                input_device_index=dev.index,
                frames_per_buffer=rate * self.frame_ms // 1000,
                stream_callback=self._on_input,
                start=False,
            )
        return pa.open(
            rate=rate,
            channels=channels,
            format=PA_INT16,
            output=True,
            output_device_index=dev.index,
            frames_per_buffer=rate * self.output_block_ms // 1000,
            stream_callback=self._on_output,
            start=False,
        )

    def _start_sync(self) -> None:
        with self._pa_lock:
            s = self.streams
            if s is None:  # pragma: no cover - closed meanwhile
                raise AudioDeviceError("the sound card was closed while starting")
            for what, stream in (("loudspeaker", s.playback), ("microphone", s.capture)):
                try:
                    stream.start_stream()
                except (OSError, ValueError) as exc:
                    dev = s.speaker if what == "loudspeaker" else s.mic
                    raise AudioDeviceError(
                        f"cannot start {what} {dev.label}: {describe_error(exc)}"
                    ) from exc

    def _close_sync(self) -> None:
        with self._pa_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        streams, self._open_streams = self._open_streams, []
        for stream in streams:
            try:
                stream.close()
            except Exception as exc:
                log.debug("closing a stream: %s", exc)
        pa, self._pa = self._pa, None
        if pa is not None:
            try:
                pa.terminate()
            except Exception as exc:
                log.debug("terminating PortAudio: %s", exc)


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
