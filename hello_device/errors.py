"""Exceptions raised by hello-device.

Every exception the daemon raises on purpose derives from one root, so callers can
catch "anything of ours" in one place. Leaves also derive from the builtin that matches
their meaning, so code that only knows the standard library still catches them sensibly::

    HelloDeviceError                      root of the tree
    ├── ConfigError(ValueError)           the TOML file or a value in it is wrong
    ├── ProtocolError(ValueError)         a platform message could not be understood
    ├── PlatformError(RuntimeError)       the management REST API failed
    │   ├── AuthError(PermissionError)    the platform refused the API key (401/403)
    │   ├── AgentNotFoundError(LookupError)  no agent with that id (404)
    │   └── PlatformUnavailable(ConnectionError)  network down, timeouts, 429/5xx
    ├── ConversationError(RuntimeError)   a conversation could not start or went wrong
    │   └── ConversationClosed(ConnectionError)   the socket closed (code and reason kept)
    ├── AudioDeviceError(OSError)         a sound card is missing, refused or failed
    └── GpioError(OSError)                a pin factory or pin could not be used
"""

from __future__ import annotations


class HelloDeviceError(Exception):
    """Root of every exception hello-device raises on purpose."""


class ConfigError(HelloDeviceError, ValueError):
    """The configuration is invalid.

    ``problems`` holds one line per problem (file, dotted key, what is allowed), so a
    caller can print all of them at once.
    """

    def __init__(self, problems: list[str] | str) -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


class ProtocolError(HelloDeviceError, ValueError):
    """A platform message could not be parsed."""


class PlatformError(HelloDeviceError, RuntimeError):
    """The management REST API did not give a usable answer."""


class AuthError(PlatformError, PermissionError):
    """The platform refused the API key (HTTP 401 or 403)."""


class AgentNotFoundError(PlatformError, LookupError):
    """The platform has no agent with the configured id (HTTP 404)."""


class PlatformUnavailable(PlatformError, ConnectionError):
    """The platform could not be reached or asked us to come back later (retryable)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConversationError(HelloDeviceError, RuntimeError):
    """A conversation could not be started or failed."""


class ConversationClosed(ConversationError, ConnectionError):
    """The conversation socket closed; ``code`` and ``reason`` say how."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"conversation closed (code {code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class AudioDeviceError(HelloDeviceError, OSError):
    """A sound card is missing, refused the requested format, or failed while running."""


class GpioError(HelloDeviceError, OSError):
    """A GPIO pin factory or pin could not be used."""
