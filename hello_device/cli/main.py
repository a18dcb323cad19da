"""``hello-device SUBCOMMAND``: the one entry point.

Every sub-command lives in a module that exposes ``register(sub)``, which adds its
parser(s) to the sub-parsers ``sub`` (with :func:`~hello_device.cli.common.add_config_arg`
for ``--config``) and sets ``func``, the function that runs it and returns the exit code.
:data:`COMMANDS` maps each name to its help text and that module; only the module of the
command being run is imported (the others get a help-only stub), so ``hello-device run``
on a Pi Zero pays for none of the others. ``hello-device --help`` imports them all.

Errors are handled here once: a :class:`~hello_device.errors.ConfigError` prints one
``config error: ...`` line per problem and exits 2, any other
:class:`~hello_device.errors.HelloDeviceError` prints ``error: ...`` and exits 1, and
Ctrl-C exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hello_device.cli.common import (
    EXIT_CONFIG,
    EXIT_FATAL,
    EXIT_OK,
    SubParsers,
    print_config_error,
)
from hello_device.errors import ConfigError, HelloDeviceError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run the daemon in the foreground", "hello_device.cli.run"),
    "check-config": ("check a configuration file and exit", "hello_device.cli.run"),
    "version": ("print the version", "hello_device.cli.run"),
    "emulator": (
        "run the local agent emulator (say something, hear it back)",
        "hello_device.cli.emulator",
    ),
    "demo": (
        "a headless conversation with the local emulator, over WAV files",
        "hello_device.cli.demo",
    ),
    "doctor": (
        "check configuration, key, clock, network, platform, audio, GPIO and service",
        "hello_device.doctor.cli",
    ),
    "setup": (
        "set the device up: agent, API key, sound devices, trigger, pins (run as root)",
        "hello_device.provision.setup_cli",
    ),
    "provision": (
        "install the configuration and key left on the boot partition (run as root)",
        "hello_device.provision.cli",
    ),
    "devices": (
        "list sound devices and mark the ones the configuration uses",
        "hello_device.cli.audio",
    ),
    "audio-test": (
        "microphone level meter, then a tone and the recording played back",
        "hello_device.cli.audio",
    ),
    "wake-test": (
        "wake-word detections and scores over WAV files, for tuning sensitivity",
        "hello_device.wake.cli",
    ),
    "config": ("show the effective configuration", "hello_device.cli.platform"),
    "fetch-config": (
        "print the agent configuration the platform returns (secrets masked)",
        "hello_device.cli.platform",
    ),
    "agents": (
        "list the agents the API key can see (id, private or public, name)",
        "hello_device.cli.manage",
    ),
    "conversations": (
        "this agent's latest conversations; `conversations show ID` for one",
        "hello_device.cli.manage",
    ),
    "tools": (
        "the device's tools on the platform: `tools list`, `tools sync [--dry-run]`",
        "hello_device.cli.manage",
    ),
}
"""Sub-command name -> (help text, the module whose ``register(sub)`` adds it), in the
order ``--help`` lists them; a module's commands are next to each other."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's module is imported, and the other
    commands are help-only stubs."""
    parser = argparse.ArgumentParser(
        prog="hello-device",
        description="Voice appliance daemon for ElevenLabs-compatible agent platforms.",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default: from the configuration, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register(sub, only)
    return parser


def _register(sub: SubParsers, only: str | None) -> None:
    wanted = {module for name, (_, module) in COMMANDS.items() if only in (None, name)}
    for name, (help_text, module) in COMMANDS.items():
        if name in sub.choices:  # added by its module along with an earlier command
            continue
        if module in wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line (None: unknown or none)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--log-level")
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(list(argv))
    return str(known.command) if known.command else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except HelloDeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
