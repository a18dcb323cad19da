"""``hello-device wake-test``: detection scores for tuning the wake word on site."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from hello_device.cli.common import EXIT_FATAL, EXIT_OK, SubParsers, add_config_arg

if TYPE_CHECKING:
    from hello_device.audio.backends.base import Frame
    from hello_device.settings import AudioSettings
    from hello_device.wake.detector import WakeWordDetector

FRAME_BYTES = 640  # 20 ms at 16 kHz, as the daemon feeds it
SCORE_EVERY_S = 0.5


def register(sub: SubParsers) -> None:
    """Add ``wake-test``."""
    p = sub.add_parser(
        "wake-test",
        help="wake-word detections and scores over WAV files, for tuning sensitivity",
        description="Run the configured wake word (or --model / --sensitivity) live on the "
        "microphone (opened like the daemon opens it; stop the service first), printing a "
        "score twice a second and every detection; or over WAV recordings, printing for "
        "each the detections with their time and probability, or the highest probability "
        "heard and the cutoff it missed.",
    )
    add_config_arg(p)
    p.add_argument("--model", help="a built-in model or a JSON manifest (default: the config)")
    p.add_argument("--sensitivity", type=float, help="0..1 (default: the config)")
    p.add_argument(
        "--seconds", type=float, default=30.0, metavar="S", help="live: listen this long (30)"
    )
    p.add_argument("files", nargs="*", metavar="FILE.wav", help="recordings (default: live)")
    p.set_defaults(func=cmd_wake_test)


def cmd_wake_test(args: argparse.Namespace) -> int:
    """``hello-device wake-test``."""
    import dataclasses

    from hello_device.audio.convert import CaptureConverter
    from hello_device.audio.wav import read_wav_pcm
    from hello_device.settings import DEFAULT_CONFIG_PATH, WakeWordSettings, load_settings
    from hello_device.wake.detector import WakeWordDetector

    config = Path(args.config)
    settings = None
    if config == DEFAULT_CONFIG_PATH and not config.exists():
        wake = WakeWordSettings()
    else:
        settings = load_settings(config)
        wake = settings.wake_word
    if args.model:
        wake = dataclasses.replace(wake, model=args.model)
    if args.sensitivity is not None:
        wake = dataclasses.replace(wake, sensitivity=args.sensitivity)
    detector = WakeWordDetector(wake)
    print(
        f"{detector.wake_word!r}: sensitivity {wake.sensitivity:g} -> probability cutoff "
        f"{detector.cutoff:.2f} (the model's own: {detector.model_cutoff:.2f})"
    )
    if not args.files:
        from hello_device.settings import AudioSettings

        mic = settings.audio if settings is not None else AudioSettings()
        return asyncio.run(_listen(detector, mic, float(args.seconds)))
    code = EXIT_OK
    for name in args.files:
        try:
            pcm, rate, channels = read_wav_pcm(name)
        except (OSError, ValueError) as exc:
            print(f"{name}: cannot read: {exc}")
            code = EXIT_FATAL
            continue
        converter = CaptureConverter(rate, channels, "mix", 20, quality="HQ")
        audio = b"".join(converter.feed(pcm) + converter.flush())
        detector.reset()
        hits = []
        for i in range(0, len(audio), FRAME_BYTES):
            hits += detector.feed(audio[i : i + FRAME_BYTES])
        if hits:
            shown = ", ".join(f"{d.at_s:.2f} s (probability {d.probability:.2f})" for d in hits)
            print(f"{name}: detected at {shown}")
        else:
            p, at = detector.highest
            print(f"{name}: not detected (highest probability {p:.2f} at {at:.2f} s)")
    return code


async def _listen(detector: WakeWordDetector, audio: AudioSettings, seconds: float) -> int:
    """Live: the microphone through the daemon's backend; a score line twice a second."""
    from hello_device.audio.backends.pyaudio import PyAudioBackend
    from hello_device.audio.player import Player

    window = [0.0]
    problems: list[str] = []

    def on_frame(frame: Frame) -> None:
        for hit in detector.feed(frame.pcm):
            print(f"detected at {hit.at_s:.2f} s (probability {hit.probability:.2f})", flush=True)
        window[0] = max(window[0], detector.latest)

    def on_status(problem: str | None) -> None:
        if problem:
            problems.append(problem)

    backend = PyAudioBackend(audio, Player(16000))
    task = asyncio.create_task(backend.run(on_frame, on_status))
    try:
        ready = asyncio.create_task(backend.ready.wait())
        await asyncio.wait({ready, task}, timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
        if not backend.ready.is_set():
            ready.cancel()
            why = problems[-1] if problems else "no audio within 10 s"
            print(f"error: the microphone did not start: {why}")
            return EXIT_FATAL
        print(f"listening for {detector.wake_word!r} for {seconds:g} s (Ctrl-C ends)", flush=True)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(min(SCORE_EVERY_S, end - loop.time()))
            score, window[0] = window[0], 0.0
            bar = "#" * round(score * 40)
            print(f"score {score:.2f} |{bar:<40}| cutoff {detector.cutoff:.2f}", flush=True)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return EXIT_OK
