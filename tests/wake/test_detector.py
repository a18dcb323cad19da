"""The wake-word detector with the real pymicro-wakeword models on the shared recordings
(synthetic voices; ground truth in tests/data/audio/wake/README.md)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hello_device.audio.wav import read_wav_pcm
from hello_device.errors import ConfigError
from hello_device.settings import WakeWordSettings
from hello_device.wake.detector import WakeWordDetector, cutoff_for
from tests.conftest import REPO, UNIT

pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")

WAKE = REPO / "tests" / "data" / "audio" / "wake"
MODELS = ("okay_nabu", "alexa", "hey_mycroft")


def detections(model: str, path: Path, sensitivity: float = 0.5) -> list[float]:
    detector = WakeWordDetector(WakeWordSettings(model=model, sensitivity=sensitivity))
    pcm, rate, channels = read_wav_pcm(path)
    assert (rate, channels) == (16000, 1)
    found = []
    for i in range(0, len(pcm), 640):  # 20 ms frames, as the daemon feeds them
        found += [d.at_s for d in detector.feed(pcm[i : i + 640])]
    return found


@pytest.mark.parametrize(
    "name",
    ["okay_nabu__en-gb", "okay_nabu__en-us", "alexa__en-gb", "alexa__en-us", "alexa__en-us_f3"],
)
def test_each_phrase_wakes_its_own_model_and_no_other(name: str) -> None:
    own = name.split("__", maxsplit=1)[0]
    for model in MODELS:
        hits = detections(model, WAKE / f"{name}.wav")
        if model == own:
            assert len(hits) == 1 and 1.0 < hits[0] < 2.6, hits
        else:
            assert hits == [], f"{model} fired on {name}"


def test_speech_without_a_wake_word_wakes_nothing() -> None:
    for model in MODELS:
        assert detections(model, WAKE / "no_wake_word_speech.wav") == [], model


def test_the_wake_phrase_before_a_question_is_detected_once_when_it_ends() -> None:
    hits = detections("okay_nabu", WAKE / "wake_then_question.wav")
    assert len(hits) == 1
    assert 2.31 <= hits[0] <= 2.31 + 0.4  # the phrase ends at 2.31 s


def test_sensitivity_moves_the_cutoff_around_the_models_own() -> None:
    assert cutoff_for(0.5, 0.85) == pytest.approx(0.85)
    assert cutoff_for(1.0, 0.85) == pytest.approx(0.5)
    assert cutoff_for(0.0, 0.85) == pytest.approx(0.99)
    assert cutoff_for(0.7, 0.85) < cutoff_for(0.6, 0.85) < 0.85 < cutoff_for(0.4, 0.85)
    quiet = WAKE / "okay_nabu__en-us_f3.wav"  # peaks at 0.76 with this voice
    assert detections("okay_nabu", quiet) == []
    assert len(detections("okay_nabu", quiet, sensitivity=0.8)) == 1


def test_refractory_period_and_reset() -> None:
    settings = WakeWordSettings(model="okay_nabu")
    detector = WakeWordDetector(settings)
    pcm, _, _ = read_wav_pcm(WAKE / "okay_nabu__en-us.wav")
    assert len(detector.feed(pcm)) == 1
    assert detector.feed(pcm[: 16000 * 2]) == []  # within refractory_s (and no phrase)
    detector.reset()
    assert detector.highest == (0.0, 0.0)
    again = WakeWordDetector(dataclasses.replace(settings, refractory_s=0.0))
    assert len(again.feed(pcm + pcm)) == 2


def test_unknown_model_or_manifest_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wake_word\.model: 'hey_siri' is neither"):
        WakeWordDetector(WakeWordSettings(model="hey_siri"))
    with pytest.raises(ConfigError, match=r"wake_word\.model"):
        WakeWordDetector(WakeWordSettings(model=str(tmp_path / "missing.json")))


def test_without_the_package_a_clear_config_error() -> None:
    probe = (
        "import sys; sys.modules['pymicro_wakeword'] = None\n"
        "from hello_device.errors import ConfigError\n"
        "from hello_device.settings import WakeWordSettings\n"
        "from hello_device.wake.detector import WakeWordDetector\n"
        "try:\n    WakeWordDetector(WakeWordSettings())\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60 * UNIT,
        check=True,
    ).stdout
    assert "pip install 'hello-device[wake]'" in out


def test_wake_test_command_reports_detections_and_near_misses() -> None:
    files = [str(WAKE / "okay_nabu__en-us.wav"), str(WAKE / "okay_nabu__en-us_f3.wav")]
    result = subprocess.run(
        [sys.executable, "-m", "hello_device", "wake-test", "-c", "/nonexistent/none.toml", *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60 * UNIT,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 2 and "none.toml" in result.stderr  # a config that is missing
    ok = subprocess.run(
        [sys.executable, "-m", "hello_device", "wake-test", "--sensitivity", "0.5", *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60 * UNIT,
        check=False,
    )
    lines = ok.stdout.splitlines()
    assert ok.returncode == 0, ok.stderr
    assert (
        lines[0]
        == "'Okay Nabu': sensitivity 0.5 -> probability cutoff 0.85 (the model's own: 0.85)"
    )
    assert re.fullmatch(
        rf"{re.escape(files[0])}: detected at [12]\.\d\d s \(probability 0\.9\d\)", lines[1]
    )
    assert lines[2].startswith(f"{files[1]}: not detected (highest probability 0.7")
