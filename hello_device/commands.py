"""Subcommands beyond run/check-config/version, each imported only when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable

AddConfig = Callable[[argparse.ArgumentParser], None]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config: AddConfig
) -> None:
    pass
