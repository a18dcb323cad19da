"""Signal level helpers: the C path (audioop) and the numpy fallback agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hello_device.core import level


@pytest.mark.parametrize("use_audioop", [True, False])
def test_rms_and_sum_of_squares(use_audioop: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_audioop:
        monkeypatch.setattr(level, "_rms", None)
    elif level._rms is None:  # pragma: no cover - Python 3.13+ without audioop-lts
        pytest.skip("audioop unavailable")
    tone = (10000 * np.sin(2 * math.pi * 440 * np.arange(320) / 16000)).astype("<i2")
    pcm = tone.tobytes()
    exact = math.sqrt(float(np.mean(tone.astype(np.float64) ** 2)))
    assert level.rms_int16(pcm) == pytest.approx(exact, abs=1.0)
    assert level.sum_squares(pcm) == pytest.approx(exact**2 * 320, rel=1e-3)
    assert level.rms_int16(pcm + b"\x01") == level.rms_int16(pcm)  # odd byte ignored
    assert level.rms_int16(b"") == 0.0
    assert level.rms_int16(bytes(640)) == 0.0
