"""The uplink gate: privacy gating with a truthful timeline and pre-roll."""

from __future__ import annotations

from hello_device.core.turn.uplink import UplinkGate

SILENCE = bytes(4)


def frame(i: int) -> bytes:
    return bytes([i % 250 + 1]) * 4


def run(gate: UplinkGate, speech: list[bool]) -> list[bytes]:
    out: list[bytes] = []
    for i, s in enumerate(speech):
        out += gate.process(frame(i), s)
    return out


def test_all_mode_sends_every_frame_as_is() -> None:
    gate = UplinkGate("all", 5)
    assert run(gate, [False, True, False]) == [frame(0), frame(1), frame(2)]


def test_speech_mode_silences_non_speech_and_keeps_time() -> None:
    gate = UplinkGate("speech", 3)
    speech = [False] * 10
    out = run(gate, speech)
    # Three frames are held back (the pre-roll); the rest went out as silence.
    assert out == [SILENCE] * 7
    assert gate.silenced_frames == 7
    assert gate.flush_silence() == [SILENCE] * 3


def test_onset_sends_the_preroll_then_live_frames() -> None:
    gate = UplinkGate("speech", 3)
    speech = [False] * 6 + [True] * 4
    out = run(gate, speech)
    # frames 0-2 left the window as silence; 3-5 held, then sent real with the onset frame
    assert out == [SILENCE] * 3 + [frame(3), frame(4), frame(5), frame(6)] + [
        frame(7),
        frame(8),
        frame(9),
    ]


def test_no_frame_sent_twice_or_lost_across_utterances() -> None:
    gate = UplinkGate("speech", 4, min_frames=4)
    pattern = [False] * 7 + [True] * 5 + [False] * 9 + [True] * 3 + [False] * 6
    out = run(gate, pattern) + gate.flush_silence()
    assert len(out) == len(pattern)  # the wire timeline equals the captured one
    real = [f for f in out if f != SILENCE]
    assert real == [frame(i) for i in range(3, 12)] + [frame(i) for i in range(17, 24)]
    assert len(set(real)) == len(real)


def test_after_an_utterance_only_the_confirming_frames_are_held() -> None:
    """The platform hears the end of a turn almost live (2 frames late), not 300 ms late."""
    gate = UplinkGate("speech", 15, min_frames=2)
    out = [gate.process(frame(i), s) for i, s in enumerate([True, True] + [False] * 5)]
    assert out[2] == [] and out[3] == []
    assert out[4] == [SILENCE] and out[5] == [SILENCE] and out[6] == [SILENCE]
    assert gate.lag_frames == 2


def test_a_quick_resumption_keeps_its_first_voiced_frames() -> None:
    gate = UplinkGate("speech", 15, min_frames=2)
    pattern = [True] * 3 + [False] * 6 + [True] * 2
    out = [f for i, s in enumerate(pattern) for f in gate.process(frame(i), s)]
    # frames 7 and 8 (just before the new onset) were held, so they go out as speech
    assert out[-4:] == [frame(7), frame(8), frame(9), frame(10)]


def test_the_full_preroll_is_rebuilt_once_the_turn_settles() -> None:
    gate = UplinkGate("speech", 5, min_frames=1, settle_frames=1000)
    for i, s in enumerate([True, False, False, False]):
        gate.process(frame(i), s)
    assert gate.lag_frames == 1
    gate.settle()  # the agent starts answering
    sent = [gate.process(frame(10 + i), False) for i in range(6)]
    assert sent[:4] == [[], [], [], []]  # held back to grow the window
    assert gate.lag_frames == 5 and sent[4] == [SILENCE]
    quiet = UplinkGate("speech", 4, min_frames=1, settle_frames=3)
    for i, s in enumerate([True] + [False] * 8):
        quiet.process(frame(i), s)
    assert quiet.lag_frames == 4  # settled by itself after 3 quiet frames
