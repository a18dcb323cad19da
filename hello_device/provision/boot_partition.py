"""Zero-touch provisioning from the boot partition.

A technician writes ``hello-device.toml`` (the configuration) and/or ``hello-device.key``
(the API key alone on one line) onto the FAT boot partition from any laptop:
``/boot/firmware/`` on Raspberry Pi OS Bookworm and later, ``/boot/`` before. At the next
start, before the daemon, :func:`provision` (``hello-device provision``, run as root by
``hello-device-provision.service``):

1. the key: checked (one line, no spaces, at most 512 characters), written to the key
   file (``platform.api_key_file`` of the configuration, else
   ``/etc/hello-device/api-key``) with mode 0600 for the service user, then overwritten
   and deleted on the boot partition: a secret does not stay on a card anyone can read;
2. the configuration: checked exactly as the daemon loads it (with the key just
   installed), then written to ``/etc/hello-device/config.toml`` (mode 0640, group
   ``hello-device``; the previous one kept as ``config.toml.previous``) and deleted from
   the boot partition.

A file that fails its check is left on the boot partition renamed ``<name>.rejected``,
with ``<name>.rejected.txt`` beside it giving the reason; the running configuration (or
key) is kept. Each step is one log line; the key's value never appears anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hello_device.errors import ConfigError
from hello_device.provision.files import (
    SERVICE_USER,
    gid_of,
    install_config,
    key_file_for,
    key_problem,
    shred,
    uid_of,
    write_atomically,
)
from hello_device.settings import DEFAULT_CONFIG_PATH

__all__ = [
    "BOOT_DIRS",
    "CONFIG_NAME",
    "DEFAULT_KEY_PATH",
    "KEY_NAME",
    "Outcome",
    "find_boot_dir",
    "provision",
]

log = logging.getLogger(__name__)

BOOT_DIRS: tuple[Path, ...] = (Path("/boot/firmware"), Path("/boot"))
"""Where the boot partition is mounted, newest layout first."""
CONFIG_NAME = "hello-device.toml"
KEY_NAME = "hello-device.key"
DEFAULT_KEY_PATH = Path("/etc/hello-device/api-key")


@dataclass
class Outcome:
    """What one provisioning run did (for the CLI's lines and the exit code)."""

    installed: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def find_boot_dir(boot_dirs: Sequence[Path] = BOOT_DIRS) -> Path | None:
    """The first of ``boot_dirs`` holding a provisioning file, if any."""
    for d in boot_dirs:
        if (d / CONFIG_NAME).is_file() or (d / KEY_NAME).is_file():
            return d
    return None


def provision(
    boot_dirs: Sequence[Path] = BOOT_DIRS,
    config_path: Path = DEFAULT_CONFIG_PATH,
    *,
    service_user: str = SERVICE_USER,
) -> Outcome:
    """Install what the boot partition holds (see the module docstring)."""
    outcome = Outcome()
    boot = find_boot_dir(boot_dirs)
    if boot is None:
        return outcome
    new_config = boot / CONFIG_NAME
    key_source = boot / KEY_NAME
    if key_source.is_file():
        key_path = _key_path(new_config if new_config.is_file() else config_path, config_path)
        _install_key(key_source, key_path, service_user, outcome)
    if new_config.is_file():
        _install_config(new_config, config_path, outcome)
    return outcome


def _key_path(config: Path, config_path: Path) -> Path:
    """Where the key goes, as named by ``config`` (the new configuration, else the running one)."""
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    platform = data.get("platform")
    return key_file_for(
        config_path, platform.get("api_key_file") if isinstance(platform, dict) else None
    )


def _install_key(source: Path, key_path: Path, user: str, outcome: Outcome) -> None:
    try:
        text = source.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        _reject(source, f"cannot read the key file: {exc}", outcome)
        return
    problem = key_problem(text)
    if problem:
        _reject(source, problem, outcome)
        return
    try:
        write_atomically(key_path, text + "\n", 0o600, owner=uid_of(user), group=gid_of(user))
    except OSError as exc:
        outcome.rejected.append(f"{source}: cannot write {key_path}: {exc.strerror or exc}")
        log.error("provisioning: cannot write %s: %s", key_path, exc.strerror or exc)
        return
    shred(source)
    outcome.installed.append(f"API key -> {key_path} (mode 0600; removed from {source.parent})")
    log.info("provisioning: API key installed in %s and removed from %s", key_path, source)


def _install_config(source: Path, config_path: Path, outcome: Outcome) -> None:
    try:
        settings, previous = install_config(config_path, source.read_bytes(), shown_as=source.name)
    except ConfigError as exc:
        _reject(source, "\n".join(exc.problems) or str(exc), outcome)
        return
    except OSError as exc:
        outcome.rejected.append(f"{source}: cannot install it: {exc.strerror or exc}")
        log.error("provisioning: cannot install %s: %s", source, exc.strerror or exc)
        return
    source.unlink()
    outcome.installed.append(f"configuration -> {config_path} (removed from {source.parent})")
    if previous is not None:
        outcome.notes.append(f"the previous configuration is kept as {previous}")
    p = settings.platform
    if p.api_key is None and not p.api_key_file:
        outcome.notes.append("the configuration names no API key (fine for a public agent)")
    log.info(
        "provisioning: configuration for agent %s installed in %s from %s",
        p.agent_id,
        config_path,
        source,
    )


def _reject(source: Path, reason: str, outcome: Outcome) -> None:
    """Rename ``source`` to ``<name>.rejected`` and write the reason beside it."""
    rejected = source.with_name(source.name + ".rejected")
    reason_file = source.with_name(source.name + ".rejected.txt")
    with contextlib.suppress(OSError):
        os.replace(source, rejected)
    with contextlib.suppress(OSError):
        reason_file.write_text(f"{source.name} was not installed:\n{reason}\n", encoding="utf-8")
    first = reason.splitlines()[0] if reason else "rejected"
    outcome.rejected.append(
        f"{source}: {first} (renamed {rejected.name}, reason in {reason_file.name})"
    )
    log.warning("provisioning: %s rejected: %s", source, first)
