"""Writing configuration and secrets safely: atomic replace, mode and owner set before
the file appears under its name, best-effort shredding of a secret left elsewhere."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from pathlib import Path

__all__ = ["gid_of", "is_root", "shred", "uid_of", "write_atomically"]


def write_atomically(
    path: Path, data: str | bytes, mode: int, *, owner: int | None, group: int | None
) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, with
    its mode (and owner) set before it appears under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if is_root() and (owner is not None or group is not None):
            os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def shred(path: Path) -> None:
    """Overwrite then delete (best effort: FAT keeps no copies, flash may)."""
    with contextlib.suppress(OSError):
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(bytes(size))
            f.flush()
            os.fsync(f.fileno())
    path.unlink(missing_ok=True)


def is_root() -> bool:
    return os.geteuid() == 0


def uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None
