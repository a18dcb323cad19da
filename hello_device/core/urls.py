"""URL rules (pure): what a log may show of a URL, and where plain text may go."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: no user info, no query (tokens), no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def host_of(url: str) -> str:
    """``host[:port]`` of a URL (the URL itself if it cannot be parsed)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or url
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return url


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and for IP literals of the loopback networks (127.0.0.0/8,
    ::1, and 127.x written as an IPv4-mapped IPv6 address). A *name* that merely starts
    with ``127.`` (``127.example.com``) is not loopback."""
    if not host:
        return False
    name = host.lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_secure_or_loopback(url: str) -> bool:
    """True for https/wss URLs, or any scheme to a loopback host (see
    :func:`is_loopback_host`): the only places a key or a signed URL's token may go in
    clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme in ("https", "wss"):
        return True
    return is_loopback_host(host)
