"""The resamplers: pass-through, chunked equals one-shot, flush and reset, saturation,
and the low-latency ("LL") live engine."""

from __future__ import annotations

import numpy as np
import pytest

from hello_device.audio.convert import (
    to_mono,
)
from hello_device.audio.resample import Resampler
from tests.audio.signals import random_cuts, sine

# --- Resampler ------------------------------------------------------------------------------


def test_resampler_passthrough_returns_input() -> None:
    r = Resampler(16000, 16000)
    x = sine(440, 16000, 0.02)
    assert r.process(x) is x
    assert len(r.flush()) == 0


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(48000, 16000), (16000, 44100), (8000, 48000), (22050, 24000)]
)
@pytest.mark.parametrize("quality", ["LQ", "HQ"])
def test_resampler_chunked_equals_one_shot(in_rate: int, out_rate: int, quality: str) -> None:
    rng = np.random.default_rng(in_rate + out_rate)
    x = (rng.standard_normal(in_rate) * 4000).astype(np.int16)
    one = Resampler(in_rate, out_rate, quality)
    whole = np.concatenate([one.process(x), one.flush()])
    chunked = Resampler(in_rate, out_rate, quality)
    parts, prev = [], 0
    for cut in random_cuts(len(x), rng, 1500):
        parts.append(chunked.process(x[prev:cut]))
        prev = cut
    parts.append(chunked.flush())
    assert np.array_equal(np.concatenate(parts), whole)
    assert len(whole) == pytest.approx(len(x) * out_rate / in_rate, abs=2)


def test_resampler_flush_and_reset_start_a_fresh_stream() -> None:
    x = sine(1000, 48000, 0.1)
    fresh = Resampler(48000, 16000)
    expected = np.concatenate([fresh.process(x), fresh.flush()])
    r = Resampler(48000, 16000)
    r.process(sine(300, 48000, 0.05))
    r.flush()
    assert np.array_equal(np.concatenate([r.process(x), r.flush()]), expected)
    r.process(sine(300, 48000, 0.05))
    r.reset()
    assert np.array_equal(np.concatenate([r.process(x), r.flush()]), expected)


def test_resampler_saturates_instead_of_wrapping() -> None:
    # A full-scale square wave overshoots (Gibbs) when filtered: must clip, not wrap.
    period = 48
    x = np.where(np.arange(48000) % period < period // 2, 32767, -32768).astype(np.int16)
    r = Resampler(48000, 16000)
    y = np.concatenate([r.process(x), r.flush()])
    assert y.max() == 32767 and y.min() == -32768
    # No wrap-around: loud output samples have the sign of the input at the same time.
    loud = np.flatnonzero(np.abs(y.astype(np.int32)) > 30000)
    assert len(loud) > len(y) // 4
    assert np.all(np.sign(y[loud]) == np.sign(x[3 * loud]))


def test_resampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="quality"):
        Resampler(16000, 8000, "best")
    with pytest.raises(ValueError, match="in_rate"):
        Resampler(0, 8000)
    with pytest.raises(TypeError):
        Resampler(16000, 8000).process(np.zeros(10, dtype=np.float32))


# --- to_mono ----------------------------------------------------------------------------------


def test_to_mono_pick_and_mix() -> None:
    x = np.array([1, 10, -3, 20, 5, -7], dtype=np.int16)  # 3 frames of 2 channels
    assert to_mono(x, 2, 0).tolist() == [1, -3, 5]
    assert to_mono(x, 2, 1).tolist() == [10, 20, -7]
    assert to_mono(x, 2, "mix").tolist() == [6, 9, -1]  # 5.5 -> 6, 8.5 -> 9, -1 -> -1
    loud = np.array([32767, 32767, -32768, -32768], dtype=np.int16)
    assert to_mono(loud, 2, "mix").tolist() == [32767, -32768]
    three = np.array([3, 6, 9, -1, -1, -2], dtype=np.int16)
    assert to_mono(three, 3, "mix").tolist() == [6, -1]
    assert to_mono(x, 1, "mix") is x


def test_to_mono_rejects_bad_channels() -> None:
    x = np.zeros(6, dtype=np.int16)
    with pytest.raises(ValueError, match="channel"):
        to_mono(x, 2, 2)
    with pytest.raises(ValueError, match="whole frames"):
        to_mono(x, 4, 0)


# ------------------------------------------------- the low-latency ("LL") live engine

LL_PAIRS = [
    (16000, 8000),
    (16000, 44100),
    (48000, 16000),
    (44100, 16000),
    (8000, 48000),
    (22050, 48000),
    (24000, 16000),
]


@pytest.mark.parametrize(("src", "dst"), LL_PAIRS)
def test_ll_holds_back_at_most_two_and_a_half_milliseconds(src: int, dst: int) -> None:
    r = Resampler(src, dst, "LL")
    fed = 0
    got = 0
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, src // 50))
        fed += n
        got += len(r.process(sine(440, src, n / src)[:n]))
        held_ms = (fed * dst / src - got) * 1000 / dst
        assert held_ms <= 2.5, (src, dst, held_ms)


@pytest.mark.parametrize(("src", "dst"), LL_PAIRS)
def test_ll_chunked_equals_one_shot_and_flush_completes(src: int, dst: int) -> None:
    x = sine(700, src, 0.5)
    one = Resampler(src, dst, "LL")
    whole = np.concatenate([one.process(x), one.flush()])
    chunked = Resampler(src, dst, "LL")
    rng = np.random.default_rng(7)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        parts.append(chunked.process(x[i : i + n]))
        i += n
    parts.append(chunked.flush())
    assert np.array_equal(np.concatenate(parts), whole)
    assert abs(len(whole) - round(len(x) * dst / src)) <= 1


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (16000, 8000), (44100, 16000)])
def test_ll_rejects_what_would_alias(src: int, dst: int) -> None:
    """A tone above the new Nyquist frequency must all but vanish (>= 60 dB down)."""
    loud = sine(dst * 0.5 * 1.2, src, 0.5)  # 20 % above the output's Nyquist
    out = Resampler(src, dst, "LL").process(loud)[len(loud) // 10 :].astype(np.float64)
    ref = np.sqrt(np.mean(loud.astype(np.float64) ** 2))
    level = np.sqrt(np.mean(out**2)) + 1e-9
    assert 20 * np.log10(level / ref) < -60
