"""``hello-device devices`` and ``hello-device audio-test``.

The commands run as subprocesses (``python -m hello_device devices|audio-test``) against
the private PulseAudio server of :mod:`tests.soundserver`: real PortAudio device lists, a
real meter fed by speech played into the virtual microphone, and the tone and playback
checked on the speaker's monitor.
One test drives ``devices`` in-process with a fake PyAudio for a card that refuses
16 kHz.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from hello_device.cli import audio
from hello_device.testing.fake_pyaudio import FakeDevice, FakeHost, hat_codec
from tests.audio.support import dominant_hz, envelope_db
from tests.conftest import REPO, UNIT
from tests.soundserver import SoundServer, sound_server

__all__ = ["sound_server"]  # the fixture, imported for the `sound` tests

CONFIG = """\
[platform]
agent_id = "test-agent"

[audio]
backend = "pyaudio"
{extra}
"""


CLI = (sys.executable, "-m", "hello_device")


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def run_cli(
    server: SoundServer, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=server.child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout * UNIT,
        check=False,
    )


def test_devices_table_for_a_card_that_refuses_16k(tmp_path: Path) -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), hat_codec()], 1, 0)
    out = io.StringIO()
    args = argparse.Namespace(config=str(write_config(tmp_path, 'input_device = "wm8960"')))
    code = audio.cmd_devices(args, pyaudio_factory=host.factory, out=out)
    text = out.getvalue()
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["#", "name", "api", "in", "out", "default"]
    codec = lines[2].split()
    assert codec[0] == "1" and "wm8960-hifi-0" in lines[2]
    assert lines[2].split("ALSA")[1].split() == ["2", "2", "48000", "48000", "44100", "microphone"]
    phones = next(line for line in lines if line.startswith("0"))
    assert phones.rstrip().endswith("loudspeaker")
    assert "microphone   #1 " in text and "(audio.input_device 'wm8960')" in text


@pytest.mark.sound
def test_devices_lists_the_sound_server(sound_server: SoundServer, tmp_path: Path) -> None:
    done = run_cli(sound_server, "devices", "--config", str(write_config(tmp_path)))
    assert done.returncode == 0, done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line[:1].isdigit()}
    assert {"pulse", "default"} <= set(rows)
    assert "16000 44100 48000  16000 44100 48000" in rows["default"]
    assert rows["default"].rstrip().endswith("microphone + loudspeaker")
    assert "ALSA lib" not in done.stdout + done.stderr  # PortAudio's probing noise is hidden


@pytest.mark.sound
def test_devices_reports_a_missing_configured_device(
    sound_server: SoundServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, 'output_device = "HiFiBerry"')
    done = run_cli(sound_server, "devices", "--config", str(config))
    assert done.returncode == 1
    assert "loudspeaker  NOT FOUND  (audio.output_device 'HiFiBerry')" in done.stdout
    assert "output devices: #0 'pulse', #1 'default'" in done.stdout


@pytest.mark.sound
def test_audio_test_fails_clearly_when_a_device_cannot_be_opened(
    sound_server: SoundServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, 'input_device = "ReSpeaker"')
    done = run_cli(sound_server, "audio-test", "--config", str(config), "--seconds", "1")
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: no microphone (input device) matches 'ReSpeaker'"), done.stderr


@pytest.mark.sound
@pytest.mark.slow
def test_audio_test_meter_tone_and_playback(
    sound_server: SoundServer, shared_audio: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    with sound_server.start_recording() as rec:
        proc = subprocess.Popen(
            [*CLI, "audio-test", "--config", str(config), "--seconds", "4"],
            env=sound_server.child_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        recording = threading.Event()

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # the meter's \r updates arrive as one last line
                lines.append(line)
                if line.startswith("Recording 4 s"):
                    recording.set()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        assert recording.wait(20 * UNIT), "".join(lines) + proc.stderr.read()
        # The utterance's speech starts 1.05 s in: inside the 4 s recording.
        sound_server.play_into_mic(shared_audio / "utterance.wav", wait=True, timeout=30 * UNIT)
        proc.wait(30 * UNIT)
        reader.join(5 * UNIT)
        err = proc.stderr.read()
        heard = rec.stop()
    out = "".join(lines)
    assert proc.returncode == 0, err
    meter = [line for line in re.split(r"[\r\n]", out) if line.startswith("mic ")]
    assert len(meter) >= 25  # ~10 refreshes a second for 4 s
    levels = [float(line.split()[1]) for line in meter if "-inf" not in line]
    assert max(levels) > -30 and "#" * 10 in max(meter, key=lambda m: m.count("#"))
    assert "Playing a 440 Hz tone (0.5 s)." in out and "Done." in out

    # On the speaker: the 440 Hz tone, then speech (the recording played back).
    x = heard.samples
    env = envelope_db(x, heard.rate)
    loud = np.flatnonzero(env > -40)
    # Sounds: runs of loud 10 ms blocks, merging gaps under 50 ms (an output underflow on
    # a loaded machine can cut a 10-20 ms hole into a sound).
    sounds = np.split(loud, np.flatnonzero(np.diff(loud) > 5) + 1)
    assert len(sounds) >= 2, f"{len(sounds)} sounds on the speaker"
    tone_blocks = sounds[0]
    assert abs(len(tone_blocks) - 50) <= 6, f"tone lasted {len(tone_blocks) * 10} ms"
    pieces = np.split(tone_blocks, np.flatnonzero(np.diff(tone_blocks) != 1) + 1)
    steady = max(pieces, key=len)
    assert len(steady) >= 20
    tone = x[(steady[0] + 2) * 480 : (steady[-1] - 2) * 480]
    assert abs(dominant_hz(tone, heard.rate) - 440) < 5
    level = 20 * math.log10(float(np.sqrt(np.mean(tone.astype(np.float64) ** 2))) / 32768)
    assert abs(level - 20 * math.log10(audio.TONE_LEVEL / math.sqrt(2))) < 1.0
    played_back = sum(len(sound) for sound in sounds[1:])
    assert played_back >= 120, "the recording was not played back (< 1.2 s of sound)"
