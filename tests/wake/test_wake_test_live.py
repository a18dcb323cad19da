"""``hello-device wake-test`` live: the wake phrase played into a virtual microphone of a
real PulseAudio server (:mod:`tests.soundserver`), heard through real PortAudio."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO, UNIT
from tests.soundserver import SoundServer, sound_server

pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")

__all__ = ["sound_server"]

WAKE = REPO / "tests" / "data" / "audio" / "wake"


@pytest.mark.sound
@pytest.mark.slow
def test_live_scores_and_a_detection_from_the_microphone(
    sound_server: SoundServer, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nagent_id = "a"\n[audio]\nbackend = "pyaudio"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "hello_device", "wake-test", "-c", str(config), "--seconds", "6"],
        env=sound_server.child_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("listening for"):
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert listening.wait(20 * UNIT), "\n".join(lines) + proc.stderr.read()
        sound_server.play_into_mic(WAKE / "okay_nabu__en-us.wav", wait=True, timeout=30 * UNIT)
        assert proc.wait(30 * UNIT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5 * UNIT)
    detected = [line for line in lines if line.startswith("detected at ")]
    scores = [line for line in lines if line.startswith("score ")]
    assert len(detected) == 1, "\n".join(lines)
    assert len(scores) >= 10  # twice a second for 6 s
    assert any(float(line.split()[1]) > 0.85 for line in scores), "\n".join(scores)
