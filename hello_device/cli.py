"""Command-line interface: ``hello-device SUBCOMMAND``.

Exit codes everywhere: 0 clean stop, 1 other fatal error, 2 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hello_device import __version__
from hello_device.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from hello_device.errors import ConfigError, HelloDeviceError
from hello_device.logs import REDACTOR, setup_logging

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 2


def _print_config_error(exc: ConfigError) -> None:
    for line in exc.problems:
        print(f"config error: {line}", file=sys.stderr)


def _load(path: str, warn_to_stderr: bool = True) -> Settings:
    def warn(message: str) -> None:
        if warn_to_stderr:
            print(f"warning: {message}", file=sys.stderr)
        else:
            log.warning("%s", message)

    settings = load_settings(path, warn=warn)
    if settings.platform.api_key:
        REDACTOR.add(settings.platform.api_key.reveal())
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = _load(args.path)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    key = "set" if settings.platform.api_key else "not set"
    print(
        f"{args.path}: OK (agent {settings.platform.agent_id}, audio {settings.audio.backend}, "
        f"start {settings.conversation.start}, API key {key}"
        f"{' from ' + settings.api_key_source if settings.platform.api_key else ''})"
    )
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    print(f"hello-device {__version__}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = _load(args.config, warn_to_stderr=False)
    except ConfigError as exc:
        setup_logging(args.log_level or "INFO")
        _print_config_error(exc)
        return EXIT_CONFIG
    setup_logging(args.log_level or settings.logging.level, settings.logging.target)
    from hello_device.app import run_daemon

    return run_daemon(settings, config_path=args.config)


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=str(DEFAULT_CONFIG_PATH),
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other optional subcommands stay help-only stubs."""
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

    p = sub.add_parser("run", help="run the daemon in the foreground")
    _add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="check a configuration file and exit")
    p.add_argument("path", metavar="PATH", help="the TOML file to check")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    from hello_device import commands

    commands.register(sub, _add_config_arg, only)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (None: unknown or none)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--log-level")
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(list(argv))
    return str(known.command) if known.command else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except HelloDeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["Path", "main"]
