"""``hello-device wake-test``: detection scores for tuning the wake word on site."""

from __future__ import annotations

import argparse
from pathlib import Path

from hello_device.cli.common import EXIT_FATAL, EXIT_OK, SubParsers, add_config_arg

FRAME_BYTES = 640  # 20 ms at 16 kHz, as the daemon feeds it


def register(sub: SubParsers) -> None:
    """Add ``wake-test``."""
    p = sub.add_parser(
        "wake-test",
        help="wake-word detections and scores over WAV files, for tuning sensitivity",
        description="Run the configured wake word (or --model / --sensitivity) over WAV "
        "recordings made on the device and print, for each, the detections with their "
        "time and probability, or the highest probability heard and the cutoff it missed.",
    )
    add_config_arg(p)
    p.add_argument("--model", help="a built-in model or a JSON manifest (default: the config)")
    p.add_argument("--sensitivity", type=float, help="0..1 (default: the config)")
    p.add_argument("files", nargs="+", metavar="FILE.wav", help="recordings to test")
    p.set_defaults(func=cmd_wake_test)


def cmd_wake_test(args: argparse.Namespace) -> int:
    """``hello-device wake-test``."""
    import dataclasses

    from hello_device.audio.convert import CaptureConverter
    from hello_device.audio.wav import read_wav_pcm
    from hello_device.settings import DEFAULT_CONFIG_PATH, WakeWordSettings, load_settings
    from hello_device.wake.detector import WakeWordDetector

    config = Path(args.config)
    if config == DEFAULT_CONFIG_PATH and not config.exists():
        wake = WakeWordSettings()
    else:
        wake = load_settings(config).wake_word
    if args.model:
        wake = dataclasses.replace(wake, model=args.model)
    if args.sensitivity is not None:
        wake = dataclasses.replace(wake, sensitivity=args.sensitivity)
    detector = WakeWordDetector(wake)
    print(
        f"{detector.wake_word!r}: sensitivity {wake.sensitivity:g} -> probability cutoff "
        f"{detector.cutoff:.2f} (the model's own: {detector.model_cutoff:.2f})"
    )
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
