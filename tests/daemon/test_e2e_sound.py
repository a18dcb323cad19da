"""End to end through a real sound server: the daemon with ``backend = "pyaudio"`` opens
real PortAudio streams on a private PulseAudio (tests/soundserver.py), hears speech
played into the virtual microphone, talks to the real emulator, and plays the agent's
reply into the virtual speaker, whose monitor is recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.e2e import best_alignment, load_wav, make_settings, resample_to
from tests.soundserver import SoundServer, sound_server  # noqa: F401

pytestmark = [pytest.mark.sound, pytest.mark.slow]


def test_conversation_through_portaudio_and_pulseaudio(
    sound_server: SoundServer,  # noqa: F811
    shared_audio: Path,
    tmp_path: Path,
) -> None:
    speech, rate = load_wav(shared_audio / "utterance.wav")
    reference = speech[int(1.1 * rate) : int(3.8 * rate)]

    async def scenario() -> tuple[Daemon, Emulator, np.ndarray, int]:
        async with Emulator(EmulatorConfig(output_format="pcm_22050")) as emu:
            settings = make_settings(
                tmp_path, emu, shared_audio / "utterance.wav", audio={"backend": "pyaudio"}
            )
            daemon = Daemon(settings)
            recorder = sound_server.start_recording()
            run = asyncio.create_task(daemon.run())
            try:
                record = await emu.wait_conversation(1, timeout=15 * UNIT)
                await asyncio.wait_for(record.initiated.wait(), 10 * UNIT)
                # A roomy buffer for the test rig's own player: on a busy CI machine a
                # 20 ms one underruns and puts gaps into the "microphone".
                sound_server.play_into_mic(shared_audio / "utterance.wav", latency_ms=200)
                # The user speaks, the agent answers, its reply plays to the end.
                await daemon.wait_state(DeviceState.SPEAKING, 20 * UNIT)
                await daemon.wait_state(DeviceState.LISTENING, 20 * UNIT)
            finally:
                daemon.stop()
                code = await asyncio.wait_for(run, 10 * UNIT)
                recording = recorder.stop()
            assert code == 0
        return daemon, emu, recording.samples, recording.rate

    daemon, emu, played, played_rate = asyncio.run(scenario())
    backend = daemon.backend
    assert backend.frames_dropped == 0  # type: ignore[attr-defined]
    assert backend.overflows == 0  # type: ignore[attr-defined]
    record = emu.conversations[0]
    # The emulator received the speech, captured by PortAudio from the virtual mic.
    received = np.frombuffer(bytes(record.user_audio), dtype="<i2").astype(np.float64)
    _, corr = best_alignment(reference, received)
    assert corr > 0.9, corr
    assert len(record.utterances) == 1
    # The speaker's monitor carried the parrot's echo at the right pitch and speed: a
    # pitch or speed error of even a few percent leaves a correlation near 0.1 with the
    # original speech. (Measured 0.8-0.95; on a loaded CI machine the sound server's
    # own underruns add glitches, hence the margin.)
    out = resample_to(played.astype(np.float64), played_rate, 16000)  # parec: mono
    _, corr = best_alignment(reference, out)
    assert corr > 0.6, corr
    wrong_speed = resample_to(reference, 16000, 16800)  # 5 % off: what a rate bug does
    _, corr_wrong = best_alignment(wrong_speed, out)
    assert corr_wrong < corr / 2, (corr, corr_wrong)
