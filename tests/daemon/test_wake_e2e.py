"""End to end: the wake word with the real model, the real daemon on the file backend and
the emulator on a loopback WebSocket (as test_e2e.py).

What the platform receives is read back from the emulator and placed on the microphone
file's timeline by aligning it with the file (the file backend passes 16 kHz audio
through untouched), so "the question from its onset, nothing of the phrase" is checked
against the recording's ground truth (tests/data/audio/wake/README.md). Timing goals are
measured by bench/bench_wake.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.logs import setup_logging
from hello_device.systemd import Notifier
from hello_device.testing import virtual_time
from hello_device.testing.notify import NotifySocket
from tests.conftest import UNIT
from tests.daemon.test_bargein_e2e import first_stretch, long_greeting
from tests.e2e import (
    best_alignment,
    first_sound,
    last_sound,
    load_wav,
    make_settings,
    resample_to,
    run_with_emulator,
)

pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")
pytestmark = pytest.mark.slow

PHRASE = (1.50, 2.31)  # wake_then_question.wav
QUESTION = (3.36, 5.61)
WAKE = {"start": "wake_word"}
HEARD = "wake word okay_nabu heard ("
OVER_AGENT = "wake word okay_nabu while the agent talks"
OWN_VOICE = "in the device's own voice"


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if text in r.getMessage())


def write_wav(path: Path, data: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(data, -32768, 32767).astype("<i2").tobytes())
    return path


def concat(path: Path, *parts: np.ndarray | float) -> Path:
    """A microphone file of recordings and pauses (floats: seconds of silence)."""
    pieces = [np.zeros(int(p * 16000)) if isinstance(p, float) else p for p in parts]
    return write_wav(path, np.concatenate(pieces))


@pytest.mark.parametrize("metadata_delay_s", [0.0, 3.0], ids=["fast-platform", "slow-platform"])
def test_the_wake_word_opens_a_conversation_and_the_question_arrives_whole(
    metadata_delay_s: float, shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a slow platform the whole question is spoken before the conversation is
    open: it is kept, then sent faster than real time."""
    caplog.set_level(logging.INFO)
    mic = shared_audio / "wake" / "wake_then_question.wav"
    states: list[tuple[DeviceState, str]] = []
    burst: list[float] = []

    async def during(daemon: Daemon, emu: Emulator) -> None:
        daemon.state.add_listener(lambda old, new, why: states.append((new, why)))
        record = await emu.wait_conversation(1, timeout=20 * UNIT)
        await asyncio.wait_for(record.initiated.wait(), 20 * UNIT)
        if metadata_delay_s:  # 0.2 s after the metadata, the kept question is there
            await asyncio.sleep(0.2)
            burst.append(record.user_audio_s)

    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            mic,
            EmulatorConfig(metadata_delay_s=metadata_delay_s),
            during=during,
            conversation=WAKE,
            earcons={"enabled": True},
        )
    )
    assert run.code == 0
    assert logged(caplog, HEARD) == 1
    assert len(run.emulator.conversations) == 1
    record = run.emulator.conversations[0]
    received = np.frombuffer(bytes(record.user_audio), dtype="<i2").astype(np.float64)
    source, rate = load_wav(mic)
    # Where the question sits in what was received, hence the file time of sample 0.
    q0 = int(QUESTION[0] * rate)
    lag, corr = best_alignment(source[q0 : q0 + rate], received)
    assert corr > 0.99, corr  # the question, sample for sample
    origin = QUESTION[0] - lag / rate
    assert origin >= PHRASE[1]  # nothing from before the phrase's end was sent
    onset = first_sound(received, rate)
    assert onset is not None
    assert abs(origin + onset - QUESTION[0]) <= 0.06, origin + onset
    tail = source[int(origin * rate) : int(origin * rate) + len(received)]
    sent = received[: len(tail)] != 0  # the rest was silenced between utterances
    assert np.array_equal(received[: len(tail)][sent], tail[sent])
    span = slice(int((QUESTION[0] - origin) * rate), int((QUESTION[1] - origin) * rate))
    assert np.array_equal(received[span], tail[span])  # all of the question, no gap
    assert len(record.utterances) == 1  # the platform heard one question, and answered
    # Listening at once on the wake word; never "connecting" in between.
    assert states[0] == (DeviceState.LISTENING, "wake word")
    assert DeviceState.CONNECTING not in [s for s, _ in states]
    # The earcon played once, right after the phrase (the output runs in step with the
    # microphone file).
    out = resample_to(run.output, run.output_rate, 16000)
    beep = first_sound(out, 16000)
    assert beep is not None and PHRASE[1] < beep < PHRASE[1] + 0.5, beep
    if metadata_delay_s:
        assert burst and burst[0] >= QUESTION[1] - PHRASE[1] - 0.5, burst


def test_send_wake_audio_sends_the_phrase_before_the_question(
    shared_audio: Path, tmp_path: Path
) -> None:
    """The platform then hears the name as a turn of its own (the emulator's parrot even
    answers it, over the start of the question): why the default keeps it back."""
    mic = shared_audio / "wake" / "wake_then_question.wav"
    run = virtual_time.run(
        run_with_emulator(tmp_path, mic, conversation=WAKE, wake_word={"send_wake_audio": True})
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    received = np.frombuffer(bytes(record.user_audio), "<i2").astype(np.float64)
    source, rate = load_wav(mic)
    phrase = source[int(PHRASE[0] * rate) : int(PHRASE[1] * rate)]
    at, corr = best_alignment(phrase, received)
    assert corr > 0.99 and at <= 0.3 * rate, (at, corr)  # the whole phrase, first
    assert len(record.utterances) == 2  # the name, then the question
    assert record.utterances[0][0] < (at + len(phrase)) / rate < record.utterances[1][0]


@pytest.mark.parametrize("mic", ["noise_fan.wav", "wake/no_wake_word_speech.wav"])
def test_no_conversation_without_the_wake_word(
    mic: str, shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = virtual_time.run(
        run_with_emulator(tmp_path, shared_audio / mic, conversation=WAKE, limit_s=120.0)
    )
    assert run.code == 0
    assert run.emulator.conversations == []
    assert logged(caplog, HEARD) == 0
    assert run.daemon.state.state is DeviceState.IDLE


def test_the_wake_word_during_agent_speech_stops_playback(
    shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Barge-in is off: only the wake word can stop the long greeting."""
    caplog.set_level(logging.INFO)
    greeting, _ = long_greeting(shared_audio, tmp_path)
    us, _ = load_wav(shared_audio / "wake" / "okay_nabu__en-us.wav")
    gb, _ = load_wav(shared_audio / "wake" / "okay_nabu__en-gb.wav")
    mic = concat(tmp_path / "mic.wav", us, 2.0, gb, 6.0)
    second_end = (len(us) + 2 * 16000 + len(gb)) / 16000 - 1.0  # the phrase, not its silence
    config = EmulatorConfig(
        first_message="A long story.", first_message_audio=str(greeting), interruptions=False
    )
    run = virtual_time.run(
        run_with_emulator(
            tmp_path, mic, config, conversation=WAKE, barge_in={"enabled": False}, limit_s=60.0
        )
    )
    assert run.code == 0
    assert logged(caplog, HEARD) == 1
    assert logged(caplog, OVER_AGENT) == 1
    assert logged(caplog, "barge-in: the user talks over the agent") == 0
    out = resample_to(run.output, run.output_rate, 16000)
    # the greeting played until the second phrase, then stopped within a second of it
    assert last_sound(out[int((second_end - 1.0) * 16000) : int(second_end * 16000)], 16000)
    after = out[int((second_end + 1.0) * 16000) : int((second_end + 4.0) * 16000)]
    assert last_sound(after, 16000) is None
    assert len(run.emulator.conversations) == 1


def test_the_devices_own_voice_saying_the_word_neither_wakes_nor_stops_it(
    shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The greeting says "okay nabu" twice; the loudspeaker is mixed back into the
    microphone at the level played (``loopback_gain = 1``). The model hears the word,
    the echo guard rejects it: the greeting plays to its end."""
    caplog.set_level(logging.INFO)
    speech, _ = load_wav(shared_audio / "utterance.wav")
    phrase, _ = load_wav(shared_audio / "wake" / "okay_nabu__en-gb.wav")
    loud = np.nonzero(np.abs(phrase) > 300)[0]
    phrase = phrase[loud[0] - 1600 : loud[-1] + 1600]  # the phrase, 0.1 s either side
    talk = speech[16000 : int(3.9 * 16000)]
    greeting = write_wav(tmp_path / "greeting.wav", np.concatenate([talk, phrase, talk, phrase]))
    length_s = (2 * len(talk) + 2 * len(phrase)) / 16000
    us, _ = load_wav(shared_audio / "wake" / "okay_nabu__en-us.wav")
    mic = concat(tmp_path / "mic.wav", us, length_s + 3.0)
    config = EmulatorConfig(
        first_message="Say okay nabu.", first_message_audio=str(greeting), interruptions=False
    )
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            mic,
            config,
            conversation=WAKE,
            audio={"loopback_gain": 1.0},
            limit_s=60.0,
        )
    )
    assert run.code == 0
    assert logged(caplog, HEARD) == 1  # the user's
    assert logged(caplog, OWN_VOICE) >= 1  # the model did hear the reply say it ...
    assert logged(caplog, OVER_AGENT) == 0  # ... and it stopped nothing
    assert logged(caplog, "barge-in") == 0
    out = resample_to(run.output, run.output_rate, 16000)
    assert first_stretch(out[int(2.0 * 16000) :]) >= length_s - 0.3  # all of it
    assert run.emulator.conversations[0].utterances == []  # no self-talk either


def test_a_detection_shows_in_status_and_carries_a_journal_field(
    shared_audio: Path, tmp_path: Path
) -> None:
    """Real notify socket (systemd's STATUS) and the journal handler with its sender
    replaced (no journald here)."""
    sent: list[dict[str, Any]] = []

    def sender(MESSAGE: str, **fields: Any) -> None:  # journal.send's parameter name
        sent.append({"MESSAGE": MESSAGE, **fields})

    notify = NotifySocket(tmp_path / "notify.sock", time_scale=UNIT)
    assert setup_logging("INFO", "journal", journal_sender=sender) == "journal"
    try:

        async def scenario() -> None:
            async with Emulator(EmulatorConfig()) as emu:
                mic = shared_audio / "wake" / "wake_then_question.wav"
                settings = make_settings(tmp_path, emu, mic, conversation=WAKE)
                notifier = Notifier(env={"NOTIFY_SOCKET": notify.path})
                daemon = Daemon(settings, notifier=notifier, clock=asyncio.get_running_loop().time)
                assert await asyncio.wait_for(daemon.run(), 60 * UNIT) == 0

        virtual_time.run(scenario())
    finally:
        setup_logging("WARNING", "stderr")
        notify.close()
    statuses = [m for m in notify.drain() if m.startswith("STATUS=")]
    woken = [s for s in statuses if "woken by okay_nabu" in s]
    assert woken and woken[0].startswith("STATUS=listening — woken by okay_nabu (0.")
    assert any("conversation conv_" in s for s in woken)  # kept while it is open
    assert statuses[-1].startswith("STATUS=idle")  # and gone after it
    detections = [r for r in sent if r.get("WAKE_WORD")]
    assert len(detections) == 1 and detections[0]["WAKE_WORD"] == "okay_nabu"
    assert "heard" in detections[0]["MESSAGE"]
    assert 0.85 <= float(detections[0]["WAKE_PROBABILITY"]) <= 1.0
