"""Platform audio formats and G.711 µ-law.

The platform names its audio formats ``pcm_8000``, ``pcm_16000``, ``pcm_22050``,
``pcm_24000``, ``pcm_44100``, ``pcm_48000`` (signed 16-bit little-endian mono) and
``ulaw_8000`` (G.711 µ-law, 8 kHz mono). :class:`AudioFormat` is the parsed form of
such a name; :func:`decode` and :func:`encode` convert between wire bytes and int16
sample arrays.

µ-law follows the ITU-T G.711 / Sun ``g711.c`` reference (the same code points as
the removed ``audioop.lin2ulaw``/``ulaw2lin``): the 16-bit sample is reduced to 14 bits,
biased, split into a 3-bit segment and a 4-bit mantissa, and all bits are inverted.
Both directions are single table look-ups built once at import (256 entries to decode,
65536 to encode).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from hello_device.core.formats import AudioFormat

__all__ = [
    "AudioFormat",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]


_LE_INT16 = np.dtype("<i2")


# --- G.711 µ-law ---------------------------------------------------------------------

_ULAW_BIAS = 0x84  # 132, in 16-bit units (33 in 14-bit units)
_ULAW_CLIP = 8159  # largest 14-bit magnitude before the bias
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((codes & 0x0F) << 3) + _ULAW_BIAS) << ((codes & 0x70) >> 4)
    linear = np.where(codes & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS)
    table = linear.astype(np.int16)
    table.flags.writeable = False
    return table


def _build_encode_table() -> NDArray[np.uint8]:
    # Index: the int16 sample viewed as uint16; value: its µ-law byte.
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32) >> 2
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, magnitude, side="left").astype(np.int32)
    shifted = magnitude >> np.minimum(seg + 1, 8)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | (shifted & 0x0F))
    table = (uval ^ mask).astype(np.uint8)
    table.flags.writeable = False
    return table


_ULAW_DECODE = _build_decode_table()
_ULAW_ENCODE = _build_encode_table()


def ulaw_decode(data: bytes | bytearray | memoryview) -> NDArray[np.int16]:
    """G.711 µ-law bytes to int16 samples (a new array)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ULAW_DECODE[codes]


def ulaw_encode(pcm: NDArray[np.int16]) -> bytes:
    """int16 samples to G.711 µ-law bytes."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"ulaw_encode needs int16 samples, not {samples.dtype}")
    return _ULAW_ENCODE[samples.view(np.uint16)].tobytes()


# --- wire bytes <-> samples ------------------------------------------------------------


def decode(fmt: AudioFormat, data: bytes | bytearray | memoryview) -> NDArray[np.int16]:
    """Wire bytes in ``fmt`` to int16 samples.

    For PCM the result may be a read-only view of ``data`` (no copy); an odd trailing
    byte is ignored.
    """
    if fmt.encoding == "ulaw":
        return ulaw_decode(data)
    count = len(data) // 2
    return np.frombuffer(data, dtype=_LE_INT16, count=count).astype(np.int16, copy=False)


def encode(fmt: AudioFormat, pcm: NDArray[np.int16]) -> bytes:
    """int16 samples to wire bytes in ``fmt`` (no resampling: ``pcm`` must be at ``fmt.rate``)."""
    if fmt.encoding == "ulaw":
        return ulaw_encode(pcm)
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"encode needs int16 samples, not {samples.dtype}")
    return samples.astype(_LE_INT16, copy=False).tobytes()
