"""``hello-device tools``: compare the device's tools with what the platform declares,
and make the platform match (idempotently: a second sync changes nothing).

Tools belong to the account and may be shared by several agents: a sync updates a tool
in place only when it is attached to this agent; a different tool of the same name that
is not (another agent's, an older software version's) is left alone and a new one is
declared. Tools of another type (a webhook of the same name) are never touched.

A device tool is *declared* when a client tool of its name exists on the platform with
its description and parameter schema, and *attached* when that tool's id is among the
agent's ``tool_ids``. The platform fills in fields of its own: settings beside the
schema (``response_timeout_secs``) are its business and not compared; inside the
schema, a field the device does not set counts as the same when the platform's value is
empty (``dynamic_variable: ""``). So a sync does not rewrite a tool forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hello_device.conversation.tool_specs import ToolSpec
from hello_device.platform.management import ManagementApi, PlatformTool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolStatus:
    """One device tool, as the platform knows it."""

    spec: ToolSpec
    tool: PlatformTool | None
    """The platform's tool of that name (None: not declared)."""
    same: bool
    """Declared with the device's description and schema."""
    attached: bool
    """Its id is among the agent's tool ids."""

    @property
    def state(self) -> str:
        """``declared``, ``different`` or ``missing``."""
        if self.tool is None:
            return "missing"
        return "declared" if self.same else "different"


def survey(
    specs: Iterable[ToolSpec], tools: Sequence[PlatformTool], attached_ids: Sequence[str]
) -> list[ToolStatus]:
    """Each device tool's status. Where several platform tools share a name, the one
    attached to the agent counts, else one that is the same, else the first."""
    attached = set(attached_ids)
    found = []
    for spec in specs:
        wanted = spec.platform_config()
        named = [t for t in tools if t.name == spec.name and _is_client(t)]
        named.sort(key=lambda t: (t.tool_id not in attached, not same_tool(wanted, t.config)))
        tool = named[0] if named else None
        if len(named) > 1:
            log.info(
                "%d tools on the platform are called %s; using %s",
                len(named),
                spec.name,
                named[0].tool_id,
            )
        found.append(
            ToolStatus(
                spec,
                tool,
                tool is not None and same_tool(wanted, tool.config),
                tool is not None and tool.tool_id in attached,
            )
        )
    return found


def same_tool(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """True when the platform's tool ``theirs`` has our name, type, description,
    ``expects_response`` and schema (its other settings are not compared; a schema it
    stores as null or leaves out equals one without parameters)."""
    compared = {key: theirs[key] for key in ours if key in theirs}
    if compared.get("parameters") is None and not _dig_properties(ours):
        compared["parameters"] = ours.get("parameters")
    return same_config(ours, compared)


def _dig_properties(config: Mapping[str, Any]) -> Any:
    parameters = config.get("parameters")
    return parameters.get("properties") if isinstance(parameters, Mapping) else None


def _is_client(tool: PlatformTool) -> bool:
    kind = tool.config.get("type")
    return kind is None or kind == "client"


def same_config(ours: Any, theirs: Any) -> bool:
    """True when ``theirs`` says what ``ours`` says: every field of ours with the same
    value (``required`` lists in any order), and any other field of theirs empty."""
    if isinstance(ours, Mapping):
        if not isinstance(theirs, Mapping):
            return False
        for key, value in ours.items():
            if key not in theirs:
                if _empty(value):
                    continue
                return False
            if key == "required" and isinstance(value, list) and isinstance(theirs[key], list):
                if sorted(map(str, value)) != sorted(map(str, theirs[key])):
                    return False
            elif not same_config(value, theirs[key]):
                return False
        return all(_empty(v) for k, v in theirs.items() if k not in ours)
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(same_config(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    return bool(ours == theirs)


def _empty(value: Any) -> bool:
    return value is None or value is False or value in ("", [], {})


@dataclass
class SyncReport:
    """What a sync did (or, dry, would do): one line per change."""

    changes: list[str]
    statuses: list[ToolStatus]


async def sync_tools(
    api: ManagementApi,
    specs: Sequence[ToolSpec],
    *,
    dry_run: bool = False,
    on_change: Callable[[str], None] = lambda line: None,
) -> SyncReport:
    """Declare the missing tools, update the different ones, attach them all to the
    agent (keeping the agent's other tools). ``on_change`` hears each change as it is
    made, so a failure half-way still shows what was done before it."""
    tools = await api.tools()
    attached = await api.agent_tool_ids()
    statuses = survey(specs, tools, attached)
    verb = "would " if dry_run else ""
    changes: list[str] = []

    def change(line: str) -> None:
        changes.append(line)
        on_change(line)

    to_attach: list[tuple[str, str]] = []  # (name, tool id; "" when not made, dry)
    for status in statuses:
        name, config = status.spec.name, status.spec.platform_config()
        tool = status.tool
        if tool is None:
            if not dry_run:
                tool = await api.create_tool(config)
            change(f"{verb}declare {name}" + (f" ({tool.tool_id})" if tool else ""))
        elif not status.same and status.attached:
            if not dry_run:
                tool = await api.update_tool(tool.tool_id, config)
            change(f"{verb}update {name} ({tool.tool_id})")
        elif not status.same:  # another agent's: leave it, declare ours
            theirs = tool.tool_id
            made = None if dry_run else await api.create_tool(config)
            shown = f" ({made.tool_id})" if made is not None else ""
            change(f"{verb}declare {name}{shown}: {theirs} of that name is another agent's")
            tool = made
        if tool is None or tool.tool_id not in attached:
            to_attach.append((name, tool.tool_id if tool is not None else ""))
    if to_attach and not dry_run:
        await api.set_agent_tool_ids([*attached, *(tool_id for _, tool_id in to_attach)])
    for name, tool_id in to_attach:
        shown = f" ({tool_id})" if tool_id else ""
        change(f"{verb}attach {name}{shown} to agent {api.agent_id}")
    return SyncReport(changes, statuses)
