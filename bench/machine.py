"""The first lines of every bench report: the command and the machine it ran on."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def describe() -> str:
    """``$ command`` and ``machine, CPU model, CPUs, Python``, on two lines."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    command = " ".join([Path(sys.executable).name, *sys.argv])
    machine = (
        f"{platform.machine()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return f"$ {command}\n{machine}"
