"""The platform's audio formats, by name (pure).

``pcm_8000`` … ``pcm_48000`` are signed 16-bit little-endian mono; ``ulaw_8000`` is G.711
µ-law, 8 kHz mono. :class:`AudioFormat` is the parsed form of such a name; the
conversions live in :mod:`hello_device.audio.formats`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Literal

AudioFormatName = Literal[
    "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000", "ulaw_8000"
]
AUDIO_FORMATS: tuple[str, ...] = typing.get_args(AudioFormatName)
"""Every format name the platform uses, in the order the documentation lists them."""


@dataclass(frozen=True)
class AudioFormat:
    """A platform audio format: mono, either 16-bit PCM or 8-bit µ-law."""

    name: str
    """The platform's name, e.g. ``pcm_16000``."""
    encoding: Literal["pcm", "ulaw"]
    """``pcm``: signed 16-bit little-endian; ``ulaw``: G.711 µ-law, one byte a sample."""
    rate: int
    """Samples per second."""

    @classmethod
    def parse(cls, name: str) -> AudioFormat:
        """The format called ``name``; ValueError naming it and the allowed ones if unknown."""
        if name not in AUDIO_FORMATS:
            raise ValueError(
                f"unknown audio format {name!r}; expected one of {', '.join(AUDIO_FORMATS)}"
            )
        encoding, _, rate = name.partition("_")
        return cls(name, "ulaw" if encoding == "ulaw" else "pcm", int(rate))

    @property
    def bytes_per_sample(self) -> int:
        """2 for PCM, 1 for µ-law."""
        return 2 if self.encoding == "pcm" else 1

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes of ``ms`` milliseconds of audio (whole samples, rounded down)."""
        samples = self.rate * ms / 1000
        # Guard against 0.9999999 from float arithmetic before flooring.
        return math.floor(samples + 1e-9) * self.bytes_per_sample

    def ms_for_bytes(self, n: int) -> float:
        """Milliseconds of audio in ``n`` bytes (a trailing partial sample counts for nothing)."""
        return (n // self.bytes_per_sample) * 1000 / self.rate

    def __str__(self) -> str:
        return self.name
