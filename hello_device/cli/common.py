"""What every sub-command shares: exit codes, ``--config``, loading the settings and
printing a configuration error.

Exit codes everywhere: 0 success (or a clean stop), 1 other fatal error, 2 configuration
error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from pathlib import Path
from typing import TextIO, TypeAlias

from hello_device.errors import ConfigError
from hello_device.logs import REDACTOR
from hello_device.settings import DEFAULT_CONFIG_PATH, Settings, load_settings, parse_settings

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


NO_AGENT = "-"
"""The agent id of settings loaded with ``agent_optional`` from a file that has none."""


def load_settings_for_cli(
    path: str, *, err: TextIO | None = None, to_log: bool = False, agent_optional: bool = False
) -> Settings:
    """The settings at ``path``, the API key registered with the log redactor.

    Warnings (a key file readable by others, ...) are ``warning: ...`` lines on ``err``
    (default: stderr), or log records with ``to_log`` (``run``: the journal). Raises
    :class:`~hello_device.errors.ConfigError`. With ``agent_optional`` (``agents``, which
    helps to find the id) a missing ``platform.agent_id`` is not an error: the settings
    carry :data:`NO_AGENT`.
    """

    def warn(message: str) -> None:
        if to_log:
            log.warning("%s", message)
        else:
            print(f"warning: {message}", file=err or sys.stderr)

    try:
        settings = load_settings(path, warn=warn)
    except ConfigError as exc:
        about_agent = all(": platform.agent_id: " in line for line in exc.problems)
        if not (agent_optional and exc.problems and about_agent):
            raise
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        data.setdefault("platform", {})["agent_id"] = NO_AGENT
        settings = parse_settings(data, path, warn=warn)
    if settings.platform.api_key:
        REDACTOR.add(settings.platform.api_key.reveal())
    return settings
