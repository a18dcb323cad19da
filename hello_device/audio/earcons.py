"""Earcons: short generated cues, so the device needs no sound assets.

* ``listen``: a rising two-tone blip (~120 ms), the device is now listening;
* ``end``: a falling two-tone (~150 ms), the conversation is over;
* ``error``: two low beeps (~300 ms), something went wrong.

Every tone has a raised-cosine attack and release, so the sound starts and ends at zero
and never clicks; the peak is ``level`` times full scale. Results are cached per
``(kind, rate, level)`` as native-endian int16 ``bytes`` (push them to the Player as
they are). Plain Python: a cue is a few thousand samples, rendered once.
"""

from __future__ import annotations

import functools
import math
from array import array
from typing import Final, Literal

__all__ = ["EARCON_KINDS", "EarconKind", "earcon"]

EarconKind = Literal["listen", "end", "error"]
EARCON_KINDS: Final[tuple[EarconKind, ...]] = ("listen", "end", "error")

_RAMP_S: Final = 0.010  # attack and release of every tone

# (frequency in Hz, or 0 for a pause; duration in s)
_SEQUENCES: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    "listen": ((660.0, 0.055), (990.0, 0.065)),
    "end": ((880.0, 0.070), (587.33, 0.080)),
    "error": ((330.0, 0.110), (0.0, 0.080), (330.0, 0.110)),
}


def earcon(kind: EarconKind, rate: int, level: float) -> bytes:
    """The ``kind`` cue at ``rate`` Hz, peaking at ``level`` (0..1) of full scale."""
    if kind not in _SEQUENCES:
        raise ValueError(f"unknown earcon {kind!r}; expected one of {', '.join(EARCON_KINDS)}")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"earcon rate must be a positive integer, not {rate!r}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"earcon level must be between 0 and 1, not {level!r}")
    return _render(kind, rate, float(level))


@functools.lru_cache(maxsize=32)
def _render(kind: str, rate: int, level: float) -> bytes:
    signal = [x for freq, dur in _SEQUENCES[kind] for x in _tone(freq, dur, rate)]
    peak = max((abs(x) for x in signal), default=0.0)
    scale = level * 32767.0 / peak if peak > 0 else 0.0
    return array("h", [round(x * scale) for x in signal]).tobytes()


def _tone(freq: float, duration: float, rate: int) -> list[float]:
    n = round(duration * rate)
    if freq <= 0:
        return [0.0] * n
    step = 2 * math.pi * freq / rate
    wave = [math.sin(step * i) for i in range(n)]
    ramp = min(round(_RAMP_S * rate), n // 2)
    # Raised cosine from 0 (first sample) towards 1, mirrored for the release.
    for i in range(ramp):
        env = 0.5 - 0.5 * math.cos(math.pi * i / ramp)
        wave[i] *= env
        wave[n - 1 - i] *= env
    return wave
