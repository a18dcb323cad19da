"""The management endpoints a technician's commands use: the agents (list, configuration,
update) and the client tools (list, create, read, replace), with the state they keep.

Agents: the configured one, then ``EmulatorConfig.extra_agents`` more (``agent_extra_001``…,
"Lobby kiosk 1"…, every third one private), newest first. An update (``PATCH``/``PUT``)
deep-merges ``name``, ``conversation_config`` and ``platform_settings`` into what the agent
document shows; ``conversation_config.agent.prompt.tool_ids`` attaches declared tools (and
decides which tools the parrot may call). Conversations stay on the configured agent."""

from __future__ import annotations

import copy
import math
import secrets
import time
from typing import Any

from hello_device.emulator.answers import (
    _Answer,
    _Call,
    _cursor_page,
    _error,
    _first,
    _Invalid,
    _json,
    _not_found,
    _numbered_page,
)
from hello_device.emulator.config import _DEFAULT_MAX_DURATION_S, EmulatorConfig
from hello_device.emulator.toolschema import tool_config_from_body

ACCESS_INFO = {"is_creator": True, "creator_name": "emulator", "role": "admin"}
_TOOL_IDS_LOC = ["body", "conversation_config", "agent", "prompt", "tool_ids"]


def _deep_merge(base: dict[str, Any], patch: dict[str, Any], loc: list[str | int]) -> None:
    """Merge ``patch`` into ``base`` in place: objects recursively, other values replace;
    an object may not be replaced by something else (:class:`_Invalid`)."""
    for key, value in patch.items():
        old = base.get(key)
        if isinstance(old, dict):
            if not isinstance(value, dict):
                raise _Invalid([_error([*loc, key], "Input should be a valid dictionary")])
            _deep_merge(old, value, [*loc, key])
        else:
            base[key] = copy.deepcopy(value)


class _Management:
    """Agents and tools (a part of :class:`~hello_device.emulator.server.Emulator`)."""

    config: EmulatorConfig
    tools: dict[str, dict[str, Any]]
    _agent_patches: dict[str, dict[str, Any]]
    _created_unix: int

    # -- agents --------------------------------------------------------------------------

    def _agents(self) -> list[tuple[str, str, bool, int]]:
        """(agent_id, default name, private, created_at_unix_secs), newest first."""
        cfg = self.config
        agents = [(cfg.agent_id, f"hello-device emulator ({cfg.agent_id})", cfg.private, 0)]
        for i in range(1, cfg.extra_agents + 1):
            agents.append((f"agent_extra_{i:03d}", f"Lobby kiosk {i}", i % 3 == 0, 60 * i))
        return [(a, n, p, self._created_unix - age) for a, n, p, age in agents]

    def _agent(self, agent_id: str) -> tuple[str, str, bool, int] | None:
        return next((a for a in self._agents() if a[0] == agent_id), None)

    def agent_document(self, agent_id: str | None = None) -> dict[str, Any]:
        """The agent configuration as ``GET /v1/convai/agents/{id}`` returns it (the
        configured agent by default)."""
        agent = self._agent(agent_id or self.config.agent_id)
        if agent is None:
            raise KeyError(agent_id)
        ident, name, private, created = agent
        doc = self._base_document(ident, name, private, created)
        patch = self._agent_patches.get(ident, {})
        _deep_merge(doc, patch, ["body"])
        prompt = doc["conversation_config"]["agent"]["prompt"]
        tool_ids = self.attached_tool_ids(ident)
        prompt["tool_ids"] = tool_ids
        prompt["tools"] = self._legacy_tools(ident) + [
            copy.deepcopy(self.tools[t]["tool_config"]) for t in tool_ids if t in self.tools
        ]
        return doc

    def attached_tool_ids(self, agent_id: str | None = None) -> list[str]:
        """``conversation_config.agent.prompt.tool_ids`` of an agent (as last updated)."""
        patch = self._agent_patches.get(agent_id or self.config.agent_id, {})
        prompt = patch.get("conversation_config", {}).get("agent", {}).get("prompt", {})
        return list(prompt.get("tool_ids") or [])

    def declared_tool(self, name: str) -> dict[str, Any] | None:
        """The tool named ``name`` that is declared and attached to the configured agent
        (the first one, as names may repeat), or None: the parrot may only call that."""
        for tool_id in self.attached_tool_ids():
            tool = self.tools.get(tool_id)
            if tool is not None and tool["tool_config"]["name"] == name:
                return tool
        return None

    def _legacy_tools(self, agent_id: str) -> list[dict[str, Any]]:
        cfg = self.config
        if cfg.tool_call is None or agent_id != cfg.agent_id:
            return []
        return [
            {
                "type": "client",
                "name": cfg.tool_call[0],
                "description": "Tool the emulator calls after the first user turn",
                "expects_response": True,
            }
        ]

    def _base_document(
        self, agent_id: str, name: str, private: bool, created: int
    ) -> dict[str, Any]:
        cfg = self.config
        max_duration = (
            math.ceil(cfg.max_duration_s) if cfg.max_duration_s > 0 else _DEFAULT_MAX_DURATION_S
        )
        events = [
            "audio",
            "interruption",
            "agent_response",
            "user_transcript",
            "agent_response_correction",
            "client_tool_call",
            "conversation_initiation_metadata",
            "ping",
        ]
        return {
            "agent_id": agent_id,
            "name": name,
            "conversation_config": {
                "asr": {
                    "quality": "high",
                    "provider": "elevenlabs",
                    "user_input_audio_format": cfg.input_format,
                    "keywords": [],
                },
                "turn": {"turn_timeout": cfg.turn_timeout_s, "mode": "turn"},
                "tts": {
                    "model_id": "eleven_flash_v2",
                    "voice_id": "emulator-parrot",
                    "agent_output_audio_format": cfg.output_format,
                },
                "conversation": {
                    "text_only": False,
                    "max_duration_seconds": max_duration,
                    "client_events": events,
                },
                "agent": {
                    "first_message": cfg.first_message or "",
                    "language": cfg.language,
                    "prompt": {
                        "prompt": "You are a parrot: repeat what the user says.",
                        "llm": "none",
                        "tools": [],
                        "tool_ids": [],
                    },
                },
            },
            "metadata": {
                "created_at_unix_secs": created,
                "updated_at_unix_secs": int(time.time()),
            },
            "platform_settings": {
                "auth": {"enable_auth": private, "allowlist": [], "shareable_token": None}
            },
            "tags": ["emulator"],
        }

    def _list_agents(self, call: _Call) -> _Answer:
        search = (_first(call.query, "search") or "").lower()
        items = []
        for ident, _, _, created in self._agents():
            name = self.agent_document(ident)["name"]
            if search in str(name).lower() or search in ident.lower():
                items.append(
                    {
                        "agent_id": ident,
                        "name": name,
                        "tags": [],
                        "created_at_unix_secs": created,
                        "access_info": dict(ACCESS_INFO),
                    }
                )
        if self.config.list_style == "page":
            page, pagination = _numbered_page(items, call.query)
            return _json(200, {"data": page, "pagination": pagination})
        page, cursor = _cursor_page(items, "agent_id", call.query, "agent")
        return _json(200, {"agents": page, "next_cursor": cursor, "has_more": cursor is not None})

    def _get_agent(self, call: _Call, agent_id: str) -> _Answer:
        if self._agent(agent_id) is None:
            return _not_found("agent", agent_id)
        return _json(200, self.agent_document(agent_id))

    def _update_agent(self, call: _Call, agent_id: str) -> _Answer:
        if self._agent(agent_id) is None:
            return _not_found("agent", agent_id)
        body = call.json()
        if not isinstance(body, dict):
            raise _Invalid([_error(["body"], "Input should be a valid dictionary", "dict_type")])
        patch: dict[str, Any] = {}
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise _Invalid([_error(["body", "name"], "name must be a non-empty string")])
            patch["name"] = body["name"]
        for key in ("conversation_config", "platform_settings"):
            if key in body:
                if not isinstance(body[key], dict):
                    msg = "Input should be a valid dictionary"
                    raise _Invalid([_error(["body", key], msg, "dict_type")])
                patch[key] = body[key]
        trial = self.agent_document(agent_id)  # the patch must fit the document's shape
        _deep_merge(trial, patch, ["body"])
        prompt = trial["conversation_config"]["agent"]["prompt"]
        if "tool_ids" in patch.get("conversation_config", {}).get("agent", {}).get("prompt", {}):
            self._check_tool_ids(prompt["tool_ids"])
        merged = copy.deepcopy(self._agent_patches.get(agent_id, {}))
        for key in ("conversation_config", "platform_settings"):
            merged.setdefault(key, {})
        _deep_merge(merged, patch, ["body"])
        prompt = merged["conversation_config"].get("agent", {}).get("prompt", {})
        if isinstance(prompt, dict):
            prompt.pop("tools", None)  # shown from tool_ids and the legacy tool
        self._agent_patches[agent_id] = merged
        return _json(200, self.agent_document(agent_id))

    def _check_tool_ids(self, tool_ids: Any) -> None:
        if not isinstance(tool_ids, list):
            raise _Invalid([_error(_TOOL_IDS_LOC, "Input should be a valid list", "list_type")])
        errors = [
            _error([*_TOOL_IDS_LOC, i], f"Tool with id {tool_id!r} not found")
            for i, tool_id in enumerate(tool_ids)
            if not isinstance(tool_id, str) or tool_id not in self.tools
        ]
        if errors:
            raise _Invalid(errors)

    # -- tools ---------------------------------------------------------------------------

    def _list_tools(self, call: _Call) -> _Answer:
        return _json(200, {"tools": [copy.deepcopy(t) for t in self.tools.values()]})

    def _create_tool(self, call: _Call) -> _Answer:
        config = tool_config_from_body(call.json())
        tool_id = f"tool_{secrets.token_hex(12)}"
        self.tools[tool_id] = {
            "id": tool_id,
            "tool_config": config,
            "access_info": dict(ACCESS_INFO),
            "usage_stats": {"avg_latency_secs": 0},
        }
        return _json(200, copy.deepcopy(self.tools[tool_id]))

    def _get_tool(self, call: _Call, tool_id: str) -> _Answer:
        if tool_id not in self.tools:
            return _not_found("tool", tool_id)
        return _json(200, copy.deepcopy(self.tools[tool_id]))

    def _update_tool(self, call: _Call, tool_id: str) -> _Answer:
        if tool_id not in self.tools:
            return _not_found("tool", tool_id)
        self.tools[tool_id]["tool_config"] = tool_config_from_body(call.json())
        return _json(200, copy.deepcopy(self.tools[tool_id]))
