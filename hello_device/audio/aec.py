"""In-process acoustic echo cancellation (``barge_in.echo_cancel = "webrtc"``), optional.

The loudspeaker is heard by the microphone; an echo canceller subtracts what it predicts
of that echo from every captured frame, given what was played (the *far end*). Here it
is WebRTC's AEC3 through the ``pywebrtc-audio`` package (``pip install
'hello-device[aec]'``), imported lazily: without the package :func:`available` is False
and nothing else in the daemon changes. Evaluation, figures and the system-level
alternatives (PipeWire's and PulseAudio's echo-cancel modules): see
``hardware/echo-cancellation.md``.

Three pieces:

* :class:`EchoCanceller` -- ``process(mic_frame, far_frame)`` on one captured frame
  (16-bit mono PCM at ``rate``), fed to WebRTC in the 10 ms sub-frames its audio
  processing module works on. AEC3 finds the delay between the far end and its echo
  itself (up to several hundred ms), so the far end needs to be in order and not
  *later* than the echo, nothing more precise.
* :class:`FarEndTap` -- a bounded FIFO of what the player output, resampled to the
  capture rate: the player's reader (the sound card's callback thread) feeds it, the
  capture path takes one frame's worth per captured frame.
* :class:`TappedPlayer` -- a :class:`~hello_device.audio.player.Player` whose every
  :meth:`~TappedPlayer.read` also feeds its :attr:`~TappedPlayer.tap`.

Wiring in the daemon (per captured frame, before the VAD and the barge-in detector)::

    far = player.tap.take(len(frame.pcm) // 2)
    pcm = canceller.process(frame.pcm, far)

Cost on the test machine (x86-64): about 0.15 ms per 20 ms frame (under 1 % of a core);
expect several times that on a Raspberry Pi 4.

Wheels: ``pywebrtc-audio`` 0.2.0 has manylinux_2_28 / musllinux wheels for x86-64 and
aarch64 (64-bit Raspberry Pi OS, glibc 2.36: fine), none for 32-bit ARM (armv7l): there
pip falls back to an sdist that needs a C++ toolchain and CMake to build.
"""

from __future__ import annotations

import importlib
import threading
from collections import deque
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from hello_device.audio import CAPTURE_RATE
from hello_device.audio.player import Player
from hello_device.audio.resample import Resampler

__all__ = [
    "PACKAGE",
    "EchoCanceller",
    "EchoCancellerUnavailable",
    "FarEndTap",
    "TappedPlayer",
    "available",
    "unavailable_reason",
]

PACKAGE: Final = "pywebrtc-audio"
"""The PyPI distribution that provides the canceller (module ``pywebrtc_audio``)."""

_MODULE: Final = "pywebrtc_audio"
_RATES: Final = (8000, 16000, 32000, 48000)
_SUBFRAME_MS: Final = 10


class EchoCancellerUnavailable(RuntimeError):
    """The echo-cancellation package cannot be imported or does not work here."""


@lru_cache(maxsize=1)
def _probe() -> tuple[Any, str | None]:
    """(module, None) when the package imports and processes one frame; else (None, why)."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError as exc:
        return None, f"{PACKAGE} is not installed ({exc}); pip install '{PACKAGE}>=0.2'"
    except Exception as exc:  # a broken binary wheel: OSError, undefined symbols, ...
        return None, f"{PACKAGE} does not load: {type(exc).__name__}: {exc}"
    try:
        canceller = module.EchoCanceller(sample_rate=CAPTURE_RATE, num_channels=1)
        silence = np.zeros(CAPTURE_RATE // 100, dtype=np.int16)
        out = canceller.process(silence, silence)
        if len(out) != len(silence):
            return None, f"{PACKAGE}: process() returned {len(out)} samples for {len(silence)}"
    except Exception as exc:
        return None, f"{PACKAGE} does not work: {type(exc).__name__}: {exc}"
    return module, None


def available() -> bool:
    """The in-process echo canceller can be used here."""
    return _probe()[0] is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (for a log line), or None when it is True."""
    return _probe()[1]


class EchoCanceller:
    """WebRTC AEC3 on captured frames of ``frame_ms`` at ``rate`` (16-bit mono PCM).

    :param frame_ms: length of one captured frame; a multiple of 10 ms.
    :param rate: sample rate of both the microphone and the far-end frames.
    :param stream_delay_ms: hint for the delay from the far end to its echo (output
        buffering plus the acoustic path); 0 lets AEC3 estimate it, which it does within
        about a second of far-end sound.
    :raises EchoCancellerUnavailable: the package is missing or broken (see
        :func:`unavailable_reason`).
    :raises ValueError: an unsupported rate or frame length.
    """

    def __init__(self, frame_ms: int, rate: int = CAPTURE_RATE, stream_delay_ms: int = 0) -> None:
        if rate not in _RATES:
            raise ValueError(f"rate must be one of {_RATES}, not {rate!r}")
        if frame_ms <= 0 or frame_ms % _SUBFRAME_MS:
            raise ValueError(f"frame_ms must be a positive multiple of 10, not {frame_ms!r}")
        if stream_delay_ms < 0:
            raise ValueError(f"stream_delay_ms must not be negative, not {stream_delay_ms!r}")
        module, why = _probe()
        if module is None:
            raise EchoCancellerUnavailable(why)
        self.frame_ms: Final = frame_ms
        self.rate: Final = rate
        self.frame_samples: Final = rate * frame_ms // 1000
        self._sub: Final = rate * _SUBFRAME_MS // 1000
        self._impl: Any = module.EchoCanceller(
            sample_rate=rate, num_channels=1, stream_delay_ms=stream_delay_ms
        )
        self._far = np.zeros(self.frame_samples, dtype=np.int16)
        self._out = np.zeros(self.frame_samples, dtype=np.int16)
        self.frames = 0
        """Frames processed since creation or :meth:`reset`."""
        self._echo_in = 0.0
        self._echo_out = 0.0

    def process(self, mic_frame: bytes, far_frame: bytes) -> bytes:
        """The microphone frame with the echo of ``far_frame`` removed.

        ``mic_frame`` must be exactly one frame. ``far_frame`` is what the loudspeaker
        played over the same interval at the same rate; shorter (or empty, when nothing
        played) is padded with silence, longer is cut.
        """
        n = self.frame_samples
        if len(mic_frame) != 2 * n:
            raise ValueError(f"mic_frame must be {2 * n} bytes, not {len(mic_frame)}")
        mic = np.frombuffer(mic_frame, dtype="<i2")
        far = self._far
        got = min(n, len(far_frame) // 2)
        far[:got] = np.frombuffer(far_frame, dtype="<i2", count=got)
        far[got:] = 0
        out = self._out
        sub = self._sub
        for i in range(0, n, sub):
            out[i : i + sub] = self._impl.process(mic[i : i + sub], far[i : i + sub])
        if got:
            # Attenuation while the far end plays (ERLE, including any near-end speech).
            self._echo_in += float(np.dot(mic.astype(np.float64), mic))
            self._echo_out += float(np.dot(out.astype(np.float64), out))
        self.frames += 1
        return out.astype("<i2", copy=False).tobytes()

    @property
    def attenuation_db(self) -> float | None:
        """Energy removed from the microphone in frames with far-end audio, in dB, since
        creation or :meth:`reset` (an ERLE estimate; near-end speech lowers it)."""
        if self._echo_in <= 0.0:
            return None
        return float(10.0 * np.log10(self._echo_in / max(self._echo_out, 1.0)))

    def reset(self) -> None:
        """Forget the adapted echo path (after a device or volume change)."""
        self._impl.reset()
        self.frames = 0
        self._echo_in = self._echo_out = 0.0


class FarEndTap:
    """What the loudspeaker played, in order, at the capture rate, for the canceller.

    :meth:`feed` (the player's reader thread) appends output; :meth:`take` (the capture
    path) removes one frame's worth, padded with silence when the output has not got
    that far. At most ``max_ms`` is kept: if nothing takes (no canceller running, capture
    stalled), the oldest audio is dropped, so the reference never lags the echo by more.
    """

    def __init__(self, in_rate: int, out_rate: int = CAPTURE_RATE, max_ms: int = 200) -> None:
        if max_ms <= 0:
            raise ValueError(f"max_ms must be positive, not {max_ms!r}")
        self.out_rate: Final = out_rate
        self.max_samples: Final = out_rate * max_ms // 1000
        self._lock = threading.Lock()
        self._chunks: deque[NDArray[np.int16]] = deque()
        self._queued = 0
        self._resampler = Resampler(in_rate, out_rate, "LL")
        self.dropped = 0
        """Samples dropped because nobody took them in time."""

    @property
    def in_rate(self) -> int:
        return self._resampler.in_rate

    def set_in_rate(self, rate: int) -> None:
        """The player's rate changed: start over at the new rate."""
        with self._lock:
            self._resampler = Resampler(rate, self.out_rate, "LL")
            self._chunks.clear()
            self._queued = 0

    def feed(self, pcm: bytes) -> None:
        """Append what the player output (int16 at :attr:`in_rate`)."""
        samples = np.frombuffer(pcm, dtype="<i2")
        with self._lock:
            converted = self._resampler.process(samples)
            if not len(converted):
                return
            self._chunks.append(np.array(converted, dtype=np.int16))
            self._queued += len(converted)
            while self._queued > self.max_samples:
                extra = self._queued - self.max_samples
                head = self._chunks[0]
                if len(head) <= extra:
                    self._chunks.popleft()
                    self._queued -= len(head)
                    self.dropped += len(head)
                else:
                    self._chunks[0] = head[extra:]
                    self._queued -= extra
                    self.dropped += extra

    def take(self, n: int) -> bytes:
        """The oldest ``n`` samples as bytes (silence-padded at the end if fewer)."""
        out = np.zeros(max(0, n), dtype=np.int16)
        k = 0
        with self._lock:
            while k < n and self._chunks:
                head = self._chunks[0]
                m = min(len(head), n - k)
                out[k : k + m] = head[:m]
                k += m
                if m == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[m:]
            self._queued -= k
        return out.astype("<i2", copy=False).tobytes()

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._queued = 0

    @property
    def queued_samples(self) -> int:
        return self._queued


class TappedPlayer(Player):
    """A :class:`Player` that copies everything it outputs into :attr:`tap`."""

    def __init__(self, rate: int = 16000, volume: float = 1.0, fade_ms: float = 5.0) -> None:
        self.tap = FarEndTap(rate)
        """The far end for an :class:`EchoCanceller` (at the capture rate)."""
        super().__init__(rate, volume, fade_ms)

    def set_rate(self, rate: int) -> None:
        super().set_rate(rate)
        if rate != self.tap.in_rate:
            self.tap.set_in_rate(rate)
        else:
            self.tap.clear()

    def read(self, n: int) -> bytes:
        out = super().read(n)
        self.tap.feed(out)
        return out
