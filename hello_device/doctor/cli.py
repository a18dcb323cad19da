"""``hello-device doctor`` and ``python -m hello_device.doctor``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hello_device.cli.common import add_config_arg
from hello_device.doctor.runner import run_doctor

_DESCRIPTION = (
    "Check everything the device needs, one PASS/WARN/FAIL/SKIP line each, with a fix "
    "under every WARN and FAIL. Exit 0 when nothing failed, 1 when a check failed, 2 when "
    "the configuration cannot be loaded. Stop the service first to check the sound card "
    "and the pins it holds."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the CLI's subcommands."""
    p = sub.add_parser(
        "doctor",
        help="check configuration, key, clock, network, platform, audio, GPIO and service",
        description=_DESCRIPTION,
    )
    _add_arguments(p)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument(
        "--skip-network",
        action="store_true",
        help="skip DNS, HTTPS, the agent configuration fetch and the signed URL",
    )
    p.add_argument(
        "--skip-audio", action="store_true", help="skip opening the microphone and loudspeaker"
    )
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``hello-device doctor``."""
    from hello_device.logs import setup_logging

    setup_logging(getattr(args, "log_level", None) or "ERROR", "stderr")
    return run_doctor(
        args.config,
        skip_network=bool(getattr(args, "skip_network", False)),
        skip_audio=bool(getattr(args, "skip_audio", False)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hello_device.doctor [--config PATH] [--skip-network] [--skip-audio]``."""
    parser = argparse.ArgumentParser(prog="hello-device doctor", description=_DESCRIPTION)
    parser.add_argument(
        "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
