"""VadGate: onsets against the recordings' ground truth, robustness to noise, the pre-roll
ring, hysteresis and end of utterance, and the edge cases (silence, tones, bad frames)."""

from __future__ import annotations

import math
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hello_device.core.turn import (
    SILENCE_DBFS,
    GateResult,
    VadGate,
    frame_dbfs,
)
from hello_device.core.turn.vad import FLOOR_WINDOW_MS

RATE = 16000

# shared/audio/README.md: speech segments in seconds.
GROUND_TRUTH: dict[str, list[tuple[float, float]]] = {
    "utterance.wav": [(1.05, 3.90)],
    "two_turns.wav": [(1.04, 2.82), (6.18, 9.03)],
    "utterance_noisy.wav": [(1.07, 3.90)],
    "bargein.wav": [(6.02, 6.29), (6.61, 7.99), (8.42, 9.77)],
    "noise_fan.wav": [],
}
SPEECH_FILES = ["utterance.wav", "two_turns.wav", "utterance_noisy.wav", "bargein.wav"]
TOLERANCE_MS = 60


def load_samples(folder: Path, name: str) -> np.ndarray:
    """The recording as float64 samples (16 kHz mono int16 checked)."""
    with wave.open(str(folder / name), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def to_pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def frames_of(pcm: bytes, frame_ms: int) -> list[bytes]:
    size = RATE * frame_ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def run(gate: VadGate, pcm: bytes) -> tuple[list[int], list[int], list[GateResult]]:
    """Feed a whole signal; onset times (speech start) and end times in ms, and results."""
    onsets: list[int] = []
    ends: list[int] = []
    results: list[GateResult] = []
    for frame in frames_of(pcm, gate.frame_ms):
        result = gate.process(frame)
        results.append(result)
        if result.onset:
            onsets.append((result.frame_index - result.onset_offset_frames) * gate.frame_ms)
        if result.ended:
            ends.append((result.frame_index + 1) * gate.frame_ms)
    return onsets, ends, results


def expected_onsets_ms(name: str, end_silence_ms: int) -> list[int]:
    """Ground-truth segments closer than the end silence are one utterance for the gate."""
    onsets: list[int] = []
    last_end = -math.inf
    for start, end in GROUND_TRUTH[name]:
        if (start - last_end) * 1000 >= end_silence_ms:
            onsets.append(round(start * 1000))
        last_end = end
    return onsets


def assert_onsets(found: list[int], expected: list[int]) -> None:
    assert len(found) == len(expected), f"onsets {found} ms, expected {expected} ms"
    errors = [f - e for f, e in zip(found, expected, strict=True)]
    assert all(abs(err) <= TOLERANCE_MS for err in errors), f"onset errors {errors} ms"


def tone(seconds: float, dbfs: float, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    amplitude = 10 ** (dbfs / 20) * 32768 * math.sqrt(2)
    return amplitude * np.sin(2 * math.pi * freq * t)


def white(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 10 ** (dbfs / 20) * 32768, round(seconds * RATE))


def scripted(pattern: Callable[[int], bool]) -> Callable[[bytes], bool]:
    """A classifier that answers by frame number."""
    counter: Iterator[int] = iter(range(10**9))
    return lambda _frame: pattern(next(counter))


def numbered_frames(count: int, loud: Callable[[int], bool], frame_ms: int = 20) -> list[bytes]:
    """Frames that are all different (the first sample is the frame number), at -20 dBFS
    where ``loud(i)`` and at -60 dBFS elsewhere."""
    size = RATE * frame_ms // 1000
    frames = []
    for i in range(count):
        samples = np.full(size, 3277 if loud(i) else 33, dtype="<i2")
        samples[0] = i
        frames.append(samples.tobytes())
    return frames


# -- the recordings ---------------------------------------------------------------------


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
@pytest.mark.parametrize("name", SPEECH_FILES)
def test_onsets_within_60ms_of_ground_truth(shared_audio: Path, name: str, frame_ms: int) -> None:
    pcm = to_pcm(load_samples(shared_audio, name))
    onsets, ends, _ = run(VadGate(frame_ms=frame_ms), pcm)
    assert_onsets(onsets, expected_onsets_ms(name, 700))
    assert len(ends) == len(onsets)  # every utterance also ended before the file did


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("name", SPEECH_FILES)
def test_onsets_found_at_every_aggressiveness(
    shared_audio: Path, name: str, aggressiveness: int
) -> None:
    pcm = to_pcm(load_samples(shared_audio, name))
    onsets, _, _ = run(VadGate(aggressiveness=aggressiveness), pcm)
    assert_onsets(onsets, expected_onsets_ms(name, 700))


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_every_bargein_segment_is_an_utterance_with_a_short_end_silence(
    shared_audio: Path, frame_ms: int
) -> None:
    # The segments are 320 and 430 ms apart (a quiet sound sits in the first gap, which
    # leaves 190 ms of silence), so an end silence of 150 ms separates all three.
    pcm = to_pcm(load_samples(shared_audio, "bargein.wav"))
    onsets, _, _ = run(VadGate(frame_ms=frame_ms, end_silence_ms=150), pcm)
    assert_onsets(onsets, [6020, 6610, 8420])


def test_utterances_end_after_the_end_silence(shared_audio: Path) -> None:
    pcm = to_pcm(load_samples(shared_audio, "utterance.wav"))
    _, ends, _ = run(VadGate(), pcm)
    assert len(ends) == 1
    assert 3900 + 700 - 40 <= ends[0] <= 3900 + 700 + 150


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_fan_noise_never_opens_the_gate(
    shared_audio: Path, frame_ms: int, aggressiveness: int
) -> None:
    pcm = to_pcm(load_samples(shared_audio, "noise_fan.wav"))
    onsets, _, results = run(VadGate(frame_ms=frame_ms, aggressiveness=aggressiveness), pcm)
    assert onsets == []
    assert not any(r.speaking for r in results)


@pytest.mark.parametrize("gain_db", [-20.0, -10.0, 10.0, 20.0])
@pytest.mark.parametrize("offset_s", [0.0, 4.321])
def test_fan_noise_louder_or_quieter_never_opens_the_gate(
    shared_audio: Path, gain_db: float, offset_s: float
) -> None:
    noise = np.roll(load_samples(shared_audio, "noise_fan.wav"), -round(offset_s * RATE))
    for frame_ms in (10, 20, 30):
        onsets, _, _ = run(VadGate(frame_ms=frame_ms), to_pcm(noise * 10 ** (gain_db / 20)))
        assert onsets == [], (frame_ms, onsets)


@pytest.mark.parametrize("noise_gain_db", [0.0, 6.0])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_speech_mixed_with_fan_noise(
    shared_audio: Path, noise_gain_db: float, frame_ms: int
) -> None:
    speech = load_samples(shared_audio, "utterance.wav")
    noise = load_samples(shared_audio, "noise_fan.wav")[: len(speech)]
    pcm = to_pcm(speech + noise * 10 ** (noise_gain_db / 20))
    onsets, ends, _ = run(VadGate(frame_ms=frame_ms), pcm)
    assert_onsets(onsets, [1050])
    assert len(ends) == 1


def test_preroll_holds_the_first_syllable(shared_audio: Path) -> None:
    pcm = to_pcm(load_samples(shared_audio, "utterance.wav"))
    frames = frames_of(pcm, 20)
    gate = VadGate()
    onset = next(r for r in (gate.process(f) for f in frames) if r.onset)
    first = onset.frame_index - len(onset.preroll) + 1
    assert list(onset.preroll) == frames[first : onset.frame_index + 1]
    assert len(onset.preroll) == 300 // 20 + onset.onset_offset_frames + 1
    assert first * 20 <= 1050 - 250  # well before the ground-truth onset


# -- the gate's mechanics (injected classifier) -----------------------------------------


def test_onset_offset_and_preroll_with_an_injected_classifier() -> None:
    # Loud from frame 18, but the classifier only calls it speech from frame 20.
    frames = numbered_frames(40, lambda i: i >= 18)
    gate = VadGate(classifier=scripted(lambda i: i >= 20), preroll_ms=100)
    results = [gate.process(f) for f in frames]
    assert [r.frame_index for r in results if r.onset] == [22]
    onset = results[22]
    assert onset.onset_offset_frames == 2
    assert (onset.frame_index - onset.onset_offset_frames) * 20 == 400
    assert onset.preroll == tuple(frames[15:23])  # 100 ms before frame 20, then 20..22
    assert onset.speaking and onset.voiced
    assert all(r.preroll == () and r.onset_offset_frames == 0 for r in results if not r.onset)
    assert not any(r.speaking for r in results[:22])
    assert all(r.speaking for r in results[22:])


def test_preroll_is_shorter_when_the_stream_just_began() -> None:
    frames = numbered_frames(5, lambda i: i >= 1)
    gate = VadGate(classifier=lambda _f: True)
    results = [gate.process(f) for f in frames]
    assert [r.voiced for r in results] == [False, True, True, True, True]
    assert results[3].onset
    assert results[3].preroll == tuple(frames[:4])


def test_the_first_frame_seeds_the_noise_floor() -> None:
    # Speech from the very first frame: the floor starts at its level, so the gate only
    # opens once a quieter frame has pulled the floor down.
    frames = numbered_frames(30, lambda i: i < 5 or i >= 10)
    results = [VadGate(classifier=lambda _f: True).process(f) for f in frames[:1]]
    assert not results[0].voiced
    gate = VadGate(classifier=lambda _f: True)
    results = [gate.process(f) for f in frames]
    assert [r.frame_index for r in results if r.onset] == [12]


def test_start_frames_must_be_consecutive() -> None:
    pattern = {5, 6, 10, 11, 15, 16, 17}
    gate = VadGate(classifier=lambda _f: True)
    results = [gate.process(f) for f in numbered_frames(30, lambda i: i in pattern)]
    assert [r.frame_index for r in results if r.onset] == [17]
    assert results[17].onset_offset_frames == 2


def test_end_after_silence_and_set_end_silence_ms() -> None:
    frames = numbered_frames(200, lambda i: 10 <= i < 30 or 100 <= i < 120)
    gate = VadGate(classifier=lambda _f: True)
    results = [gate.process(f) for f in frames[:100]]
    ended = [r.frame_index for r in results if r.ended]
    assert ended == [29 + 700 // 20]  # 35 unvoiced frames after the last voiced one
    assert not results[ended[0]].speaking
    gate.set_end_silence_ms(200)
    results = [gate.process(f) for f in frames[100:]]
    assert [r.frame_index for r in results if r.onset] == [102]
    assert [r.frame_index for r in results if r.ended] == [119 + 10]


def test_a_single_voiced_frame_keeps_the_gate_open() -> None:
    voiced = {*range(10, 20), 40, 70}
    gate = VadGate(classifier=lambda _f: True)
    results = [gate.process(f) for f in numbered_frames(150, lambda i: i in voiced)]
    assert [r.frame_index for r in results if r.ended] == [70 + 35]


def test_reset_forgets_everything() -> None:
    frames = numbered_frames(30, lambda i: i not in (0, 10))
    gate = VadGate(classifier=lambda _f: True)
    for frame in frames[:10]:
        gate.process(frame)
    assert gate.speaking and gate.frame_index == 9
    gate.reset()
    assert not gate.speaking and gate.frame_index == -1 and gate.noise_floor_dbfs is None
    results = [gate.process(f) for f in frames[10:15]]
    assert results[0].frame_index == 0
    assert [r.onset for r in results] == [False, False, False, True, False]
    assert results[3].preroll == tuple(frames[10:14])


def test_hysteresis_between_hold_and_open_margins() -> None:
    # Background at -60 dBFS, a word at -30, then a murmur 8 dB above the background:
    # between hold_margin_db (6) and noise_margin_db (10).
    signal = np.concatenate(
        [white(2.0, -60, 1), white(0.2, -30, 2), white(1.0, -52, 3), white(1.0, -60, 4)]
    )
    gate = VadGate(classifier=lambda _f: True)
    onsets, ends, results = run(gate, to_pcm(signal))
    assert onsets == [2000]
    assert all(r.speaking for r in results[102:160])  # the murmur keeps it open
    assert ends == [3200 + 700]
    # The same murmur does not open a closed gate.
    murmur = np.concatenate([white(2.0, -60, 5), white(1.0, -52, 6)])
    onsets, _, _ = run(VadGate(classifier=lambda _f: True), to_pcm(murmur))
    assert onsets == []


# -- silence, tones and other signals ---------------------------------------------------


def test_digital_silence_never_opens_even_if_the_classifier_says_speech() -> None:
    gate = VadGate(classifier=lambda _f: True)
    zero = bytes(640)
    dither = to_pcm(white(0.02, -95))
    for frame in [zero, dither] * 100:
        result = gate.process(frame)
        assert not result.voiced and not result.speaking
    assert gate.process(zero).level_dbfs == SILENCE_DBFS


def test_quiet_signals_below_min_level_never_open() -> None:
    signal = np.concatenate([np.zeros(RATE), tone(2.0, -70)])
    onsets, _, _ = run(VadGate(classifier=lambda _f: True), to_pcm(signal))
    assert onsets == []


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_tone_bursts_are_short_utterances(frame_ms: int) -> None:
    # webrtcvad calls a pure tone speech; the gate treats each burst like a short word:
    # one onset at its start, one end after the end silence.
    burst = np.concatenate([tone(0.3, -20), np.zeros(round(0.9 * RATE))])
    signal = np.concatenate([np.zeros(RATE), *([burst] * 4)])
    onsets, ends, _ = run(VadGate(frame_ms=frame_ms), to_pcm(signal))
    starts = [1000 + 1200 * k for k in range(4)]
    assert len(onsets) == 4
    assert all(abs(o - s) <= frame_ms for o, s in zip(onsets, starts, strict=True))
    assert len(ends) == 4
    assert all(abs(e - (s + 300 + 700)) <= 2 * frame_ms for e, s in zip(ends, starts, strict=True))


def test_a_continuous_tone_is_absorbed_by_the_noise_floor() -> None:
    signal = np.concatenate([np.zeros(RATE), tone(10.0, -20)])
    onsets, ends, results = run(VadGate(), to_pcm(signal))
    assert onsets == [1000]
    assert len(ends) == 1
    assert ends[0] <= 1000 + FLOOR_WINDOW_MS + 700 + 500
    assert not any(r.speaking for r in results[ends[0] // 20 :])


def test_noise_that_starts_abruptly_opens_at_most_once(shared_audio: Path) -> None:
    noise = load_samples(shared_audio, "noise_fan.wav")
    signal = np.concatenate([white(1.0, -80), noise])
    onsets, ends, _ = run(VadGate(), to_pcm(signal))
    assert len(onsets) <= 1
    assert len(ends) == len(onsets)
    if ends:
        assert ends[0] <= 1000 + 2 * FLOOR_WINDOW_MS + 700


# -- levels and arguments ---------------------------------------------------------------


def test_frame_dbfs() -> None:
    assert frame_dbfs(b"") == SILENCE_DBFS
    assert frame_dbfs(bytes(640)) == SILENCE_DBFS
    square = np.tile([32767, -32768], 160).astype("<i2").tobytes()
    assert frame_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert frame_dbfs(to_pcm(tone(0.02, -20))) == pytest.approx(-20.0, abs=0.05)
    assert frame_dbfs(to_pcm(tone(0.02, -20) / 10)) == pytest.approx(-40.0, abs=0.05)


def test_result_reports_level_and_noise_floor() -> None:
    gate = VadGate(classifier=lambda _f: False)
    first = gate.process(to_pcm(tone(0.02, -30)))
    assert first.level_dbfs == pytest.approx(-30.0, abs=0.05)
    assert first.noise_floor_dbfs == pytest.approx(-30.0, abs=0.05)
    assert gate.noise_floor_dbfs is not None


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        VadGate(frame_ms=25)
    with pytest.raises(ValueError, match="aggressiveness"):
        VadGate(aggressiveness=4)
    with pytest.raises(ValueError, match="start_frames"):
        VadGate(start_frames=0)
    with pytest.raises(ValueError, match="preroll_ms"):
        VadGate(preroll_ms=-1)
    with pytest.raises(ValueError, match="margin"):
        VadGate(noise_margin_db=5.0, hold_margin_db=6.0)
    gate = VadGate()
    with pytest.raises(ValueError, match="end_silence_ms"):
        gate.set_end_silence_ms(0)
    with pytest.raises(ValueError, match="640 bytes"):
        gate.process(bytes(320))
    assert VadGate(frame_ms=10, classifier=lambda _f: False).process(bytes(320)).voiced is False
