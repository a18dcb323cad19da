"""``hello-device agents``, ``conversations`` and ``tools``: the platform's management API
where a technician needs it, on the device, without the platform's dashboard.

- ``agents [--search TEXT]``: the agents the key can see (id, private or public, name),
  every page;
- ``conversations [--limit N]`` and ``conversations show ID``: this agent's latest
  conversations, and one conversation's status and transcript;
- ``tools list`` and ``tools sync [--dry-run]``: the device's tools as the platform
  declares them, and declaring / updating / attaching them.

Exit codes: 0 success, 1 the platform could not be reached or refused (one line on
standard error says why, the key never shown), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Coroutine
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
from hello_device.core.text import one_line
from hello_device.errors import ConfigError, PlatformError
from hello_device.platform.management import AgentSummary, ManagementApi
from hello_device.timefmt import format_time

log = logging.getLogger(__name__)

ACCESS_LOOKUPS = 100
"""``agents`` asks at most this many agents' configurations for their access."""
ACCESS_CONCURRENCY = 4
"""… this many at a time."""


def register(sub: SubParsers, *, client_factory: ClientFactory = default_client) -> None:
    """Add ``agents``, ``conversations`` and ``tools`` (``client_factory``: for tests)."""
    p = sub.add_parser(
        "agents",
        help="list the agents the API key can see (id, private or public, name)",
        description="List the platform's agents the API key can see, every page.",
    )
    add_config_arg(p)
    p.add_argument("--search", default="", metavar="TEXT", help="only names containing TEXT")
    p.add_argument("--limit", type=_positive, default=1000, metavar="N", help="at most N")
    p.set_defaults(func=functools.partial(cmd_agents, client_factory=client_factory))

    p = sub.add_parser(
        "conversations",
        help="this agent's latest conversations; `conversations show ID` for one",
        description="List the configured agent's latest conversations (newest first), or "
        "print one conversation's status and transcript with `show ID`.",
    )
    add_config_arg(p)
    p.add_argument("--limit", type=_positive, default=20, metavar="N", help="default: 20")
    p.add_argument("action", nargs="?", choices=["show"], help="show one conversation")
    p.add_argument("conversation_id", nargs="?", metavar="ID", help="the conversation to show")
    p.set_defaults(func=functools.partial(cmd_conversations, client_factory=client_factory))

    p = sub.add_parser(
        "tools",
        help="the device's tools on the platform: `tools list`, `tools sync [--dry-run]`",
        description="An agent can call a device tool only when the tool is declared on the "
        "platform (name, description, parameters) and attached to the agent. `list` shows "
        "each device tool as declared, different or missing, attached or not; `sync` "
        "declares, updates and attaches them (a second sync changes nothing).",
    )
    actions = p.add_subparsers(dest="tools_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="each device tool: declared / different / missing")
    add_config_arg(listing)
    listing.set_defaults(func=functools.partial(cmd_tools, client_factory=client_factory))
    syncing = actions.add_parser("sync", help="declare, update and attach the device's tools")
    add_config_arg(syncing)
    syncing.add_argument("--dry-run", action="store_true", help="print what would change only")
    syncing.set_defaults(func=functools.partial(cmd_tools, client_factory=client_factory))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _run(
    args: argparse.Namespace,
    work: Callable[[ManagementApi, TextIO], Coroutine[Any, Any, int]],
    out: TextIO | None,
    err: TextIO | None,
    client_factory: ClientFactory,
    *,
    agent_optional: bool = False,
) -> int:
    """Load the settings, run ``work`` with the API; a failure is one line on ``err``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings_for_cli(args.config, err=err, agent_optional=agent_optional)
    except ConfigError as exc:
        print_config_error(exc, err)
        return EXIT_CONFIG
    api = ManagementApi(client_factory(settings.platform, 3))
    try:
        return asyncio.run(work(api, out))
    except PlatformError as exc:
        print(f"error: {error_line(exc, secrets_of(settings))}", file=err)
        return EXIT_FATAL


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)


def _cell(text: str, width: int = 80) -> str:
    """Platform text on one line, control characters escaped, cut to ``width``."""
    return one_line(text, width)


# --------------------------------------------------------------------------- agents


def cmd_agents(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory = default_client,
) -> int:
    """``agents``: id, private/public and name of each agent, every page."""

    async def work(api: ManagementApi, out: TextIO) -> int:
        agents = await api.agents(args.search, limit=args.limit)
        if not agents:
            what = f" whose name contains {args.search!r}" if args.search else ""
            print(f"no agents{what}", file=out)
            return EXIT_OK
        access = await _access_of(api, agents)
        rows = [["AGENT ID", "ACCESS", "NAME"]]
        for agent in agents:
            marker = " (this device)" if agent.agent_id == api.agent_id else ""
            rows.append([_cell(agent.agent_id), access[agent.agent_id], _cell(agent.name) + marker])
        _table(rows, out)
        if len(agents) > ACCESS_LOOKUPS:
            print(f"(access asked for the first {ACCESS_LOOKUPS}; narrow with --search)", file=out)
        return EXIT_OK

    return _run(args, work, out, err, client_factory, agent_optional=True)


async def _access_of(api: ManagementApi, agents: list[AgentSummary]) -> dict[str, str]:
    """``private`` / ``public`` / ``?`` per agent. The real platform's listing does not
    say: the first :data:`ACCESS_LOOKUPS` agents' configurations are asked, a few at a
    time."""
    limit = asyncio.Semaphore(ACCESS_CONCURRENCY)
    asked = 0

    async def one(agent: AgentSummary) -> tuple[str, str]:
        nonlocal asked
        private = agent.private
        if private is None and asked < ACCESS_LOOKUPS:
            asked += 1
            async with limit:
                try:
                    private = await api.agent_private(agent.agent_id)
                except PlatformError as exc:
                    log.debug("agent %s: %s", agent.agent_id, exc)
        return agent.agent_id, "?" if private is None else "private" if private else "public"

    return dict(await asyncio.gather(*(one(agent) for agent in agents)))


# --------------------------------------------------------------------------- conversations


def cmd_conversations(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory = default_client,
) -> int:
    """``conversations``: the latest ones; ``conversations show ID``: one transcript."""
    if args.action == "show" and not args.conversation_id:
        print("error: conversations show needs the conversation's ID", file=err or sys.stderr)
        return EXIT_CONFIG

    async def listing(api: ManagementApi, out: TextIO) -> int:
        found = await api.conversations(limit=args.limit)
        if not found:
            print(f"no conversations of agent {api.agent_id}", file=out)
            return EXIT_OK
        rows = [["CONVERSATION ID", "STARTED", "LENGTH", "TURNS", "STATUS"]]
        for conv in found:
            rows.append(
                [
                    _cell(conv.conversation_id),
                    format_time(conv.start_unix_s) if conv.start_unix_s is not None else "?",
                    f"{conv.duration_s:.0f} s" if conv.duration_s is not None else "?",
                    str(conv.message_count) if conv.message_count is not None else "?",
                    _cell(conv.status, 20),
                ]
            )
        _table(rows, out)
        return EXIT_OK

    async def show(api: ManagementApi, out: TextIO) -> int:
        conv = await api.conversation(args.conversation_id)
        started = format_time(conv.start_unix_s) if conv.start_unix_s is not None else "?"
        length = f"{conv.duration_s:.0f} s" if conv.duration_s is not None else "?"
        print(f"conversation {_cell(conv.conversation_id)}", file=out)
        print(f"agent:   {_cell(conv.agent_id) or '?'}", file=out)
        print(f"status:  {_cell(conv.status, 40)}", file=out)
        print(f"started: {started}, length {length}", file=out)
        likes, dislikes = conv.feedback.get("likes"), conv.feedback.get("dislikes")
        if isinstance(likes, int) and isinstance(dislikes, int) and (likes or dislikes):
            print(f"rated:   {likes} like, {dislikes} dislike (answers)", file=out)
        overall = {1: "like", -1: "dislike", "like": "like", "dislike": "dislike"}.get(
            conv.feedback.get("overall_score")  # type: ignore[arg-type]
        )
        if overall:
            print(f"rated:   {overall} (the conversation)", file=out)
        print("", file=out)
        if not conv.turns:
            print("(no transcript)", file=out)
        for turn in conv.turns:
            when = f"{turn.time_s:5.0f} s" if turn.time_s is not None else "    ? s"
            text = _cell(turn.message, 500)
            if turn.tool_calls:
                calls = ", ".join(_cell(name, 64) for name in turn.tool_calls)
                text = f"{text} [calls {calls}]".strip()
            rating = f" ({turn.feedback})" if turn.feedback else ""
            print(f"{when}  {_cell(turn.role, 10):<5}  {text}{rating}", file=out)
        return EXIT_OK

    return _run(args, show if args.action == "show" else listing, out, err, client_factory)


# --------------------------------------------------------------------------- tools


def cmd_tools(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory = default_client,
) -> int:
    """``tools list`` / ``tools sync [--dry-run]``."""
    from hello_device.conversation.tool_specs import DEVICE_TOOLS
    from hello_device.platform.tool_sync import survey, sync_tools

    async def listing(api: ManagementApi, out: TextIO) -> int:
        statuses = survey(DEVICE_TOOLS, await api.tools(), await api.agent_tool_ids())
        rows = [["TOOL", "ON THE PLATFORM", f"ON AGENT {_cell(api.agent_id, 40)}"]]
        for status in statuses:
            where = f" ({status.tool.tool_id})" if status.tool is not None else ""
            attached = "attached" if status.attached else "-"
            rows.append([status.spec.name, status.state + where, attached])
        _table(rows, out)
        todo = sum(1 for s in statuses if s.state != "declared" or not s.attached)
        if todo:
            print(f"\n{todo} to change: run `hello-device tools sync`", file=out)
        return EXIT_OK

    async def syncing(api: ManagementApi, out: TextIO) -> int:
        report = await sync_tools(
            api, DEVICE_TOOLS, dry_run=args.dry_run, on_change=lambda line: print(line, file=out)
        )
        if not report.changes:
            print(
                f"nothing to change: {len(report.statuses)} tools declared and attached", file=out
            )
        return EXIT_OK

    return _run(args, syncing if args.tools_action == "sync" else listing, out, err, client_factory)
