"""What the commands that talk to the platform share: building the REST client (tests
hand in their own factory) and printing its failures on one line, the key never shown."""

from __future__ import annotations

from collections.abc import Callable

from hello_device.core.text import redact
from hello_device.platform.client import PlatformClient
from hello_device.settings import PlatformSettings, Settings

ClientFactory = Callable[[PlatformSettings, int], PlatformClient]
"""Builds the REST client from the settings and the number of attempts."""


def default_client(settings: PlatformSettings, attempts: int) -> PlatformClient:
    """The real client (stdlib transport, real sleep)."""
    return PlatformClient(settings, max_attempts=max(1, attempts))


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The secrets no output may show (the API key)."""
    key = settings.platform.api_key
    return (key.reveal(),) if key else ()


def error_line(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """An error on one line, secrets redacted."""
    return redact(" ".join(str(exc).split()), secrets)
