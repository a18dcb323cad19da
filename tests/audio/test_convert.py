"""The live converters (capture, mic encoder, agent decoder): a sine keeps its
frequency and level through every format, chunked streams equal one-shot, real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.convert import (
    AgentDecoder,
    CaptureConverter,
    MicEncoder,
)
from hello_device.audio.formats import (
    decode,
    encode,
)
from hello_device.audio.wav import read_wav
from hello_device.core.formats import (
    AUDIO_FORMATS,
    AudioFormat,
)
from tests.audio.signals import (
    OUT_RATES,
    TONE_DB,
    assert_same_tone,
    i16,
    middle,
    peak_hz,
    random_cuts,
    rms_db,
    sine,
    split,
)

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
