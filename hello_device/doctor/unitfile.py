"""The installed systemd unit, read the way systemd reads it (drop-ins included)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "hello-device.service"
SERVICE_USER = "hello-device"
UNIT_DIRS = (
    "etc/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
)
"""Where systemd looks for unit files, most important first (relative to the root)."""
SYSUSERS_FILE = "usr/lib/sysusers.d/hello-device.conf"
TMPFILES_FILE = "usr/lib/tmpfiles.d/hello-device.conf"


@dataclass(frozen=True)
class UnitInfo:
    """What the doctor reads from the installed unit file (and its drop-ins)."""

    path: Path
    masked: bool = False
    enabled_by: tuple[str, ...] = ()
    """The ``*.wants`` directories that link the unit (empty: not enabled)."""
    exec_start: tuple[str, ...] = ()
    user: str | None = None
    supplementary_groups: tuple[str, ...] = ()
    protect_system: str | None = None
    read_write_paths: tuple[str, ...] = ()
    state_directories: tuple[str, ...] = ()

    @property
    def config_path(self) -> str | None:
        """The ``--config``/``-c`` argument of ``ExecStart`` (None: the default path)."""
        args = list(self.exec_start)
        for i, arg in enumerate(args):
            if arg in ("--config", "-c") and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith("--config="):
                return arg.split("=", 1)[1]
        return None


def read_unit(root: Path) -> UnitInfo | None:
    """The installed ``hello-device.service`` under ``root``, or None when there is none."""
    unit_path: Path | None = None
    for d in UNIT_DIRS:
        candidate = root / d / UNIT_NAME
        if candidate.is_symlink() or candidate.exists():
            unit_path = candidate
            break
    if unit_path is None:
        return None
    if unit_path.is_symlink() and os.readlink(unit_path) == "/dev/null":
        return UnitInfo(unit_path, masked=True)
    files = [unit_path]
    for d in reversed(UNIT_DIRS):
        dropins = root / d / f"{UNIT_NAME}.d"
        if dropins.is_dir():
            files += sorted(dropins.glob("*.conf"))
    values: dict[str, list[str]] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        section = ""
        for raw in text.replace("\\\n", " ").splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Service" or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if value == "":
                values[key] = []  # an empty assignment resets the list
            else:
                values.setdefault(key, []).append(value)
    etc = root / "etc/systemd/system"
    wants = (
        tuple(sorted(p.parent.name for p in etc.glob(f"*.wants/{UNIT_NAME}")))
        if etc.is_dir()
        else ()
    )

    def last(key: str) -> str | None:
        found = values.get(key)
        return found[-1] if found else None

    def words(key: str) -> tuple[str, ...]:
        return tuple(w for v in values.get(key, []) for w in v.split())

    exec_start: tuple[str, ...] = ()
    if values.get("ExecStart"):
        try:
            exec_start = tuple(shlex.split(values["ExecStart"][-1]))
        except ValueError:
            exec_start = tuple(values["ExecStart"][-1].split())
    return UnitInfo(
        unit_path,
        enabled_by=wants,
        exec_start=exec_start,
        user=last("User"),
        supplementary_groups=words("SupplementaryGroups"),
        protect_system=last("ProtectSystem"),
        read_write_paths=words("ReadWritePaths"),
        state_directories=words("StateDirectory"),
    )
