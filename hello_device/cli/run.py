"""``hello-device run``, ``check-config`` and ``version``."""

from __future__ import annotations

import argparse

from hello_device import __version__
from hello_device.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    SubParsers,
    add_config_arg,
    load_settings_for_cli,
    print_config_error,
)
from hello_device.errors import ConfigError
from hello_device.logs import setup_logging

__all__ = ["cmd_check_config", "cmd_run", "cmd_version", "register"]


def register(sub: SubParsers) -> None:
    """Add ``run``, ``check-config`` and ``version``."""
    p = sub.add_parser("run", help="run the daemon in the foreground")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="check a configuration file and exit")
    p.add_argument("path", metavar="PATH", help="the TOML file to check")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon in the foreground; its warnings and errors go to the log."""
    try:
        settings = load_settings_for_cli(args.config, to_log=True)
    except ConfigError as exc:
        setup_logging(args.log_level or "INFO")
        print_config_error(exc)
        return EXIT_CONFIG
    setup_logging(args.log_level or settings.logging.level, settings.logging.target)
    from hello_device.daemon import run_daemon

    return run_daemon(settings, config_path=args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """One line saying what the file configures (a ConfigError: exit 2, from the caller)."""
    settings = load_settings_for_cli(args.path)
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
