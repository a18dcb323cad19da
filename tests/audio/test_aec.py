"""In-process echo cancellation (hello_device.audio.aec).

The far-end tap and the player that feeds it are pure Python and always tested. The
canceller itself needs the optional ``pywebrtc-audio`` package (``pip install -e
'.[aec]'``); without it those tests are skipped with the reason, and one test checks
that the module then reports itself unavailable instead of failing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hello_device.audio import aec
from hello_device.audio.aec import (
    EchoCanceller,
    EchoCancellerUnavailable,
    FarEndTap,
    TappedPlayer,
    available,
    unavailable_reason,
)
from hello_device.audio.wav import read_wav
from hello_device.core.turn import (
    BargeInDetector,
    VadGate,
)

RATE = 16000
FRAME = 320  # 20 ms
ONSET_S = 6.02  # bargein.wav (shared/audio/README.md)
USER_END_S = 9.77

needs_aec = pytest.mark.skipif(
    not available(), reason=f"in-process AEC not available here: {unavailable_reason()}"
)


def mono(path: Path) -> np.ndarray:
    data, rate = read_wav(str(path))
    assert rate == RATE
    return (data.mean(axis=1) if data.ndim == 2 else data).astype(np.float64)


def greeting(shared_audio: Path, length: int, start_s: float = 0.4) -> np.ndarray:
    """The far end: the speech of utterance.wav four times from ``start_s``, ``length`` long."""
    speech = mono(shared_audio / "utterance.wav")
    part = speech[int(1.0 * RATE) : int(3.95 * RATE)]
    far = np.zeros(length)
    start = int(start_s * RATE)
    body = np.tile(part, 4)[: length - start]
    far[start : start + len(body)] = body
    return far


def delayed(x: np.ndarray, ms: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(ms * RATE / 1000)), x])[: len(x)]


def reverb(x: np.ndarray, rt60_s: float) -> np.ndarray:
    """Through a synthetic room (direct sound, then decaying noise), at the same level."""
    rng = np.random.default_rng(7)
    n = int(rt60_s * RATE)
    t = np.arange(n) / RATE
    ir = 0.25 * rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)
    ir[: int(0.003 * RATE)] = 0.0
    ir[0] = 1.0
    y = np.convolve(x, ir)[: len(x)]
    return np.asarray(y * np.sqrt(np.mean(x**2) / np.mean(y**2)))


def cancel(mic: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Everything through one canceller in 20 ms frames: (output, seconds per frame)."""
    canceller = EchoCanceller(20, RATE)
    m = np.clip(mic, -32768, 32767).astype("<i2")
    f = np.clip(far, -32768, 32767).astype("<i2")
    out = np.zeros(len(m) // FRAME * FRAME)
    cost = []
    for i in range(0, len(out), FRAME):
        t0 = time.thread_time()
        pcm = canceller.process(m[i : i + FRAME].tobytes(), f[i : i + FRAME].tobytes())
        cost.append(time.thread_time() - t0)
        out[i : i + FRAME] = np.frombuffer(pcm, dtype="<i2")
    return out, cost


def energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2) + 1e-3))


def seconds(a: float, b: float) -> slice:
    return slice(int(a * RATE), int(b * RATE))


# ---------------------------------------------------------------- the far-end tap


def test_tap_keeps_order_and_pads_with_silence() -> None:
    tap = FarEndTap(RATE)
    tap.feed(np.arange(1, 101, dtype="<i2").tobytes())
    tap.feed(np.arange(101, 151, dtype="<i2").tobytes())
    first = np.frombuffer(tap.take(120), dtype="<i2")
    assert list(first) == list(range(1, 121))
    rest = np.frombuffer(tap.take(100), dtype="<i2")
    assert list(rest[:30]) == list(range(121, 151)) and not rest[30:].any()
    assert not np.frombuffer(tap.take(10), dtype="<i2").any()
    assert tap.queued_samples == 0


def test_tap_is_bounded_and_drops_the_oldest() -> None:
    tap = FarEndTap(RATE, max_ms=10)  # 160 samples
    tap.feed(np.arange(0, 300, dtype="<i2").tobytes())
    assert tap.queued_samples == 160 and tap.dropped == 140
    got = np.frombuffer(tap.take(160), dtype="<i2")
    assert got[0] == 140 and got[-1] == 299


def test_tap_converts_the_output_rate_to_the_capture_rate() -> None:
    tap = FarEndTap(48000, max_ms=2000)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype("<i2")
    for i in range(0, len(tone), 960):  # 20 ms reads at 48 kHz
        tap.feed(tone[i : i + 960].tobytes())
    # the converter's look-ahead holds back a few samples at most
    assert 16000 - 64 <= tap.queued_samples <= 16000
    out = np.frombuffer(tap.take(16000), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(out[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 3


def test_tapped_player_feeds_what_it_outputs() -> None:
    player = TappedPlayer(rate=RATE, volume=0.5, fade_ms=0)
    player.push(np.full(400, 1000, dtype="<i2"))
    played = player.read(FRAME) + player.read(FRAME)
    assert player.tap.take(2 * FRAME) == played  # after volume, silence included
    assert np.frombuffer(played, dtype="<i2")[0] == 500
    player.read(FRAME)
    player.set_rate(48000)  # a new device: the old far end is gone, the rate followed
    assert player.tap.queued_samples == 0 and player.tap.in_rate == 48000


# ---------------------------------------------------------------- availability


def test_unavailable_package_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr("hello_device.audio.aec.importlib.import_module", missing)
    module, why = aec._probe.__wrapped__()
    assert module is None and why is not None and "pip install" in why
    monkeypatch.setattr(aec, "_probe", lambda: (None, why))
    assert not available() and unavailable_reason() == why
    with pytest.raises(EchoCancellerUnavailable, match="not installed"):
        EchoCanceller(20)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        EchoCanceller(20, rate=44100)
    with pytest.raises(ValueError, match="multiple of 10"):
        EchoCanceller(25)
    with pytest.raises(ValueError, match="stream_delay_ms"):
        EchoCanceller(20, stream_delay_ms=-1)


@needs_aec
def test_frames_are_checked_and_the_far_end_may_be_short() -> None:
    canceller = EchoCanceller(30, RATE)
    with pytest.raises(ValueError, match="960 bytes"):
        canceller.process(bytes(640), bytes(960))
    out = canceller.process(bytes(960), b"")  # nothing played
    assert out == bytes(960)
    assert canceller.frames == 1 and canceller.attenuation_db is None
    canceller.reset()
    assert canceller.frames == 0


# ---------------------------------------------------------------- on the recordings


@needs_aec
@pytest.mark.parametrize(
    ("delay_ms", "rt60_s", "min_erle_db"), [(2, 0.0, 40.0), (60, 0.0, 40.0), (20, 0.3, 20.0)]
)
def test_echo_at_equal_level_is_removed(
    shared_audio: Path, delay_ms: int, rt60_s: float, min_erle_db: float
) -> None:
    """ERLE of the greeting's echo, mixed into the microphone at the level played."""
    far = greeting(shared_audio, 8 * RATE)
    echo = delayed(far, delay_ms)
    if rt60_s:
        echo = reverb(echo, rt60_s)
    out, cost = cancel(echo, far)
    settled = seconds(1.4, 7.9)  # one second after the greeting starts
    erle = energy_db(echo[settled]) - energy_db(out[settled])
    assert erle >= min_erle_db, erle
    assert float(np.median(cost)) < 0.002  # under a tenth of real time, generously


@needs_aec
def test_user_speech_survives_double_talk(shared_audio: Path) -> None:
    user = mono(shared_audio / "bargein.wav")
    far = greeting(shared_audio, len(user))
    echo = delayed(far, 20)
    out, _ = cancel(echo + user, far)
    talk = seconds(ONSET_S, USER_END_S)
    # AEC3 delays the capture by a few ms: align before comparing waveforms
    lags = range(0, 20 * RATE // 1000, 8)
    corr = max(
        float(
            np.dot(out[talk.start + lag : talk.stop + lag], user[talk])
            / (np.linalg.norm(out[talk.start + lag : talk.stop + lag]) * np.linalg.norm(user[talk]))
        )
        for lag in lags
    )
    assert corr > 0.5, corr  # the raw microphone: ~0.7 (echo as loud as the user)
    level = energy_db(out[talk]) - energy_db(user[talk])
    assert -10.0 < level < 3.0, level
    before = seconds(1.4, ONSET_S - 0.05)  # the echo alone is still removed
    assert energy_db(echo[before]) - energy_db(out[before]) > 40.0


def barge_ins(shared_audio: Path, mic_user: np.ndarray, gain: float, use_aec: bool) -> list[float]:
    """The device's capture path over the recording, frame by frame: the player plays the
    greeting, its output reaches the microphone 2 ms later at ``gain``, the canceller (if
    used) cleans the microphone, then the VAD gate and the barge-in detector as in the app.
    Returns the times of confirmed barge-ins (seconds, end of the confirming frame)."""
    greeting_pcm = greeting(shared_audio, 13 * RATE, start_s=0.0)[: int(11.8 * RATE)]
    player = TappedPlayer(rate=RATE)
    canceller = EchoCanceller(20, RATE) if use_aec else None
    vad = VadGate(frame_ms=20)
    detector = BargeInDetector(frame_ms=20)
    path = np.zeros(int(0.002 * RATE) + FRAME)  # what is on its way to the microphone
    fired: list[float] = []
    since: int | None = None
    for k in range(len(mic_user) // FRAME):
        if k == 20:
            player.push(greeting_pcm.astype("<i2"))
        echo, path = path[:FRAME], path[FRAME:]
        mic = np.clip(mic_user[k * FRAME : (k + 1) * FRAME] + gain * echo, -32768, 32767)
        pcm = mic.astype("<i2").tobytes()
        far = player.tap.take(FRAME)
        if canceller is not None:
            pcm = canceller.process(pcm, far)
        gate = vad.process(pcm)
        if player.playing:
            since = k if since is None else since
            heard = detector.update(
                gate.voiced, gate.level_dbfs, player.level_dbfs(), True, (k - since) * 20.0
            )
            if heard:
                fired.append((k + 1) * 0.02)
                player.flush()
        out = np.frombuffer(player.read(FRAME), dtype="<i2").astype(np.float64)
        path = np.concatenate([path, out])
    return fired


@needs_aec
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_with_the_canceller_the_device_does_not_interrupt_itself(
    shared_audio: Path, gain: float
) -> None:
    silence = np.zeros(13 * RATE)
    assert barge_ins(shared_audio, silence, gain, use_aec=True) == []


@needs_aec
def test_with_the_canceller_a_user_is_heard_over_an_equal_echo(shared_audio: Path) -> None:
    """Without echo cancellation the level-based echo guard cannot hear a user over an
    echo as loud as the user (module docstring of hello_device.core.turn.bargein); with it,
    the barge-in comes within a few hundred ms of the onset."""
    user = mono(shared_audio / "bargein.wav")
    assert barge_ins(shared_audio, user, 1.0, use_aec=False) == []
    fired = barge_ins(shared_audio, user, 1.0, use_aec=True)
    assert len(fired) == 1
    assert ONSET_S < fired[0] < ONSET_S + 0.5, fired
