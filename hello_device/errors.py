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

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status that said so (None: no answer, or not an HTTP refusal)."""


class AuthError(PlatformError, PermissionError):
    """The platform refused the API key (HTTP 401 or 403)."""


class NotFoundError(PlatformError, LookupError):
    """The platform has no such thing (HTTP 404): a tool, a conversation, an agent."""


class AgentNotFoundError(NotFoundError):
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


def needs_human(exc: BaseException) -> bool:
    """A refusal retrying cannot cure (the key, the agent id), as opposed to a platform
    that is down, slow, or answering nonsense for now (a captive portal, a broken
    proxy), which is retried with backoff."""
    return isinstance(exc, (AuthError, AgentNotFoundError))


def describe_os_error(exc: BaseException, read_timeout: float | None = None) -> str:
    """A short, secret-free reason for a network (or file) failure."""
    import socket  # here, not at the top: errors.py is imported by the pure core
    import ssl

    if isinstance(exc, TimeoutError):
        detail = str(exc)
        if detail and "within" in detail:
            return detail
        return "timed out" if read_timeout is None else f"no answer within {read_timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return f"host name not resolved ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "certificate rejected"
        return f"TLS certificate rejected: {reason} (is the system clock right?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__
