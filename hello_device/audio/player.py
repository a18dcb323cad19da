"""The playout queue in front of the sound card.

Agent audio (already decoded and resampled to the output rate) waits here until the
output callback pulls it; apart from the sound card's own small buffer this is the only
place it waits, so :meth:`Player.flush` (barge-in) silences the agent at once.

Threads: :meth:`Player.push`, :meth:`Player.flush`, :meth:`Player.set_rate` and the
properties are used from the event loop; :meth:`Player.read` runs on the PortAudio
callback thread. One lock guards the queue; :meth:`Player.read` holds it only to slice
at most ``n`` samples out, and does the gain work after releasing it. Nothing here logs.

Samples are kept as ``bytes`` and leave as ``bytes``: reads that only copy (almost all)
are a slice and a join, the fades touch ``fade_ms`` of samples in plain Python, and
numpy is loaded only for a volume other than 0 and 1 (:mod:`hello_device.audio.gain`).

Shaping of the output, so that nothing clicks:

* *fade-in*: when queued audio starts after silence, its first ``fade_ms`` are faded in
  (raised cosine);
* *fade-out on flush*: the read after :meth:`Player.flush` plays at most ``fade_ms`` of
  what was about to play, faded out, then silence (later pushes start on the read after);
* *fade-out on starvation*: when the queue runs dry in the middle of a read, the last
  ``fade_ms`` of what it had are faded out;
* *volume* is applied with rounding and saturation (it never wraps around).

Counters: ``pushed == samples_played + discarded (sum of flush() results) + queued``.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from hello_device.core.level import sum_squares

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Gain = Callable[[bytes, float], bytes]

__all__ = ["MAX_VOLUME", "SILENCE_DBFS", "UNDERRUN_GAP_S", "Player"]

SILENCE_DBFS: Final = -120.0
"""What :meth:`Player.level_dbfs` reports for digital silence."""

UNDERRUN_GAP_S: Final = 1.0
"""A dry queue refilled within this many seconds counts as an underrun."""

MAX_VOLUME: Final = 4.0
"""Largest accepted gain (the configuration allows 0..1; above 1 boosts and saturates)."""

_RING = 256  # per-read level entries kept for level_dbfs()
_FULL_SCALE = 32768.0


def _fade_down(m: int, start_gain: float = 1.0) -> tuple[float, ...]:
    """``m`` gains falling from just under ``start_gain`` to just above 0 (raised cosine)."""
    return tuple(
        start_gain * (0.5 + 0.5 * math.cos(math.pi * i / (m + 1))) for i in range(1, m + 1)
    )


class Player:
    """Thread-safe playout queue of mono int16 samples at ``rate``.

    ``underruns`` counts starvations in the middle of a stream: a read that was playing
    queued audio found the queue empty before it had ``n`` samples, and new audio was
    then pushed within :data:`UNDERRUN_GAP_S` (counted at that push). If nothing comes
    for longer, the stream simply ended (the natural end of an agent turn), and the
    emptiness after :meth:`flush` is never an underrun. ``clock`` (``time.monotonic`` by
    default) timestamps both events, so tests can pass a fake one.
    """

    def __init__(
        self,
        rate: int = 16000,
        volume: float = 1.0,
        fade_ms: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fade_ms < 0 or not math.isfinite(fade_ms):
            raise ValueError(f"fade_ms must be >= 0, not {fade_ms!r}")
        self.fade_ms: Final = float(fade_ms)
        self._clock = clock
        self._lock = threading.Lock()
        # Queue: whole chunks of int16 bytes; _head is the read position (in samples)
        # inside the first one.
        self._chunks: deque[bytes] = deque()
        self._head = 0
        self._queued = 0
        self._streaming = False  # the last read took queued audio and did not run dry
        self._fade_pos = 0  # fade-in samples applied so far in this stream
        self._fadeout: array[int] | None = None  # left by flush(), pre-shaped
        self._fadeout_pos = 0
        self._dry_at: float | None = None  # when a playing stream ran dry
        self._last_read_audio = False
        self._volume = 1.0
        self._gain: Gain | None = None
        self.volume = volume
        self.underruns = 0
        """Mid-stream starvations (see the class docstring)."""
        self.samples_played = 0
        """Samples output so far that came from the queue (including fade-outs)."""
        self.samples_pushed = 0
        """Samples accepted by :meth:`push` so far."""
        self._silence = b""  # reader-owned
        # Level ring: (sum of squares, sample count) per read; slots replaced atomically.
        self._ring: list[tuple[float, int]] = [(0.0, 0)] * _RING
        self._ring_pos = 0
        self._rate = 0
        self._fade_len = 0
        self._ramp_up: tuple[float, ...] = ()
        self._ramp_down: tuple[float, ...] = ()
        self.set_rate(rate)

    # --- configuration -----------------------------------------------------------------

    @property
    def rate(self) -> int:
        """Sample rate of everything pushed and read."""
        return self._rate

    def set_rate(self, rate: int) -> None:
        """Change the rate (the output device's); empties the queue without a fade."""
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"rate must be a positive integer, not {rate!r}")
        fade_len = round(self.fade_ms * rate / 1000)
        ramp_down = _fade_down(fade_len)
        ramp_up = ramp_down[::-1]
        with self._lock:
            self._rate = rate
            self._fade_len = fade_len
            self._ramp_up = ramp_up
            self._ramp_down = ramp_down
            self._chunks.clear()
            self._head = 0
            self._queued = 0
            self._streaming = False
            self._fadeout = None
            self._dry_at = None
            self._last_read_audio = False
            self._ring = [(0.0, 0)] * _RING

    @property
    def volume(self) -> float:
        """Output gain, 0..1 (up to :data:`MAX_VOLUME` boosts, with saturation)."""
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        if not 0.0 <= value <= MAX_VOLUME:  # also rejects NaN
            raise ValueError(f"volume must be between 0 and {MAX_VOLUME}, not {value!r}")
        if value not in (0.0, 1.0) and self._gain is None:
            # Loaded here, on the event loop, never on the audio thread.
            from hello_device.audio.gain import apply_gain

            self._gain = apply_gain
        self._volume = float(value)

    # --- event-loop side -----------------------------------------------------------------

    def push(self, pcm: bytes | bytearray | memoryview | NDArray[np.int16]) -> None:
        """Queue samples at :attr:`rate` (native-endian int16 bytes, or an int16 array,
        copied). An odd trailing byte is ignored."""
        if isinstance(pcm, bytes | bytearray | memoryview):
            data = pcm if isinstance(pcm, bytes) else bytes(pcm)
            if len(data) % 2:
                data = data[:-1]
        else:
            if pcm.dtype != "int16":
                raise TypeError(f"Player.push needs int16 samples, not {pcm.dtype}")
            data = pcm.tobytes()
        count = len(data) // 2
        if count == 0:
            return
        now = self._clock()
        with self._lock:
            self._chunks.append(data)
            self._queued += count
            self.samples_pushed += count
            if self._dry_at is not None:
                if now - self._dry_at <= UNDERRUN_GAP_S:
                    self.underruns += 1
                self._dry_at = None

    def flush(self) -> int:
        """Empty the queue now; return how many queued samples will never play.

        If audio was playing, the next read plays at most ``fade_ms`` of it, faded out
        (those samples are not counted as discarded), then silence.
        """
        with self._lock:
            queued = self._queued
            fade = 0
            if self._streaming and queued and self._fade_len:
                fade = min(self._fade_len, queued)
                tail = array("h")
                start = self._head
                for chunk in self._chunks:
                    tail.frombytes(chunk[2 * start : 2 * (start + fade - len(tail))])
                    start = 0
                    if len(tail) == fade:
                        break
                # Continue from the current fade-in gain, if the fade-in is not over.
                pos = self._fade_pos
                gain = self._ramp_up[pos] if pos < self._fade_len else 1.0
                down = _fade_down(fade, gain)
                self._fadeout = array("h", [round(x * g) for x, g in zip(tail, down, strict=True)])
                self._fadeout_pos = 0
            self._chunks.clear()
            self._head = 0
            self._queued = 0
            self._streaming = False
            self._dry_at = None
        return queued - fade

    @property
    def queued_samples(self) -> int:
        """Samples waiting in the queue."""
        return self._queued

    @property
    def queued_ms(self) -> float:
        """Audio waiting in the queue, in milliseconds."""
        return self._queued * 1000 / self._rate

    @property
    def playing(self) -> bool:
        """True when the last read output queued audio or the queue is not empty."""
        return self._last_read_audio or self._queued > 0

    def level_dbfs(self, window_ms: float = 200) -> float:
        """RMS level in dBFS of what :meth:`read` output over the last ``window_ms``.

        Silence (or no reads yet) gives :data:`SILENCE_DBFS`.
        """
        want = window_ms * self._rate / 1000
        ring = self._ring
        pos = self._ring_pos
        total = 0.0
        count = 0.0
        for i in range(1, _RING + 1):
            sumsq, n = ring[(pos - i) % _RING]
            if n == 0:
                break
            if count + n >= want:
                part = (want - count) / n  # take a share of the oldest read
                total += sumsq * part
                count = want
                break
            total += sumsq
            count += n
        if count <= 0 or total <= 0:
            return SILENCE_DBFS
        rms = math.sqrt(total / count)
        return max(SILENCE_DBFS, 20 * math.log10(rms / _FULL_SCALE))

    # --- audio-thread side ---------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """Exactly ``n`` samples (``2 * n`` bytes) of int16 output; silence where none."""
        if n <= 0:
            return b""
        if (
            not self._queued
            and not self._streaming
            and not self._last_read_audio
            and self._fadeout is None
        ):
            # Steady silence (most reads): nothing to copy, shape or account for. A push
            # racing with this check is played by the next read.
            self._record_level(0.0, n)
            if len(self._silence) != 2 * n:
                self._silence = bytes(2 * n)
            return self._silence
        now = self._clock()
        fade_in_start = fade_in_len = 0
        dry_fade = 0
        parts: list[bytes] = []
        with self._lock:
            ramp_up = self._ramp_up
            ramp_down = self._ramp_down
            if self._fadeout is not None:
                # The read after a flush: what flush() left, then silence.
                pos = self._fadeout_pos
                k = min(n, len(self._fadeout) - pos)
                parts.append(self._fadeout[pos : pos + k].tobytes())
                self._fadeout_pos = pos + k
                if self._fadeout_pos >= len(self._fadeout):
                    self._fadeout = None
            else:
                k = 0
                chunks = self._chunks
                while k < n and chunks:
                    chunk = chunks[0]
                    head = self._head
                    size = len(chunk) // 2
                    take = min(size - head, n - k)
                    parts.append(chunk if take == size else chunk[2 * head : 2 * (head + take)])
                    k += take
                    if head + take == size:
                        chunks.popleft()
                        self._head = 0
                    else:
                        self._head = head + take
                self._queued -= k
                was_streaming = self._streaming
                if k:
                    if not was_streaming:
                        self._fade_pos = 0
                    fade_in_start = self._fade_pos
                    fade_in_len = min(k, self._fade_len - fade_in_start)
                    self._fade_pos += fade_in_len
                if k < n and (was_streaming or k):
                    self._dry_at = now
                    self._streaming = False
                    dry_fade = min(k, self._fade_len)
                elif k:
                    self._streaming = True
            self.samples_played += k
            self._last_read_audio = k > 0

        if k == 0:
            self._record_level(0.0, n)
            if len(self._silence) != 2 * n:
                self._silence = bytes(2 * n)
            return self._silence

        out = parts[0] if len(parts) == 1 else b"".join(parts)
        if fade_in_len or dry_fade:
            out = _faded(
                out, ramp_up[fade_in_start : fade_in_start + fade_in_len], dry_fade, ramp_down
            )
        volume = self._volume
        if volume != 1.0:
            gain = self._gain
            out = gain(out, volume) if gain is not None and volume else bytes(len(out))
        if k < n:
            out += bytes(2 * (n - k))
        self._record_level(sum_squares(out), n)
        return out

    def _record_level(self, sumsq: float, n: int) -> None:
        pos = self._ring_pos
        self._ring[pos] = (sumsq, n)
        self._ring_pos = (pos + 1) % _RING


def _faded(pcm: bytes, up: tuple[float, ...], dry: int, ramp_down: tuple[float, ...]) -> bytes:
    """``pcm`` with its first ``len(up)`` samples faded in and its last ``dry`` faded out
    (both where they overlap), rounded half to even."""
    a = array("h")
    a.frombytes(pcm)
    k = len(a)
    lo = k - dry
    down = ramp_down if dry == len(ramp_down) else _fade_down(dry)
    for i, g in enumerate(up):
        a[i] = round(a[i] * (g * down[i - lo] if i >= lo else g))
    for i in range(max(lo, len(up)), k):
        a[i] = round(a[i] * down[i - lo])
    return a.tobytes()
