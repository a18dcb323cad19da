"""The frame pipeline, synchronously: real recordings in, actions out.

These are the decisions the end-to-end tests exercise through the emulator (voice
trigger with pre-roll, barge-in, the echo of the agent's last words, mute and
push-to-talk), checked one frame at a time with the time passed in.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass

import pytest

from hello_device.core.turn.bargein import BargeInDetector
from hello_device.core.turn.pipeline import Act, Action, FramePipeline
from hello_device.core.turn.uplink import UplinkGate
from hello_device.core.turn.vad import VadGate
from tests.conftest import DATA

FRAME_MS = 20
FRAME_BYTES = 16000 * FRAME_MS // 1000 * 2
SILENCE = bytes(FRAME_BYTES)


def frames(name: str) -> list[bytes]:
    with wave.open(str(DATA / "audio" / name), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


SPEECH = frames("utterance.wav")  # speech 1.05–3.90 s
ONSET = 1.05


@dataclass
class FakePlayback:
    """The player as the pipeline sees it: playing or not, and how loud."""

    playing: bool = False
    level: float = -90.0

    def level_dbfs(self) -> float:
        return self.level


def pipeline(
    playback: FakePlayback | None = None, *, send: str = "speech", **options: object
) -> FramePipeline:
    return FramePipeline(
        VadGate(frame_ms=FRAME_MS, preroll_ms=300),
        BargeInDetector(frame_ms=FRAME_MS, min_speech_ms=120, warmup_ms=250),
        UplinkGate(send, preroll_frames=15, min_frames=2, settle_frames=75),  # type: ignore[arg-type]
        playback or FakePlayback(),
        **options,  # type: ignore[arg-type]
    )


def feed(
    p: FramePipeline, audio: list[bytes], t0: float = 0.0, **kw: object
) -> list[tuple[float, Action]]:
    """Every action with the time of the frame that caused it."""
    out: list[tuple[float, Action]] = []
    for i, pcm in enumerate(audio):
        now = t0 + (i + 1) * FRAME_MS / 1000
        out.extend((now, a) for a in p.process(pcm, now, **kw))  # type: ignore[arg-type]
    return out


def kinds(actions: list[tuple[float, Action]]) -> list[Act]:
    return [a.act for _, a in actions]


def sent(actions: list[tuple[float, Action]]) -> list[bytes]:
    return [a.pcm for _, a in actions if a.act is Act.SEND]


# ------------------------------------------------------------------ outside a conversation


def test_voice_trigger_starts_a_conversation_with_the_first_syllable() -> None:
    p = pipeline(start_on_voice=True)
    actions = feed(p, SPEECH, in_conversation=False)
    starts = [(t, a) for t, a in actions if a.act is Act.START_CONVERSATION]
    assert len(starts) == 1
    when, start = starts[0]
    assert ONSET <= when <= ONSET + 0.1  # confirmed within a few frames of the onset
    # the 300 ms pre-roll and the three frames that confirmed the onset
    assert start.frames is not None and len(start.frames) == 15 + 3
    first = SPEECH.index(start.frames[-1])
    assert first * FRAME_MS / 1000 >= ONSET - 0.02  # it ends in the speech, not before


@pytest.mark.parametrize(("start_on_voice", "muted"), [(False, False), (True, True)])
def test_no_trigger_when_not_configured_or_muted(start_on_voice: bool, muted: bool) -> None:
    p = pipeline(start_on_voice=start_on_voice)
    assert feed(p, SPEECH, in_conversation=False, muted=muted) == []


def test_outside_a_conversation_nothing_is_sent() -> None:
    actions = feed(pipeline(start_on_voice=True), SPEECH, in_conversation=False)
    assert Act.SEND not in kinds(actions)


# ------------------------------------------------------------------ in a conversation


def test_speech_goes_out_with_its_preroll_and_one_frame_per_frame() -> None:
    p = pipeline()
    actions = feed(p, SPEECH, in_conversation=True)
    out = sent(actions)
    # No frame is sent twice or skipped: the wire timeline is the microphone's.
    assert len(out) + p.uplink.lag_frames == len(SPEECH)
    speech_out = [pcm for pcm in out if pcm != SILENCE]
    assert speech_out == [pcm for pcm in SPEECH if pcm in speech_out]
    # The first frame with sound on the wire is at or before the ground-truth onset.
    first_sound = next(i for i, pcm in enumerate(out) if pcm != SILENCE and pcm in SPEECH)
    assert SPEECH.index(out[first_sound]) * FRAME_MS / 1000 <= ONSET + 0.02
    assert kinds(actions).count(Act.USER_SPEECH_STARTED) == 1
    assert kinds(actions).count(Act.NOTE_ACTIVITY) == 1
    assert kinds(actions).count(Act.USER_SPEECH_ENDED) == 1


def test_send_all_streams_the_microphone_as_it_is() -> None:
    actions = feed(pipeline(send="all"), SPEECH, in_conversation=True)
    assert sent(actions) == SPEECH


@pytest.mark.parametrize("control", ["muted", "push_to_talk_released"])
def test_mute_and_push_to_talk_send_only_zeros(control: str) -> None:
    kw = {"muted": True} if control == "muted" else {"ptt_held": False}
    actions = feed(pipeline(), SPEECH, in_conversation=True, **kw)
    out = sent(actions)
    assert out and all(pcm == SILENCE for pcm in out)
    assert Act.USER_SPEECH_STARTED in kinds(actions)  # the state still follows the room


# ------------------------------------------------------------------ the agent talks


def agent_talking(p: FramePipeline, playback: FakePlayback, now: float) -> None:
    playback.playing, playback.level = True, -20.0
    assert p.agent_audio_started(now) is True
    assert p.agent_audio_started(now + 0.1) is False  # the same turn


def test_barge_in_after_confirmed_speech_over_the_agent() -> None:
    playback = FakePlayback()
    p = pipeline(playback)
    agent_talking(p, playback, 0.0)
    actions = feed(p, SPEECH, in_conversation=True)
    barge = [t for t, a in actions if a.act is Act.BARGE_IN]
    assert len(barge) == 1
    assert ONSET + 0.05 <= barge[0] <= ONSET + 0.3  # confirmed speech, not a click
    assert not p.agent_audible
    # Before the barge-in nothing of the user went out as speech (the agent talked);
    # after it the user's words do.
    before = [a.pcm for t, a in actions if a.act is Act.SEND and t < barge[0]]
    after = [a.pcm for t, a in actions if a.act is Act.SEND and t >= barge[0]]
    assert all(pcm == SILENCE for pcm in before)
    assert any(pcm != SILENCE for pcm in after)


def test_no_barge_in_when_disabled_or_in_the_warmup() -> None:
    playback = FakePlayback()
    p = pipeline(playback, barge_in=False)
    agent_talking(p, playback, 0.0)
    assert Act.BARGE_IN not in kinds(feed(p, SPEECH, in_conversation=True))
    playback = FakePlayback()
    p = pipeline(playback)
    agent_talking(p, playback, ONSET)  # the user starts as the agent's turn begins
    assert Act.BARGE_IN not in kinds(feed(p, SPEECH[53:70], ONSET, in_conversation=True))


def test_the_loudspeaker_echo_of_the_last_words_never_reaches_the_platform() -> None:
    """The agent's reply ends while the gate is open on its echo: the held frames go as
    silence, the gate closes, and for the echo tail nothing is taken as speech."""
    playback = FakePlayback()
    p = pipeline(playback, barge_in=False)
    agent_talking(p, playback, 0.0)
    speech_until_echo = SPEECH[:120]  # the "echo" is still loud when playback stops
    actions = feed(p, speech_until_echo, in_conversation=True)
    playback.playing = False
    tail = feed(p, SPEECH[120:135], 120 * FRAME_MS / 1000, in_conversation=True)
    assert Act.AGENT_AUDIO_FINISHED in kinds(tail)
    assert all(pcm == SILENCE for pcm in sent(actions) + sent(tail))


def test_interruption_and_transcript_reset_the_turn() -> None:
    playback = FakePlayback()
    p = pipeline(playback)
    agent_talking(p, playback, 0.0)
    p.interrupted()
    assert not p.agent_audible
    assert p.agent_audio_started(1.0) is True  # a new agent turn
    p.conversation_started()
    assert not p.agent_audible
