"""``hello-device emulator``: the local agent emulator in the foreground.

The emulator's own options and run live with it (``add_arguments`` and
``run_from_args``); this is only the sub-command around them.
"""

from __future__ import annotations

import argparse

from hello_device.cli.common import SubParsers

__all__ = ["cmd_emulator", "register"]


def register(sub: SubParsers) -> None:
    """Add ``emulator``."""
    from hello_device.emulator.cli import add_arguments

    p = sub.add_parser(
        "emulator",
        help="run the local agent emulator (say something, hear it back)",
        description="Serve the platform's management API subset and conversation WebSocket "
        "on this machine, with a parrot agent that plays each utterance back.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_emulator)


def cmd_emulator(args: argparse.Namespace) -> int:
    from hello_device.emulator.cli import run_from_args
    from hello_device.logs import setup_logging

    setup_logging(args.log_level or "INFO", "stderr")
    return run_from_args(args)
