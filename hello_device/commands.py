"""Subcommands beyond run/check-config/version, each imported only when it runs."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

AddConfig = Callable[[argparse.ArgumentParser], None]

log = logging.getLogger(__name__)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config: AddConfig
) -> None:
    p = sub.add_parser(
        "emulator",
        help="run the local agent emulator (say something, hear it back)",
        description="Serve the platform's management API subset and conversation WebSocket "
        "on this machine, with a parrot agent that plays each utterance back.",
    )
    from hello_device import emulator

    emulator.add_arguments(p)
    p.set_defaults(func=_run_emulator)

    p = sub.add_parser(
        "demo",
        help="a headless conversation with the local emulator, over WAV files",
        description="Start the emulator, run the daemon with the file audio backend on a "
        "recorded question, print the transcript, and write what the device played.",
    )
    p.add_argument("--input", metavar="WAV", help="the microphone recording (default: bundled)")
    p.add_argument(
        "--output", metavar="WAV", default="demo-output.wav", help="what the loudspeaker plays"
    )
    p.add_argument("--format", default="pcm_16000", help="agent audio format the emulator uses")
    p.set_defaults(func=cmd_demo)

    try:
        from hello_device import platform_cli
    except ImportError:  # pragma: no cover - during development only
        pass
    else:
        platform_cli.register(sub, add_config)


def _run_emulator(args: argparse.Namespace) -> int:
    from hello_device import emulator
    from hello_device.logs import setup_logging

    setup_logging(args.log_level or "INFO", "stderr")
    return emulator.run_from_args(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from hello_device.app import Daemon
    from hello_device.config import load_settings
    from hello_device.emulator import Emulator, EmulatorConfig
    from hello_device.logs import setup_logging

    setup_logging(args.log_level or "INFO", "stderr")
    examples = resources.files("hello_device") / "examples"
    settings = load_settings(str(examples / "demo.toml"), env={})
    input_file = args.input or str(examples / "hello.wav")
    output_file = str(Path(args.output).resolve())

    async def go() -> int:
        config = EmulatorConfig(agent_id=settings.platform.agent_id, output_format=args.format)
        async with Emulator(config) as emu:
            with tempfile.TemporaryDirectory(prefix="hello-device-demo-") as state:
                s = dataclasses.replace(
                    settings,
                    platform=dataclasses.replace(settings.platform, api_base_url=emu.http_url),
                    audio=dataclasses.replace(
                        settings.audio, input_file=input_file, output_file=output_file
                    ),
                    state=dataclasses.replace(settings.state, dir=state),
                )
                daemon = Daemon(s)
                code = await daemon.run()
        lines = [line for session in daemon.sessions for line in session.transcript]
        print("\nTranscript:")
        for speaker, text in lines:
            print(f"  {speaker:>5}: {text}")
        print(f"\nThe device's loudspeaker output is in {output_file}")
        return code if lines else 1

    return asyncio.run(go())


__all__ = ["register", "sys"]
