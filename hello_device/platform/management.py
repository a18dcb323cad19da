"""The platform's management API beyond boot: agents, tools, conversations, feedback.

What a technician's commands (``agents``, ``tools``, ``conversations``) and the feedback
after a conversation use, over the same :class:`~hello_device.platform.client.PlatformClient`
(authentication, retries, ``Retry-After``, error messages) as the boot path. Answers are
read defensively: both list shapes of PROTOCOL.md (``cursor`` / ``next_cursor`` and
``page`` / ``pagination``), the real platform's nested ``tool_config`` and the flat
variant, and fields that may be missing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from hello_device.core.agent_profile import map_agent_config
from hello_device.errors import PlatformError
from hello_device.platform.client import PlatformClient

log = logging.getLogger(__name__)

MAX_PAGES = 50
"""A listing stops after this many pages, whatever the platform says (a loop guard)."""
PAGE_SIZE = 100
"""The largest page the real platform serves."""


@dataclass(frozen=True)
class AgentSummary:
    """One agent of a listing."""

    agent_id: str
    name: str
    private: bool | None = None
    """Whether it needs a signed URL; None: the listing did not say."""


@dataclass(frozen=True)
class PlatformTool:
    """A tool declared on the platform: its id and its configuration (``type``,
    ``name``, ``description``, ``parameters`` …)."""

    tool_id: str
    config: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.config.get("name") or "")


@dataclass(frozen=True)
class ConversationSummary:
    """One conversation of a listing."""

    conversation_id: str
    status: str
    start_unix_s: float | None = None
    duration_s: float | None = None
    message_count: int | None = None


@dataclass(frozen=True)
class Turn:
    """One turn of a transcript."""

    role: str
    message: str
    time_s: float | None = None
    tool_calls: tuple[str, ...] = ()
    feedback: str | None = None


@dataclass(frozen=True)
class ConversationDetails:
    """A conversation with its transcript."""

    conversation_id: str
    agent_id: str
    status: str
    start_unix_s: float | None = None
    duration_s: float | None = None
    turns: tuple[Turn, ...] = ()
    feedback: Mapping[str, Any] = field(default_factory=dict)


class ManagementApi:
    """The management calls, on ``client``'s connection rules."""

    def __init__(self, client: PlatformClient, *, max_pages: int = MAX_PAGES) -> None:
        self.client = client
        self.agent_id = client.settings.agent_id
        self.max_pages = max_pages
        self._flat_tools = False
        """The platform lists tools without the ``tool_config`` wrapper (a variant)."""

    # ------------------------------------------------------------------ agents

    async def agents(self, search: str = "", *, limit: int = 1000) -> list[AgentSummary]:
        """The agents the key can see whose name contains ``search``, every page."""
        found: list[AgentSummary] = []
        params = {"search": search} if search else {}
        async for item in self._pages("/v1/convai/agents", params, ("agents", "data"), limit):
            agent_id = item.get("agent_id")
            if isinstance(agent_id, str) and agent_id:
                name = item.get("name")
                found.append(
                    AgentSummary(agent_id, name if isinstance(name, str) else "", _private(item))
                )
        return found

    async def agent_private(self, agent_id: str) -> bool:
        """Whether the agent needs a signed URL, from its configuration."""
        config = await self.client.request_json(
            "GET",
            f"/v1/convai/agents/{quote(agent_id, safe='')}",
            attempts=3,
            not_found=f"no agent with id {agent_id}",
        )
        return map_agent_config(config).private

    async def agent_tool_ids(self) -> list[str]:
        """The ids of the tools attached to the configured agent."""
        config = await self.client.fetch_agent_config(attempts=1)
        ids = _dig(config, "conversation_config", "agent", "prompt", "tool_ids")
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    async def set_agent_tool_ids(self, tool_ids: list[str]) -> None:
        """Attach exactly these tools to the configured agent (``PATCH``, or ``PUT``
        where the platform answers 405 to it)."""
        body: dict[str, Any] = {
            "conversation_config": {"agent": {"prompt": {"tool_ids": tool_ids}}}
        }
        path = f"/v1/convai/agents/{quote(self.agent_id, safe='')}"
        not_found = f"no agent with id {self.agent_id}"
        try:
            await self.client.request_json("PATCH", path, body, not_found=not_found)
            return
        except PlatformError as exc:
            if exc.status != 405:
                raise
        # PUT replaces the agent: send its whole document with the new tool ids.
        log.debug("%s: PATCH refused (405); putting the whole agent", path)
        document = await self.client.fetch_agent_config(attempts=3)
        prompt = document.setdefault("conversation_config", {}).setdefault("agent", {})
        prompt.setdefault("prompt", {})["tool_ids"] = tool_ids
        await self.client.request_json("PUT", path, document, not_found=not_found)

    # ------------------------------------------------------------------ tools

    async def tools(self) -> list[PlatformTool]:
        """Every tool declared on the platform (the account's, not only this agent's)."""
        found: list[PlatformTool] = []
        async for item in self._pages("/v1/convai/tools", {}, ("tools", "data"), 10_000):
            tool = self._tool_of(item)
            if tool is not None:
                found.append(tool)
        return found

    async def create_tool(self, config: Mapping[str, Any]) -> PlatformTool:
        """Declare a tool; the platform's record of it (with its new id)."""
        try:
            answer = await self.client.request_json("POST", "/v1/convai/tools", self._body(config))
        except PlatformError as exc:
            # A 422 created nothing. One that names no field inside the wrapper comes from a
            # server of the flat variant: it refuses the wrapper itself.
            if exc.status != 422 or self._flat_tools or "tool_config." in str(exc):
                raise
            log.debug("the platform refused the tool_config wrapper; declaring the tool flat")
            self._flat_tools = True
            answer = await self.client.request_json("POST", "/v1/convai/tools", self._body(config))
        return self._created(answer, config)

    async def update_tool(self, tool_id: str, config: Mapping[str, Any]) -> PlatformTool:
        """Replace a tool's configuration."""
        path = f"/v1/convai/tools/{quote(tool_id, safe='')}"
        answer = await self._patch_or_put(path, self._body(config), f"no tool with id {tool_id}")
        return self._tool_of(answer) or PlatformTool(tool_id, dict(config))

    def _body(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config) if self._flat_tools else {"tool_config": dict(config)}

    def _created(self, answer: dict[str, Any], config: Mapping[str, Any]) -> PlatformTool:
        tool = self._tool_of(answer)
        if tool is None:
            tool_id = answer.get("id") or answer.get("tool_id")
            if not isinstance(tool_id, str) or not tool_id:
                raise PlatformError("the platform declared the tool but answered without its id")
            tool = PlatformTool(tool_id, dict(config))
        return tool

    def _tool_of(self, item: Mapping[str, Any]) -> PlatformTool | None:
        tool_id = item.get("id") or item.get("tool_id")
        config = item.get("tool_config")
        if not isinstance(config, dict):
            if not isinstance(item.get("name"), str):
                return None
            self._flat_tools = True
            config = {k: v for k, v in item.items() if k not in ("id", "tool_id")}
        if not isinstance(tool_id, str) or not tool_id:
            return None
        return PlatformTool(tool_id, config)

    # ------------------------------------------------------------------ conversations

    async def conversations(self, *, limit: int = 20) -> list[ConversationSummary]:
        """The configured agent's latest conversations, newest first (as listed)."""
        found: list[ConversationSummary] = []
        params = {"agent_id": self.agent_id}
        keys = ("conversations", "data")
        async for item in self._pages("/v1/convai/conversations", params, keys, limit):
            conv_id = item.get("conversation_id")
            if isinstance(conv_id, str) and conv_id:
                found.append(
                    ConversationSummary(
                        conv_id,
                        _text(item.get("status")) or "?",
                        _number(item.get("start_time_unix_secs")),
                        _number(item.get("call_duration_secs")),
                        _int(item.get("message_count")),
                    )
                )
        return found

    async def conversation(self, conversation_id: str) -> ConversationDetails:
        """One conversation with its transcript."""
        data = await self.client.request_json(
            "GET",
            f"/v1/convai/conversations/{quote(conversation_id, safe='')}",
            not_found=f"no conversation with id {conversation_id}",
        )
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        turns = []
        for item in data.get("transcript") or []:
            if not isinstance(item, dict):
                continue
            calls = item.get("tool_calls") if isinstance(item.get("tool_calls"), list) else []
            assert isinstance(calls, list)
            rating = item.get("feedback")
            turns.append(
                Turn(
                    _text(item.get("role")) or "?",
                    _text(item.get("message")),
                    _number(item.get("time_in_call_secs")),
                    tuple(_text(c.get("tool_name")) for c in calls if isinstance(c, dict)),
                    _text(rating.get("score")) or None if isinstance(rating, dict) else None,
                )
            )
        feedback = meta.get("feedback")
        return ConversationDetails(
            _text(data.get("conversation_id")) or conversation_id,
            _text(data.get("agent_id")),
            _text(data.get("status")) or "?",
            _number(meta.get("start_time_unix_secs", data.get("start_time_unix_secs"))),
            _number(meta.get("call_duration_secs", data.get("call_duration_secs"))),
            tuple(turns),
            feedback if isinstance(feedback, dict) else {},
        )

    async def send_feedback(
        self, conversation_id: str, score: Literal["like", "dislike"], *, attempts: int = 3
    ) -> None:
        """Rate a conversation that has ended (``POST …/feedback``)."""
        await self.client.request_json(
            "POST",
            f"/v1/convai/conversations/{quote(conversation_id, safe='')}/feedback",
            {"feedback": score},
            attempts=attempts,
            not_found=f"no conversation with id {conversation_id}",
        )

    # ------------------------------------------------------------------ helpers

    async def _patch_or_put(
        self, path: str, body: dict[str, Any], not_found: str
    ) -> dict[str, Any]:
        try:
            return await self.client.request_json("PATCH", path, body, not_found=not_found)
        except PlatformError as exc:
            if exc.status != 405:
                raise
            log.debug("%s: PATCH refused (405); trying PUT", path)
            return await self.client.request_json("PUT", path, body, not_found=not_found)

    async def _pages(
        self, path: str, params: dict[str, str], keys: tuple[str, str], limit: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The items of every page (at most ``limit``), in either pagination style; a
        platform that repeats a cursor or a page is stopped there."""
        size = max(1, min(PAGE_SIZE, limit))
        query: dict[str, Any] = {**params, "page_size": size}
        seen: set[str] = set()
        last_page = 0
        count = 0
        for _ in range(self.max_pages):
            data = await self.client.request_json("GET", f"{path}?{urlencode(query)}", attempts=3)
            items = data.get(keys[0], data.get(keys[1]))
            if not isinstance(items, list):
                raise PlatformError(
                    f"the platform's answer to {path} has no {keys[0]!r} list; "
                    "is api_base_url right?"
                )
            pagination = data.get("pagination")
            page = 0
            if isinstance(pagination, dict):  # the page-numbered variant
                page = _int(pagination.get("page")) or int(query.get("page", 1))
                if page <= last_page:
                    log.warning("%s: the platform answered page %d again; stopping", path, page)
                    return
                last_page = page
            for item in items:
                if isinstance(item, dict):
                    yield item
                    count += 1
                    if count >= limit:
                        return
            if isinstance(pagination, dict):
                total = _int(pagination.get("total_pages"))
                more = pagination.get("has_more")
                if not items or not (more is True or (total is not None and page < total)):
                    return
                query = {**params, "page_size": size, "page": page + 1}
                continue
            cursor = data.get("next_cursor")
            if data.get("has_more") is False or not isinstance(cursor, str) or not cursor:
                return
            if cursor in seen:
                log.warning("%s: the platform repeated a page cursor; stopping there", path)
                return
            seen.add(cursor)
            query = {**params, "page_size": size, "cursor": cursor}
        log.warning("%s: stopped after %d pages", path, self.max_pages)


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _private(item: Mapping[str, Any]) -> bool | None:
    for keys in (("platform_settings", "auth", "enable_auth"), ("auth", "enable_auth")):
        value = _dig(item, *keys)
        if isinstance(value, bool):
            return value
    mode = _dig(item, "platform_settings", "auth", "mode")
    if isinstance(mode, str):
        return mode == "private"
    for key in ("private", "is_private", "enable_auth"):
        if isinstance(item.get(key), bool):
            return bool(item[key])
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
