"""``hello-device devices`` and ``hello-device audio-test``: field tools for sound cards.

``devices`` lists every PortAudio device with its index, name, host API, channel counts,
default rate and which of 16000/44100/48000 Hz it accepts for capture and playback, and
marks the microphone and loudspeaker the configuration would use (exit 1 if one of
them cannot be found).

``audio-test`` opens the configured devices exactly as the daemon does (the ``pyaudio``
backend: same device matching, rate fallback and conversion), shows a live microphone
level meter on one line for ``--seconds`` while recording, then plays a 440 Hz tone
(0.5 s) and the recording back. Exit 0 when all of that worked, 1 with a one-line reason
when a device could not be opened or failed.

Both read only the ``[audio]`` section of the configuration; when the default
configuration file does not exist they use the default devices.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from numpy.typing import NDArray

from hello_device.aio import first_of
from hello_device.audio.alsa_quiet import silence_probe_noise
from hello_device.audio.devices import CHECK_RATES, DeviceInfo, find_device, list_devices
from hello_device.cli.common import (
    EXIT_CONFIG,
    EXIT_FATAL,
    EXIT_OK,
    SubParsers,
    add_config_arg,
    load_settings_for_cli,
)
from hello_device.errors import AudioDeviceError
from hello_device.settings import DEFAULT_CONFIG_PATH, AudioSettings

if TYPE_CHECKING:
    from hello_device.audio.backends.pyaudio import PyAudioBackend
    from hello_device.audio.player import Player

__all__ = ["cmd_audio_test", "cmd_devices", "level_dbfs", "meter_line", "register", "tone"]

PyAudioFactory = Callable[[], Any]
"""Makes the ``pyaudio.PyAudio`` instance (tests hand in a fake one)."""

OPEN_TIMEOUT_S = 15.0
"""How long ``audio-test`` waits for the devices to open."""
METER_INTERVAL_S = 0.1
METER_FLOOR_DB = -60.0
METER_WIDTH = 30
TONE_HZ = 440.0
TONE_S = 0.5
TONE_LEVEL = 0.3


def _default_factory() -> Any:
    import pyaudio

    return pyaudio.PyAudio()


def register(sub: SubParsers, *, pyaudio_factory: PyAudioFactory = _default_factory) -> None:
    """Add ``devices`` and ``audio-test``."""
    p = sub.add_parser(
        "devices",
        help="list sound devices and mark the ones the configuration uses",
        description="List every PortAudio device (index, name, channels, default rate, "
        "which of 16000/44100/48000 Hz it accepts) and mark the microphone and "
        "loudspeaker the configuration selects. Exit 1 if one cannot be found.",
    )
    add_config_arg(p)
    p.set_defaults(func=functools.partial(cmd_devices, pyaudio_factory=pyaudio_factory))

    p = sub.add_parser(
        "audio-test",
        help="microphone level meter, then a tone and the recording played back",
        description="Open the configured devices like the daemon does, show a live "
        "microphone level meter while recording, then play a 440 Hz tone and the "
        "recording. Exit 1 with the reason if a device cannot be opened.",
    )
    add_config_arg(p)
    p.add_argument(
        "--seconds",
        type=float,
        default=4.0,
        metavar="S",
        help="how long to record (default: 4)",
    )
    p.set_defaults(func=functools.partial(cmd_audio_test, pyaudio_factory=pyaudio_factory))


# ---------------------------------------------------------------------- settings


def _audio_settings(path: str) -> tuple[AudioSettings, str]:
    """The ``[audio]`` settings and a note on where they came from."""
    if path == str(DEFAULT_CONFIG_PATH) and not Path(path).exists():
        return AudioSettings(), f"no configuration at {path}: using the default devices"
    return load_settings_for_cli(path).audio, f"configuration {path}"


def _spec_text(spec: str | int | None) -> str:
    return "unset: the default" if spec is None else repr(spec)


# ---------------------------------------------------------------------- devices


def cmd_devices(
    args: argparse.Namespace,
    *,
    pyaudio_factory: PyAudioFactory = _default_factory,
    out: TextIO | None = None,
) -> int:
    """``hello-device devices``."""
    out = out or sys.stdout
    audio, source = _audio_settings(args.config)
    silence_probe_noise()
    try:
        pa = pyaudio_factory()
    except Exception as exc:
        print(f"error: PortAudio failed to start: {exc}", file=sys.stderr)
        return EXIT_FATAL
    try:
        devices = list_devices(pa)
        chosen: dict[str, DeviceInfo | AudioDeviceError] = {}
        for kind, spec in (("input", audio.input_device), ("output", audio.output_device)):
            try:
                chosen[kind] = find_device(pa, spec, kind)  # type: ignore[arg-type]
            except AudioDeviceError as exc:
                chosen[kind] = exc
    finally:
        with contextlib.suppress(Exception):
            pa.terminate()
    print(_device_table(devices, chosen), file=out)
    print(f"\n({source}; rates checked: {', '.join(map(str, CHECK_RATES))} Hz)", file=out)
    ok = True
    for kind, key, noun in (
        ("input", "input_device", "microphone"),
        ("output", "output_device", "loudspeaker"),
    ):
        spec = getattr(audio, key)
        found = chosen[kind]
        if isinstance(found, DeviceInfo):
            print(f"{noun:<12} {found.label}  (audio.{key} {_spec_text(spec)})", file=out)
        else:
            ok = False
            print(f"{noun:<12} NOT FOUND  (audio.{key} {_spec_text(spec)}): {found}", file=out)
    return EXIT_OK if ok else EXIT_FATAL


def _shorten(text: str, width: int) -> str:
    """Cut the middle out of long names (their ends, like ``(hw:1,0)``, matter most)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _device_table(devices: list[DeviceInfo], chosen: dict[str, Any]) -> str:
    if not devices:
        return "PortAudio found no sound devices (no sound card, or the sound server is down)."
    header = ("#", "name", "api", "in", "out", "default", "capture Hz", "playback Hz", "used as")
    rows: list[tuple[str, ...]] = []
    for d in devices:
        uses = [
            noun
            for kind, noun in (("input", "microphone"), ("output", "loudspeaker"))
            if isinstance(chosen.get(kind), DeviceInfo) and chosen[kind].index == d.index
        ]
        rows.append(
            (
                str(d.index),
                _shorten(d.name, 60),
                d.host_api,
                str(d.max_input_channels),
                str(d.max_output_channels),
                str(d.default_rate),
                " ".join(map(str, d.input_rates)) or "-",
                " ".join(map(str, d.output_rates)) or "-",
                " + ".join(uses),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {0, 3, 4, 5}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), *(fmt(r) for r in rows)])


# ---------------------------------------------------------------------- audio-test


def cmd_audio_test(
    args: argparse.Namespace,
    *,
    pyaudio_factory: PyAudioFactory = _default_factory,
    out: TextIO | None = None,
) -> int:
    """``hello-device audio-test``."""
    out = out or sys.stdout
    audio, source = _audio_settings(args.config)
    seconds = float(args.seconds)
    if not 0.2 <= seconds <= 60:
        print("error: --seconds must be between 0.2 and 60", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(args)
    print(f"audio-test ({source})", file=out)
    try:
        return asyncio.run(_audio_test(audio, seconds, out, pyaudio_factory))
    except KeyboardInterrupt:
        print("", file=out)
        return EXIT_FATAL


def _setup_logging(args: argparse.Namespace) -> None:
    from hello_device.logs import setup_logging

    setup_logging(getattr(args, "log_level", None) or "ERROR", "stderr")


def level_dbfs(samples: NDArray[np.int16]) -> float:
    """RMS level of int16 samples in dBFS (-120 for silence)."""
    if len(samples) == 0:
        return -120.0
    x = samples.astype(np.float64)
    rms = math.sqrt(float(np.dot(x, x)) / len(x))
    return max(-120.0, 20 * math.log10(rms / 32768.0)) if rms > 0 else -120.0


def meter_line(db: float, elapsed: float, total: float) -> str:
    """One meter line: level, a bar from -60 to 0 dBFS, and the time."""
    filled = round(METER_WIDTH * (max(METER_FLOOR_DB, min(0.0, db)) - METER_FLOOR_DB) / 60.0)
    bar = "#" * filled + "." * (METER_WIDTH - filled)
    shown = f"{db:6.1f}" if db > -100 else "  -inf"
    return f"mic {shown} dBFS [{bar}] {elapsed:4.1f}/{total:.1f} s"


def tone(rate: int, freq: float = TONE_HZ, seconds: float = TONE_S) -> NDArray[np.int16]:
    """A sine with 10 ms raised-cosine edges at ``TONE_LEVEL`` of full scale."""
    n = round(rate * seconds)
    t = np.arange(n) / rate
    y = np.sin(2 * math.pi * freq * t) * TONE_LEVEL * 32767
    ramp = min(n // 2, round(rate * 0.01))
    if ramp:
        env = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        y[:ramp] *= env
        y[n - ramp :] *= env[::-1]
    return np.rint(y).astype(np.int16)


async def _audio_test(
    audio: AudioSettings, seconds: float, out: TextIO, factory: PyAudioFactory
) -> int:
    from hello_device.audio.backends.base import Frame
    from hello_device.audio.backends.pyaudio import PyAudioBackend
    from hello_device.audio.player import Player
    from hello_device.audio.resample import Resampler

    player = Player(16000, volume=audio.volume)
    backend = PyAudioBackend(audio, player, pyaudio_factory=factory)
    problems: list[str] = []
    failed = asyncio.Event()
    recorded: list[bytes] = []
    recent: list[bytes] = []
    recording = False

    def on_frame(frame: Frame) -> None:
        recent.append(frame.pcm)
        if recording:
            recorded.append(frame.pcm)

    def on_status(problem: str | None) -> None:
        if problem:
            problems.append(problem)
            failed.set()

    def fail() -> int:
        print(f"\nerror: {problems[0]}", file=sys.stderr)
        return EXIT_FATAL

    task = asyncio.create_task(backend.run(on_frame, on_status), name="audio-test")
    try:
        if not await _first(backend.ready, failed, OPEN_TIMEOUT_S):
            print(
                f"error: the sound card did not start within {OPEN_TIMEOUT_S:.0f} s",
                file=sys.stderr,
            )
            return EXIT_FATAL
        if failed.is_set():
            return fail()
        streams = backend.streams
        if streams is not None:
            print(
                f"microphone  {streams.mic.label} at {streams.in_rate} Hz\n"
                f"loudspeaker {streams.speaker.label} at {streams.out_rate} Hz",
                file=out,
            )
        print(f"Recording {seconds:g} s: speak now.", file=out)
        recent.clear()
        recording = True
        loop = asyncio.get_running_loop()
        start = loop.time()
        peak_db = -120.0
        while (elapsed := loop.time() - start) < seconds:
            if await _first(failed, None, METER_INTERVAL_S):
                return fail()
            window = np.frombuffer(b"".join(recent), dtype=np.int16)
            recent.clear()
            db = level_dbfs(window)
            peak_db = max(peak_db, db)
            out.write("\r" + meter_line(db, min(elapsed, seconds), seconds))
            out.flush()
        recording = False
        pcm = np.frombuffer(b"".join(recorded), dtype=np.int16)
        peak = int(np.abs(pcm.astype(np.int32)).max(initial=0))
        print(
            f"\nRecorded {len(pcm) / 16000:.1f} s: level {level_dbfs(pcm):.1f} dBFS, "
            f"loudest 100 ms {peak_db:.1f} dBFS, peak sample {peak}",
            file=out,
        )
        if not np.any(pcm):
            print("warning: the microphone delivered only digital silence", file=out)

        rate = player.rate
        print(f"Playing a {TONE_HZ:.0f} Hz tone ({TONE_S:g} s).", file=out)
        player.push(tone(rate))
        if not await _played(backend, player, failed, TONE_S):
            return fail()
        print(f"Playing the recording back ({len(pcm) / 16000:.1f} s).", file=out)
        resampler = Resampler(16000, rate)
        back = np.concatenate([resampler.process(pcm), resampler.flush()])
        player.push(back)
        if not await _played(backend, player, failed, len(pcm) / 16000):
            return fail()
        print("Done.", file=out)
        return EXIT_OK
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _first(a: asyncio.Event, b: asyncio.Event | None, limit_s: float) -> bool:
    """Wait until ``a`` or ``b`` is set, at most ``limit_s``; True if one is."""
    events = [e for e in (a, b) if e is not None]
    await first_of(*(e.wait() for e in events), timeout=limit_s)
    return any(e.is_set() for e in events)


async def _played(
    backend: PyAudioBackend, player: Player, failed: asyncio.Event, seconds: float
) -> bool:
    """Wait (bounded) until the player is empty and the device buffer played out."""
    deadline = time.monotonic() + seconds + 5.0
    while player.playing and time.monotonic() < deadline:
        if await _first(failed, None, 0.02):
            return False
    streams = backend.streams
    tail = (streams.out_latency if streams is not None else 0.0) + 0.15
    return not await _first(failed, None, tail)
