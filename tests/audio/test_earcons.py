"""Generated earcons: length, level, shape, no clicks, caching."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.earcons import EARCON_KINDS, EarconKind
from hello_device.audio.earcons import earcon as earcon_bytes


def earcon(kind: EarconKind, rate: int, level: float) -> NDArray[np.int16]:
    """The cue as samples."""
    return np.frombuffer(earcon_bytes(kind, rate, level), dtype=np.int16)


RATES = [16000, 22050, 44100, 48000]
DURATION_MS = {"listen": 120, "end": 150, "error": 300}


def dominant_hz(x: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64), n=8 * len(x)))
    return float(np.argmax(spectrum) * rate / (8 * len(x)))


@pytest.mark.parametrize("kind", EARCON_KINDS)
@pytest.mark.parametrize("rate", RATES)
def test_duration_and_peak(kind: EarconKind, rate: int) -> None:
    x = earcon(kind, rate, 0.3)
    assert x.dtype == np.int16 and x.ndim == 1
    assert len(x) / rate * 1000 == pytest.approx(DURATION_MS[kind], abs=2)
    assert int(np.max(np.abs(x))) == round(0.3 * 32767)


@pytest.mark.parametrize("kind", EARCON_KINDS)
@pytest.mark.parametrize("rate", RATES)
def test_no_clicks(kind: EarconKind, rate: int) -> None:
    x = earcon(kind, rate, 1.0).astype(np.int32)
    peak = 32767
    # Starts and ends at (nearly) zero, and gets there smoothly.
    assert abs(x[0]) <= 0.01 * peak and abs(x[-1]) <= 0.01 * peak
    ms = rate // 1000
    assert np.max(np.abs(x[:ms])) < 0.1 * peak
    assert np.max(np.abs(x[-ms:])) < 0.1 * peak
    # No jumps anywhere: a sample never moves further than the highest tone allows.
    highest = 1000.0
    assert np.max(np.abs(np.diff(x))) <= 1.05 * peak * 2 * np.pi * highest / rate


def test_listen_rises_end_falls() -> None:
    rate = 16000
    listen = earcon("listen", rate, 0.5)
    half = len(listen) // 2
    assert dominant_hz(listen[:half], rate) < dominant_hz(listen[half:], rate)
    end = earcon("end", rate, 0.5)
    half = len(end) // 2
    assert dominant_hz(end[:half], rate) > dominant_hz(end[half:], rate)


def test_error_is_two_low_beeps() -> None:
    rate = 16000
    x = earcon("error", rate, 0.5)
    envelope = np.abs(x.astype(np.float64)).reshape(-1, rate // 100).max(axis=1)  # 10 ms
    loud = envelope > 0.25 * envelope.max()
    starts = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    assert len(starts) + int(loud[0]) == 2  # two separate beeps
    assert not loud[len(loud) // 2]  # a pause in the middle
    assert dominant_hz(x, rate) < 500


def test_cached_and_immutable() -> None:
    a = earcon_bytes("listen", 16000, 0.3)
    assert isinstance(a, bytes)  # immutable: safe to share between pushes
    assert earcon_bytes("listen", 16000, 0.3) is a
    assert earcon_bytes("listen", 16000, 0.31) is not a


def test_level_zero_is_silent() -> None:
    assert not np.any(earcon("end", 16000, 0.0))


@pytest.mark.parametrize(
    ("kind", "rate", "level"),
    [("beep", 16000, 0.3), ("listen", 0, 0.3), ("listen", 16000, 1.5), ("end", 16000, -0.1)],
)
def test_rejects_bad_arguments(kind: str, rate: int, level: float) -> None:
    with pytest.raises(ValueError):
        earcon_bytes(kind, rate, level)  # type: ignore[arg-type]
