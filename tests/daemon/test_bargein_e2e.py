"""End to end: the device's own barge-in, and no barge-in on its own voice or on noise.

The real daemon on the file backend against the emulator, as in test_e2e.py. The
emulator's ``interruption`` is turned off throughout, so only the device can stop the
greeting. These tests assert behaviour with generous bounds; the timing goals (median
150 ms, max 250 ms) are measured by bench/bench_bargein.py.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from hello_device.emulator import EmulatorConfig
from hello_device.testing import virtual_time
from tests.e2e import first_sound, last_sound, load_wav, resample_to, run_with_emulator, silence_wav

pytestmark = pytest.mark.slow

ONSET_S = 6.02  # bargein.wav: first user speech (shared/audio/README.md)
USER_END_S = 9.77  # end of the user's last segment
BARGE_IN_LOG = "barge-in: the user talks over the agent"


def long_greeting(shared_audio: Path, tmp_path: Path) -> tuple[Path, float]:
    """An agent greeting of ~11.8 s (the speech of utterance.wav four times): it plays
    from the start of the conversation until after the microphone files' speech ends."""
    speech, rate = load_wav(shared_audio / "utterance.wav")
    part = speech[int(1.0 * rate) : int(3.95 * rate)]
    data = np.concatenate([part] * 4).astype("<i2")
    path = tmp_path / "greeting.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path, len(data) / rate


def emulator_config(greeting: Path) -> EmulatorConfig:
    return EmulatorConfig(
        first_message="Let me tell you a long story.",
        first_message_audio=str(greeting),
        interruptions=False,  # only the device can stop the greeting
    )


def first_stretch(out: np.ndarray, rate: int = 16000, max_gap_s: float = 0.5) -> float:
    """Length of the first stretch of sound (pauses under ``max_gap_s`` bridged): the
    greeting, without any reply after it."""
    win = rate // 100
    frames = len(out) // win
    env = np.sqrt(np.mean(out[: frames * win].reshape(frames, win) ** 2, axis=1) + 1e-9)
    loud = np.nonzero(20 * np.log10(env / 32768.0) > -45.0)[0]
    assert len(loud), "nothing was played"
    gaps = np.nonzero(np.diff(loud) * 0.01 >= max_gap_s)[0]
    last = loud[gaps[0]] if len(gaps) else loud[-1]
    return float((last + 1 - loud[0]) * 0.01)


def barge_ins(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(BARGE_IN_LOG))


def test_local_barge_in_stops_the_greeting_without_the_platform(
    shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    greeting, _ = long_greeting(shared_audio, tmp_path)
    run = virtual_time.run(
        run_with_emulator(
            tmp_path, shared_audio / "bargein.wav", emulator_config(greeting), limit_s=60.0
        )
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert record.interruptions_sent == []  # the platform did not stop anything
    out = resample_to(run.output, run.output_rate, 16000)
    began = first_sound(out, 16000)
    assert began is not None and began < 1.0  # the greeting played from the start
    # it was still playing when the user began to talk ...
    assert last_sound(out[int((ONSET_S - 0.6) * 16000) : int(ONSET_S * 16000)], 16000)
    # ... stopped within a second of the onset, and nothing played until the user's turn
    # was over (the rest of the greeting was dropped, not paused)
    stopped = last_sound(out[int(ONSET_S * 16000) : int(USER_END_S * 16000)], 16000)
    assert stopped is None or stopped < 1.0, stopped
    assert barge_ins(caplog) == 1
    # the conversation went on: the user's turn reached the platform and was answered
    assert len(record.utterances) == 1
    start, _ = record.utterances[0]
    assert abs(start - ONSET_S) < 0.5, start
    assert last_sound(out[int(USER_END_S * 16000) :], 16000) is not None


@pytest.mark.parametrize(
    ("mic", "loopback_gain"),
    [("silence", 1.0), ("noise_fan.wav", 0.0)],
    ids=["own-voice-at-equal-level", "fan-noise"],
)
def test_the_greeting_plays_to_its_end_without_a_user(
    mic: str,
    loopback_gain: float,
    shared_audio: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its own playback mixed back into the microphone at the level played
    (``audio.loopback_gain = 1.0``), or a fan, never makes the device interrupt itself."""
    caplog.set_level(logging.INFO)
    greeting, length_s = long_greeting(shared_audio, tmp_path)
    mic_wav = (
        silence_wav(tmp_path / "silence.wav", 12.5)
        if mic == "silence"
        else shared_audio / "noise_fan.wav"
    )
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            mic_wav,
            emulator_config(greeting),
            limit_s=60.0,
            audio={"loopback_gain": loopback_gain},
        )
    )
    assert run.code == 0
    assert barge_ins(caplog) == 0
    out = resample_to(run.output, run.output_rate, 16000)
    assert first_stretch(out) >= length_s - 0.1  # all of it, not cut short
    # The device's own voice never reaches the platform as user speech (no self-talk).
    assert run.emulator.conversations[0].utterances == []
