"""The frame pipeline with the real wake-word model, frame by frame, on the shared
recordings: what a detection starts, what reaches the wire, and the device's own voice.

The daemon's side (the conversation opened, the emulator's view) is in
tests/daemon/test_wake_e2e.py; here the pipeline is driven as the daemon drives it:
``in_conversation`` becomes true with the frame after the WAKE action.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass

import pytest

from hello_device.audio.wav import read_wav_pcm
from hello_device.core.turn.bargein import BargeInDetector
from hello_device.core.turn.pipeline import Act, Action, FramePipeline
from hello_device.core.turn.uplink import UplinkGate
from hello_device.core.turn.vad import VadGate, frame_dbfs
from hello_device.core.turn.wake import WakeGate
from hello_device.settings import WakeWordSettings
from tests.conftest import DATA

pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")

from hello_device.wake.detector import WakeWordDetector

WAKE = DATA / "audio" / "wake"
FRAME = 640
PHRASE = (1.50, 2.31)  # wake_then_question.wav, ground truth
QUESTION = (3.36, 5.61)


def frames_of(name: str) -> list[bytes]:
    pcm, rate, channels = read_wav_pcm(WAKE / name)
    assert (rate, channels) == (16000, 1)
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


@dataclass
class Playback:
    playing: bool = False
    level: float = -120.0

    def level_dbfs(self) -> float:
        return self.level


def pipeline(
    playback: Playback,
    *,
    send_wake_audio: bool = False,
    barge_in: bool = True,
    wake_interrupts: bool = True,
) -> FramePipeline:
    spotter = WakeWordDetector(WakeWordSettings(model="okay_nabu"))
    return FramePipeline(
        VadGate(frame_ms=20, preroll_ms=300),
        BargeInDetector(frame_ms=20),
        UplinkGate("speech", preroll_frames=15, min_frames=2),
        playback,
        barge_in=barge_in,
        wake_interrupts=wake_interrupts,
        wake=WakeGate(spotter, send_wake_audio=send_wake_audio, preroll_frames=15),
    )


def loud(pcm: bytes) -> bool:
    return frame_dbfs(pcm) > -50.0


def drive(p: FramePipeline, audio: list[bytes]) -> tuple[list[tuple[int, Action]], list[int]]:
    """Frames in as the daemon gives them; (every action with its frame index, the file
    frame index of each frame that went to the wire, -1 for silence)."""
    actions: list[tuple[int, Action]] = []
    wire: list[int] = []
    by_content = {pcm: i for i, pcm in enumerate(audio) if loud(pcm)}
    opened = False
    for i, pcm in enumerate(audio):
        for action in p.process(pcm, (i + 1) * 0.02, in_conversation=opened):
            actions.append((i, action))
            if action.act is Act.WAKE:
                opened = True
            out = action.wake.frames if action.wake is not None else [action.pcm]
            if action.act in (Act.WAKE, Act.SEND):
                wire.extend(by_content.get(f, -1) if loud(f) else -1 for f in out)
    return actions, wire


def test_the_wake_word_starts_a_conversation_and_only_the_question_goes_out() -> None:
    audio = frames_of("wake_then_question.wav")
    p = pipeline(Playback())
    actions, wire = drive(p, audio)
    wakes = [(i, a) for i, a in actions if a.act is Act.WAKE]
    assert len(wakes) == 1
    at, action = wakes[0]
    assert PHRASE[1] <= (at + 1) * 0.02 <= PHRASE[1] + 0.4
    assert action.wake is not None and action.wake.word == "okay_nabu"
    assert action.wake.frames == ()
    heard = [i for i in wire if i >= 0]
    assert heard, "nothing of the question was sent"
    assert min(heard) * 0.02 >= PHRASE[1]  # nothing of the phrase
    # the question from its first frame (3.36 s), every frame of it, in order
    first = math.floor(QUESTION[0] / 0.02)
    assert min(heard) <= first + 1
    question = [i for i, pcm in enumerate(audio) if loud(pcm) and i * 0.02 >= PHRASE[1]]
    assert heard == question
    # one wire frame per captured frame after it (the last few still held as pre-roll)
    assert len(wire) + p.uplink.lag_frames == len(audio) - at - 1


def test_send_wake_audio_puts_the_phrase_first() -> None:
    audio = frames_of("wake_then_question.wav")
    actions, wire = drive(pipeline(Playback(), send_wake_audio=True), audio)
    wake = next(a for _, a in actions if a.act is Act.WAKE)
    phrase = [i for i, pcm in enumerate(audio) if loud(pcm) and i * 0.02 < PHRASE[1] + 0.02]
    sent = [i for i in wire if i >= 0]
    assert sent[: len(phrase)] == phrase  # the whole phrase, then ...
    assert min(sent[len(phrase) :]) * 0.02 >= QUESTION[0] - 0.1  # ... the question
    assert wake.wake is not None and len(wake.wake.frames) <= 100


def agent_over(
    mic: list[bytes], playback: Playback, p: FramePipeline, agent: list[bytes]
) -> list[Act]:
    """The agent plays ``agent`` (level as played) while the microphone hears ``mic``."""
    p.conversation_started()
    p.agent_audio_started(0.0)
    acts: list[Act] = []
    for i, pcm in enumerate(mic):
        playback.playing = True
        playback.level = frame_dbfs(agent[i]) if i < len(agent) else -120.0
        acts += [a.act for a in p.process(pcm, (i + 1) * 0.02, in_conversation=True)]
    return acts


def mix(a: list[bytes], b: list[bytes], gain_a: float = 1.0) -> list[bytes]:
    """``gain_a`` times ``a`` plus ``b``, frame by frame, saturated."""
    out = []
    for x, y in zip(a, b, strict=False):
        xa, ya = array.array("h", x), array.array("h", y)
        mixed = (
            max(-32768, min(32767, round(gain_a * u) + v)) for u, v in zip(xa, ya, strict=True)
        )
        out.append(array.array("h", mixed).tobytes())
    return out


def test_the_wake_word_over_the_agent_stops_it_even_without_barge_in() -> None:
    playback = Playback()
    p = pipeline(playback, barge_in=False)
    phrase = frames_of("okay_nabu__en-us.wav")
    quiet_agent = [bytes(FRAME)] * len(phrase)  # the agent is silent on the loudspeaker
    acts = agent_over(phrase, playback, p, quiet_agent)
    assert Act.BARGE_IN in acts


def test_with_during_agent_ignore_the_word_over_the_agent_does_nothing() -> None:
    playback = Playback()
    p = pipeline(playback, barge_in=False, wake_interrupts=False)
    phrase = frames_of("okay_nabu__en-us.wav")
    acts = agent_over(phrase, playback, p, [bytes(FRAME)] * len(phrase))
    assert Act.BARGE_IN not in acts and Act.WAKE not in acts
    # and outside the conversation it is heard again
    acts = [a.act for pcm in phrase for a in p.process(pcm, 9.0, in_conversation=False)]
    assert acts == [Act.WAKE]


def test_the_devices_own_voice_saying_the_word_does_not_stop_it() -> None:
    """The reply says "okay nabu" mid-sentence; the microphone hears it back at the level
    it is played: the model hears the word, the echo guard rejects it."""
    playback = Playback()
    p = pipeline(playback, barge_in=False)
    lead = frames_of("no_wake_word_speech.wav")[:100]  # 2 s of the agent talking first
    agent = lead + frames_of("okay_nabu__en-us.wav")
    acts = agent_over(agent, playback, p, agent)
    assert Act.WAKE_ECHO in acts
    assert Act.BARGE_IN not in acts


def test_the_users_word_over_the_agents_voice_stops_it() -> None:
    playback = Playback()
    p = pipeline(playback, barge_in=False)
    agent = frames_of("no_wake_word_speech.wav")[:200]
    phrase = frames_of("okay_nabu__en-us.wav")
    quiet = [bytes(FRAME)] * (len(agent) - len(phrase) - 40)
    # the echo 20 dB below the user's voice (the loudspeaker across the room)
    mic = mix(agent, [bytes(FRAME)] * 40 + phrase + quiet, gain_a=0.1)
    acts = agent_over(mic, playback, p, agent)
    assert Act.BARGE_IN in acts
