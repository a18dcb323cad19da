"""``hello-device doctor``: every check a field technician needs, in one go.

One line per check, ``PASS|WARN|FAIL|SKIP  <check>: <detail>``, with an indented
``fix:`` line under every WARN and FAIL saying what to do about it::

    PASS  configuration: /etc/hello-device/config.toml is valid (agent agent_123, ...)
    FAIL  HTTPS: cannot reach api.elevenlabs.io:443: timed out after 3 s
          fix: a firewall may block outgoing port 443; ...

Exit code: 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
configuration file cannot be loaded at all (its problems are printed first; the checks
that need no configuration still run). SKIP lines (``--skip-network``, ``--skip-audio``,
no pins configured, a check whose prerequisite failed) never change the exit code.

The checks, in order: configuration, API key (where it comes from, the key file's mode
and owner; the key itself is never printed), clock (TLS needs it), state directory,
DNS, HTTPS (TCP and TLS handshake), agent configuration (fetched with
:class:`~hello_device.platform.client.PlatformClient`; 401 says the platform refused the
key), signed URL (private agents), microphone and loudspeaker (opened exactly like the
daemon opens them, through :class:`~hello_device.audio.backends.pyaudio.PyAudioBackend`
and :mod:`hello_device.audio.devices`; for the ``file`` backend: the input file is
readable, the output directory writable), GPIO (the pin factory loads, every configured
pin can be claimed and released), systemd unit (installed, enabled, its ``ExecStart``
exists) and service user (exists, in the ``audio`` and ``gpio`` groups).

Every check is a small function taking a :class:`Context` and returning a
:class:`CheckResult`. Everything that touches the outside world (name resolution, TCP/TLS,
HTTP, PortAudio, the pin factory, ``systemctl``/``timedatectl``, the user database, the
clock, the file system root for unit files) is a field of :class:`Probes`, so tests hand
in local or fake ones. The whole run is bounded: the network checks share one budget
(:attr:`Limits.network_s`), every blocking call has its own timeout, and the sound card
gets :attr:`Limits.audio_s` to deliver its first frame; about 15 s at worst (see
:class:`Limits`).

Run it as the service user (``sudo -u hello-device hello-device doctor``) to see what
the service sees, with the service stopped: while it runs it holds the sound card and
the pins, and the audio and GPIO checks then say so in their fix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import functools
import grp
import ipaddress
import logging
import os
import pwd
import shlex
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar
from urllib.parse import parse_qsl, urlsplit

from hello_device import __version__
from hello_device.aio import call_in_daemon_thread
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    ConfigError,
    GpioError,
    PlatformError,
    PlatformUnavailable,
)
from hello_device.logs import REDACTOR
from hello_device.settings import (
    API_KEY_ENV,
    DEFAULT_CONFIG_PATH,
    Settings,
    load_settings,
)

if TYPE_CHECKING:
    from hello_device.core.agent_profile import AgentProfile
    from hello_device.platform.client import PlatformClient
    from hello_device.platform.http import (
        HttpResponse,
        Transport,
    )

__all__ = [
    "Account",
    "Accounts",
    "CheckResult",
    "Context",
    "Group",
    "Limits",
    "Probes",
    "Status",
    "SystemAccounts",
    "check_agent_config",
    "check_api_key",
    "check_clock",
    "check_configuration",
    "check_dns",
    "check_gpio",
    "check_loudspeaker",
    "check_microphone",
    "check_reach",
    "check_service_user",
    "check_signed_url",
    "check_state_dir",
    "check_unit",
    "main",
    "register",
    "resolve_host",
    "run_command",
    "run_doctor",
    "tls_connect",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

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
CLOCK_MIN_YEAR = 2024
CLOCK_MAX_YEAR = 2099
CLOCK_SLACK_S = 600.0
"""How far the clock may be behind a reference time (install, cache) before it counts."""
SILENCE_PROBE_S = 0.3
"""How long the microphone is listened to for the digital-silence check."""

_STOP_HINT = (
    "the service is running and may hold it: stop it first (sudo systemctl stop "
    "hello-device), run the doctor again, then start it (sudo systemctl start hello-device)"
)
_AS_SERVICE_HINT = (
    "to see exactly what the service sees, run the doctor as its user: "
    "sudo -u hello-device hello-device doctor"
)


# --------------------------------------------------------------------------- results


class Status(enum.Enum):
    """Outcome of one check. Only FAIL changes the exit code."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report, the notes below it, and a fix for WARN and FAIL."""

    check: str
    status: Status
    detail: str
    fix: str = ""
    notes: tuple[str, ...] = ()
    """Extra lines printed under the result (e.g. every configuration problem)."""

    def lines(self) -> list[str]:
        """The printed form: ``STATUS  check: detail``, notes, then ``fix: ...``."""
        out = [f"{self.status.value}  {self.check}: {self.detail}"]
        out += [f"      - {note}" for note in self.notes]
        if self.fix and self.status in (Status.WARN, Status.FAIL):
            out.append(f"      fix: {self.fix}")
        return out


def _pass(check: str, detail: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.PASS, detail, notes=tuple(notes))


def _warn(check: str, detail: str, fix: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.WARN, detail, fix, tuple(notes))


def _fail(check: str, detail: str, fix: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.FAIL, detail, fix, tuple(notes))


def _skip(check: str, detail: str) -> CheckResult:
    return CheckResult(check, Status.SKIP, detail)


# --------------------------------------------------------------------------- the world

Resolver = Callable[[str, int], list[str]]
"""Host name and port -> the addresses it resolves to (blocking; the doctor bounds it)."""

Connector = Callable[[str, int, bool, float], str]
"""``(host, port, tls, timeout)`` -> a short description of the connection; raises
:class:`OSError` (``ssl.SSLError`` and ``TimeoutError`` included) when it fails."""

CommandRunner = Callable[[Sequence[str], float], str | None]
"""Runs a command with a timeout; its standard output, or None if it failed or is missing."""


@dataclass(frozen=True)
class Account:
    """A user as the permission checks see it."""

    name: str
    uid: int
    gid: int
    gids: frozenset[int]
    """Every group id the user has (primary and supplementary)."""


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


class Accounts(Protocol):
    """The user database (``/etc/passwd``, ``/etc/group``); tests pass a fake one."""

    def user(self, name: str) -> Account | None: ...

    def group(self, name: str) -> Group | None: ...

    def user_name(self, uid: int) -> str: ...

    def group_name(self, gid: int) -> str: ...


class SystemAccounts:
    """:class:`Accounts` from :mod:`pwd` and :mod:`grp`."""

    def user(self, name: str) -> Account | None:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
        return Account(name, pw.pw_uid, pw.pw_gid, frozenset(gids))

    def group(self, name: str) -> Group | None:
        try:
            g = grp.getgrnam(name)
        except KeyError:
            return None
        return Group(g.gr_name, g.gr_gid, tuple(g.gr_mem))

    def user_name(self, uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def group_name(self, gid: int) -> str:
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, like the daemon uses)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def tls_connect(
    host: str,
    port: int,
    tls: bool,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> str:
    """Open a TCP connection and, for ``tls``, complete a verified TLS handshake.

    ``context`` defaults to the system's trust store with hostname checking (what the
    daemon's REST client and WebSocket use). Returns e.g. ``"104.18.1.2, TLSv1.3,
    certificate verified, 48 ms"``.
    """
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        peer = str(sock.getpeername()[0])
        if not tls:
            return f"{peer}, TCP connected in {(time.monotonic() - started) * 1000:.0f} ms"
        ctx = context if context is not None else ssl.create_default_context()
        sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
        with ctx.wrap_socket(sock, server_hostname=host) as tls_sock:
            version = tls_sock.version() or "TLS"
        took = (time.monotonic() - started) * 1000
        return f"{peer}, {version}, certificate verified, {took:.0f} ms"


def run_command(argv: Sequence[str], timeout: float) -> str | None:
    """Standard output of a successful command; None if it is missing, fails or hangs."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def installed_at() -> float | None:
    """When this copy of hello-device was installed (its files' modification time)."""
    import hello_device

    try:
        return Path(hello_device.__file__).stat().st_mtime
    except (OSError, TypeError):
        return None


def _default_transport() -> Transport:
    from hello_device.platform.http import UrllibTransport

    return UrllibTransport()


@dataclass(frozen=True)
class Limits:
    """Time limits, in seconds.

    With the defaults a run takes about 15 s at worst: 7 s of network checks, 4 s for
    the sound card (plus PortAudio's own 3 s close timeout if the driver hangs), and three
    ``systemctl``/``timedatectl`` calls. A healthy device needs a second or two.
    """

    dns_s: float = 2.0
    """Longest wait for one name resolution."""
    connect_s: float = 3.0
    """Longest TCP connect plus TLS handshake (and connect timeout of the REST calls)."""
    network_s: float = 7.0
    """All network checks together (DNS, HTTPS, agent configuration, signed URL)."""
    audio_s: float = 4.0
    """Opening the sound card until the microphone delivers its first frame."""
    command_s: float = 1.5
    """One ``systemctl``/``timedatectl`` call."""


@dataclass
class Probes:
    """Everything the checks touch outside this process; tests replace the parts they need."""

    resolver: Resolver = resolve_host
    connector: Connector = tls_connect
    transport_factory: Callable[[], Transport] = _default_transport
    """Builds the HTTP transport of the REST client (the real one by default)."""
    pyaudio_factory: Callable[[], Any] | None = None
    """Builds the PortAudio host (``pyaudio.PyAudio`` by default)."""
    pin_factory: Any = None
    """A gpiozero pin factory to use instead of ``gpio.pin_factory`` (tests)."""
    run: CommandRunner = run_command
    accounts: Accounts = field(default_factory=SystemAccounts)
    clock: Callable[[], float] = time.time
    installed_at: Callable[[], float | None] = installed_at
    root: Path = Path("/")
    """Where unit, sysusers and tmpfiles files are looked up (``/`` on a device)."""
    dev_dir: Path = Path("/dev")
    limits: Limits = field(default_factory=Limits)


# --------------------------------------------------------------------------- unit file


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


# --------------------------------------------------------------------------- context


@dataclass
class _AudioProbe:
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
        self._audio: _AudioProbe | None = None

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


def _call_with_timeout(fn: Callable[[], T], timeout: float, name: str) -> T:
    """Run a blocking call in a daemon thread; TimeoutError if it takes longer."""
    return call_in_daemon_thread(fn, timeout, name=f"doctor-{name}")


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def _owner(st: os.stat_result, accounts: Accounts) -> str:
    return f"{accounts.user_name(st.st_uid)}:{accounts.group_name(st.st_gid)}"


def _can(account: Account, st: os.stat_result, want: int) -> bool:
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


def _service_can_read(account: Account, path: Path) -> tuple[bool, str]:
    """Whether the service user can read ``path`` (and search its directory); and why not."""
    try:
        st = path.stat()
        parent = path.parent.stat()
    except OSError as exc:
        return False, exc.strerror or str(exc)
    if not _can(account, parent, 1):
        return False, f"it cannot enter {path.parent} (mode {_mode(parent)})"
    if not _can(account, st, 4):
        return False, f"it cannot read {path} (mode {_mode(st)})"
    return True, ""


def _writable_dir(directory: Path) -> str | None:
    """None if a file can be created (and removed) in ``directory``, else why not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".hello-device-doctor-", dir=directory)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def _current_user(accounts: Accounts) -> str:
    return accounts.user_name(os.geteuid())


def _format_time(epoch: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.0f} (epoch seconds)"


def _split_fix(message: str) -> tuple[str, str]:
    """``"detail; fix: hint"`` (the GPIO module's style) -> (detail, hint)."""
    detail, sep, hint = message.partition("; fix: ")
    return (detail, hint) if sep else (message, "")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _with_stop_hint(ctx: Context, fix: str) -> str:
    return f"{fix}; {_STOP_HINT}" if ctx.service_running() else fix


# --------------------------------------------------------------------------- checks


def check_configuration(ctx: Context) -> CheckResult:
    """The configuration file loads, with every problem listed; the service can read it."""
    name = "configuration"
    path = ctx.config_path
    settings = ctx.settings
    if settings is None:
        problems = ctx.config_problems or [f"{path}: cannot be loaded"]
        prefix = f"{path}: "
        notes = [p.removeprefix(prefix) for p in problems]
        count = len(problems)
        detail = f"{path} has {count} problem{'s' if count != 1 else ''}"
        text = " ".join(problems).lower()
        if "permission denied" in text:
            fix = f"run the doctor as root (sudo hello-device doctor); {_AS_SERVICE_HINT}"
        elif "no such file" in text:
            fix = (
                f"copy config.example.toml to {path} (sudo install -m 640 -o root -g "
                f"hello-device config.example.toml {path}) and set platform.agent_id"
            )
        else:
            fix = (
                f"edit {path} (every key is explained in config.example.toml), then check "
                f"it with: hello-device check-config {path}"
            )
        return _fail(name, detail, fix, notes)
    notes = [w for w in ctx.load_warnings if "api_key_file" not in w]
    detail = (
        f"{path} is valid (agent {settings.platform.agent_id}, audio {settings.audio.backend}, "
        f"start {settings.conversation.start})"
    )
    account = ctx.service_account()
    if account is not None and os.geteuid() != account.uid:
        ok, why = _service_can_read(account, Path(path))
        if not ok:
            return _warn(
                name,
                f"{detail}, but the service user {account.name} cannot read it: {why}",
                f"sudo chown root:{account.name} {path} && sudo chmod 640 {path} "
                f"(and the directory: sudo chown root:{account.name} {Path(path).parent} && "
                f"sudo chmod 750 {Path(path).parent})",
                notes,
            )
    if notes:
        return _warn(name, detail, "see the notes above", notes)
    return _pass(name, detail)


def check_api_key(ctx: Context) -> CheckResult:
    """Where the key comes from, and that only the service can read it. Never the key."""
    name = "API key"
    assert ctx.settings is not None
    settings = ctx.settings
    source = settings.api_key_source
    accounts = ctx.probes.accounts
    account = ctx.service_account()
    if source == "none" or not settings.platform.api_key:
        return _warn(
            name,
            "not set: only a public agent can be reached without one",
            "put the key alone in a file (sudo install -m 600 -o hello-device -g hello-device "
            "/dev/null /etc/hello-device/api-key, then write it with sudoedit) and set "
            'platform.api_key_file = "/etc/hello-device/api-key"',
        )
    if source == "environment":
        return _pass(
            name,
            f"set, from the environment variable {API_KEY_ENV} of this shell (the service "
            "sees it only if its unit sets it too)",
        )
    if source == "file":
        path = Path(settings.source)
        where = f"set in {path} itself"
    else:
        key_file = settings.platform.api_key_file or ""
        path = Path(key_file)
        if not path.is_absolute():
            path = Path(settings.source).parent / path
        where = f"from the key file {path}"
    try:
        st = path.stat()
    except OSError as exc:
        return _fail(name, f"{where}, which cannot be examined: {exc.strerror}", _AS_SERVICE_HINT)
    mode, owner = _mode(st), _owner(st, accounts)
    facts = f"mode {mode}, owner {owner}"
    service_gid = account.gid if account is not None else None
    if st.st_mode & stat.S_IROTH:
        return _fail(
            name,
            f"{where}, which everyone on this machine can read ({facts})",
            f"sudo chmod {'640' if source == 'file' else '600'} {path}",
        )
    if source == "key file" and st.st_mode & stat.S_IRGRP and st.st_gid != service_gid:
        return _warn(
            name,
            f"{where}, which group {accounts.group_name(st.st_gid)} can read ({facts})",
            f"sudo chmod 600 {path}",
        )
    if source == "key file" and account is not None and account.uid != 0:
        ok, why = _service_can_read(account, path)
        if not ok:
            return _fail(
                name,
                f"{where} ({facts}), but the service user {account.name} cannot read it: {why}",
                f"sudo chown {account.name}:{account.name} {path} && sudo chmod 600 {path}",
            )
    if source == "file":
        return _pass(name, f"{where} ({facts}); a separate key file (mode 0600) is preferred")
    return _pass(name, f"set, {where} ({facts})")


def check_clock(ctx: Context) -> CheckResult:
    """The clock is plausible: TLS certificates and signed URLs depend on it."""
    name = "clock"
    probes = ctx.probes
    now = probes.clock()
    shown = _format_time(now)
    fix = (
        "the Pi has no battery-backed clock and sets it from the network: check "
        "timedatectl status; enable time sync with sudo timedatectl set-ntp true "
        "(systemd-timesyncd); outgoing UDP port 123 must be open"
    )
    year = time.gmtime(now).tm_year if now > 0 else 1970
    if year < CLOCK_MIN_YEAR or year > CLOCK_MAX_YEAR:
        return _fail(
            name,
            f"the clock says {shown}: that cannot be right, and TLS certificates will look invalid",
            fix,
        )
    refs: list[tuple[str, float]] = []
    built = probes.installed_at()
    if built is not None:
        refs.append(("this copy of hello-device was installed", built))
    if ctx.settings is not None:
        from hello_device.platform.cache import AgentConfigCache

        cached = AgentConfigCache(ctx.settings.state.dir, clock=probes.clock).load(
            ctx.settings.platform.agent_id, quarantine=False
        )
        if cached is not None:
            refs.append(("the cached agent configuration was fetched", cached.fetched_at))
    for what, when in refs:
        if now < when - CLOCK_SLACK_S:
            return _fail(
                name,
                f"the clock says {shown}, before {what} ({_format_time(when)}); TLS "
                "certificates may look invalid",
                fix,
            )
    synced = probes.run(
        ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
        probes.limits.command_s,
    )
    answer = (synced or "").strip().lower()
    if answer == "no":
        return _warn(
            name,
            f"{shown}, but not synchronised with a time server (yet)",
            fix,
        )
    note = "synchronised" if answer == "yes" else "synchronisation unknown"
    return _pass(name, f"{shown} ({note})")


def check_state_dir(ctx: Context) -> CheckResult:
    """The state directory (cached agent configuration) is writable."""
    name = "state directory"
    assert ctx.settings is not None
    directory = Path(ctx.settings.state.dir)
    user = _current_user(ctx.probes.accounts)
    fix_create = f"sudo systemd-tmpfiles --create /{TMPFILES_FILE} (or start the service once)"
    sandbox = _sandbox_warning(ctx, directory)
    if directory.exists() and not directory.is_dir():
        return _fail(
            name, f"{directory} exists but is not a directory", "set state.dir to a directory"
        )
    if not directory.exists():
        parent = next((p for p in directory.parents if p.exists()), Path("/"))
        if not parent.is_dir():
            return _fail(
                name,
                f"{directory} cannot be created: {parent} is not a directory",
                "set state.dir to a directory, e.g. /var/lib/hello-device",
            )
        return _warn(name, f"{directory} does not exist yet", fix_create)
    why = _writable_dir(directory)
    if why is not None:
        return _fail(
            name,
            f"{directory} is not writable by {user} ({why})",
            f"{fix_create}; {_AS_SERVICE_HINT}",
        )
    from hello_device.platform.cache import AgentConfigCache
    from hello_device.platform.provider import format_age

    cached = AgentConfigCache(directory, clock=ctx.probes.clock).load(
        ctx.settings.platform.agent_id, quarantine=False
    )
    cache = (
        f"cached agent configuration from {_format_time(cached.fetched_at)}, "
        f"age {format_age(cached.age_s)}"
        if cached is not None
        else "no cached agent configuration yet"
    )
    detail = f"{directory} is writable by {user} ({cache})"
    if sandbox:
        return _warn(name, f"{detail}, but {sandbox}", 'keep state.dir = "/var/lib/hello-device"')
    return _pass(name, detail)


def _sandbox_warning(ctx: Context, directory: Path) -> str:
    """Why the unit's ``ProtectSystem=strict`` would stop the service writing ``directory``."""
    unit = ctx.unit
    if unit is None or unit.protect_system != "strict":
        return ""
    allowed = [Path("/var/lib") / d for d in unit.state_directories]
    allowed += [Path(p.lstrip("-+")) for p in unit.read_write_paths]
    target = directory.resolve() if directory.exists() else directory
    if any(target == a or a in target.parents for a in allowed):
        return ""
    shown = ", ".join(str(a) for a in allowed) or "nothing"
    return f"the unit (ProtectSystem=strict) lets the service write only {shown}"


def check_dns(ctx: Context) -> CheckResult:
    """The platform's host names resolve."""
    name = "DNS"
    if ctx.skip_network:
        return _skip(name, "--skip-network")
    limits = ctx.probes.limits
    parts: list[str] = []
    for host, port, _tls in ctx.endpoints():
        if _is_address(host):
            ctx.resolved[host] = True
            parts.append(f"{host} is an address (no lookup needed)")
            continue
        limit = min(limits.dns_s, ctx.network_left())
        started = time.monotonic()
        try:
            addresses = _call_with_timeout(
                functools.partial(ctx.probes.resolver, host, port), limit, "dns"
            )
        except TimeoutError:
            reason = f"no answer from the DNS server within {limit:.1f} s"
        except OSError as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        else:
            if addresses:
                ctx.resolved[host] = True
                ms = (time.monotonic() - started) * 1000
                shown = ", ".join(addresses[:3]) + (" ..." if len(addresses) > 3 else "")
                parts.append(f"{host} -> {shown} ({ms:.0f} ms)")
                continue
            reason = "no addresses"
        ctx.resolved[host] = False
        return _fail(
            name,
            f"{host} does not resolve: {reason}",
            "check the network connection (ip addr; nmcli device status) and the DNS server "
            f"(cat /etc/resolv.conf); try: getent hosts {host}; is platform.api_base_url right?",
        )
    return _pass(name, "; ".join(parts) or "no host to look up")


def check_reach(ctx: Context) -> CheckResult:
    """A TCP connection (and TLS handshake for https/wss) to every platform endpoint."""
    assert ctx.settings is not None
    endpoints = ctx.endpoints()
    tls_all = all(tls for _h, _p, tls in endpoints)
    name = "HTTPS" if tls_all else "HTTP"
    if ctx.skip_network:
        return _skip(name, "--skip-network")
    limits = ctx.probes.limits
    parts: list[str] = []
    for host, port, tls in endpoints:
        if not ctx.resolved.get(host, False):
            ctx.reachable = False
            return _skip(name, f"not tried: {host} does not resolve (see DNS)")
        limit = max(
            0.1, min(limits.connect_s, ctx.settings.platform.connect_timeout_s, ctx.network_left())
        )
        try:
            how = _call_with_timeout(
                functools.partial(ctx.probes.connector, host, port, tls, limit),
                limit + 1.0,
                "connect",
            )
        except OSError as exc:
            from hello_device.errors import describe_os_error

            ctx.reachable = False
            reason = describe_os_error(exc)
            if isinstance(exc, TimeoutError):
                reason = f"no connection within {limit:g} s"
            if isinstance(exc, ssl.SSLError):
                fix = (
                    "check the clock (see above); a network that intercepts TLS (a proxy or "
                    "captive portal) also causes this: try another network"
                )
            elif isinstance(exc, ConnectionRefusedError):
                fix = f"nothing listens on {host}:{port}: is platform.api_base_url right?"
            else:
                fix = (
                    f"a firewall may block outgoing port {port}, or the network has no "
                    "internet access (captive portal?); is platform.api_base_url right?"
                )
            return _fail(name, f"cannot reach {host}:{port}: {reason}", fix)
        parts.append(f"{host}:{port} ({how})")
    ctx.reachable = True
    return _pass(name, "; ".join(parts))


class _DeadlineTransport:
    """A transport whose timeouts never reach past the doctor's network deadline."""

    def __init__(self, inner: Transport, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> HttpResponse:
        left = self._deadline - time.monotonic()
        if left < 0.1:
            raise TimeoutError("no time left for another attempt")
        return self._inner.request(
            method, url, headers, min(connect_timeout, left), min(read_timeout, left)
        )


def _client(ctx: Context) -> PlatformClient:
    """The REST client, bounded by the network deadline (made once, shared)."""
    if ctx.client is None:
        from hello_device.platform.client import PlatformClient

        assert ctx.settings is not None
        platform = ctx.settings.platform
        limits = ctx.probes.limits
        capped = dataclasses.replace(
            platform,
            connect_timeout_s=min(platform.connect_timeout_s, limits.connect_s),
            read_timeout_s=min(platform.read_timeout_s, max(1.0, limits.network_s / 2)),
        )
        deadline = ctx.network_deadline()

        async def bounded_sleep(seconds: float) -> None:
            await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

        ctx.client = PlatformClient(
            capped,
            _DeadlineTransport(ctx.probes.transport_factory(), deadline),
            sleep=bounded_sleep,
            max_attempts=2,
            base_backoff_s=0.2,
            max_backoff_s=1.0,
            max_retry_after_s=2.0,
        )
    return ctx.client


def _platform_fix(ctx: Context, exc: PlatformError) -> tuple[str, str]:
    """A one-line reason and a fix for a platform failure."""
    assert ctx.settings is not None
    settings = ctx.settings
    message = str(exc)
    if isinstance(exc, AuthError):
        detail = message.split("; check platform.", 1)[0]
        if settings.platform.api_key:
            where = (
                settings.platform.api_key_file
                if settings.api_key_source == "key file"
                else (API_KEY_ENV if settings.api_key_source == "environment" else "api_key")
            )
            fix = (
                f"copy the key again from the platform's API keys page into {where}; check "
                "that the key may use the agents API and that platform.auth_header suits "
                "the server"
            )
        else:
            fix = "the agent is private: set an API key (platform.api_key_file)"
        return detail, fix
    if isinstance(exc, AgentNotFoundError):
        return message, (
            f'check platform.agent_id = "{settings.platform.agent_id}" in {settings.source} '
            "(copy it from the agent's settings) and platform.api_base_url (EU residency "
            "uses its own URL)"
        )
    if isinstance(exc, PlatformUnavailable):
        return message, "the platform did not answer in time or is down; try again in a minute"
    return message, "check platform.api_base_url (it must be the management API's base URL)"


def check_agent_config(ctx: Context) -> CheckResult:
    """The agent configuration can be fetched (few attempts, short timeouts)."""
    name = "agent configuration"
    if ctx.skip_network:
        return _skip(name, "--skip-network")
    if ctx.reachable is not True:
        return _skip(name, "not tried: the platform cannot be reached (see above)")
    if ctx.network_left() < 0.2:
        return _skip(name, "not tried: the network checks used up their time")
    from hello_device.core.agent_profile import map_agent_config

    client = _client(ctx)
    started = time.monotonic()
    try:
        raw = asyncio.run(client.fetch_agent_config())
    except PlatformError as exc:
        detail, fix = _platform_fix(ctx, exc)
        return _fail(name, detail, fix)
    except TimeoutError:
        return _fail(
            name, "no answer in time", "the platform is slow or the network drops; try again"
        )
    profile = map_agent_config(raw)
    ctx.profile = profile
    ms = (time.monotonic() - started) * 1000
    label = f'"{profile.name}"' if profile.name else (profile.agent_id or "the agent")
    return _pass(
        name,
        f"{label} fetched from {client.host} in {ms:.0f} ms "
        f"({'private' if profile.private else 'public'}, microphone "
        f"{profile.user_input_audio_format}, voice {profile.agent_output_audio_format})",
    )


def check_signed_url(ctx: Context) -> CheckResult:
    """A signed conversation URL can be obtained when the agent needs one."""
    name = "signed URL"
    if ctx.skip_network:
        return _skip(name, "--skip-network")
    assert ctx.settings is not None
    mode = ctx.settings.platform.signed_url
    profile = ctx.profile
    if profile is None:
        return _skip(name, "not tried: the agent configuration was not fetched")
    if profile.private and mode == "never":
        return _fail(
            name,
            'the agent is private but platform.signed_url = "never"',
            'set platform.signed_url = "auto" (or remove the line)',
        )
    if not (mode == "always" or (mode == "auto" and profile.private)):
        return _skip(name, f'not needed (public agent, platform.signed_url = "{mode}")')
    if ctx.network_left() < 0.2:
        return _skip(name, "not tried: the network checks used up their time")
    from hello_device.core.urls import safe_url

    client = _client(ctx)
    try:
        url = asyncio.run(client.get_signed_url())
    except PlatformError as exc:
        detail, fix = _platform_fix(ctx, exc)
        return _fail(name, detail, fix)
    except TimeoutError:
        return _fail(name, "no answer in time", "the platform is slow; try again")
    for key, value in parse_qsl(urlsplit(url).query):
        if key != "agent_id":
            REDACTOR.add_transient(value)  # the signature: never logged by anyone
    return _pass(name, f"obtained ({safe_url(url)}, token hidden)")


# -- audio


def _probe_audio(ctx: Context) -> _AudioProbe:
    """Open the sound card exactly like the daemon (once), then close it again."""
    if ctx._audio is None:
        assert ctx.settings is not None
        try:
            ctx._audio = _run_audio_probe(ctx)
        except Exception as exc:  # PortAudio missing or an unexpected failure
            log.debug("audio probe failed", exc_info=True)
            ctx._audio = _AudioProbe(problem=f"{type(exc).__name__}: {exc}")
    return ctx._audio


def _run_audio_probe(ctx: Context) -> _AudioProbe:
    from hello_device.audio.backends.base import Frame
    from hello_device.audio.backends.pyaudio import PyAudioBackend
    from hello_device.audio.player import Player

    assert ctx.settings is not None
    audio = ctx.settings.audio
    limit = ctx.probes.limits.audio_s
    kwargs: dict[str, Any] = {}
    if ctx.probes.pyaudio_factory is not None:
        kwargs["pyaudio_factory"] = ctx.probes.pyaudio_factory
    backend = PyAudioBackend(audio, Player(16000, volume=0.0), **kwargs)
    result = _AudioProbe()

    async def go() -> None:
        problems: list[str] = []
        failed = asyncio.Event()
        heard = False
        listening = False

        def on_frame(frame: Frame) -> None:
            nonlocal heard
            if listening and any(frame.pcm):
                heard = True

        def on_status(problem: str | None) -> None:
            if problem:
                problems.append(problem)
                failed.set()

        task = asyncio.create_task(backend.run(on_frame, on_status), name="doctor-audio")
        ready = asyncio.ensure_future(backend.ready.wait())
        broken = asyncio.ensure_future(failed.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, broken}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
            if failed.is_set():
                result.problem = problems[0]
                return
            if not done:
                result.problem = (
                    f"the sound card did not deliver audio within {limit:g} s "
                    "(PortAudio is stuck or the device never starts)"
                )
                return
            streams = backend.streams
            if streams is not None:
                resampled = (
                    " (resampled to 16 kHz)" if streams.in_rate != 16000 else " (no resampling)"
                )
                n = streams.in_channels
                channels = (
                    "mono"
                    if n == 1
                    else f"{n} channels "
                    + ("mixed" if streams.channel == "mix" else f"(channel {streams.channel} used)")
                )
                result.mic = f"{streams.mic.label} at {streams.in_rate} Hz, {channels}{resampled}"
                result.speaker = (
                    f"{streams.speaker.label} at {streams.out_rate} Hz, "
                    f"{'mono' if streams.out_channels == 1 else 'stereo (mono duplicated)'}"
                )
            listening = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(failed.wait(), SILENCE_PROBE_S)
            if failed.is_set():
                result.problem = problems[0]
                return
            result.silent = not heard
        finally:
            for waiter in (ready, broken):
                waiter.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(go())
    return result


def _audio_fix(problem: str, ctx: Context) -> str:
    text = problem.lower()
    if "found no" in text:
        fix = (
            "no sound card is visible: check arecord -l and aplay -l; a HAT needs its "
            "dtoverlay= line in /boot/firmware/config.txt and a reboot, a USB device a replug "
            "(see hardware/sound-cards.md)"
        )
    elif "matches" in text or "no default" in text or "no device #" in text:
        fix = (
            "list the sound devices with: hello-device devices; set audio.input_device / "
            'audio.output_device to part of a name shown there (e.g. "USB" or "seeed")'
        )
    elif "accepts none of the sample rates" in text:
        fix = (
            "the card takes none of the usual rates: pick its plughw/default device in "
            "hello-device devices, or another card"
        )
    elif "unavailable" in text or "busy" in text:
        fix = (
            "another program holds the sound card (a desktop sound server, or the running "
            "service): see hardware/sound-cards.md"
        )
    elif "portaudio failed" in text or "pyaudio" in text:
        fix = "install PortAudio: sudo apt install portaudio19-dev, then reinstall hello-device"
    else:
        fix = "check the card with arecord -l, aplay -l and hello-device audio-test"
    return _with_stop_hint(ctx, fix)


def _is_speaker_problem(problem: str) -> bool:
    text = problem.lower()
    if "microphone" in text or "input device" in text or "input channels" in text:
        return False
    return "loudspeaker" in text or "output device" in text or "output channels" in text


def check_microphone(ctx: Context) -> CheckResult:
    """The microphone opens at a usable rate and delivers audio (file: the input file reads)."""
    name = "microphone"
    if ctx.skip_audio:
        return _skip(name, "--skip-audio")
    assert ctx.settings is not None
    audio = ctx.settings.audio
    if audio.backend == "file":
        from hello_device.audio.wav import read_wav

        path = audio.input_file or ""
        try:
            samples, rate = read_wav(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return _fail(
                name,
                f"the input file {path} cannot be read: {reason}",
                "set audio.input_file to a WAV file the service user can read",
            )
        frames, channels = samples.shape[0], samples.shape[1] if samples.ndim > 1 else 1
        return _pass(
            name,
            f"file backend: {path} reads ({frames / rate:.1f} s, {rate} Hz, "
            f"{channels} channel{'s' if channels != 1 else ''})",
        )
    probe = _probe_audio(ctx)
    if probe.problem is not None and not _is_speaker_problem(probe.problem):
        return _fail(name, probe.problem, _audio_fix(probe.problem, ctx))
    if probe.problem is not None:
        return _skip(name, "not tried to the end: the loudspeaker failed first (see below)")
    if probe.silent:
        return _warn(
            name,
            f"{probe.mic}, but it delivers only digital silence",
            "unmute it and raise the capture level in alsamixer (F6 picks the card, F4 shows "
            "capture; then sudo alsactl store), or check audio.input_channel",
        )
    return _pass(name, f"{probe.mic}, delivering audio")


def check_loudspeaker(ctx: Context) -> CheckResult:
    """The loudspeaker opens at a usable rate (file: the output directory is writable)."""
    name = "loudspeaker"
    if ctx.skip_audio:
        return _skip(name, "--skip-audio")
    assert ctx.settings is not None
    audio = ctx.settings.audio
    if audio.backend == "file":
        path = Path(audio.output_file or "")
        parent = path.parent
        if not parent.is_dir():
            return _fail(
                name,
                f"the output file's directory {parent} does not exist",
                f"create it (mkdir -p {parent}) or change audio.output_file",
            )
        why = _writable_dir(parent)
        if why is None and path.exists() and not os.access(path, os.W_OK):
            why = f"{path.name} is read-only"
        if why is not None:
            return _fail(
                name,
                f"the output file {path} cannot be written ({why})",
                "change audio.output_file, or the directory's owner",
            )
        return _pass(name, f"file backend: {path} can be written")
    probe = _probe_audio(ctx)
    if probe.problem is not None and _is_speaker_problem(probe.problem):
        return _fail(name, probe.problem, _audio_fix(probe.problem, ctx))
    if probe.problem is not None:
        return _skip(name, "not tried: the microphone failed first (see above)")
    return _pass(name, probe.speaker)


# -- GPIO


def _discard(callback: Callable[[], None]) -> None:
    """The GPIO callbacks go nowhere: the doctor only claims and releases the pins."""


def check_gpio(ctx: Context) -> CheckResult:
    """The pin factory loads; every configured pin can be claimed and released."""
    name = "GPIO"
    assert ctx.settings is not None
    g = ctx.settings.gpio
    if g.button_pin is None and g.mute_pin is None and g.led_type == "none":
        return _skip(name, "no pins configured (gpio.button_pin, gpio.mute_pin, gpio.led_type)")
    from hello_device.gpio.facade import Gpio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero's PinFactoryFallback chatter
        try:
            gpio = Gpio(g, call_soon=_discard, pin_factory=ctx.probes.pin_factory)
        except GpioError as exc:
            detail, hint = _split_fix(str(exc))
            return _fail(name, detail, _with_stop_hint(ctx, hint or "check the [gpio] settings"))
        try:
            factory = gpio.pin_factory
            if factory is None:
                from gpiozero import Device

                factory = Device.pin_factory
            factory_name = type(factory).__name__ if factory is not None else "default"
            gpio.resync()
            buttons = gpio.buttons
            pressed = bool(buttons.is_pressed) if buttons is not None and g.button_pin else False
            muted = buttons.muted if buttons is not None else None
        finally:
            gpio.close()
    pins: list[str] = []
    if g.button_pin is not None:
        pins.append(f"button GPIO{g.button_pin}")
    if g.mute_pin is not None:
        pins.append(f"mute switch GPIO{g.mute_pin}")
    if g.led_type != "none":
        pins.append(f"{g.led_type} LED GPIO{'/'.join(map(str, g.led_pins))}")
    detail = f"{factory_name}: {', '.join(pins)} claimed and released"
    wiring = (
        "check the wiring (hardware/wiring.md): a switch to GND needs "
        "gpio.button_pull_up = true, a switch to 3V3 needs false"
    )
    if pressed:
        return _warn(name, f"{detail}; the button reads pressed while at rest", wiring)
    if muted:
        return _warn(
            name,
            f"{detail}; the mute switch reads closed: the microphone is muted",
            f"open the switch if that is not meant; {wiring}",
        )
    if "Mock" not in factory_name:
        problem = _gpiochip_problem(ctx)
        if problem:
            return _warn(name, f"{detail}, but {problem}", _GPIOCHIP_FIX)
    return _pass(name, detail)


_GPIOCHIP_FIX = (
    "Raspberry Pi OS gives /dev/gpiochip* to group gpio through a udev rule; elsewhere add "
    'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660" to '
    "/etc/udev/rules.d/60-gpiochip.rules and run: sudo udevadm trigger"
)


def _gpiochip_problem(ctx: Context) -> str:
    """Why the service user could not open the GPIO character devices ('' if it can)."""
    account = ctx.service_account()
    if account is None or account.uid == 0:
        return ""
    for chip in sorted(ctx.probes.dev_dir.glob("gpiochip*")):
        try:
            st = chip.stat()
        except OSError:
            continue
        if not _can(account, st, 6):
            return (
                f"the service user {account.name} cannot open {chip} "
                f"({_owner(st, ctx.probes.accounts)}, mode {_mode(st)})"
            )
    return ""


# -- systemd


def check_unit(ctx: Context) -> CheckResult:
    """The unit is installed and enabled, and its ``ExecStart`` program exists."""
    name = "systemd unit"
    root = ctx.probes.root
    unit = ctx.unit
    install = (
        "sudo install -m 644 systemd/hello-device.service /etc/systemd/system/ && "
        "sudo systemctl daemon-reload && sudo systemctl enable --now hello-device"
    )
    if unit is None:
        return _fail(name, f"{UNIT_NAME} is not installed", install)
    shown = (
        "/" + str(unit.path.relative_to(root)) if unit.path.is_relative_to(root) else str(unit.path)
    )
    if unit.masked:
        return _fail(
            name, f"{shown} is masked: it can never start", "sudo systemctl unmask hello-device"
        )
    if not unit.exec_start:
        return _fail(name, f"{shown} has no ExecStart= line", install)
    program = unit.exec_start[0].lstrip("@-:+!")
    if not (root / program.lstrip("/")).exists():
        return _fail(
            name,
            f"{shown} runs {program}, which does not exist",
            "install hello-device there (python3 -m venv /opt/hello-device ...), or fix "
            "ExecStart with: sudo systemctl edit --full hello-device",
        )
    if not unit.enabled_by:
        return _fail(
            name,
            f"{shown} is installed but not enabled: it will not start at boot",
            "sudo systemctl enable --now hello-device",
        )
    state = ctx.service_state()
    active = state.get("ActiveState", "")
    sub = state.get("SubState", "")
    running = f", {active}" + (f" ({sub})" if sub else "") if active else ""
    detail = f"{shown}, enabled ({', '.join(unit.enabled_by)}){running}"
    if state.get("NeedDaemonReload") == "yes":
        return _warn(
            name,
            f"{detail}; the file changed since systemd read it",
            "sudo systemctl daemon-reload",
        )
    reads = unit.config_path or str(DEFAULT_CONFIG_PATH)
    if os.path.abspath(reads) != os.path.abspath(ctx.config_path):
        return _warn(
            name,
            f"{detail}; the service reads {reads}, this run checked {ctx.config_path}",
            f"run: hello-device doctor --config {reads}",
        )
    if active == "failed":
        return _warn(
            name,
            f"{detail}; the last run failed ({state.get('Result', 'unknown reason')})",
            "see why: journalctl -u hello-device -b -n 50; after fixing it: sudo systemctl "
            "restart hello-device",
        )
    return _pass(name, detail)


def check_service_user(ctx: Context) -> CheckResult:
    """The service user exists and is in the ``audio`` and ``gpio`` groups."""
    name = "service user"
    accounts = ctx.probes.accounts
    user = ctx.service_user_name()
    sysusers = f"sudo systemd-sysusers /{SYSUSERS_FILE}"
    if not (ctx.probes.root / SYSUSERS_FILE).exists():
        sysusers = (
            f"sudo install -m 644 systemd/hello-device.sysusers /{SYSUSERS_FILE} && {sysusers}"
        )
    account = accounts.user(user)
    if account is None:
        return _fail(name, f"user {user} does not exist", sysusers)
    unit = ctx.unit
    granted = set(unit.supplementary_groups) if unit is not None else set()
    missing_groups: list[str] = []
    not_member: list[str] = []
    for group_name in ("audio", "gpio"):
        group = accounts.group(group_name)
        if group is None:
            missing_groups.append(group_name)
        elif group.gid not in account.gids:
            not_member.append(group_name)
    if missing_groups:
        return _fail(
            name,
            f"group {' and '.join(missing_groups)} does not exist (the unit's "
            "SupplementaryGroups= would stop the service from starting)",
            sysusers,
        )
    if not_member:
        groups = ",".join(not_member)
        fix = f"sudo usermod -aG {groups} {user} (or: {sysusers})"
        detail = f"{user} (uid {account.uid}) is not in group {' and '.join(not_member)}"
        if set(not_member) <= granted:
            return _warn(name, f"{detail}; the unit adds it (SupplementaryGroups=)", fix)
        return _fail(name, detail, fix)
    return _pass(name, f"{user} (uid {account.uid}) is in groups audio and gpio")


# --------------------------------------------------------------------------- running

Check = Callable[[Context], CheckResult]

CHECKS: tuple[tuple[Check, bool], ...] = (
    (check_configuration, False),
    (check_api_key, True),
    (check_clock, False),
    (check_state_dir, True),
    (check_dns, True),
    (check_reach, True),
    (check_agent_config, True),
    (check_signed_url, True),
    (check_microphone, True),
    (check_loudspeaker, True),
    (check_gpio, True),
    (check_unit, False),
    (check_service_user, False),
)
"""Every check in report order, and whether it needs a loaded configuration."""

_NAMES: dict[Check, str] = {
    check_configuration: "configuration",
    check_api_key: "API key",
    check_clock: "clock",
    check_state_dir: "state directory",
    check_dns: "DNS",
    check_reach: "HTTPS",
    check_agent_config: "agent configuration",
    check_signed_url: "signed URL",
    check_microphone: "microphone",
    check_loudspeaker: "loudspeaker",
    check_gpio: "GPIO",
    check_unit: "systemd unit",
    check_service_user: "service user",
}


def _run_check(check: Check, ctx: Context) -> CheckResult:
    try:
        return check(ctx)
    except Exception as exc:  # one broken check must not hide the others
        log.debug("check %s failed unexpectedly", check.__name__, exc_info=True)
        return _fail(
            _NAMES.get(check, check.__name__),
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run again with --log-level DEBUG and report the output",
        )


def run_doctor(
    config_path: str,
    *,
    skip_network: bool = False,
    skip_audio: bool = False,
    probes: Probes | None = None,
    out: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run every check, print one line each, and return the exit code (0, 1 or 2)."""
    out = out or sys.stdout
    probes = probes or Probes()
    warned: list[str] = []
    settings: Settings | None = None
    problems: list[str] = []
    try:
        settings = load_settings(config_path, env=env, warn=warned.append)
    except ConfigError as exc:
        problems = list(exc.problems)
    secrets: list[str] = []
    if settings is not None and settings.platform.api_key:
        secrets.append(settings.platform.api_key.reveal())
        REDACTOR.add(secrets[0])
    ctx = Context(
        config_path,
        settings,
        probes,
        config_problems=problems,
        load_warnings=warned,
        skip_network=skip_network,
        skip_audio=skip_audio,
    )

    def emit(line: str) -> None:
        for secret in secrets:
            line = line.replace(secret, "***")
        print(line, file=out, flush=True)

    emit(
        f"hello-device {__version__} doctor: {config_path}, as user "
        f"{_current_user(probes.accounts)}"
    )
    counts = dict.fromkeys(Status, 0)
    for check, needs_settings in CHECKS:
        if needs_settings and settings is None:
            result = _skip(_NAMES[check], "needs a valid configuration")
        else:
            result = _run_check(check, ctx)
        counts[result.status] += 1
        for line in result.lines():
            emit(line)
    if settings is None:
        code = EXIT_CONFIG
    elif counts[Status.FAIL]:
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    emit(f"doctor: {summary}; exit code {code}")
    return code


# --------------------------------------------------------------------------- CLI

AddConfigArg = Callable[[argparse.ArgumentParser], None]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the CLI's subcommands."""
    from hello_device.cli.common import add_config_arg

    p = sub.add_parser(
        "doctor",
        help="check configuration, key, clock, network, platform, audio, GPIO and service",
        description=_DESCRIPTION,
    )
    _add_arguments(p, add_config_arg)


_DESCRIPTION = (
    "Check everything the device needs, one PASS/WARN/FAIL/SKIP line each, with a fix "
    "under every WARN and FAIL. Exit 0 when nothing failed, 1 when a check failed, 2 when "
    "the configuration cannot be loaded. Stop the service first to check the sound card "
    "and the pins it holds."
)


def _add_arguments(p: argparse.ArgumentParser, add_config_arg: AddConfigArg) -> None:
    add_config_arg(p)
    p.add_argument(
        "--skip-network",
        action="store_true",
        help="skip DNS, HTTPS, the agent configuration fetch and the signed URL",
    )
    p.add_argument(
        "--skip-audio", action="store_true", help="skip opening the microphone and loudspeaker"
    )
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``hello-device doctor``."""
    from hello_device.logs import setup_logging

    setup_logging(getattr(args, "log_level", None) or "ERROR", "stderr")
    return run_doctor(
        args.config,
        skip_network=bool(getattr(args, "skip_network", False)),
        skip_audio=bool(getattr(args, "skip_audio", False)),
    )


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=str(DEFAULT_CONFIG_PATH),
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hello_device.doctor [--config PATH] [--skip-network] [--skip-audio]``."""
    parser = argparse.ArgumentParser(prog="hello-device doctor", description=_DESCRIPTION)
    parser.add_argument(
        "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    _add_arguments(parser, _add_config_arg)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
