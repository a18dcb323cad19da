"""What the checks share (settings, probes, earlier results) and their small helpers."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from hello_device.aio import call_in_daemon_thread
from hello_device.settings import (
    Settings,
)

if TYPE_CHECKING:
    from hello_device.core.agent_profile import AgentProfile
    from hello_device.platform.client import PlatformClient

from hello_device.doctor.unitfile import SERVICE_USER, UNIT_NAME, UnitInfo, read_unit
from hello_device.doctor.world import Account, Accounts, Probes

T = TypeVar("T")

STOP_HINT = (
    "the service is running and may hold it: stop it first (sudo systemctl stop "
    "hello-device), run the doctor again, then start it (sudo systemctl start hello-device)"
)
AS_SERVICE_HINT = (
    "to see exactly what the service sees, run the doctor as its user: "
    "sudo -u hello-device hello-device doctor"
)


# --------------------------------------------------------------------------- context


@dataclass
class AudioProbe:
    """What opening the sound card like the daemon does produced."""

    problem: str | None = None
    mic: str = ""
    speaker: str = ""
    silent: bool | None = None


class Context:
    """What the checks share: the settings, the probes, and results earlier checks left."""

    def __init__(
        self,
        config_path: str,
        settings: Settings | None,
        probes: Probes,
        *,
        config_problems: Sequence[str] = (),
        load_warnings: Sequence[str] = (),
        skip_network: bool = False,
        skip_audio: bool = False,
    ) -> None:
        self.config_path = config_path
        self.settings = settings
        self.probes = probes
        self.config_problems = list(config_problems)
        self.load_warnings = list(load_warnings)
        self.skip_network = skip_network
        self.skip_audio = skip_audio
        self.resolved: dict[str, bool] = {}
        """Host -> whether it resolved (filled by the DNS check)."""
        self.reachable: bool | None = None
        """Whether every platform endpoint accepted a connection (None: not tried)."""
        self.profile: AgentProfile | None = None
        """The agent profile the platform returned (None: not fetched)."""
        self.client: PlatformClient | None = None
        self._network_deadline: float | None = None
        self._unit: UnitInfo | bool | None = False  # False: not read yet
        self._service: dict[str, str] | None = None
        self._audio: AudioProbe | None = None

    # -- shared lazily computed facts

    @property
    def unit(self) -> UnitInfo | None:
        """The installed unit file, read once."""
        if self._unit is False:
            self._unit = read_unit(self.probes.root)
        return self._unit if isinstance(self._unit, UnitInfo) else None

    def service_state(self) -> dict[str, str]:
        """``systemctl show`` properties of the unit (empty when systemd cannot tell)."""
        if self._service is None:
            text = self.probes.run(
                [
                    "systemctl",
                    "show",
                    UNIT_NAME,
                    "--property=ActiveState,SubState,Result,NeedDaemonReload,LoadState",
                ],
                self.probes.limits.command_s,
            )
            props: dict[str, str] = {}
            for line in (text or "").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    props[key.strip()] = value.strip()
            self._service = props
        return self._service

    def service_running(self) -> bool:
        return self.service_state().get("ActiveState") in ("active", "activating", "reloading")

    def service_user_name(self) -> str:
        unit = self.unit
        return unit.user if unit is not None and unit.user else SERVICE_USER

    def service_account(self) -> Account | None:
        """The service user with every group it runs with (``SupplementaryGroups`` too)."""
        account = self.probes.accounts.user(self.service_user_name())
        if account is None:
            return None
        unit = self.unit
        extra = {
            g.gid
            for name in (unit.supplementary_groups if unit is not None else ())
            if (g := self.probes.accounts.group(name)) is not None
        }
        return dataclasses.replace(account, gids=account.gids | extra)

    def network_deadline(self) -> float:
        """The monotonic time by which every network check must be done."""
        if self._network_deadline is None:
            self._network_deadline = time.monotonic() + self.probes.limits.network_s
        return self._network_deadline

    def network_left(self) -> float:
        return self.network_deadline() - time.monotonic()

    def endpoints(self) -> list[tuple[str, int, bool]]:
        """``(host, port, tls)`` of the REST API and, if it differs, the WebSocket."""
        assert self.settings is not None
        platform = self.settings.platform
        out: list[tuple[str, int, bool]] = []
        for url in (platform.api_base_url, platform.ws_url):
            if not url:
                continue
            parts = urlsplit(url)
            tls = parts.scheme in ("https", "wss")
            host = parts.hostname or ""
            try:
                port = parts.port or (443 if tls else 80)
            except ValueError:
                port = 443 if tls else 80
            if host and (host, port, tls) not in out:
                out.append((host, port, tls))
        return out


# --------------------------------------------------------------------------- helpers


def call_with_timeout(fn: Callable[[], T], timeout: float, name: str) -> T:
    """Run a blocking call in a daemon thread; TimeoutError if it takes longer."""
    return call_in_daemon_thread(fn, timeout, name=f"doctor-{name}")


def file_mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def file_owner(st: os.stat_result, accounts: Accounts) -> str:
    return f"{accounts.user_name(st.st_uid)}:{accounts.group_name(st.st_gid)}"


def may_access(account: Account, st: os.stat_result, want: int) -> bool:
    """Whether ``account`` has the ``want`` permission bits (4 read, 2 write, 1 search)."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        shift = 6
    elif st.st_gid in account.gids:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & want == want


def service_can_read(account: Account, path: Path) -> tuple[bool, str]:
    """Whether the service user can read ``path`` (and search its directory); and why not."""
    try:
        st = path.stat()
        parent = path.parent.stat()
    except OSError as exc:
        return False, exc.strerror or str(exc)
    if not may_access(account, parent, 1):
        return False, f"it cannot enter {path.parent} (mode {file_mode(parent)})"
    if not may_access(account, st, 4):
        return False, f"it cannot read {path} (mode {file_mode(st)})"
    return True, ""


def writable_dir(directory: Path) -> str | None:
    """None if a file can be created (and removed) in ``directory``, else why not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".hello-device-doctor-", dir=directory)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def current_user(accounts: Accounts) -> str:
    return accounts.user_name(os.geteuid())


def split_fix(message: str) -> tuple[str, str]:
    """``"detail; fix: hint"`` (the GPIO module's style) -> (detail, hint)."""
    detail, sep, hint = message.partition("; fix: ")
    return (detail, hint) if sep else (message, "")


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def with_stop_hint(ctx: Context, fix: str) -> str:
    return f"{fix}; {STOP_HINT}" if ctx.service_running() else fix
