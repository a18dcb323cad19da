"""Proxies: which one a connection to the platform goes through, and the CONNECT tunnel.

A device behind a corporate proxy reaches the platform through it on both of its network
paths, the management REST API (:class:`~hello_device.platform.http.UrllibTransport`) and
the conversation WebSocket (:mod:`hello_device.conversation.session`), configured by the standard
environment variables and read by the same rules on both:

* ``no_proxy`` / ``NO_PROXY`` first: a host listed there (a name, a domain suffix, an
  address, ``host:port``, or ``*`` for all) is reached directly. This is
  :func:`urllib.request.proxy_bypass_environment` applied to ``host:port``, exactly the
  call websockets makes.
* then ``https_proxy`` / ``HTTPS_PROXY`` for an ``https://`` (and ``wss://``) target;
  a plain ``http://`` (``ws://``) target takes ``https_proxy`` too, else ``http_proxy``
  / ``HTTP_PROXY``: websockets' order (its ``topics/proxies`` page), so the REST API
  and the conversation socket of one server always take the same proxy.
* the lower-case spelling wins over the upper-case one, an empty value unsets, and
  ``HTTP_PROXY`` is ignored under CGI (``REQUEST_METHOD`` set): the rules of
  :func:`urllib.request.getproxies_environment`, which websockets calls.

Not used by the REST path: ``all_proxy`` (websockets ignores it too), and the
websocket-only ``ws_proxy`` / ``wss_proxy``. The REST path speaks to ``http://`` proxies
only; an ``https://`` or ``socks5://`` proxy setting is a clear error there (websockets
supports them for the conversation, SOCKS with the ``python-socks`` package). There is
no implicit bypass for loopback: like curl, urllib and websockets, list ``localhost``
and ``127.0.0.1`` in ``NO_PROXY`` when a local server must not go through the proxy.

Every target, https or plain http, goes through a ``CONNECT`` tunnel (the absolute-URI
form of plain-http proxying is not used): that is what websockets does for ``ws://``
too, so the proxy sees the same requests from both paths and refuses or allows them
alike; the proxy's answer is unambiguous (a 401 or 403 from the proxy cannot be taken
for the platform refusing the API key), and request headers such as the API key only
travel inside the tunnel. Proxy credentials (``http://user:password@proxy:3128``) go
in the ``Proxy-Authorization`` header of the ``CONNECT`` only, and never into a message
or a log line (:func:`redact_proxy_setting`, :attr:`ProxyServer.display`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from hello_device.errors import PlatformError

# What urllib.request.proxy_bypass is on Linux (undocumented, so not in typeshed).
_proxy_bypass_environment: Callable[[str, Mapping[str, str]], bool] = (
    urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
)

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
MAX_CONNECT_ANSWER_BYTES = 64 * 1024
"""A proxy's answer to CONNECT (status line and headers) longer than this is refused."""


def environment_proxies(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{scheme: proxy}`` from ``<scheme>_proxy`` variables, ``"no"`` for ``no_proxy``.

    :func:`urllib.request.getproxies_environment` (which reads only ``os.environ``)
    applied to any mapping, rule for rule.
    """
    env = os.environ if environ is None else environ
    proxies: dict[str, str] = {}
    for name, value in env.items():
        lower = name.lower()
        if value and lower[-6:] == "_proxy":
            proxies[lower[:-6]] = value
    # CVE-2016-1000110: under CGI, HTTP_PROXY may come from a client's "Proxy:" header.
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():  # the lower-case spelling wins
        if name[-6:] == "_proxy":
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies


def target_of(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) or ws(s) URL, the port defaulted by its scheme."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    return host, port


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def proxy_bypassed(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``no_proxy`` sends ``url`` directly (urllib's test on ``host:port``)."""
    host, port = target_of(url)
    return bool(_proxy_bypass_environment(f"{host}:{port}", environment_proxies(environ)))


def proxy_setting_for(url: str, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """``(variable, value)`` of the proxy setting ``url`` goes through, None for direct.

    ``variable`` is the upper-case name (``HTTPS_PROXY``) for messages; ``value`` is the
    setting as written, credentials included: never log it (see :func:`parse_proxy`).
    """
    if proxy_bypassed(url, environ):
        return None
    proxies = environment_proxies(environ)
    secure = urlsplit(url).scheme.lower() in ("https", "wss")
    for key in ("https",) if secure else ("https", "http"):
        value = proxies.get(key)
        if value:
            return f"{key.upper()}_PROXY", value
    return None


def exempt_from_proxy(host: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Add ``host`` to ``no_proxy`` in ``environ`` (default :data:`os.environ`).

    For a server that only this process can reach (the demo's in-process emulator on
    loopback): both paths, REST and websockets, then reach it directly. Both spellings
    are set to the same list, as either one may be the one read.
    """
    env = os.environ if environ is None else environ
    current = environment_proxies(env).get("no", "")
    if current.strip() == "*":
        return
    names = [name.strip() for name in current.split(",") if name.strip()]
    if host.lower() not in (name.lower() for name in names):
        names.append(host)
    env["no_proxy"] = env["NO_PROXY"] = ",".join(names)


def redact_proxy_setting(value: str) -> str:
    """A proxy setting without its credentials, for a message: ``http://proxy:3128``."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    rest = rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


@dataclass(frozen=True)
class ProxyServer:
    """An ``http://`` proxy; ``display`` and ``address`` never hold the credentials."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    @property
    def display(self) -> str:
        return f"http://{self.address}"

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value (HTTP Basic), None without credentials."""
        if self.username is None or self.password is None:
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def parse_proxy(variable: str, value: str) -> ProxyServer:
    """Validate a proxy setting as websockets does; errors name it without credentials.

    Raises :class:`~hello_device.errors.PlatformError` (not retryable: the setting must
    be fixed) for a setting that is not an ``http://host[:port]`` URL.
    """
    shown = f"{variable}={redact_proxy_setting(value)}"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise PlatformError(
            f"the proxy setting {shown} is not valid: write it as http://host:port"
        ) from None
    scheme = parts.scheme.lower()
    if scheme in ("https", "socks5h", "socks5", "socks4a", "socks4"):
        raise PlatformError(
            f"the proxy setting {shown} is a {scheme}:// proxy; the platform API client "
            "goes through http:// proxies only"
        )
    if scheme != "http" or not host:
        raise PlatformError(f"the proxy setting {shown} is not valid: write it as http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise PlatformError(
            f"the proxy setting {shown} is not valid: a proxy address has no path or query"
        )
    username = password = None
    if parts.username is not None:
        if parts.password is None:
            raise PlatformError(f"the proxy setting {shown} has a user name without a password")
        username = unquote(parts.username)
        password = unquote(parts.password)
    return ProxyServer(host, port or 80, username, password)


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> ProxyServer | None:
    """The proxy the REST API takes to ``url`` (None: direct); see the module's rules."""
    setting = proxy_setting_for(url, environ)
    if setting is None:
        return None
    return parse_proxy(*setting)


def tunnel_retryable(status: int) -> bool:
    """Whether a proxy's refusal of a tunnel may pass (5xx, 408, 429) or needs a fix."""
    return status >= 500 or status in (408, 429)


def tunnel_refused_message(proxy_address: str, target: str, status: int) -> str:
    """One line for a proxy's non-2xx answer to CONNECT (the same on both paths)."""
    if tunnel_retryable(status):
        return f"the proxy {proxy_address} could not open a tunnel to {target} (HTTP {status})"
    message = f"the proxy {proxy_address} refused the tunnel to {target} (HTTP {status})"
    if status in (401, 407):
        message += "; proxy credentials missing or wrong (http://user:password@host:port)"
    return message


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?:[ \t]|$)")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


def open_tunnel(
    proxy: ProxyServer, host: str, port: int, timeout: float, user_agent: str | None = None
) -> socket.socket:
    """A TCP connection to ``host:port`` through ``proxy`` (``CONNECT``), bounded as a whole.

    ``timeout`` bounds the connection to the proxy and the whole CONNECT exchange
    together (a proxy trickling its answer a byte at a time cannot stretch it). Network
    failures and a 5xx/408/429 refusal raise :class:`OSError` (retryable; timeouts as
    :class:`TimeoutError`); any other refusal raises
    :class:`~hello_device.errors.PlatformError`: the proxy's policy or credentials must
    be fixed, retrying cannot help. No message holds the credentials.
    """
    deadline = time.monotonic() + timeout
    target = host_port(host, port)
    where = proxy.address
    try:
        authority = target.encode("ascii")
    except UnicodeEncodeError:
        authority = host_port(host.encode("idna").decode("ascii"), port).encode("ascii")
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except TimeoutError:
        raise TimeoutError(f"no connection to the proxy {where} within {timeout:g} s") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        reason = reason[:1].lower() + reason[1:]
        raise ConnectionError(f"no connection to the proxy {where} ({reason})") from exc
    try:
        lines = [b"CONNECT " + authority + b" HTTP/1.1", b"Host: " + authority]
        if user_agent:
            lines.append(b"User-Agent: " + user_agent.encode("ascii", "replace"))
        auth = proxy.authorization()
        if auth:
            lines.append(b"Proxy-Authorization: " + auth.encode("ascii"))
        request = b"\r\n".join(lines) + b"\r\n\r\n"
        late = f"the proxy {where} did not open the tunnel to {target} within {timeout:g} s"
        buffer = b""
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request)
            while (end := _END_OF_HEAD.search(buffer)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(late)
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(
                        f"the proxy {where} closed the connection instead of answering "
                        f"the tunnel request to {target}"
                    )
                buffer += chunk
                if len(buffer) > MAX_CONNECT_ANSWER_BYTES:
                    raise ConnectionError(f"the proxy {where} sent an over-long answer")
        except TimeoutError:
            raise TimeoutError(late) from None
        match = _STATUS_LINE.match(buffer)
        if match is None:
            raise ConnectionError(
                f"the proxy {where} did not answer the tunnel request in HTTP "
                "(is it an HTTP proxy?)"
            )
        status = int(match.group(1))
        if not 200 <= status < 300:
            message = tunnel_refused_message(where, target, status)
            if tunnel_retryable(status):
                raise ConnectionError(message)
            raise PlatformError(message)
        if buffer[end.end() :]:
            raise ConnectionError(f"the proxy {where} sent data before the tunnel was open")
        return sock
    except BaseException:
        sock.close()
        raise


_announced: set[tuple[str, str]] = set()
_announced_lock = threading.Lock()


def log_proxy_use(logger: logging.Logger, proxy_display: str, target: str) -> None:
    """``using proxy … for …``: INFO the first time (per process) for a proxy and
    target, DEBUG afterwards. ``proxy_display`` must hold no credentials."""
    key = (proxy_display, target)
    with _announced_lock:
        first = key not in _announced
        _announced.add(key)
    logger.log(
        logging.INFO if first else logging.DEBUG, "using proxy %s for %s", proxy_display, target
    )


__all__ = [
    "ProxyServer",
    "environment_proxies",
    "exempt_from_proxy",
    "host_port",
    "log_proxy_use",
    "open_tunnel",
    "parse_proxy",
    "proxy_bypassed",
    "proxy_for",
    "proxy_setting_for",
    "redact_proxy_setting",
    "target_of",
    "tunnel_refused_message",
    "tunnel_retryable",
]
