"""Platform audio formats: names, sizes, G.711 µ-law both ways, PCM and µ-law wire bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from hello_device.audio.formats import (
    decode,
    encode,
    ulaw_decode,
    ulaw_encode,
)
from hello_device.core.formats import (
    AUDIO_FORMATS,
    AudioFormat,
)
from tests.audio.signals import sine

# --- AudioFormat --------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO_FORMATS)
def test_parse_every_platform_format(name: str) -> None:
    fmt = AudioFormat.parse(name)
    assert fmt.name == name
    assert fmt.rate == int(name.split("_")[1])
    assert fmt.encoding == ("ulaw" if name.startswith("ulaw") else "pcm")
    assert fmt.bytes_per_sample == (1 if fmt.encoding == "ulaw" else 2)
    assert str(fmt) == name


@pytest.mark.parametrize("bad", ["pcm_11025", "mp3_44100_128", "PCM_16000", "", "ulaw"])
def test_parse_rejects_unknown_names(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        AudioFormat.parse(bad)
    assert repr(bad) in str(err.value)
    assert "pcm_16000" in str(err.value) and "ulaw_8000" in str(err.value)


def test_bytes_and_ms() -> None:
    pcm16 = AudioFormat.parse("pcm_16000")
    assert pcm16.bytes_for_ms(20) == 640
    assert pcm16.ms_for_bytes(640) == 20.0
    assert pcm16.ms_for_bytes(641) == 20.0
    ulaw = AudioFormat.parse("ulaw_8000")
    assert ulaw.bytes_for_ms(20) == 160
    assert ulaw.ms_for_bytes(80) == 10.0
    pcm22 = AudioFormat.parse("pcm_22050")
    assert pcm22.bytes_for_ms(20) == 441 * 2
    assert pcm22.bytes_for_ms(10) == 220 * 2  # 220.5 samples: whole samples only
    assert AudioFormat.parse("pcm_44100").bytes_for_ms(10) == 441 * 2


# --- µ-law --------------------------------------------------------------------------------

# (linear sample, G.711 µ-law byte) per the ITU-T G.711 / Sun g711.c reference.
ULAW_ENCODE_POINTS = [
    (0, 0xFF),
    (1, 0xFF),
    (-1, 0x7E),
    (8, 0xFE),
    (-8, 0x7E),
    (100, 0xF2),
    (-100, 0x72),
    (1000, 0xCE),
    (-1000, 0x4E),
    (5000, 0xAB),
    (-5000, 0x2B),
    (10000, 0x9C),
    (-10000, 0x1C),
    (20000, 0x8C),
    (-20000, 0x0C),
    (32124, 0x80),
    (-32124, 0x00),
    (32767, 0x80),
    (-32768, 0x00),
]
ULAW_DECODE_POINTS = [
    (0xFF, 0),
    (0x7F, 0),
    (0xFE, 8),
    (0x7E, -8),
    (0xF0, 120),
    (0x70, -120),
    (0x80, 32124),
    (0x00, -32124),
    (0xCE, 988),
    (0x8C, 19836),
]


def test_ulaw_encode_known_code_points() -> None:
    pcm = np.array([v for v, _ in ULAW_ENCODE_POINTS], dtype=np.int16)
    assert list(ulaw_encode(pcm)) == [c for _, c in ULAW_ENCODE_POINTS]


def test_ulaw_decode_known_code_points() -> None:
    codes = bytes(c for c, _ in ULAW_DECODE_POINTS)
    assert ulaw_decode(codes).tolist() == [v for _, v in ULAW_DECODE_POINTS]
    assert ulaw_decode(codes).dtype == np.int16


def test_ulaw_code_round_trip_is_exact() -> None:
    levels = ulaw_decode(bytes(range(256)))
    again = ulaw_decode(ulaw_encode(levels))
    assert np.array_equal(again, levels)
    # Every code but "negative zero" (0x7F, which decodes to 0 like 0xFF) maps back to itself.
    codes = np.frombuffer(ulaw_encode(levels), dtype=np.uint8)
    differs = np.flatnonzero(codes != np.arange(256))
    assert differs.tolist() == [0x7F]


def test_ulaw_round_trip_error_within_quantisation() -> None:
    x = np.arange(-32768, 32768, dtype=np.int16)
    y = ulaw_decode(ulaw_encode(x))
    err = np.abs(y.astype(np.int32) - x)
    mag = np.abs(x.astype(np.int32))
    # Half a step of the segment: 4..512 in 16-bit units, i.e. about 1/32 of the value.
    assert np.all(err <= 8 + mag / 28)
    # The quantiser is monotonic.
    assert np.all(np.diff(y.astype(np.int32)) >= 0)


@pytest.mark.parametrize("amp", [0.5, 0.1, 0.02])
def test_ulaw_sine_snr(amp: float) -> None:
    x = sine(1013, 8000, 0.5, amp=amp)
    y = ulaw_decode(ulaw_encode(x))
    noise = y.astype(np.float64) - x
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr > 34  # G.711: about 35-38 dB, nearly independent of the level


def test_decode_encode_pcm() -> None:
    fmt = AudioFormat.parse("pcm_24000")
    assert decode(fmt, b"\x01\x02\xff\xff").tolist() == [0x0201, -1]
    assert decode(fmt, b"\x01\x02\x03").tolist() == [0x0201]  # odd trailing byte dropped
    assert decode(fmt, b"\x01").tolist() == []
    assert decode(fmt, b"").dtype == np.int16
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert encode(fmt, pcm) == struct.pack("<5h", 0, 1, -1, 32767, -32768)
    assert np.array_equal(decode(fmt, encode(fmt, pcm)), pcm)


def test_decode_encode_ulaw() -> None:
    fmt = AudioFormat.parse("ulaw_8000")
    assert encode(fmt, np.array([0, -32768], dtype=np.int16)) == b"\xff\x00"
    assert decode(fmt, b"\xff\x80\x00").tolist() == [0, 32124, -32124]
    with pytest.raises(TypeError):
        encode(fmt, np.zeros(3, dtype=np.float32))
