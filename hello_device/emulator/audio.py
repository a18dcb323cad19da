"""Audio helpers of the emulator (its own, independent of the device's audio code on
purpose: the two must not share a misreading of the formats)."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from hello_device.emulator.config import FRAME, RATE

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Audio helpers (private; independent of hello_device.audio on purpose)
# ---------------------------------------------------------------------------------------

Int16Array = npt.NDArray[np.int16]


def _format_rate(fmt: str) -> int:
    return int(fmt.split("_", 1)[1])


def _ulaw_decode_table() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """µ-law byte for every int16 value, indexed by ``sample + 32768`` (ITU G.711 / Sun
    reference: 14-bit magnitude, bias 33, clip 8159)."""
    x14 = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = x14 < 0
    magnitude = np.minimum(np.where(negative, -x14, x14), 8159) + 33
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    uval = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    table: npt.NDArray[np.uint8] = np.where(negative, uval ^ 0x7F, uval ^ 0xFF).astype(np.uint8)
    return table


_ULAW_DECODE = _ulaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()


def _ulaw_decode(data: bytes) -> Int16Array:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def _ulaw_encode(samples: Int16Array) -> bytes:
    return _ULAW_ENCODE[samples.astype(np.int32) + 32768].tobytes()


def _resample(samples: Int16Array, rate_in: int, rate_out: int) -> Int16Array:
    if rate_in == rate_out or samples.size == 0:
        return samples
    y = soxr.resample(samples.astype(np.float32) / 32768.0, rate_in, rate_out)
    return np.clip(np.round(np.asarray(y) * 32768.0), -32768, 32767).astype(np.int16)


def _encode_output(samples16k: Int16Array, fmt: str) -> bytes:
    """16 kHz samples -> bytes in an agent output format."""
    out = _resample(samples16k, RATE, _format_rate(fmt))
    if fmt.startswith("ulaw"):
        return _ulaw_encode(out)
    return out.astype("<i2").tobytes()


def _bytes_per_sample(fmt: str) -> int:
    return 1 if fmt.startswith("ulaw") else 2


def _load_wav(path: str | Path) -> Int16Array:
    """A WAV file (8/16/24/32-bit PCM, any rate and channel count) as 16 kHz mono int16."""
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data
    if rate != RATE:
        mono = np.asarray(soxr.resample(mono, rate, RATE), dtype=np.float32)
    samples: Int16Array = np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)
    return samples


def _speech_like(duration_s: float) -> Int16Array:
    """A deterministic voiced, syllabic signal at 16 kHz standing in for TTS."""
    n = max(int(duration_s * RATE), FRAME)
    t = np.arange(n) / RATE
    f0 = 150.0 + 25.0 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 16))
    syllables = np.clip(np.sin(np.pi * 4.0 * t + 0.3), 0.0, None) ** 0.6
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    signal = voice * syllables * ramp
    peak = float(np.max(np.abs(signal))) or 1.0
    samples: Int16Array = (signal / peak * 0.5 * 32767).astype(np.int16)
    return samples


class _InputDecoder:
    """Client audio chunks (one input format) -> 16 kHz mono int16.

    Each chunk is resampled on its own (no added latency); the output length is corrected
    against the running totals so that the 16 kHz timeline never drifts, whatever the
    chunk sizes.
    """

    def __init__(self, fmt: str) -> None:
        self._ulaw = fmt.startswith("ulaw")
        self._rate = _format_rate(fmt)
        self._carry = b""
        self._in_total = 0
        self._out_total = 0

    def decode(self, data: bytes) -> Int16Array:
        if self._ulaw:
            samples = _ulaw_decode(data)
        else:
            data = self._carry + data
            cut = len(data) - len(data) % 2
            self._carry = data[cut:]
            samples = np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
        out = _resample(samples, self._rate, RATE)
        if self._rate != RATE:
            self._in_total += samples.size
            want = round(self._in_total * RATE / self._rate) - self._out_total
            if out.size > want:
                out = out[: max(want, 0)]
            elif out.size < want:
                pad = out[-1] if out.size else np.int16(0)
                out = np.concatenate([out, np.full(want - out.size, pad, dtype=np.int16)])
        self._out_total += out.size
        return out
