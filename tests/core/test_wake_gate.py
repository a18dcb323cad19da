"""The wake-word gate with a scripted spotter: the judgement around a detection (echo,
mute, what audio goes with it), one frame at a time. The spotter is a stand-in here
(the core is pure); the real model's detections are tested in tests/wake."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hello_device.core.turn.wake import LOOKBACK_S, WAKE_AUDIO_S, WakeEvent, WakeGate

FRAME = 640  # 20 ms at 16 kHz, int16


@dataclass(frozen=True)
class Hit:
    probability: float


@dataclass
class ScriptedSpotter:
    """Answers a detection when the frame it is fed is ``b"W"``-marked (first byte)."""

    model_id: str = "okay_nabu"
    fed: int = 0
    resets: int = 0
    heard: list[bytes] = field(default_factory=list)

    def feed(self, pcm: bytes) -> list[Hit]:
        self.fed += 1
        self.heard.append(pcm)
        return [Hit(0.97)] if pcm[:1] == b"W" else []

    def reset(self) -> None:
        self.resets += 1


def frame(tag: int) -> bytes:
    """A distinguishable frame (its index in the first bytes after a marker)."""
    return b"f" + tag.to_bytes(4, "little") + bytes(FRAME - 5)


WAKE = b"W" + bytes(FRAME - 1)


def run(
    gate: WakeGate,
    voiced: list[bool],
    *,
    echo: list[bool] | None = None,
    over: list[bool] | None = None,
) -> WakeEvent | None:
    """Feed one frame per flag; the last one carries the detection. Returns its result."""
    result = None
    for i, v in enumerate(voiced):
        pcm = WAKE if i == len(voiced) - 1 else frame(i)
        result = gate.process(
            pcm,
            v,
            echo_possible=bool(echo and echo[i]),
            over_echo=bool(over and over[i]),
        )
        if i < len(voiced) - 1:
            assert result is None
    return result


def phrase_then_pause(pause: int = 10) -> list[bool]:
    """1 s of room, a 0.8 s phrase, then ``pause`` silent frames (the detection's delay)."""
    return [False] * 50 + [True] * 40 + [False] * pause


def indices(frames: tuple[bytes, ...]) -> list[int]:
    return [int.from_bytes(f[1:5], "little") for f in frames]


def test_a_detection_in_a_quiet_room_is_accepted_and_sends_nothing_of_the_phrase() -> None:
    gate = WakeGate(ScriptedSpotter())
    event = run(gate, phrase_then_pause())
    assert event is not None and not event.echo
    assert (event.word, event.probability) == ("okay_nabu", 0.97)
    assert event.frames == ()  # the user is silent: the question has not started


def test_send_wake_audio_carries_the_phrase_with_its_preroll_only() -> None:
    gate = WakeGate(ScriptedSpotter(), send_wake_audio=True, preroll_frames=5)
    # An earlier remark (frames 10-29), a 0.4 s pause, the phrase (50-89, with a short
    # pause inside it at 65-69), then 10 frames of pause before the detection.
    voiced = [False] * 10 + [True] * 20 + [False] * 20 + [True] * 40 + [False] * 10
    for i in range(65, 70):
        voiced[i] = False
    event = run(gate, voiced)
    assert event is not None
    got = indices(event.frames[:-1])  # the last frame is the detection's own
    assert got[0] == 45 and got[-1] == len(voiced) - 2  # pre-roll, phrase, pause
    assert got == list(range(45, len(voiced) - 1))


def test_send_wake_audio_is_bounded() -> None:
    gate = WakeGate(ScriptedSpotter(), send_wake_audio=True)
    event = run(gate, [True] * 300 + [False] * 5)
    assert event is not None
    assert len(event.frames) == round(WAKE_AUDIO_S / 0.02)


def test_a_question_begun_before_the_detection_goes_with_it_from_the_pause() -> None:
    gate = WakeGate(ScriptedSpotter())
    # the phrase ends, 3 frames of pause, then the user is already talking (5 frames)
    voiced = [False] * 50 + [True] * 40 + [False] * 3 + [True] * 6
    event = run(gate, voiced)
    assert event is not None
    assert indices(event.frames[:-1]) == list(range(90, 98))  # the pause and the speech


def test_speech_that_runs_on_from_the_phrase_is_not_taken_for_the_question() -> None:
    gate = WakeGate(ScriptedSpotter())
    event = run(gate, [False] * 20 + [True] * 60)
    assert event is not None and event.frames == ()
    # a pause older than the lookback does not count either
    gate = WakeGate(ScriptedSpotter())
    long = round(LOOKBACK_S / 0.02) + 5
    event = run(gate, [False] * 20 + [True] * 40 + [False] * 3 + [True] * long)
    assert event is not None and event.frames == ()


def test_the_devices_own_voice_is_rejected_as_echo() -> None:
    gate = WakeGate(ScriptedSpotter())
    n = 100
    event = run(gate, [True] * n, echo=[True] * n, over=[False] * n)
    assert event is not None and event.echo
    assert gate.rejected_as_echo == 1


def test_a_user_clearly_over_the_echo_is_accepted() -> None:
    gate = WakeGate(ScriptedSpotter(), min_user_ms=120)
    n = 100
    over = [False] * 60 + [True] * 6 + [False] * 34  # 120 ms above the predicted echo
    event = run(gate, [True] * n, echo=[True] * n, over=over)
    assert event is not None and not event.echo
    gate = WakeGate(ScriptedSpotter(), min_user_ms=120)
    over = [False] * 60 + [True] * 5 + [False] * 35  # 100 ms: not enough
    event = run(gate, [True] * n, echo=[True] * n, over=over)
    assert event is not None and event.echo


@pytest.mark.parametrize(("after_s", "accepted"), [(0.2, False), (0.9, False), (2.6, True)])
def test_the_agents_last_words_are_echo_for_a_while_after_it_stops(
    after_s: float, accepted: bool
) -> None:
    """The agent said the word as its last words, then stopped: a detection ``after_s``
    later is still judged as echo while the window holds those words."""
    gate = WakeGate(ScriptedSpotter())
    talking = 100
    quiet = round(after_s / 0.02)
    voiced = [True] * talking + [False] * quiet
    echo = [True] * talking + [False] * quiet
    event = run(gate, voiced, echo=echo)
    assert event is not None and event.echo is not accepted


def test_a_user_speaking_just_after_the_agent_is_heard() -> None:
    """Within the echo hold, frames of speech count as the user's only if the guard
    says so; after it, plain speech counts: a phrase that ends 1.5 s after the agent
    stopped is accepted."""
    gate = WakeGate(ScriptedSpotter())
    voiced = [True] * 100 + [False] * 25 + [True] * 40 + [False] * 10
    echo = [True] * 100 + [False] * 75
    event = run(gate, voiced, echo=echo)
    assert event is not None and not event.echo


def test_muted_the_spotter_hears_nothing_and_starts_afresh_after() -> None:
    spotter = ScriptedSpotter()
    gate = WakeGate(spotter)
    for i in range(10):
        assert gate.process(frame(i), False, echo_possible=False, over_echo=False) is None
    assert (spotter.fed, spotter.resets) == (10, 1)
    gate.pause()  # muted: the pipeline does not feed it
    event = gate.process(WAKE, True, echo_possible=False, over_echo=False)
    assert event is not None  # the first frame after the mute is heard again ...
    assert spotter.resets == 2  # ... by a spotter that forgot what came before
