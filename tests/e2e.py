"""Helpers for end-to-end tests: the daemon with the file backend against the emulator.

Everything is real except the sound card: a real WebSocket server on loopback (the
bundled emulator), the real daemon, and the file backend pacing WAV files in real time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import (
    Settings,
    parse_settings,
)
from tests.conftest import UNIT


def make_settings(tmp_path: Path, emu: Emulator, input_wav: Path, **sections: Any) -> Settings:
    """Settings for a kiosk (``auto``) device on the file backend talking to ``emu``."""
    data: dict[str, Any] = {
        "device": {"id": "test-device", "name": "Test kiosk"},
        "platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url},
        "conversation": {"start": "auto"},
        "audio": {
            "backend": "file",
            "input_file": str(input_wav),
            "output_file": str(tmp_path / "out.wav"),
            "exit_at_end": True,
        },
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp_path / "state")},
        "local_api": {"enabled": False},  # tests that use it set it, on a free port
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, str(tmp_path / "config.toml"), env={})


@dataclasses.dataclass
class Run:
    daemon: Daemon
    emulator: Emulator
    code: int
    output: np.ndarray
    output_rate: int


async def run_with_emulator(
    tmp_path: Path,
    input_wav: Path,
    config: EmulatorConfig | None = None,
    during: Callable[[Daemon, Emulator], Awaitable[None]] | None = None,
    limit_s: float = 40.0,
    **sections: Any,
) -> Run:
    """Run the daemon until its input file ends (+2 s), with an emulator; return both."""
    async with Emulator(config or EmulatorConfig()) as emu:
        settings = make_settings(tmp_path, emu, input_wav, **sections)
        daemon = Daemon(settings, clock=asyncio.get_running_loop().time)
        run = asyncio.create_task(daemon.run())
        if during is not None:
            await asyncio.wait_for(during(daemon, emu), limit_s * UNIT)
        code = await asyncio.wait_for(run, limit_s * UNIT)
    output, rate = read_mono(Path(settings.audio.output_file or ""))
    return Run(daemon, emu, code, output, rate)


async def active(emu: Emulator, n: int) -> None:
    """Wait until the n-th conversation is open and initiated (metadata sent)."""
    record = await emu.wait_conversation(n, timeout=10 * UNIT)
    await asyncio.wait_for(record.initiated.wait(), 10 * UNIT)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return data, w.getframerate()


def envelope(x: np.ndarray, rate: int, ms: int = 10) -> np.ndarray:
    """RMS per ``ms`` window."""
    n = rate * ms // 1000
    frames = len(x) // n
    return np.asarray(np.sqrt(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-9))


def first_sound(x: np.ndarray, rate: int, threshold_dbfs: float = -45.0) -> float | None:
    """Seconds to the first 10 ms window louder than the threshold."""
    env = 20 * np.log10(envelope(x, rate) / 32768.0)
    loud = np.nonzero(env > threshold_dbfs)[0]
    return None if len(loud) == 0 else loud[0] * 0.01


def last_sound(x: np.ndarray, rate: int, threshold_dbfs: float = -45.0) -> float | None:
    env = 20 * np.log10(envelope(x, rate) / 32768.0)
    loud = np.nonzero(env > threshold_dbfs)[0]
    return None if len(loud) == 0 else (loud[-1] + 1) * 0.01


def best_alignment(reference: np.ndarray, signal: np.ndarray) -> tuple[int, float]:
    """(lag, normalised correlation) of ``reference`` inside ``signal`` (same rate)."""
    n = len(signal) + len(reference)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size)), size)
    corr = corr[: len(signal) - len(reference) + 1]
    lag = int(np.argmax(corr))
    window = signal[lag : lag + len(reference)]
    denom = np.linalg.norm(window) * np.linalg.norm(reference) + 1e-9
    return lag, float(corr[lag] / denom)


def resample_to(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    import soxr

    if rate == target:
        return x
    return np.asarray(soxr.resample(x.astype(np.float32), rate, target), dtype=np.float64)


def load_wav(path: Path) -> tuple[np.ndarray, int]:
    from hello_device.audio.wav import read_wav

    data, rate = read_wav(str(path))
    mono = data.mean(axis=1) if data.ndim == 2 else data
    return mono.astype(np.float64), rate


def silence_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(int(seconds * rate) * 2))
    return path
