"""Who may use the local API. Browsers let any web page open a WebSocket (or send a
POST) to localhost, and a page can rebind its own name to 127.0.0.1: so every request's
``Origin`` and ``Host`` are checked, and a token is required beyond loopback."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from hello_device.core.urls import is_loopback_host


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """No ``Origin`` (curl, Python), loopback pages, and the listed origins. ``null``
    (a page opened from a file, but also any site's sandboxed frame) only if listed."""
    if origin is None:
        return True
    if origin in allowed:
        return True
    if origin == "null":
        return False
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)
    except ValueError:
        return False


def host_allowed(host: str | None, listen_host: str, token_required: bool = False) -> bool:
    """The ``Host`` the request was sent to is a loopback name or address, or the one
    the API listens on (a page that rebinds its own name to 127.0.0.1 has another).
    Behind a token any Host is fine (a rebinding page has no token), so a wildcard
    ``listen`` serves the LAN."""
    if token_required:
        return True
    if not host:
        return False
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    if name is None:
        return False
    return is_loopback_host(name) or name == listen_host.strip("[]").lower()


def token_ok(authorization: str | None, token: str | None) -> bool:
    """``Authorization: Bearer TOKEN`` matches (always, when no token is configured)."""
    if token is None:
        return True
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())


class RateLimit:
    """A token bucket: ``rate`` commands a second, bursts of twice that."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = 2 * rate
        self._tokens = self.capacity
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
