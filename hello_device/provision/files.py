"""Writing configuration and secrets safely: atomic replace, mode and owner set before
the file appears under its name, a configuration checked where it will live before it
replaces the running one, best-effort shredding of a secret left elsewhere. Shared by
``setup`` and the boot-partition provisioning."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from pathlib import Path

from hello_device.errors import ConfigError
from hello_device.settings import Settings, load_settings

__all__ = [
    "SERVICE_USER",
    "gid_of",
    "install_config",
    "is_root",
    "key_file_for",
    "key_problem",
    "shred",
    "uid_of",
    "write_atomically",
]

SERVICE_USER = "hello-device"
MAX_KEY_CHARS = 512


def key_problem(key: str) -> str:
    """Why ``key`` (stripped) cannot be an API key, or "" when it can."""
    if not key:
        return "the key is empty: put the API key alone on one line"
    if any(c.isspace() for c in key):
        return "the key must be the API key alone on one line (no spaces)"
    if len(key) > MAX_KEY_CHARS:
        return f"the key has {len(key)} characters: not an API key"
    if not key.isascii() or not key.isprintable():
        return "the key holds characters an API key never has"
    return ""


def key_file_for(config_path: Path, named: object) -> Path:
    """Where the key goes: ``platform.api_key_file`` (``named``; relative to the
    configuration's directory), else ``api-key`` beside the configuration."""
    if isinstance(named, str) and named:
        return config_path.parent / named  # an absolute path stays as it is
    return config_path.parent / "api-key"


def install_config(
    config_path: Path, text: bytes, *, shown_as: str
) -> tuple[Settings, Path | None]:
    """Check ``text`` as the daemon loads it, where it will live (so a relative
    ``api_key_file`` means what it will mean), then make it the configuration (mode 0640,
    group of the service). Return its settings and where the previous one was kept.
    A ConfigError names ``shown_as``, never the staging file, and changes nothing."""
    staged = config_path.with_name(config_path.name + ".new")
    owner = 0 if is_root() else None
    write_atomically(staged, text, 0o640, owner=owner, group=gid_of(SERVICE_USER))
    try:
        settings = load_settings(staged, env={})
    except ConfigError as exc:
        staged.unlink(missing_ok=True)
        raise ConfigError([p.replace(str(staged), shown_as) for p in exc.problems]) from None
    previous: Path | None = None
    if config_path.exists():
        previous = config_path.with_name(config_path.name + ".previous")
        os.replace(config_path, previous)
    os.replace(staged, config_path)
    return settings, previous


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
