"""The PyAudio backend through real PortAudio streams and a private PulseAudio server
(:mod:`tests.soundserver`): speech played into a virtual microphone, a tone checked on
the speaker's monitor, and the time a flush takes to silence the output."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest

from hello_device.audio.backends.pyaudio import (
    PyAudioBackend,
)
from hello_device.audio.player import Player
from hello_device.audio.wav import read_wav
from hello_device.settings import AudioSettings
from hello_device.testing.fake_pyaudio import (
    sine,
)
from tests.audio.support import asynctest, dominant_hz, envelope_db, frames_for, running, wait_until
from tests.conftest import UNIT
from tests.soundserver import SoundServer


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_capture_carries_the_speech(
    sound_server: SoundServer, shared_audio: Path
) -> None:
    speech, rate = read_wav(shared_audio / "utterance.wav")
    assert rate == 16000
    backend = PyAudioBackend(AudioSettings(), Player(16000))
    async with running(backend) as run:
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        await frames_for(run, 0.2)
        first = len(run.frames)
        t0 = time.monotonic()
        player = sound_server.play_into_mic(shared_audio / "utterance.wav")
        await asyncio.wait_for(asyncio.to_thread(player.wait), 30 * UNIT)
        await frames_for(run, 0.5)
    assert player.returncode == 0
    assert run.problems() == [] and backend.frames_dropped == 0
    frames = run.frames[first:]
    got = np.frombuffer(b"".join(f.pcm for f in frames), dtype=np.int16)
    ref_env = envelope_db(speech[:, 0], 16000)
    got_env = envelope_db(got, 16000)
    # Align the energy envelopes; they must match closely.
    best, lag = -1.0, 0
    for k in range(0, min(100, len(got_env) - len(ref_env))):
        c = float(np.corrcoef(ref_env, got_env[k : k + len(ref_env)])[0, 1])
        if c > best:
            best, lag = c, k
    assert best > 0.9, f"envelope correlation {best:.2f}"
    # Onset: the first 20 ms frame above -35 dBFS, on the monotonic clock.
    onset = next(
        f
        for f in frames
        if 20
        * math.log10(
            np.sqrt(np.mean(np.frombuffer(f.pcm, np.int16).astype(float) ** 2)) / 32768 + 1e-9
        )
        > -35
    )
    onset_s = onset.captured_at - 0.02 - t0
    print(f"speech onset {onset_s:.3f} s after paplay started (file: 1.05 s); lag {lag * 10} ms")
    assert 0.95 <= onset_s <= 1.05 + 0.35


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_playback_pitch_and_level(sound_server: SoundServer) -> None:
    player = Player(16000)
    backend = PyAudioBackend(AudioSettings(), player)
    async with running(backend) as run:
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        with sound_server.start_recording() as rec:
            assert await asyncio.to_thread(rec.wait_for, 2400, 5 * UNIT)
            underflows = backend.underflows
            player.push(sine(1000, player.rate, 0, player.rate, amp=0.5))
            await wait_until(lambda: not player.playing, within=5)
            underflows = backend.underflows - underflows
            target = rec.samples_received + round(0.3 * 48000)
            assert await asyncio.to_thread(rec.wait_for, target, 5 * UNIT)
            recording = rec.stop()
    assert run.problems() == []
    assert player.underruns == 0
    x = recording.samples
    env = envelope_db(x, recording.rate)
    # The tone must last its second. An output underflow (a loaded machine: the bench
    # counts them) makes PortAudio restart the device, which can drop up to one device
    # buffer (20 ms) of audio, so each one may shorten it by up to 2 blocks.
    full = env > -12
    shape = "".join("#" if f else "." for f in full)
    assert 100 - 3 - 2 * underflows <= int(full.sum()) <= 103, f"{underflows} underflows: {shape}"
    # Pitch and level over the longest stretch without a gap.
    runs = np.split(np.flatnonzero(full), np.flatnonzero(np.diff(np.flatnonzero(full)) != 1) + 1)
    longest = max(runs, key=len)
    assert len(longest) >= 20, f"no 200 ms of uninterrupted tone ({backend.underflows} underflows)"
    mid = x[(longest[0] + 1) * 480 : longest[-1] * 480]
    assert abs(dominant_hz(mid, recording.rate) - 1000) < 5
    level = 20 * math.log10(float(np.sqrt(np.mean(mid.astype(np.float64) ** 2))) / 32768)
    assert abs(level - 20 * math.log10(0.5 / math.sqrt(2))) < 0.5, f"level {level:.2f} dBFS"


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_flush_silences_the_output(sound_server: SoundServer) -> None:
    player = Player(16000)
    settings = AudioSettings()
    backend = PyAudioBackend(settings, player)
    async with running(backend):
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        with sound_server.start_recording() as rec:
            assert await asyncio.to_thread(rec.wait_for, 2400, 5 * UNIT)
            player.push(sine(1000, player.rate, 0, 5 * player.rate, amp=0.5))
            await wait_until(lambda: player.samples_played >= player.rate // 2)
            flushed_at = time.monotonic()
            player.flush()
            target = rec.samples_received + round(0.8 * 48000)
            assert await asyncio.to_thread(rec.wait_for, target, 5 * UNIT)
            recording = rec.stop()
    env = envelope_db(recording.samples, recording.rate)
    loud = np.flatnonzero(env > -40)
    assert len(loud) > 40  # the tone played for 0.5 s or more before the flush
    last = (loud[-1] + 1) * 480 - 1
    heard_until = recording.arrival_of(last)  # an upper bound (includes the monitor's delay)
    delay_ms = (heard_until - flushed_at) * 1000
    print(f"flush -> silence on the monitor: <= {delay_ms:.0f} ms")
    assert delay_ms <= settings.output_buffer_ms + 250
