"""BargeInDetector: synthetic level sequences for the rules, and real speech mixed with an
agent's echo for the behaviour (reaction time, no false barge-ins)."""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hello_device.core.turn import (
    SILENCE_DBFS,
    BargeInDetector,
    VadGate,
)

RATE = 16000
FRAME_MS = 20
USER_ONSET_S = 6.02  # bargein.wav, README ground truth
WARM_MS = 260.0  # the first frame after the default warm-up (frames 0..12 of 20 ms)


@dataclass(frozen=True)
class F:
    """One synthetic frame for :func:`feed`."""

    mic: float
    play: float = -20.0
    voiced: bool = True
    audible: bool = True


def feed(det: BargeInDetector, frames: list[F], start_ms: float = WARM_MS) -> list[int]:
    """Feed frames of one agent turn from ``start_ms`` into it; indexes where it fired."""
    fired = []
    for i, f in enumerate(frames):
        if det.update(f.voiced, f.mic, f.play, f.audible, start_ms + i * FRAME_MS):
            fired.append(i)
    return fired


USER = F(mic=-10.0)  # 10 dB above an echo as loud as the playback: a candidate
ECHO = F(mic=-20.0)  # exactly the predicted echo at the initial 0 dB coupling


def warm(**kwargs: float) -> BargeInDetector:
    """A detector calibrated on the warm-up of a first agent turn with a plain echo."""
    det = BargeInDetector(**kwargs)  # type: ignore[arg-type]
    assert feed(det, [ECHO] * 13, start_ms=0.0) == []
    assert det.calibrated and det.coupling_db == 0.0
    return det


# -- the rules, on synthetic levels -----------------------------------------------------


def test_fires_once_after_min_speech_ms_of_candidates() -> None:
    det = warm()
    assert feed(det, [ECHO] * 10 + [USER] * 6) == [10 + 5]
    assert det.fired
    assert det.reason.startswith("barge-in: 120 ms")
    assert feed(det, [USER] * 20, start_ms=1000.0) == []
    assert det.reason == "already fired this agent turn"


@pytest.mark.parametrize(
    ("frame_ms", "min_speech_ms", "expected"),
    [(10, 120, 25 + 11), (20, 120, 13 + 5), (30, 100, 9 + 3)],
)
def test_min_speech_in_frames_after_the_warmup(
    frame_ms: int, min_speech_ms: int, expected: int
) -> None:
    det = BargeInDetector(frame_ms=frame_ms, min_speech_ms=min_speech_ms)
    for i in range(30):  # a first agent turn calibrates on its echo
        assert not det.update(True, -20.0, -20.0, True, i * frame_ms)
    fired = [i for i in range(60) if det.update(True, -10.0, -20.0, True, i * frame_ms)]
    assert fired == [expected]


def test_echo_at_the_predicted_level_never_fires() -> None:
    det = BargeInDetector()
    assert feed(det, [ECHO, F(mic=-15.0), F(mic=-14.5)] * 100, start_ms=0.0) == []
    assert det.reason.startswith("echo")


def test_margin_is_inclusive_and_measured_from_the_prediction() -> None:
    assert feed(warm(), [F(mic=-14.01)] * 20) == []
    assert feed(warm(), [F(mic=-14.0)] * 20) == [5]
    assert feed(warm(echo_margin_db=12.0), [F(mic=-10.0)] * 20) == []


def test_unvoiced_loud_frames_never_fire() -> None:
    det = warm()
    assert feed(det, [F(mic=0.0, voiced=False)] * 50) == []
    assert det.reason == "not voiced"


def test_nothing_fires_while_the_agent_is_not_audible() -> None:
    det = warm()
    assert feed(det, [F(mic=-10.0, play=SILENCE_DBFS, audible=False)] * 50) == []
    assert det.reason == "agent not audible"
    assert det.predicted_echo_dbfs == SILENCE_DBFS


def test_a_silent_moment_of_an_audible_agent_turn_allows_barge_in() -> None:
    # Between two sentences the player plays silence: the user only has to be heard.
    # (The prediction of the room's reverberation has decayed after 600 ms.)
    silent = F(mic=-95.0, play=SILENCE_DBFS, voiced=False)
    frames = [silent] * 30 + [F(mic=-40.0, play=SILENCE_DBFS)] * 10
    assert feed(warm(), frames) == [35]


def test_warmup_at_the_start_of_each_agent_turn() -> None:
    det = warm()
    assert feed(det, [USER] * 13, start_ms=0.0) == []  # a new turn
    assert det.reason == "warm-up"
    # Frames 0..12 (up to 240 ms) are the warm-up; 13..18 confirm: a user who goes on
    # talking when the agent starts is heard once the warm-up is over.
    assert feed(warm(), [USER] * 30, start_ms=0.0) == [18]


def test_the_first_warmup_calibrates_even_if_the_user_talks_through_it() -> None:
    # Before anything was learnt, the warm-up takes whatever it hears for echo: the
    # detector is conservative for that turn rather than firing on a hot echo path.
    det = BargeInDetector()
    assert not det.calibrated
    assert feed(det, [USER] * 30, start_ms=0.0) == []
    assert det.calibrated and det.coupling_db == pytest.approx(10.0)
    # Once the user stops, the window forgets and the estimate comes down again.
    feed(det, [F(mic=-40.0)] * 150, start_ms=600.0)
    assert det.coupling_db == pytest.approx(-20.0)


def test_warmup_starts_again_when_the_agent_first_makes_a_sound() -> None:
    # A turn that starts with a second of silence: the echo path is only heard (and
    # learnt) from its first sound on, so the warm-up covers that moment too.
    silent = F(mic=-95.0, play=SILENCE_DBFS, voiced=False)
    assert feed(warm(), [silent] * 50 + [USER] * 30, start_ms=0.0) == [50 + 18]
    # Talking into that silence is a barge-in.
    talking = F(mic=-30.0, play=SILENCE_DBFS)
    assert feed(warm(), [silent] * 20 + [talking] * 10, start_ms=0.0) == [25]


def test_one_gap_frame_is_bridged_but_not_counted() -> None:
    gap = F(mic=-20.0)
    assert feed(warm(), [USER] * 3 + [gap] + [USER] * 5) == [6]
    assert feed(warm(), [USER] * 3 + [F(mic=-10, voiced=False)] + [USER] * 5) == [6]


def test_two_gap_frames_in_a_row_restart_the_run() -> None:
    gap = F(mic=-20.0)
    assert feed(warm(), [USER] * 5 + [gap, gap] + [USER] * 8) == [12]


def test_a_second_gap_restarts_the_run_after_the_first() -> None:
    gap = F(mic=-20.0)
    frames = [USER, USER, gap, USER, USER, gap, USER, USER, USER, USER, USER]
    # Candidates 3-4 plus the second gap form the new run; it needs 6 candidates.
    assert feed(warm(), frames) == [9]


def test_two_gaps_allowed() -> None:
    gap = F(mic=-20.0)
    frames = [USER, gap, USER, gap, USER, USER, gap, USER, USER, USER]
    # With two gaps per run, the third restarts the run after the first: 1+2+3 = 6.
    assert feed(warm(max_gap_frames=2), frames) == [9]
    assert feed(warm(max_gap_frames=2), [USER] * 3 + [gap, gap] + [USER] * 6) == [10]


def test_no_gap_allowed() -> None:
    gap = F(mic=-20.0)
    assert feed(warm(max_gap_frames=0), [USER] * 5 + [gap] + [USER] * 6) == [11]


def test_a_new_agent_turn_rearms() -> None:
    det = warm()
    assert feed(det, [USER] * 25, start_ms=0.0) == [18]
    assert feed(det, [F(mic=-10.0, play=SILENCE_DBFS, audible=False)] * 5, start_ms=0.0) == []
    assert feed(det, [USER] * 25, start_ms=0.0) == [18]


def test_agent_turn_time_going_back_rearms_even_without_a_silent_frame() -> None:
    det = warm()
    assert feed(det, [USER] * 25, start_ms=0.0) == [18]
    assert feed(det, [USER] * 25, start_ms=100.0) == [18]


def test_reset_rearms_and_keeps_the_coupling_unless_asked() -> None:
    det = BargeInDetector()
    feed(det, [F(mic=-40.0)] * 100, start_ms=0.0)
    learnt = det.coupling_db
    assert learnt == pytest.approx(-20.0)
    assert feed(det, [F(mic=-30.0)] * 10, start_ms=2000.0) == [5]
    det.reset()
    assert not det.fired and det.reason == "reset"
    assert det.coupling_db == learnt
    assert feed(det, [F(mic=-40.0)] * 13 + [F(mic=-30.0)] * 10, start_ms=0.0) == [18]
    det.reset(forget_coupling=True)
    assert det.coupling_db == 0.0 and not det.calibrated


# -- the echo path estimate -------------------------------------------------------------


def test_coupling_adapts_down_to_a_quiet_echo_path() -> None:
    det = BargeInDetector()
    # Echo 20 dB below the playback. The initial 0 dB falls at 40 dB/s at most ...
    feed(det, [F(mic=-40.0)] * 13, start_ms=0.0)
    assert det.coupling_db == pytest.approx(-13 * 0.8)
    # ... so a user 10 dB above that echo is not yet 6 dB above the prediction ...
    assert feed(det, [F(mic=-30.0)] * 10, start_ms=260.0) == []
    # ... but a second later the estimate is down to the echo's level ...
    feed(det, [F(mic=-40.0)] * 100, start_ms=460.0)
    assert det.coupling_db == pytest.approx(-20.0)
    # ... and the same user is a barge-in.
    assert feed(det, [F(mic=-30.0)] * 10, start_ms=2460.0) == [5]


def test_coupling_follows_the_peaks_of_the_echo_not_its_average() -> None:
    det = BargeInDetector()
    pattern = [F(mic=-30.0)] + [F(mic=-45.0)] * 9  # one loud echo frame in ten
    feed(det, pattern * 20, start_ms=0.0)
    assert det.coupling_db == pytest.approx(-10.0)


def test_the_window_forgets_old_peaks() -> None:
    det = BargeInDetector(coupling_window_ms=1000)
    feed(det, [F(mic=-30.0)] * 20 + [F(mic=-45.0)] * 100, start_ms=0.0)
    assert det.coupling_db == pytest.approx(-25.0)


def test_user_speech_never_raises_its_own_threshold() -> None:
    det = BargeInDetector()
    feed(det, [F(mic=-40.0)] * 100, start_ms=0.0)  # learn -20 dB
    # A loud sound the VAD rejects (12 dB above the echo): not learnt at all.
    feed(det, [F(mic=-28.0, voiced=False)] * 100, start_ms=2000.0)
    assert det.coupling_db == pytest.approx(-20.0)
    # A user murmuring 4 dB above the echo for two seconds: the estimate rises slowly.
    feed(det, [F(mic=-36.0)] * 100, start_ms=4000.0)
    assert -20.0 < det.coupling_db <= -20.0 + 2.0 * 2.0 + 1e-9
    assert not det.fired


def test_warmup_trusts_the_echo_so_a_hot_echo_path_is_learnt_at_once() -> None:
    # This device's microphone hears the loudspeaker 12 dB louder than the playback
    # level: more than the margin above the initial 0 dB guess.
    det = BargeInDetector()
    assert feed(det, [F(mic=-8.0)] * 200, start_ms=0.0) == []
    assert det.coupling_db == pytest.approx(12.0)
    # Without the warm-up to learn in, that echo is indistinguishable from a user.
    assert feed(BargeInDetector(warmup_ms=0), [F(mic=-8.0)] * 20, start_ms=0.0) == [5]


def test_quiet_playback_teaches_nothing() -> None:
    det = BargeInDetector()
    feed(det, [F(mic=-60.0, play=-55.0, voiced=False)] * 100, start_ms=0.0)
    assert det.coupling_db == 0.0


def test_nothing_is_learnt_after_a_barge_in() -> None:
    det = BargeInDetector()
    feed(det, [F(mic=-40.0)] * 100, start_ms=0.0)
    # The user goes on, 4 dB above the echo: learnable, were it not for the barge-in.
    feed(det, [F(mic=-30.0)] * 6 + [F(mic=-36.0)] * 100, start_ms=2000.0)
    assert det.fired
    assert det.coupling_db == pytest.approx(-20.0)


def test_prediction_covers_a_delayed_echo() -> None:
    # 300 ms syllables and pauses; the echo arrives 160 ms after the player's "now".
    play = ([-20.0] * 15 + [SILENCE_DBFS] * 15) * 10
    echo = [-90.0] * 8 + play[:-8]
    frames = [ECHO] * 13  # the warm-up hears a steady echo: nothing about the delay
    frames += [
        F(mic=max(e, -90.0), play=p, voiced=e > -60) for p, e in zip(play, echo, strict=True)
    ]
    assert feed(BargeInDetector(), frames, start_ms=0.0) == []
    # Predicting from the current playback level alone takes each syllable's end for a
    # user talking.
    instant = BargeInDetector(echo_hold_ms=20, echo_tail_db_per_s=1000.0)
    assert feed(instant, frames, start_ms=0.0) == [13 + 15 + 5]


def test_prediction_tail_covers_reverberation() -> None:
    # After each syllable the room rings on, decaying 40 dB/s (reverberation time 1.5 s).
    play = ([-20.0] * 10 + [SILENCE_DBFS] * 15) * 8
    frames = [ECHO] * 13
    level = -90.0
    for p in play:
        level = p if p > -90.0 else max(level - 40.0 * FRAME_MS / 1000, -90.0)
        frames.append(F(mic=level, play=p))
    assert feed(BargeInDetector(echo_tail_db_per_s=30.0), frames, start_ms=0.0) == []
    assert feed(BargeInDetector(echo_tail_db_per_s=200.0), frames, start_ms=0.0) != []


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        BargeInDetector(frame_ms=0)
    with pytest.raises(ValueError, match="min_speech_ms"):
        BargeInDetector(min_speech_ms=0)
    with pytest.raises(ValueError, match="negative"):
        BargeInDetector(warmup_ms=-1)
    with pytest.raises(ValueError, match="negative"):
        BargeInDetector(coupling_decay_db_per_s=-1.0)
    with pytest.raises(ValueError, match="coupling_window_ms"):
        BargeInDetector(coupling_window_ms=10)


# -- real speech: bargein.wav over an agent's echo ---------------------------------------


def load(folder: Path, name: str) -> np.ndarray:
    with wave.open(str(folder / name), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def dbfs(samples: np.ndarray) -> float:
    """RMS level of one frame in dBFS, computed independently of the package."""
    mean_sq = float(np.mean(samples * samples))
    return SILENCE_DBFS if mean_sq <= 0 else max(SILENCE_DBFS, 10 * math.log10(mean_sq / 2**30))


def room(delay_ms: float, rt60_s: float) -> np.ndarray:
    """Impulse response: the direct sound after ``delay_ms``, then (if ``rt60_s``) an
    exponentially decaying diffuse tail 6 dB below it."""
    delay = round(delay_ms * RATE / 1000)
    if rt60_s <= 0:
        response = np.zeros(delay + 1)
        response[delay] = 1.0
        return response
    length = round(rt60_s * RATE)
    t = np.arange(length) / RATE
    tail = np.random.default_rng(7).normal(size=length) * 10 ** (-3 * t / rt60_s)
    tail *= math.sqrt(10 ** (-6 / 10) / float(np.sum(tail**2)))
    response = np.zeros(delay + 80 + length)
    response[delay] = 1.0
    response[delay + 80 :] += tail
    return response


def convolve(signal: np.ndarray, response: np.ndarray) -> np.ndarray:
    size = 1 << (len(signal) + len(response) - 2).bit_length()
    spectrum = np.fft.rfft(signal, size) * np.fft.rfft(response, size)
    return np.fft.irfft(spectrum, size)[: len(signal)]


def simulate(
    user: np.ndarray,
    agent: np.ndarray,
    agent_start_s: float,
    echo_gain_db: float | None,
    delay_ms: float = 0.0,
    rt60_s: float = 0.0,
) -> list[float]:
    """Play ``agent`` from ``agent_start_s`` while the microphone hears ``user`` plus the
    agent's echo (``None``: no echo); times in seconds at which a barge-in fired."""
    length = len(user)
    start = round(agent_start_s * RATE)
    playback = np.zeros(length)
    part = agent[: max(0, length - start)]
    playback[start : start + len(part)] = part
    mic = user.copy()
    if echo_gain_db is not None:
        mic += convolve(playback, room(delay_ms, rt60_s)) * 10 ** (echo_gain_db / 20)
    mic = np.clip(np.round(mic), -32768, 32767)
    gate = VadGate(frame_ms=FRAME_MS)
    det = BargeInDetector(frame_ms=FRAME_MS)
    n = RATE * FRAME_MS // 1000
    fired = []
    for first in range(0, length - n + 1, n):
        mic_frame = mic[first : first + n]
        voiced = gate.process(mic_frame.astype("<i2").tobytes()).voiced
        audible = start <= first < start + len(part)
        turn_ms = (first - start) * 1000 / RATE if audible else 0.0
        play_frame = playback[first : first + n]
        if det.update(voiced, dbfs(mic_frame), dbfs(play_frame), audible, turn_ms):
            fired.append((first + n) / RATE)
    return fired


@pytest.fixture(scope="module")
def recordings(shared_audio: Path) -> dict[str, np.ndarray]:
    names = ["bargein.wav", "utterance.wav", "two_turns.wav", "noise_fan.wav"]
    return {name.removesuffix(".wav"): load(shared_audio, name) for name in names}


def long_reply(rec: dict[str, np.ndarray]) -> np.ndarray:
    """An agent talking for ~10 s without a long pause: the speech of the recordings."""
    u, t = rec["utterance"], rec["two_turns"]

    def cut(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return x[round(a * RATE) : round(b * RATE)]

    return np.concatenate(
        [cut(u, 1.0, 3.95), cut(t, 1.0, 2.9), cut(t, 6.1, 9.1), cut(u, 1.0, 3.95)]
    )


def reaction_ms(fired: list[float]) -> float:
    assert len(fired) == 1, f"fired at {fired}"
    assert fired[0] > USER_ONSET_S, f"false barge-in at {fired[0]} s, before the user spoke"
    return (fired[0] - USER_ONSET_S) * 1000


@pytest.mark.parametrize("room_", [(0.0, 0.0), (30.0, 0.4)], ids=["dry", "reverberant"])
@pytest.mark.parametrize("echo_gain_db", [0.0, -10.0])
@pytest.mark.parametrize("agent", ["two_turns", "utterance"])
def test_barge_in_over_an_agent_recording(
    recordings: dict[str, np.ndarray],
    agent: str,
    echo_gain_db: float,
    room_: tuple[float, float],
) -> None:
    # The recording is the agent's turn from t = 0 (audible throughout; it talks before
    # the user's onset and, for two_turns, again right after it).
    fired = simulate(recordings["bargein"], recordings[agent], 0.0, echo_gain_db, *room_)
    assert reaction_ms(fired) <= 150


AGENT_STARTS = [0.5 + 0.5 * k for k in range(11)]  # the reply is 0.5-5.5 s old at the onset


@pytest.mark.parametrize(
    ("echo_gain_db", "room_", "limit_ms"),
    [
        (None, (0.0, 0.0), 150),  # the file-backend bench: the microphone hears no echo
        (-30.0, (0.0, 0.0), 150),
        (-30.0, (30.0, 0.4), 150),
        (-20.0, (0.0, 0.0), 250),
        (-20.0, (30.0, 0.4), 250),
    ],
    ids=["no-echo", "echo-30dB", "echo-30dB-room", "echo-20dB", "echo-20dB-room"],
)
def test_barge_in_over_an_agent_talking_through_the_onset(
    recordings: dict[str, np.ndarray],
    echo_gain_db: float | None,
    room_: tuple[float, float],
    limit_ms: float,
) -> None:
    # With the echo 20 dB below the user the quiet "s" of "Stop" is often masked and the
    # barge-in is confirmed on the vowel; 30 dB below, on the "s".
    reply = long_reply(recordings)
    reactions = [
        reaction_ms(simulate(recordings["bargein"], reply, s, echo_gain_db, *room_))
        for s in AGENT_STARTS
    ]
    assert max(reactions) <= limit_ms, reactions


def test_barge_in_over_an_echo_10db_below_the_user_is_late_but_never_false(
    recordings: dict[str, np.ndarray],
) -> None:
    reply = long_reply(recordings)
    reactions = [
        reaction_ms(simulate(recordings["bargein"], reply, s, -10.0)) for s in AGENT_STARTS[::2]
    ]
    assert sorted(reactions)[len(reactions) // 2] <= 300, reactions


@pytest.mark.parametrize(
    "room_",
    [(0.0, 0.0), (40.0, 0.0), (30.0, 0.4), (30.0, 0.8)],
    ids=["dry", "40ms", "rt.4", "rt.8"],
)
@pytest.mark.parametrize("echo_gain_db", [0.0, 6.0])
def test_the_agents_own_voice_never_barges_in(
    recordings: dict[str, np.ndarray], echo_gain_db: float, room_: tuple[float, float]
) -> None:
    silence = np.zeros(len(recordings["bargein"]))
    for agent, start in (("two_turns", 0.0), ("utterance", 3.0)):
        assert simulate(silence, recordings[agent], start, echo_gain_db, *room_) == []
    assert simulate(silence, long_reply(recordings), 0.5, echo_gain_db, *room_) == []


def test_fan_noise_never_barges_in(recordings: dict[str, np.ndarray]) -> None:
    fan = recordings["noise_fan"]
    reply = long_reply(recordings)
    assert simulate(fan, reply, 0.5, None) == []  # fan as the microphone, agent playing
    assert simulate(fan, reply, 0.5, 0.0, 30.0, 0.4) == []  # plus the agent's echo
    assert simulate(fan, recordings["two_turns"], 0.0, 0.0) == []
