"""Streaming resamplers for the live audio paths and for whole files (numpy, soxr).

Imported only where rates differ: a device whose sound card, platform formats and
output all run at 16 kHz never loads numpy (see :mod:`hello_device.audio.convert`).

:class:`Resampler` works in float32 on raw int16 values and rounds and saturates on the
way back to int16, so loud input can clip but never wraps around; feeding it in chunks
of any size gives the same samples as feeding it at once.

Latency decides the engine. soxr (``soxr.ResampleStream``) is excellent but works in
blocks and holds audio back until a block is complete: up to ~115 ms (HQ) or ~60 ms (LQ)
for 16 kHz to 8 kHz, ~20-37 ms for 48 kHz to 16 kHz. On the live paths that would break
the capture-to-wire budget (<= 5 ms) and strand the last tens of milliseconds of every
agent turn inside the resampler. So the live paths use quality ``"LL"``: our own
streaming polyphase windowed-sinc filter (:class:`SincResampler`, Kaiser window, 16 zero
crossings each side at the lower rate), which holds back only its half-width, 0.4-2.3 ms
(2.25 ms at 8 kHz) and needs no flush. Its stop band is about -80 dB, pass band flat to
~0.9 of the lower Nyquist rate: more than speech needs. soxr recipes (``"LQ"`` ...
``"VHQ"``) remain for whole-file work. Equal rates are a pass-through with no latency
and no copy.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import soxr
from numpy.typing import NDArray

__all__ = ["QUALITIES", "Resampler", "SincResampler", "is_fast_ratio"]

QUALITIES: Final = ("LL", "QQ", "LQ", "MQ", "HQ", "VHQ")
"""``LL``: the low-latency windowed-sinc stream (:class:`SincResampler`); the others are
soxr quality recipes, quickest first (``QQ`` is cubic interpolation without an
anti-alias filter: do not use it to lower the rate)."""

_EMPTY_I16: Final[NDArray[np.int16]] = np.zeros(0, dtype=np.int16)
_EMPTY_I16.flags.writeable = False
_EMPTY_F32: Final[NDArray[np.float32]] = np.zeros(0, dtype=np.float32)


def _check_rate(name: str, rate: int) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer sample rate, not {rate!r}")


_FAST_RATIO: Final = 8
"""Rates whose reduced ratio has both terms up to this use the per-phase fast path."""


def is_fast_ratio(in_rate: int, out_rate: int) -> bool:
    """True when the live resampler takes its per-phase fast path (or passes through)."""
    g = math.gcd(in_rate, out_rate)
    return out_rate // g <= _FAST_RATIO and in_rate // g <= _FAST_RATIO


class SincResampler:
    """Streaming polyphase windowed-sinc resampling of float32 mono samples.

    Output sample ``m`` sits at input time ``m * in_rate / out_rate``; it is computed from
    the ``2 * half_width`` input samples around it as soon as the last of them has
    arrived, so the stream holds back only ``half_width`` input samples. Each phase's
    taps are normalised to unit DC gain. Outputs depend only on absolute sample
    positions, so any chunking gives bit-identical results.
    """

    def __init__(self, in_rate: int, out_rate: int, zero_crossings: int = 16) -> None:
        g = math.gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g
        cutoff = min(1.0, out_rate / in_rate) * 0.92
        self.half_width = k = math.ceil(zero_crossings / cutoff)
        offsets = np.arange(-k + 1, k + 1, dtype=np.float64)
        phases = np.arange(self.up, dtype=np.float64)[:, None] / self.up
        t = offsets[None, :] - phases
        beta = 8.0
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / k) ** 2, 0.0, 1.0))) / np.i0(beta)
        taps = cutoff * np.sinc(cutoff * t) * window
        taps /= taps.sum(axis=1, keepdims=True)
        self._taps: NDArray[np.float32] = taps.astype(np.float32)
        self._offsets = np.arange(-k + 1, k + 1, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        k = self.half_width
        self._buf: NDArray[np.float32] = np.zeros(k, dtype=np.float32)
        self._base = -k  # absolute input index of _buf[0]
        self._n_in = 0  # input samples received
        self._m = 0  # next output index

    def process(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        if len(x):
            self._buf = np.concatenate((self._buf, x))
            self._n_in += len(x)
        last = self._n_in - 1 - self.half_width  # the newest centre with all its taps
        if last < 0:
            return _EMPTY_F32
        up, down = self.up, self.down
        m_end = (last * up + up - 1) // down + 1
        if m_end <= self._m:
            return _EMPTY_F32
        if up <= _FAST_RATIO and down <= _FAST_RATIO:
            out = self._by_phase(m_end)
        else:
            ms = np.arange(self._m, m_end, dtype=np.int64)
            centre = (ms * down) // up
            phase = (ms * down) % up
            idx = (centre - self._base)[:, None] + self._offsets[None, :]
            out = np.einsum("ij,ij->i", self._buf[idx], self._taps[phase]).astype(np.float32)
        self._m = m_end
        keep = (m_end * down) // up - self.half_width + 1 - self._base
        if keep > 0:
            self._buf = self._buf[keep:]
            self._base += keep
        return out

    def _by_phase(self, m_end: int) -> NDArray[np.float32]:
        """Small integer ratios (48k<->16k, 16k->8k, 8k->48k, ...): one C-speed
        correlation per output phase instead of a gathered matrix."""
        up, down, k, m0 = self.up, self.down, self.half_width, self._m
        out = np.empty(m_end - m0, dtype=np.float32)
        for first in range(m0, min(m0 + up, m_end)):
            count = (m_end - 1 - first) // up + 1
            start = (first * down) // up - self._base - k + 1
            segment = self._buf[start : start + (count - 1) * down + 2 * k]
            taps = self._taps[(first * down) % up]
            out[first - m0 :: up] = np.correlate(segment, taps, "valid")[::down][:count]
        return out

    def flush(self) -> NDArray[np.float32]:
        """The held tail (input padded with silence), then a fresh stream."""
        total = -(-self._n_in * self.up // self.down)
        tail = self.process(np.zeros(self.half_width + 1, dtype=np.float32))
        tail = tail[: max(0, total - (self._m - len(tail)))]
        self.reset()
        return tail

    @property
    def pending(self) -> float:
        """Output samples held back (up to the filter's half-width, in output samples)."""
        return min(self.half_width, self._n_in) * self.up / self.down


class Resampler:
    """A streaming mono int16 resampler; state carries across :meth:`process` calls.

    When ``in_rate == out_rate`` it is a pass-through: :meth:`process` returns its input
    unchanged (no copy).
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        _check_rate("in_rate", in_rate)
        _check_rate("out_rate", out_rate)
        if quality not in QUALITIES:
            raise ValueError(f"unknown resampler quality {quality!r}; expected one of {QUALITIES}")
        self.in_rate: Final = in_rate
        self.out_rate: Final = out_rate
        self.quality: Final = quality
        self.passthrough: Final = in_rate == out_rate
        """True when the rates are equal and samples go through untouched."""
        self._sinc = SincResampler(in_rate, out_rate) if quality == "LL" else None
        self._stream: soxr.ResampleStream | None = (
            None
            if self.passthrough or self._sinc is not None
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )
        self._fbuf: NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def process(self, x: NDArray[np.int16]) -> NDArray[np.int16]:
        """Resample the next chunk (1-D int16, any length, may be a strided view).

        Returns the output samples that are ready; the rest stays inside until later
        input or :meth:`flush`.
        """
        if x.dtype != np.int16 or x.ndim != 1:
            raise TypeError(f"Resampler needs 1-D int16 samples, not {x.ndim}-D {x.dtype}")
        if self.passthrough:
            return x
        n = len(x)
        if n == 0:
            return _EMPTY_I16
        if len(self._fbuf) < n:
            self._fbuf = np.zeros(max(n, 2 * len(self._fbuf)), dtype=np.float32)
        buf = self._fbuf[:n]
        np.copyto(buf, x, casting="unsafe")
        if self._sinc is not None:
            return self._to_int16(self._sinc.process(buf.copy()))
        assert self._stream is not None
        return self._to_int16(self._stream.resample_chunk(buf))

    def flush(self) -> NDArray[np.int16]:
        """End the stream: return the samples still held inside, then start afresh."""
        if self._sinc is not None:
            return self._to_int16(self._sinc.flush())
        if self._stream is None:
            return _EMPTY_I16
        tail = self._stream.resample_chunk(_EMPTY_F32, last=True)
        self._stream.clear()
        return self._to_int16(tail)

    def reset(self) -> None:
        """Drop everything held inside and start afresh (a new, unrelated stream)."""
        if self._sinc is not None:
            self._sinc.reset()
        if self._stream is not None:
            self._stream.clear()

    @property
    def pending(self) -> float:
        """Output samples held inside right now (the filter's delay)."""
        if self._sinc is not None:
            return self._sinc.pending
        return 0.0 if self._stream is None else float(self._stream.delay())

    @staticmethod
    def _to_int16(y: NDArray[np.float32]) -> NDArray[np.int16]:
        if len(y) == 0:
            return _EMPTY_I16
        np.rint(y, out=y)
        np.clip(y, -32768.0, 32767.0, out=y)
        return y.astype(np.int16)
