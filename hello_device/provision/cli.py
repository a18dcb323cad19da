"""``hello-device provision``: install the configuration and key left on the boot partition."""

from __future__ import annotations

import argparse
from pathlib import Path

from hello_device.cli.common import EXIT_FATAL, EXIT_OK, SubParsers, add_config_arg
from hello_device.provision.boot_partition import BOOT_DIRS, CONFIG_NAME, KEY_NAME, provision


def register(sub: SubParsers) -> None:
    """Add ``provision``."""
    p = sub.add_parser(
        "provision",
        help="install the configuration and key left on the boot partition (run as root)",
        description=f"Install {CONFIG_NAME} (the configuration) and {KEY_NAME} (the API key "
        "alone on one line) that a technician left on the boot partition: each is checked, "
        "installed under /etc/hello-device and removed from the boot partition; a file that "
        "fails its check is renamed .rejected with the reason beside it. Exit 0 when nothing "
        "was rejected. hello-device-provision.service runs it before the daemon.",
    )
    add_config_arg(p)
    p.add_argument(
        "--boot-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="where the boot partition is mounted (repeatable; default: "
        + ", ".join(str(d) for d in BOOT_DIRS)
        + ")",
    )
    p.set_defaults(func=cmd_provision)


def cmd_provision(args: argparse.Namespace) -> int:
    """``hello-device provision``."""
    from hello_device.logs import setup_logging

    setup_logging(getattr(args, "log_level", None) or "INFO", "stderr")
    outcome = provision(tuple(args.boot_dir or BOOT_DIRS), Path(args.config))
    for line in outcome.installed:
        print(f"installed: {line}")
    for line in outcome.notes:
        print(f"note: {line}")
    for line in outcome.rejected:
        print(f"rejected: {line}")
    if not (outcome.installed or outcome.rejected):
        print("nothing to provision")
    return EXIT_OK if outcome.ok else EXIT_FATAL
