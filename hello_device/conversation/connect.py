"""Opening the conversation WebSocket: TLS, proxies, keepalive, and what each failure means.

:func:`open_connection` is the session's one door to websockets' client: it returns the
open connection, or the :class:`~hello_device.conversation.ending.SessionEnd` that tells
the daemon whether to try again. The session takes it as a parameter (a ``Connector``),
so its own tests can hand in a fake connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
)
from websockets.proxy import Proxy, get_proxy, parse_proxy
from websockets.uri import parse_uri

from hello_device import __version__
from hello_device.conversation.ending import SessionEnd, describe
from hello_device.core.urls import safe_url
from hello_device.platform.proxy import (
    host_port,
    log_proxy_use,
    redact_proxy_setting,
    target_of,
    tunnel_refused_message,
    tunnel_retryable,
)
from hello_device.settings import PlatformSettings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024

CLOSE_TIMEOUT_S = 1.0
"""How long a closing handshake may take before the socket is simply dropped (a failed
keepalive adds this to the time a dead link is noticed)."""


class Socket(Protocol):
    """What the session uses of a connection: websockets' ``ClientConnection``, or the
    in-memory :class:`~hello_device.testing.connection.FakeConnection` of its tests."""

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    async def send(self, message: str | bytes, *, text: bool | None = None) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


Connector = Callable[[str, PlatformSettings], Awaitable["Socket | SessionEnd"]]
"""Opens a conversation at a URL: :func:`open_connection`, or a test's fake."""


def conversation_proxy(url: str) -> Proxy | None:
    """The proxy websockets takes to ``url`` (None: direct), logged without credentials.

    websockets' own rule (:func:`websockets.proxy.get_proxy`: ``no_proxy``, then
    ``wss_proxy``/``ws_proxy``, a SOCKS proxy, ``https_proxy``, and ``http_proxy`` for
    ``ws://``), which :mod:`hello_device.platform.proxy` mirrors for the REST API. Raises
    :class:`~websockets.exceptions.InvalidURI` or ``InvalidProxy``.
    """
    setting = get_proxy(parse_uri(url))
    if setting is None:
        return None
    proxy = parse_proxy(setting)
    host, port = target_of(url)
    shown = f"{proxy.scheme}://{host_port(proxy.host, proxy.port)}"
    log_proxy_use(log, shown, host_port(host, port))
    return proxy


async def open_connection(url: str, p: PlatformSettings) -> ClientConnection | SessionEnd:
    """The open connection to ``url``, or how opening it failed (logged once)."""
    proxy: Proxy | None = None
    try:
        proxy = conversation_proxy(url)
        ws = await asyncio.wait_for(
            connect(
                url,
                # The proxy of the environment, chosen again by websockets for every
                # redirect hop (conversation_proxy() made the same choice for the log
                # and the error messages). Never None: that would disable it.
                proxy=True,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                open_timeout=None,
                close_timeout=CLOSE_TIMEOUT_S,
                user_agent_header=f"hello-device/{__version__}",
                # RFC 6455 pings, which any compliant server answers even when it has
                # nothing to say: a half-open link is noticed within interval +
                # timeout + CLOSE_TIMEOUT_S, then resumed like an abrupt close.
                ping_interval=p.keepalive_interval_s or None,
                ping_timeout=p.keepalive_timeout_s or None,
            ),
            timeout=p.connect_timeout_s,
        )
    except InvalidProxyStatus as exc:
        status = exc.response.status_code
        host, port = target_of(url)
        where = host_port(proxy.host, proxy.port) if proxy else "(unknown)"
        message = tunnel_refused_message(where, host_port(host, port), status)
        log.error("%s", message)
        return SessionEnd(None, message, resumable=tunnel_retryable(status), error=message)
    except InvalidProxy as exc:
        # Its own text quotes the setting whole (credentials included), and its
        # reason may quote a user name taken for a scheme: neither is shown.
        message = (
            f"the proxy setting {redact_proxy_setting(exc.proxy)} is not valid: "
            "write it as http://host:port"
        )
        log.error("%s", message)
        return SessionEnd(None, message, resumable=False, error=message)
    except ImportError as exc:  # a SOCKS proxy without the python-socks package
        message = f"cannot connect to {safe_url(url)}: {describe(exc)}"
        log.error("%s", message)
        return SessionEnd(None, message, resumable=False, error=message)
    except InvalidStatus as exc:
        status = exc.response.status_code
        message = f"the platform refused the conversation (HTTP {status})"
        log.error("%s", message)
        return SessionEnd(None, message, resumable=status >= 500, error=message)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        via = f" through the proxy {host_port(proxy.host, proxy.port)}" if proxy else ""
        message = f"cannot connect to {safe_url(url)}{via}: {describe(exc)}"
        log.warning("%s", message)
        return SessionEnd(None, message, resumable=True, error=message)
    return ws
