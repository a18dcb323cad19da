"""WAV files: every sample format read_wav decodes, read_wav_pcm, and WavWriter's
header updates."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from hello_device.audio.wav import WavWriter, read_wav, read_wav_pcm
from tests.audio.signals import sine

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


@pytest.mark.parametrize(("bits", "channels"), [(16, 1), (16, 2), (24, 2), (8, 1)])
def test_read_wav_pcm_matches_read_wav(tmp_path: Path, bits: int, channels: int) -> None:
    x = sine(440, 16000, 0.05)
    frames = np.repeat(x[:, None], channels, axis=1)
    if bits == 16:
        data = frames.astype("<i2").tobytes()
    elif bits == 24:
        wide = frames.astype("<i4") << 8
        data = b"".join(v.tobytes()[:3] for v in wide.reshape(-1))
    else:
        data = ((frames.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    path = tmp_path / "x.wav"
    write_raw_wav(path, 1, channels, 16000, bits, data + b"\x00")  # a stray byte at the end
    pcm, rate, got_channels = read_wav_pcm(path)
    samples, rate2 = read_wav(path)
    assert (rate, got_channels) == (rate2, channels) == (16000, channels)
    assert pcm == samples.tobytes()
