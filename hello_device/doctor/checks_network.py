"""Network and platform checks: DNS, HTTPS, agent configuration, signed URL."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    PlatformError,
    PlatformUnavailable,
)
from hello_device.logs import REDACTOR
from hello_device.settings import (
    API_KEY_ENV,
)

if TYPE_CHECKING:
    from hello_device.platform.client import PlatformClient
    from hello_device.platform.http import (
        HttpResponse,
        Transport,
    )

from hello_device.doctor.context import Context, call_with_timeout, is_address
from hello_device.doctor.results import CheckResult, failed, passed, skipped


def check_dns(ctx: Context) -> CheckResult:
    """The platform's host names resolve."""
    name = "DNS"
    if ctx.skip_network:
        return skipped(name, "--skip-network")
    limits = ctx.probes.limits
    parts: list[str] = []
    for host, port, _tls in ctx.endpoints():
        if is_address(host):
            ctx.resolved[host] = True
            parts.append(f"{host} is an address (no lookup needed)")
            continue
        limit = min(limits.dns_s, ctx.network_left())
        started = time.monotonic()
        try:
            addresses = call_with_timeout(
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
        return failed(
            name,
            f"{host} does not resolve: {reason}",
            "check the network connection (ip addr; nmcli device status) and the DNS server "
            f"(cat /etc/resolv.conf); try: getent hosts {host}; is platform.api_base_url right?",
        )
    return passed(name, "; ".join(parts) or "no host to look up")


def check_reach(ctx: Context) -> CheckResult:
    """A TCP connection (and TLS handshake for https/wss) to every platform endpoint."""
    assert ctx.settings is not None
    endpoints = ctx.endpoints()
    tls_all = all(tls for _h, _p, tls in endpoints)
    name = "HTTPS" if tls_all else "HTTP"
    if ctx.skip_network:
        return skipped(name, "--skip-network")
    limits = ctx.probes.limits
    parts: list[str] = []
    for host, port, tls in endpoints:
        if not ctx.resolved.get(host, False):
            ctx.reachable = False
            return skipped(name, f"not tried: {host} does not resolve (see DNS)")
        limit = max(
            0.1, min(limits.connect_s, ctx.settings.platform.connect_timeout_s, ctx.network_left())
        )
        try:
            how = call_with_timeout(
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
            return failed(name, f"cannot reach {host}:{port}: {reason}", fix)
        parts.append(f"{host}:{port} ({how})")
    ctx.reachable = True
    return passed(name, "; ".join(parts))


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
        body: bytes | None = None,
    ) -> HttpResponse:
        left = self._deadline - time.monotonic()
        if left < 0.1:
            raise TimeoutError("no time left for another attempt")
        return self._inner.request(
            method, url, headers, min(connect_timeout, left), min(read_timeout, left), body
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
        return skipped(name, "--skip-network")
    if ctx.reachable is not True:
        return skipped(name, "not tried: the platform cannot be reached (see above)")
    if ctx.network_left() < 0.2:
        return skipped(name, "not tried: the network checks used up their time")
    from hello_device.core.agent_profile import map_agent_config

    client = _client(ctx)
    started = time.monotonic()
    try:
        raw = asyncio.run(client.fetch_agent_config())
    except PlatformError as exc:
        detail, fix = _platform_fix(ctx, exc)
        return failed(name, detail, fix)
    except TimeoutError:
        return failed(
            name, "no answer in time", "the platform is slow or the network drops; try again"
        )
    profile = map_agent_config(raw)
    ctx.profile = profile
    ms = (time.monotonic() - started) * 1000
    label = f'"{profile.name}"' if profile.name else (profile.agent_id or "the agent")
    return passed(
        name,
        f"{label} fetched from {client.host} in {ms:.0f} ms "
        f"({'private' if profile.private else 'public'}, microphone "
        f"{profile.user_input_audio_format}, voice {profile.agent_output_audio_format})",
    )


def check_signed_url(ctx: Context) -> CheckResult:
    """A signed conversation URL can be obtained when the agent needs one."""
    name = "signed URL"
    if ctx.skip_network:
        return skipped(name, "--skip-network")
    assert ctx.settings is not None
    mode = ctx.settings.platform.signed_url
    profile = ctx.profile
    if profile is None:
        return skipped(name, "not tried: the agent configuration was not fetched")
    if profile.private and mode == "never":
        return failed(
            name,
            'the agent is private but platform.signed_url = "never"',
            'set platform.signed_url = "auto" (or remove the line)',
        )
    if not (mode == "always" or (mode == "auto" and profile.private)):
        return skipped(name, f'not needed (public agent, platform.signed_url = "{mode}")')
    if ctx.network_left() < 0.2:
        return skipped(name, "not tried: the network checks used up their time")
    from hello_device.core.urls import safe_url

    client = _client(ctx)
    try:
        url = asyncio.run(client.get_signed_url())
    except PlatformError as exc:
        detail, fix = _platform_fix(ctx, exc)
        return failed(name, detail, fix)
    except TimeoutError:
        return failed(name, "no answer in time", "the platform is slow; try again")
    for key, value in parse_qsl(urlsplit(url).query):
        if key != "agent_id":
            REDACTOR.add_transient(value)  # the signature: never logged by anyone
    return passed(name, f"obtained ({safe_url(url)}, token hidden)")
