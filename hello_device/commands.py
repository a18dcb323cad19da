"""Subcommands beyond run/check-config/version, each imported only when it runs."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

AddConfig = Callable[[argparse.ArgumentParser], None]

log = logging.getLogger(__name__)


# name -> (help, what registers it); imported only when that command runs (or for
# ``--help`` of everything), so ``hello-device run`` on a Pi Zero pays for none of it.
LAZY: dict[str, tuple[str, str]] = {
    "emulator": ("run the local agent emulator (say something, hear it back)", "emulator"),
    "demo": ("a headless conversation with the local emulator, over WAV files", "demo"),
    "doctor": (
        "check configuration, key, clock, network, platform, audio, GPIO and service",
        "doctor",
    ),
    "devices": ("list sound devices and mark the ones the configuration uses", "audio_cli"),
    "audio-test": (
        "microphone level meter, then a tone and the recording played back",
        "audio_cli",
    ),
    "config": ("show the effective configuration", "platform_cli"),
    "fetch-config": ("print what the platform returns for the agent", "platform_cli"),
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: AddConfig,
    only: str | None = None,
) -> None:
    """Add the subcommands; with ``only``, just that one is built in full."""
    full = {group for name, (_, group) in LAZY.items() if only is None or name == only}
    done: set[str] = set()
    for name, (help_text, group) in LAZY.items():
        if group not in full:
            sub.add_parser(name, help=help_text)
            continue
        if group in done:
            continue
        done.add(group)
        if group == "emulator":
            _register_emulator(sub, help_text)
        elif group == "demo":
            _register_demo(sub, help_text)
        else:
            module = importlib.import_module(f"hello_device.{group}")
            module.register(sub, add_config)


def _register_emulator(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], help_text: str
) -> None:
    from hello_device import emulator

    p = sub.add_parser(
        "emulator",
        help=help_text,
        description="Serve the platform's management API subset and conversation WebSocket "
        "on this machine, with a parrot agent that plays each utterance back.",
    )
    emulator.add_arguments(p)
    p.set_defaults(func=_run_emulator)


def _register_demo(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], help_text: str
) -> None:
    p = sub.add_parser(
        "demo",
        help=help_text,
        description="Start the emulator, run the daemon with the file audio backend on a "
        "recorded question, print the transcript, and write what the device played.",
    )
    p.add_argument("--input", metavar="WAV", help="the microphone recording (default: bundled)")
    p.add_argument(
        "--output", metavar="WAV", default="demo-output.wav", help="what the loudspeaker plays"
    )
    p.add_argument("--format", default="pcm_16000", help="agent audio format the emulator uses")
    p.set_defaults(func=cmd_demo)


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
