"""Where plain text may go: localhost and loopback IP literals only (item 11 of the
hardening issue: a name that starts with 127. is not loopback)."""

from __future__ import annotations

import pytest

from hello_device.core.urls import (
    is_loopback_host,
    is_secure_or_loopback,
)

# ------------------------------------------------------------------------- loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("127.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_a_literal_or_localhost(host: str | None, loopback: bool) -> None:
    """Item 11: a host that only *starts with* 127. is not loopback."""
    assert is_loopback_host(host) is loopback


def test_plain_urls_only_to_loopback() -> None:
    assert is_secure_or_loopback("wss://api.example.com/x")
    assert is_secure_or_loopback("ws://127.0.0.1:8080/x?token=1")
    assert is_secure_or_loopback("ws://[::1]:8080/x")
    assert not is_secure_or_loopback("ws://127.example.com/v1/convai/conversation?token=1")
    assert not is_secure_or_loopback("http://127.0.0.1.evil.test/")
    assert not is_secure_or_loopback("ws://[bad")
