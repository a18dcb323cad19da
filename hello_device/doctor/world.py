"""Everything the checks touch outside the process, as replaceable probes."""

from __future__ import annotations

import grp
import pwd
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hello_device.platform.http import (
        Transport,
    )


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
