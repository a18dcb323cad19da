"""Test signals and measurements for the conversion tests: sines, peak frequency,
level, random chunking."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.core.formats import (
    AUDIO_FORMATS,
)

PCM_NAMES = [n for n in AUDIO_FORMATS if n.startswith("pcm_")]
OUT_RATES = [16000, 44100, 48000]


# --- helpers ----------------------------------------------------------------------------


def sine(freq: float, rate: int, seconds: float, amp: float = 0.25) -> NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(x: NDArray[np.int16], rate: int) -> float:
    """Frequency of the strongest FFT bin, refined by parabolic interpolation."""
    w = x.astype(np.float64) * np.hanning(len(x))
    mag = np.log(np.abs(np.fft.rfft(w)) + 1e-9)
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + offset) * rate / len(x))


def rms_db(x: NDArray[np.int16]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / 32768))


def middle(x: NDArray[np.int16], rate: int, edge_s: float = 0.1) -> NDArray[np.int16]:
    """Drop the edges, where resampler start-up and held-back samples live."""
    edge = round(edge_s * rate)
    assert len(x) > 4 * edge, f"only {len(x)} samples"
    return x[edge:-edge]


def assert_same_tone(out: NDArray[np.int16], rate: int, freq: float, ref_db: float) -> None:
    mid = middle(out, rate)
    assert peak_hz(mid, rate) == pytest.approx(freq, rel=0.005)
    assert rms_db(mid) == pytest.approx(ref_db, abs=1.0)


def random_cuts(total: int, rng: np.random.Generator, max_len: int) -> list[int]:
    cuts, pos = [], 0
    while pos < total:
        pos = min(total, pos + int(rng.integers(0, max_len + 1)))
        cuts.append(pos)
    return cuts


def i16(data: bytes) -> NDArray[np.int16]:
    """Little-endian int16 bytes as samples."""
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    out, prev = [], 0
    for c in cuts:
        out.append(data[prev:c])
        prev = c
    return out


TONE_DB = rms_db(sine(1000, 16000, 1.0))
