"""What every sub-command shares: exit codes, ``--config``, loading the settings and
printing a configuration error.

Exit codes everywhere: 0 success (or a clean stop), 1 other fatal error, 2 configuration
error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO, TypeAlias

from hello_device.errors import ConfigError
from hello_device.logs import REDACTOR
from hello_device.settings import DEFAULT_CONFIG_PATH, Settings, load_settings

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FATAL",
    "EXIT_OK",
    "SubParsers",
    "add_config_arg",
    "load_settings_for_cli",
    "print_config_error",
]

log = logging.getLogger("hello_device.cli")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 2

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What a command module's ``register(sub)`` adds its parsers to."""


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``--config PATH`` / ``-c PATH``, the configuration file (default: the system one)."""
    parser.add_argument(
        "--config",
        "-c",
        default=str(DEFAULT_CONFIG_PATH),
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )


def print_config_error(exc: ConfigError, stream: TextIO | None = None) -> None:
    """One ``config error: ...`` line per problem, on ``stream`` (default: stderr)."""
    stream = stream or sys.stderr
    for line in exc.problems:
        print(f"config error: {line}", file=stream)


def load_settings_for_cli(
    path: str, *, err: TextIO | None = None, to_log: bool = False
) -> Settings:
    """The settings at ``path``, the API key registered with the log redactor.

    Warnings (a key file readable by others, ...) are ``warning: ...`` lines on ``err``
    (default: stderr), or log records with ``to_log`` (``run``: the journal). Raises
    :class:`~hello_device.errors.ConfigError`.
    """

    def warn(message: str) -> None:
        if to_log:
            log.warning("%s", message)
        else:
            print(f"warning: {message}", file=err or sys.stderr)

    settings = load_settings(path, warn=warn)
    if settings.platform.api_key:
        REDACTOR.add(settings.platform.api_key.reveal())
    return settings
