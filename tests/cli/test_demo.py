"""``hello-device demo``: exit 0 only for a real conversation; otherwise exit 1 and one
line on stderr that names the input recording and what is wrong with it."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest

from hello_device.audio.backends import file as file_backend
from hello_device.cli import demo, main
from hello_device.errors import AudioDeviceError
from tests.conftest import REPO, UNIT

BUNDLED = REPO / "hello_device" / "examples"


def write_wav(path: Path, frames: bytes, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m hello_device demo ARGS`` from this checkout, in a separate process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hello_device", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120 * UNIT,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


# -- input that cannot be read: refused before anything starts --------------------------


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.wav"


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00garbage that is no WAVE file")
    return path


def _folder(tmp_path: Path) -> Path:
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


def _no_samples(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "header-only.wav", b"")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_missing, "No such file or directory"),
        (_empty, "not a WAV file (no RIFF/WAVE header)"),
        (_corrupt, "not a WAV file (no RIFF/WAVE header)"),
        (_folder, "Is a directory"),
        (_no_samples, "the WAV file holds no audio"),
    ],
)
def test_unreadable_input_exits_1_with_one_line_naming_it(
    make: Callable[[Path], Path],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make(tmp_path)
    output = tmp_path / "out.wav"
    code = main(["demo", "--input", str(path), "--output", str(output)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"hello-device demo: cannot read the input recording {path}: {reason}"
    ]
    assert out == ""
    assert not output.exists()  # refused before the emulator and the daemon started


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_unwritable_output_exits_1_with_one_line_naming_it(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused up front: the daemon itself would wait for ever for a file backend that
    failed to create its output (found while writing this test)."""
    if where == "folder":
        output, reason = tmp_path, "Is a directory"
    else:
        (tmp_path / "file").write_bytes(b"")
        output, reason = (
            tmp_path / "file" / "out.wav",
            f"{tmp_path / 'file'} is a file, not a folder",
        )
    code = main(["demo", "--input", str(BUNDLED / "hello.wav"), "--output", str(output)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"hello-device demo: cannot write the output recording {output}: {reason}"
    ]
    assert out == ""


def test_missing_bundled_recording_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation without hello.wav (the packaging bug): exit 1, not a silent demo."""
    package = tmp_path / "hello_device"
    (package / "examples").mkdir(parents=True)
    (package / "examples" / "demo.toml").write_bytes((BUNDLED / "demo.toml").read_bytes())
    fake = SimpleNamespace(files=lambda name: package, as_file=resources.as_file)
    monkeypatch.setattr(demo, "resources", fake)
    code = main(["demo", "--output", str(tmp_path / "out.wav")])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"hello-device demo: cannot read the input recording {package}/examples/hello.wav: "
        "No such file or directory (the recording that comes with hello-device is missing: "
        "reinstall it)"
    ]


# -- real runs against the emulator -----------------------------------------------------


@pytest.mark.slow
def test_bundled_recording_gives_a_transcript_and_exit_0(tmp_path: Path) -> None:
    output = tmp_path / "out.wav"
    result = run_demo("--output", str(output), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Transcript:" in result.stdout
    assert "user: (" in result.stdout and "agent: You said: (" in result.stdout
    assert f"loudspeaker output is in {output}" in result.stdout
    assert "hello-device demo:" not in result.stderr
    with wave.open(str(output), "rb") as w:
        assert w.getnframes() > 16000  # the reply was played, not just the tail of silence


@pytest.mark.slow
def test_silent_input_exits_1_no_transcript(tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silence.wav", bytes(16000 * 2))  # 1 s
    result = run_demo("--input", str(silence), "--output", str(tmp_path / "out.wav"), cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"hello-device demo: the emulator heard no speech in {silence} (")
    assert last.endswith("s of audio sent); no transcript came back")
    assert "Transcript:" not in result.stdout


def test_input_failing_in_the_daemon_exits_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    """Readable when checked, unreadable when the file backend loads it (it vanished):
    the daemon stops with status 1, and the demo says so."""
    speech = BUNDLED / "hello.wav"

    def gone(path: str, frame_ms: int, channel: int | str = "mix") -> list[bytes]:
        raise AudioDeviceError(f"cannot read audio.input_file {path}: it vanished")

    monkeypatch.setattr(file_backend, "load_input_frames", gone)
    code = main(["demo", "--input", str(speech), "--output", str(tmp_path / "out.wav")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "it vanished" in err  # the daemon's log line says why
    assert err.splitlines()[-1] == (
        "hello-device demo: the daemon stopped with exit code 1 (see the log above)"
    )
    assert "Transcript:" not in out
