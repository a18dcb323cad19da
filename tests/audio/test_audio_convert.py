"""Audio formats, µ-law, resampling, capture/mic/agent converters and WAV files."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.convert import (
    AgentDecoder,
    CaptureConverter,
    MicEncoder,
    to_mono,
)
from hello_device.audio.formats import (
    decode,
    encode,
    ulaw_decode,
    ulaw_encode,
)
from hello_device.audio.resample import Resampler
from hello_device.audio.wav import WavWriter, read_wav
from hello_device.core.formats import (
    AUDIO_FORMATS,
    AudioFormat,
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


# --- a sine through every conversion ----------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO_FORMATS)
@pytest.mark.parametrize("freq", [440.0, 2500.0])
def test_mic_encoder_keeps_frequency_and_level(name: str, freq: float) -> None:
    fmt = AudioFormat.parse(name)
    enc = MicEncoder(fmt)
    x = sine(freq, 16000, 1.0)
    wire = b"".join(enc.encode(x[i : i + 320].tobytes()) for i in range(0, len(x), 320))
    wire += enc.flush()
    out = decode(fmt, wire)
    assert len(out) == pytest.approx(fmt.rate, abs=2)
    assert_same_tone(out, fmt.rate, freq, rms_db(x))


def test_mic_encoder_pcm_16000_is_identity() -> None:
    enc = MicEncoder(AudioFormat.parse("pcm_16000"))
    frame = sine(1000, 16000, 0.02).tobytes()
    assert enc.encode(frame) is frame


@pytest.mark.parametrize("name", AUDIO_FORMATS)
@pytest.mark.parametrize("out_rate", OUT_RATES)
def test_agent_decoder_keeps_frequency_and_level(name: str, out_rate: int) -> None:
    fmt = AudioFormat.parse(name)
    dec = AgentDecoder(fmt, out_rate)
    x = sine(1000, fmt.rate, 1.0)
    wire = encode(fmt, x)
    step = fmt.bytes_for_ms(100)
    out = i16(
        b"".join([dec.decode(wire[i : i + step]) for i in range(0, len(wire), step)]) + dec.flush()
    )
    assert len(out) == pytest.approx(out_rate, abs=2)
    assert_same_tone(out, out_rate, 1000, TONE_DB)


def test_capture_converter_keeps_frequency_and_level() -> None:
    x = sine(1000, 44100, 1.0)
    stereo = np.stack([x, x // 2], axis=1).reshape(-1)
    conv = CaptureConverter(44100, 2, 0, 20)
    frames = conv.feed(stereo.tobytes()) + conv.flush()
    out = np.frombuffer(b"".join(frames), dtype=np.int16)
    assert_same_tone(out, 16000, 1000, TONE_DB)


# --- chunked streams equal one-shot ----------------------------------------------------------


def two_tone_stereo(seconds: float = 1.0) -> NDArray[np.int16]:
    left = sine(500, 48000, seconds, amp=0.3)
    right = sine(1500, 48000, seconds, amp=0.2)
    return np.stack([left, right], axis=1).reshape(-1)


@pytest.mark.parametrize("channel", [0, 1, "mix"])
def test_capture_converter_chunked_equals_one_shot(channel: int | str) -> None:
    raw = two_tone_stereo().tobytes()
    one = CaptureConverter(48000, 2, channel, 20)  # type: ignore[arg-type]
    expected = one.feed(raw) + one.flush()
    rng = np.random.default_rng(7)
    conv = CaptureConverter(48000, 2, channel, 20)  # type: ignore[arg-type]
    frames: list[bytes] = []
    for chunk in split(raw, random_cuts(len(raw), rng, 5000)):  # odd sizes included
        frames += conv.feed(chunk)
    frames += conv.flush()
    assert all(len(f) == 640 for f in frames)
    assert frames == expected
    assert len(frames) == 50


def test_capture_converter_picks_and_mixes_channels() -> None:
    raw = two_tone_stereo().tobytes()

    def run(channel: int | str) -> NDArray[np.int16]:
        conv = CaptureConverter(48000, 2, channel, 20)  # type: ignore[arg-type]
        return np.frombuffer(b"".join(conv.feed(raw) + conv.flush()), dtype=np.int16)

    assert peak_hz(middle(run(0), 16000), 16000) == pytest.approx(500, rel=0.005)
    assert peak_hz(middle(run(1), 16000), 16000) == pytest.approx(1500, rel=0.005)
    mix = middle(run("mix"), 16000)
    spectrum = np.abs(np.fft.rfft(mix * np.hanning(len(mix))))
    bins = np.fft.rfftfreq(len(mix), 1 / 16000)
    at = {f: spectrum[np.argmin(np.abs(bins - f))] for f in (500, 1500)}
    assert at[500] / at[1500] == pytest.approx(1.5, rel=0.05)  # (0.3/2) / (0.2/2)


def test_capture_converter_16k_mono_passthrough_and_partial_feeds() -> None:
    x = sine(700, 16000, 0.2)
    raw = x.tobytes()
    conv = CaptureConverter(16000, 1, "mix", 20)
    frame = raw[:640]
    assert conv.feed(frame) == [frame]
    assert conv.feed(raw[640:641]) == []  # half a sample
    assert conv.feed(raw[641:1000]) == []
    frames = conv.feed(raw[1000:])
    assert b"".join([frame, *frames]) == raw
    assert conv.flush() == []


def test_capture_converter_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="channel"):
        CaptureConverter(48000, 2, 2, 20)
    with pytest.raises(ValueError, match="frame_ms"):
        CaptureConverter(48000, 1, 0, 0)


@pytest.mark.parametrize("name", ["ulaw_8000", "pcm_8000", "pcm_22050", "pcm_44100"])
def test_mic_encoder_chunked_equals_one_shot(name: str) -> None:
    fmt = AudioFormat.parse(name)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(16000) * 3000).astype(np.int16).tobytes()
    one = MicEncoder(fmt)
    expected = one.encode(x) + one.flush()
    enc = MicEncoder(fmt)
    cuts = np.cumsum(rng.choice([320, 640, 960], size=60))  # 10, 20, 30 ms frames
    chunks = split(x, [int(c) for c in cuts if c < len(x)] + [len(x)])
    got = b"".join(enc.encode(c) for c in chunks) + enc.flush()
    assert got == expected


@pytest.mark.parametrize("name", ["ulaw_8000", "pcm_16000", "pcm_22050", "pcm_24000"])
@pytest.mark.parametrize("out_rate", [16000, 48000])
def test_agent_decoder_chunked_equals_one_shot(name: str, out_rate: int) -> None:
    fmt = AudioFormat.parse(name)
    rng = np.random.default_rng(11)
    wire = encode(fmt, (rng.standard_normal(fmt.rate) * 3000).astype(np.int16))
    one = AgentDecoder(fmt, out_rate)
    expected = one.decode(wire) + one.flush()
    dec = AgentDecoder(fmt, out_rate)
    bps = fmt.bytes_per_sample
    cuts = [c - c % bps for c in random_cuts(len(wire), rng, 6000)]
    got = b"".join(dec.decode(c) for c in split(wire, cuts)) + dec.flush()
    assert got == expected


def test_agent_decoder_odd_byte_and_reset() -> None:
    dec = AgentDecoder(AudioFormat.parse("pcm_16000"), 16000)
    assert dec.decode(b"\x01\x00\x02") == b"\x01\x00"
    assert dec.odd_bytes == 1
    up = AgentDecoder(AudioFormat.parse("pcm_16000"), 48000)
    up.decode(sine(1000, 16000, 0.1).tobytes())
    assert up.pending_ms > 0
    up.reset()
    assert up.pending_ms == 0
    assert not any(i16(up.flush()))


# --- real recordings ----------------------------------------------------------------------------


def test_capture_converter_on_48k_stereo_recording(shared_audio: Path) -> None:
    ref, ref_rate = read_wav(shared_audio / "utterance.wav")
    stereo, rate = read_wav(shared_audio / "utterance_48k_stereo.wav")
    assert (ref_rate, ref.shape[1], rate, stereo.shape[1]) == (16000, 1, 48000, 2)
    expected = ref[:, 0]
    for channel in (0, 1, "mix"):
        conv = CaptureConverter(48000, 2, channel, 20)
        raw = stereo.tobytes()
        frames: list[bytes] = []
        for i in range(0, len(raw), 4 * 441):  # a sound card's 441-frame periods
            frames += conv.feed(raw[i : i + 4 * 441])
        frames += conv.flush()
        assert len(frames) == -(-len(expected) // 320)  # ceil: same frame count
        out = np.frombuffer(b"".join(frames), dtype=np.int16)[: len(expected)]
        assert rms_db(out) == pytest.approx(rms_db(expected), abs=0.5)
        diff = out.astype(np.float64) - expected
        snr = 10 * np.log10(np.sum(expected.astype(np.float64) ** 2) / np.sum(diff**2))
        assert snr > 20, f"channel {channel}: {snr:.1f} dB"


# --- WAV files -------------------------------------------------------------------------------------


def write_raw_wav(path: Path, tag: int, channels: int, rate: int, bits: int, data: bytes) -> None:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd chunk: padded
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_wav_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    x = sine(440, 22050, 0.3)
    with WavWriter(path, 22050) as w:
        w.write(x[:1000].tobytes()[:-1])  # ends in half a sample
        w.write(x.tobytes()[1999:])
        w.write(np.zeros(0, dtype=np.int16))
    assert w.closed
    y, rate = read_wav(path)
    assert rate == 22050 and y.shape == (len(x), 1)
    assert np.array_equal(y[:, 0], x)
    with wave.open(str(path)) as check:  # the stdlib agrees with the header
        assert (check.getnchannels(), check.getsampwidth(), check.getnframes()) == (1, 2, len(x))


def test_wav_writer_header_is_valid_before_close(tmp_path: Path) -> None:
    path = tmp_path / "live.wav"
    w = WavWriter(path, 16000, channels=2, header_every_s=0.1)
    stereo = np.zeros((3200, 2), dtype=np.int16)
    stereo[:, 0] = 1000
    w.write(stereo)
    y, rate = read_wav(path)  # updated automatically after 0.1 s of audio
    assert y.shape == (3200, 2) and rate == 16000
    assert np.all(y[:, 0] == 1000) and np.all(y[:, 1] == 0)
    w.write(stereo[:10])
    w.flush_header()
    assert read_wav(path)[0].shape == (3210, 2)
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(b"\x00\x00")


@pytest.mark.parametrize(
    ("tag", "bits", "data", "expected"),
    [
        (1, 8, bytes([128, 255, 0, 192]), [0, 127 << 8, -32768, 64 << 8]),
        (1, 24, b"\x00\x00\x01" + b"\xff\xff\xff" + b"\x00\x00\x80", [256, -1, -32768]),
        (1, 32, struct.pack("<3i", 1 << 16, -(1 << 31), (1 << 31) - 1), [1, -32768, 32767]),
        (3, 32, struct.pack("<4f", 0.5, -1.0, 2.0, -0.25), [16384, -32768, 32767, -8192]),
        (3, 64, struct.pack("<2d", 0.25, -0.5), [8192, -16384]),
    ],
)
def test_read_wav_other_sample_formats(
    tmp_path: Path, tag: int, bits: int, data: bytes, expected: list[int]
) -> None:
    path = tmp_path / "x.wav"
    write_raw_wav(path, tag, 1, 8000, bits, data)
    y, rate = read_wav(path)
    assert rate == 8000
    assert y[:, 0].tolist() == expected


def test_read_wav_truncated_data_chunk(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_raw_wav(path, 1, 2, 16000, 16, struct.pack("<6h", 1, 2, 3, 4, 5, 6))
    path.write_bytes(path.read_bytes()[:-5])  # killed mid-write
    y, _ = read_wav(path)
    assert y.tolist() == [[1, 2]]


def test_read_wav_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(OSError, match=r"missing\.wav"):
        read_wav(missing)
    text = tmp_path / "notes.wav"
    text.write_text("hello, not audio")
    with pytest.raises(ValueError, match=r"notes\.wav"):
        read_wav(text)
    alaw = tmp_path / "alaw.wav"
    write_raw_wav(alaw, 6, 1, 8000, 8, b"\x55\x55")
    with pytest.raises(ValueError, match=r"alaw\.wav.*unsupported"):
        read_wav(alaw)


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
