"""The last good agent configuration on disk, for offline boots.

One JSON file per agent under ``state.dir``, written atomically with mode 0600; a
corrupt file is renamed aside, never fatal. Signed URLs never go here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_device.aio import Clock
from hello_device.core import boundedjson
from hello_device.errors import describe_os_error

log = logging.getLogger(__name__)

_AGENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TMP_MAX_AGE_S = 600.0


@dataclass(frozen=True)
class CachedConfig:
    """A configuration read back from the cache."""

    raw: dict[str, Any]
    fetched_at: float
    """When it was fetched (epoch seconds)."""
    age_s: float
    """Seconds since then (negative if the clock is behind, e.g. a Pi before NTP)."""
    path: Path


class AgentConfigCache:
    """The last good agent configuration, one JSON file per agent under ``state_dir``.

    File ``agent-<agent_id>.json``: ``{"fetched_at": epoch, "agent_id": id, "config":
    raw}``. Written atomically (temporary file in the same directory, mode 0600, fsync,
    rename, fsync of the directory). Signed URLs never go here.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *, clock: Clock = time.time) -> None:
        self.dir = Path(state_dir)
        self._clock = clock
        self._warned: set[Path] = set()

    def path(self, agent_id: str) -> Path:
        if not _AGENT_ID.match(agent_id):
            raise ValueError("agent id must match [A-Za-z0-9_-]{1,128}")
        return self.dir / f"agent-{agent_id}.json"

    def save(self, agent_id: str, raw: Mapping[str, Any], fetched_at: float | None = None) -> Path:
        """Write atomically; raise :class:`OSError` if the state directory is not usable."""
        final = self.path(agent_id)
        when = self._clock() if fetched_at is None else fetched_at
        payload = json.dumps(
            {"fetched_at": when, "agent_id": agent_id, "config": raw},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_temps(final)
        tmp = self.dir / f".{final.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()
        log.debug("agent configuration cached in %s", final)
        return final

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass  # some file systems cannot fsync a directory; the rename still happened
        finally:
            os.close(dfd)

    def _remove_stale_temps(self, final: Path) -> None:
        """Temporary files left by a power cut mid-write (older than 10 min)."""
        now = time.time()
        for leftover in self.dir.glob(f".{final.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > _TMP_MAX_AGE_S:
                    leftover.unlink()

    def load(self, agent_id: str, *, quarantine: bool = True) -> CachedConfig | None:
        """The cached configuration, or None (missing, unreadable or corrupt; never raises).

        A corrupt file is renamed to ``agent-<id>.json.corrupt-<UTC timestamp>`` and
        reported once at WARNING (``quarantine=False`` only reports: for read-only tools).
        """
        try:
            path = self.path(agent_id)
        except ValueError:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except PermissionError:
            self._warn(path, "%s: cannot read the cached agent configuration (permission denied)")
            return None
        except OSError as exc:
            self._corrupt(path, f"unreadable ({describe_os_error(exc)})", quarantine)
            return None
        try:
            doc = boundedjson.loads(data)
        except ValueError:  # not JSON, not UTF-8, or nested too deep
            self._corrupt(path, "not valid JSON", quarantine)
            return None
        if not isinstance(doc, dict):
            self._corrupt(path, "not a JSON object", quarantine)
            return None
        config, fetched_at, cached_id = (
            doc.get("config"),
            doc.get("fetched_at"),
            doc.get("agent_id"),
        )
        if not isinstance(config, dict):
            self._corrupt(path, "no configuration object in it", quarantine)
            return None
        if (
            isinstance(fetched_at, bool)
            or not isinstance(fetched_at, (int, float))
            or not math.isfinite(fetched_at)
        ):
            self._corrupt(path, "no valid fetched_at time in it", quarantine)
            return None
        if cached_id != agent_id:
            self._corrupt(path, "it holds another agent's configuration", quarantine)
            return None
        return CachedConfig(
            raw=config,
            fetched_at=float(fetched_at),
            age_s=self._clock() - float(fetched_at),
            path=path,
        )

    def _warn(self, path: Path, message: str, *args: object) -> None:
        if path in self._warned:
            log.debug(message, path, *args)
        else:
            self._warned.add(path)
            log.warning(message, path, *args)

    def _corrupt(self, path: Path, why: str, quarantine: bool) -> None:
        if not quarantine:
            self._warn(path, "%s: the cached agent configuration is corrupt (%s); ignored", why)
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            self._warn(
                path,
                "%s: the cached agent configuration is corrupt (%s) and could not be renamed "
                "aside (%s); ignored",
                why,
                describe_os_error(exc),
            )
            return None
        self._warned.discard(path)
        log.warning(
            "%s: the cached agent configuration is corrupt (%s); renamed to %s and ignored",
            path,
            why,
            aside.name,
        )
        return None
