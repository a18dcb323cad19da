"""Microphone and loudspeaker checks: the file backend, the fake PortAudio host, and
the private PulseAudio server."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from hello_device import doctor
from hello_device.doctor import (
    Context,
    Status,
)
from hello_device.testing.fake_pyaudio import FakeDevice, FakeHost, hat_codec
from tests.doctor.support import EXAMPLE_WAV, context, make_probes, write_config
from tests.soundserver import SoundServer

# --------------------------------------------------------------------------- audio


def test_file_backend_audio(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    ctx = context(path, make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert (mic.status, mic.detail) == (
        Status.PASS,
        f"file backend: {EXAMPLE_WAV} reads (6.2 s, 16000 Hz, 1 channel)",
    )
    out = tmp_path / "out" / "speaker.wav"
    assert (speaker.status, speaker.detail) == (Status.PASS, f"file backend: {out} can be written")
    assert not out.exists()


def test_file_backend_audio_failures(tmp_path: Path) -> None:
    not_wav = tmp_path / "not.wav"
    not_wav.write_text("hello")
    audio = (
        f'backend = "file"\ninput_file = "{not_wav}"\n'
        f'output_file = "{tmp_path / "missing" / "out.wav"}"'
    )
    ctx = context(write_config(tmp_path, audio=audio), make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.FAIL
    assert mic.detail.startswith(f"the input file {not_wav} cannot be read: ")
    assert speaker.status is Status.FAIL
    assert speaker.detail == f"the output file's directory {tmp_path / 'missing'} does not exist"


def pyaudio_ctx(tmp_path: Path, host: FakeHost, audio: str = "") -> Context:
    path = write_config(tmp_path, audio=f'backend = "pyaudio"\n{audio}')
    return context(path, make_probes(tmp_path, pyaudio_factory=host.factory))


def test_hat_codec_opens_at_its_own_rates(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), hat_codec()], 1, 1)
    ctx = pyaudio_ctx(tmp_path, host, 'input_device = "wm8960"\noutput_device = "wm8960"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    label = "#1 'seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)'"
    assert (mic.status, mic.detail) == (
        Status.PASS,
        f"{label} at 48000 Hz, 2 channels mixed (resampled to 16 kHz), delivering audio",
    )
    assert (speaker.status, speaker.detail) == (
        Status.PASS,
        f"{label} at 44100 Hz, stereo (mono duplicated)",
    )
    assert host.all_closed  # the doctor gave the card back


def test_a_silent_microphone_warns(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("USB Audio", 1, 2, 48000)], 0, 0, tone_hz=0.0)
    ctx = pyaudio_ctx(tmp_path, host)
    mic = doctor.check_microphone(ctx)
    assert mic.status is Status.WARN
    assert mic.detail == (
        "#0 'USB Audio' at 16000 Hz, mono (no resampling), but it delivers only digital silence"
    )
    assert "alsamixer" in mic.fix


def test_a_missing_microphone_or_loudspeaker(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("USB Audio", 1, 2, 48000)], 0, 0)
    ctx = pyaudio_ctx(tmp_path, host, 'input_device = "ReSpeaker"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.FAIL
    assert mic.detail == (
        "no microphone (input device) matches 'ReSpeaker'; input devices: #0 'USB Audio'"
    )
    assert mic.fix.startswith("list the sound devices with: hello-device devices")
    assert speaker.status is Status.SKIP

    ctx = pyaudio_ctx(tmp_path, host, 'output_device = "HiFiBerry"')
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert mic.status is Status.SKIP
    assert speaker.status is Status.FAIL
    assert speaker.detail.startswith("no loudspeaker (output device) matches 'HiFiBerry'")


def test_portaudio_that_fails_to_start(tmp_path: Path) -> None:
    host = FakeHost([], init_error=OSError(-9999, "Unanticipated host error"))
    ctx = pyaudio_ctx(tmp_path, host)
    mic = doctor.check_microphone(ctx)
    assert (mic.status, mic.detail) == (
        Status.FAIL,
        "PortAudio failed to start: Unanticipated host error",
    )
    assert doctor.check_loudspeaker(ctx).status is Status.SKIP


def test_skip_audio(tmp_path: Path) -> None:
    ctx = context(write_config(tmp_path), make_probes(tmp_path), skip_audio=True)
    assert doctor.check_microphone(ctx).lines() == ["SKIP  microphone: --skip-audio"]
    assert doctor.check_loudspeaker(ctx).lines() == ["SKIP  loudspeaker: --skip-audio"]


def write_tone(path: Path, seconds: float = 3.0, rate: int = 48000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.mark.sound
def test_real_sound_server_through_portaudio(sound_server: SoundServer, tmp_path: Path) -> None:
    path = write_config(tmp_path, audio='backend = "pyaudio"')
    ctx = context(path, make_probes(tmp_path))
    mic, speaker = doctor.check_microphone(ctx), doctor.check_loudspeaker(ctx)
    assert speaker.status is Status.PASS, speaker
    assert " at " in speaker.detail and " Hz, " in speaker.detail
    # Nothing plays into the virtual microphone: its null sink delivers exact zeros.
    assert mic.status is Status.WARN and mic.detail.endswith("delivers only digital silence")

    player = sound_server.play_into_mic(write_tone(tmp_path / "tone.wav"))
    try:
        mic = doctor.check_microphone(context(path, make_probes(tmp_path)))
    finally:
        player.kill()
        player.wait(10)
    assert mic.status is Status.PASS, mic
    assert mic.detail.endswith("delivering audio")
