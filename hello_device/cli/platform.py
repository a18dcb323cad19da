"""``hello-device config show`` and ``hello-device fetch-config``: the agent configuration
as a technician sees it.

``config show`` prints every setting with where its value comes from (``default``,
``file``, ``environment``, ``platform`` or ``cache``), the API key masked. It reads the
cached agent configuration (never modifying it) and asks the platform only with
``--fetch``. ``fetch-config`` prints what the platform returns, with anything that looks
like a secret masked, then the profile the device derives from it.

Exit codes: 0 success, 1 the platform could not be reached or refused (one line on
standard error says why), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import sys
from dataclasses import fields
from typing import Any, TextIO

from hello_device.cli.client import ClientFactory, default_client, error_line, secrets_of
from hello_device.cli.common import (
    EXIT_CONFIG,
    EXIT_FATAL,
    EXIT_OK,
    SubParsers,
    add_config_arg,
    load_settings_for_cli,
    print_config_error,
)
from hello_device.core.agent_profile import (
    AgentProfile,
    effective_settings,
    map_agent_config,
)
from hello_device.core.text import redact
from hello_device.core.urls import safe_url
from hello_device.errors import ConfigError, PlatformError
from hello_device.platform.cache import AgentConfigCache
from hello_device.timefmt import format_age, format_time


def register(sub: SubParsers, *, client_factory: ClientFactory = default_client) -> None:
    """Add ``config show`` and ``fetch-config``.

    ``client_factory`` lets tests hand in a client with a fake transport or sleep.
    """
    p = sub.add_parser("config", help="show the effective configuration")
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print every setting with its source (default/file/platform/cache)",
        description="Print every setting as `key = value  (source)`; the API key is masked. "
        "The agent's configuration comes from the cache unless --fetch is given.",
    )
    add_config_arg(show)
    show.add_argument(
        "--fetch",
        action="store_true",
        help="ask the platform for the agent configuration (default: use the cache only)",
    )
    show.set_defaults(func=functools.partial(cmd_config_show, client_factory=client_factory))

    p = sub.add_parser(
        "fetch-config",
        help="print the agent configuration the platform returns (secrets masked)",
        description="Fetch the agent configuration from the management API and print it "
        "(secrets masked), then the profile the device uses. Exit 1 with the reason when "
        "the platform cannot be reached or refuses.",
    )
    add_config_arg(p)
    p.add_argument(
        "--attempts",
        type=int,
        default=3,
        metavar="N",
        help="attempts in all on network errors, 429 and 5xx (default: 3)",
    )
    p.add_argument(
        "--signed-url",
        action="store_true",
        help="also check that a signed conversation URL can be obtained (its token is "
        "never printed)",
    )
    p.set_defaults(func=functools.partial(cmd_fetch_config, client_factory=client_factory))


# --------------------------------------------------------------------------- masking

_SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
        "apikey",
        "token",
        "tokens",
        "secret",
        "secrets",
        "password",
        "passwd",
        "authorization",
        "credential",
        "credentials",
        "signature",
    }
)


def is_secret_name(name: str) -> bool:
    """True for field names like ``api_key``, ``xi-api-key``, ``apiKey``, ``access_token``,
    ``secret_id``, ``Authorization``, ``signed_url`` (not ``keywords`` or ``monkey``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    if snake == "signed_url" or "apikey" in snake.replace("_", "").replace("-", ""):
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[^a-z0-9]+", snake))


def mask_secrets(data: Any, secrets: tuple[str, ...] = (), _inside: bool = False) -> Any:
    """A copy of JSON data with every string under a secret-like name replaced by
    ``***`` (numbers and booleans are kept: ``max_tokens`` is not a secret), and any
    occurrence of ``secrets`` in other strings too."""
    if isinstance(data, dict):
        return {
            k: mask_secrets(v, secrets, _inside or (isinstance(k, str) and is_secret_name(k)))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [mask_secrets(v, secrets, _inside) for v in data]
    if isinstance(data, str):
        if _inside and data:
            return "***"
        return redact(data, filter(None, secrets))
    return data


# --------------------------------------------------------------------------- helpers


def format_value(value: object) -> str:
    """A value as it would be written in TOML (unset: ``(unset)``; masked: ``***``)."""
    if value is None:
        return "(unset)"
    if value == "***":
        return "***"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _profile_lines(profile: AgentProfile) -> list[str]:
    return [f"  {f.name} = {format_value(getattr(profile, f.name))}" for f in fields(profile)]


# --------------------------------------------------------------------------- commands


def cmd_config_show(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory = default_client,
) -> int:
    """``config show``: every setting, one per line: ``key = value  (source)``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings_for_cli(args.config, err=err)
    except ConfigError as exc:
        print_config_error(exc, err)
        return EXIT_CONFIG
    secrets = secrets_of(settings)
    agent_id = settings.platform.agent_id
    profile: AgentProfile | None = None
    source = "none"
    note = ""
    if getattr(args, "fetch", False):
        try:
            raw = asyncio.run(client_factory(settings.platform, 2).fetch_agent_config())
        except PlatformError as exc:
            print(
                f"warning: could not fetch the agent configuration: {error_line(exc, secrets)}",
                file=err,
            )
        else:
            profile, source = map_agent_config(raw), "platform"
            note = f"fetched now from {settings.platform.api_base_url}"
    if profile is None:
        cached = AgentConfigCache(settings.state.dir).load(agent_id, quarantine=False)
        if cached is not None:
            profile, source = map_agent_config(cached.raw), "cache"
            note = (
                f"cached at {format_time(cached.fetched_at)} (age {format_age(cached.age_s)}) "
                f"in {cached.path}"
            )
        else:
            note = f"none: no cache in {settings.state.dir}" + (
                "" if getattr(args, "fetch", False) else " (use --fetch to ask the platform)"
            )
    print(f"# configuration file: {settings.source}", file=out)
    print(f"# agent configuration: {note}", file=out)
    for key, value, origin in effective_settings(settings, profile, source):
        print(f"{key} = {redact(format_value(value), secrets)}  ({origin})", file=out)
    return EXIT_OK


def cmd_fetch_config(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory = default_client,
) -> int:
    """``fetch-config``: the platform's answer (masked), then the mapped profile."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings_for_cli(args.config, err=err)
    except ConfigError as exc:
        print_config_error(exc, err)
        return EXIT_CONFIG
    secrets = secrets_of(settings)
    client = client_factory(settings.platform, getattr(args, "attempts", 3))
    want_signed = getattr(args, "signed_url", False)

    async def fetch() -> tuple[dict[str, Any], str | None]:
        raw = await client.fetch_agent_config()
        signed = await client.get_signed_url() if want_signed else None
        return raw, signed

    try:
        raw, signed = asyncio.run(fetch())
    except PlatformError as exc:
        print(f"error: {error_line(exc, secrets)}", file=err)
        return EXIT_FATAL
    print(json.dumps(mask_secrets(raw, secrets), indent=2, ensure_ascii=False), file=out)
    profile = map_agent_config(raw)
    print("", file=out)
    print(f"# profile used by the device (agent {settings.platform.agent_id}):", file=out)
    for line in _profile_lines(profile):
        print(line, file=out)
    if signed is not None:
        print(f"# signed URL: OK ({safe_url(signed)}, query hidden)", file=out)
    return EXIT_OK


__all__ = [
    "ClientFactory",
    "cmd_config_show",
    "cmd_fetch_config",
    "default_client",
    "format_value",
    "is_secret_name",
    "mask_secrets",
    "register",
]
