"""The emulator's management endpoints over real HTTP: the agents list (cursor and page
styles), agent update (tool_ids), client tools and their validation, 401/404/405/422
shapes, injected failures, and the CLI options of these features."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.emulator import cli as emu_cli
from tests.emulator.support import TOOL, acall, aget, declare_tool, run

KEY = "sk_mgmt_0123456789"
AUTH = {"xi-api-key": KEY}


def _locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body["detail"]]


# ---------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------


def test_agents_list_pages_with_a_cursor() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(extra_agents=7)) as emu:
            base = f"{emu.http_url}/v1/convai/agents"
            seen: list[dict[str, Any]] = []
            url = f"{base}?page_size=3"
            pages = 0
            while True:
                status, _, body = await aget(url)
                assert status == 200 and set(body) == {"agents", "next_cursor", "has_more"}
                seen += body["agents"]
                pages += 1
                assert body["has_more"] is (body["next_cursor"] is not None)
                if not body["has_more"]:
                    break
                url = f"{base}?page_size=3&cursor={body['next_cursor']}"
            assert pages == 3 and [len(seen)] == [8]
            ids = [a["agent_id"] for a in seen]
            assert ids == ["demo-agent"] + [f"agent_extra_{i:03d}" for i in range(1, 8)]
            assert seen[1]["name"] == "Lobby kiosk 1" and seen[1]["tags"] == []
            assert seen[1]["access_info"] == {
                "is_creator": True,
                "creator_name": "emulator",
                "role": "admin",
            }
            created = [a["created_at_unix_secs"] for a in seen]
            assert created == sorted(created, reverse=True)
            status, _, body = await aget(f"{base}?search=KIOSK")
            assert [a["name"] for a in body["agents"]] == [f"Lobby kiosk {i}" for i in range(1, 8)]
            status, _, body = await aget(f"{base}?search=kiosk%203")
            assert [a["agent_id"] for a in body["agents"]] == ["agent_extra_003"]
            status, _, body = await aget(f"{base}")
            assert len(body["agents"]) == 8 and body["next_cursor"] is None
            for bad in ("0", "101", "x"):
                status, _, body = await aget(f"{base}?page_size={bad}")
                assert status == 422 and _locs(body) == [["query", "page_size"]]
            status, _, body = await aget(f"{base}?cursor=nope")
            assert status == 422 and _locs(body) == [["query", "cursor"]]
            # every extra agent has its own document; every third one is private
            for i, private in ((1, False), (3, True), (6, True), (7, False)):
                status, _, doc = await aget(f"{base}/agent_extra_{i:03d}")
                assert status == 200 and doc["agent_id"] == f"agent_extra_{i:03d}"
                assert doc["name"] == f"Lobby kiosk {i}"
                assert doc["platform_settings"]["auth"]["enable_auth"] is private
                assert set(doc) == set(emu.agent_document())
            status, _, body = await aget(f"{base}/agent_extra_008")
            assert status == 404 and body["detail"]["status"] == "agent_not_found"

    run(main())


def test_agents_list_page_style() -> None:
    async def main() -> None:
        cfg = EmulatorConfig(extra_agents=6, list_style="page")
        async with Emulator(cfg) as emu:
            base = f"{emu.http_url}/v1/convai/agents"
            names = []
            for page in (1, 2, 3):
                status, _, body = await aget(f"{base}?page={page}&page_size=3")
                assert status == 200 and set(body) == {"data", "pagination"}
                assert body["pagination"] == {
                    "page": page,
                    "page_size": 3,
                    "total_pages": 3,
                    "has_more": page < 3,
                }
                names += [a["name"] for a in body["data"]]
            assert len(names) == 7 and names[1:] == [f"Lobby kiosk {i}" for i in range(1, 7)]
            status, _, body = await aget(f"{base}?page=4&page_size=3")
            assert body["data"] == [] and body["pagination"]["has_more"] is False
            status, _, body = await aget(f"{base}?page=0")
            assert status == 422 and _locs(body) == [["query", "page"]]
            status, _, body = await aget(f"{base}?page_size=200")
            assert status == 422 and _locs(body) == [["query", "page_size"]]

    with pytest.raises(ValueError, match="list_style"):
        EmulatorConfig(list_style="offset").validate()
    with pytest.raises(ValueError, match="extra_agents"):
        EmulatorConfig(extra_agents=-1).validate()
    run(main())


def test_agent_update_merges_and_attaches_tools() -> None:
    async def main() -> None:
        async with Emulator(
            EmulatorConfig(tool_call=("beep", {}), output_format="ulaw_8000")
        ) as emu:
            url = f"{emu.http_url}/v1/convai/agents/demo-agent"
            tool_id = await declare_tool(emu, attach=False)
            patch = {
                "name": "Front desk",
                "conversation_config": {
                    "agent": {"first_message": "Welcome", "prompt": {"tool_ids": [tool_id]}}
                },
                "platform_settings": {"widget": {"variant": "compact"}},
            }
            status, _, doc = await acall("PATCH", url, patch)
            assert status == 200 and doc["name"] == "Front desk"
            for answer in (doc, (await aget(url))[2]):
                agent = answer["conversation_config"]["agent"]
                assert agent["first_message"] == "Welcome" and agent["language"] == "en"
                assert agent["prompt"]["tool_ids"] == [tool_id]
                tools = agent["prompt"]["tools"]
                assert [t["name"] for t in tools] == ["beep", "open_door"]
                assert tools[1] == emu.tools[tool_id]["tool_config"]
                tts = answer["conversation_config"]["tts"]
                assert tts["agent_output_audio_format"] == "ulaw_8000"
                assert answer["platform_settings"]["widget"] == {"variant": "compact"}
                assert answer["platform_settings"]["auth"]["enable_auth"] is False
            # the list shows the new name
            _, _, body = await aget(f"{emu.http_url}/v1/convai/agents?search=front")
            assert [a["agent_id"] for a in body["agents"]] == ["demo-agent"]
            # PUT does the same; detaching
            empty: dict[str, Any] = {"conversation_config": {"agent": {"prompt": {"tool_ids": []}}}}
            status, _, doc = await acall("PUT", url, empty)
            assert status == 200
            assert [t["name"] for t in doc["conversation_config"]["agent"]["prompt"]["tools"]] == [
                "beep"
            ]
            # an unknown tool id names its index
            bad = {"conversation_config": {"agent": {"prompt": {"tool_ids": [tool_id, "x"]}}}}
            status, _, body = await acall("PATCH", url, bad)
            loc = ["body", "conversation_config", "agent", "prompt", "tool_ids", 1]
            assert status == 422 and _locs(body) == [loc]
            assert "x" in body["detail"][0]["msg"]
            status, _, body = await acall("PATCH", url, {"conversation_config": {"agent": 3}})
            assert status == 422 and _locs(body) == [["body", "conversation_config", "agent"]]
            status, _, body = await acall("PATCH", url, raw=b"{not json")
            assert status == 422 and _locs(body) == [["body"]]
            status, _, body = await acall("PATCH", url.replace("demo-agent", "nobody"), patch)
            assert status == 404 and body["detail"] == {
                "status": "agent_not_found",
                "message": "Agent with id nobody not found",
            }
            assert emu.attached_tool_ids() == []

    run(main())


# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------


def test_tools_create_read_replace() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key=KEY)) as emu:
            base = f"{emu.http_url}/v1/convai/tools"
            status, _, created = await acall("POST", base, TOOL, AUTH)
            assert status == 200 and created["id"].startswith("tool_")
            config = created["tool_config"]
            assert config == {**TOOL["tool_config"], "response_timeout_secs": 20}
            assert created["usage_stats"] == {"avg_latency_secs": 0}
            assert created["access_info"]["is_creator"] is True
            flat = {"type": "client", "name": "open_door", "description": "A duplicate name"}
            status, _, second = await acall("POST", base, flat, AUTH)
            assert status == 200 and second["tool_config"]["expects_response"] is False
            assert second["tool_config"]["parameters"] is None
            status, _, listed = await aget(base, AUTH)
            assert [t["id"] for t in listed["tools"]] == [created["id"], second["id"]]
            status, _, one = await aget(f"{base}/{created['id']}", AUTH)
            assert status == 200 and one == created
            replacement = {"tool_config": {**flat, "description": "Renamed", "name": "bell"}}
            for method in ("PATCH", "PUT"):
                status, _, updated = await acall(
                    method, f"{base}/{second['id']}", replacement, AUTH
                )
                assert status == 200 and updated["tool_config"]["name"] == "bell"
            assert emu.tools[second["id"]]["tool_config"]["description"] == "Renamed"
            for method in ("GET", "PATCH"):
                status, _, body = await acall(method, f"{base}/tool_nope", TOOL, AUTH)
                assert status == 404 and body["detail"] == {
                    "status": "tool_not_found",
                    "message": "Tool with id tool_nope not found",
                }
            records = [r for r in emu.rest_requests if r.method == "POST"]
            assert [r.body for r in records] == [TOOL, flat]

    run(main())


def _tool(**changes: Any) -> dict[str, Any]:
    config = dict(TOOL["tool_config"])
    config.update(changes)
    return {"tool_config": {k: v for k, v in config.items() if v is not None}}


BAD_TOOLS = [
    (_tool(name="open door"), ["name"]),
    (_tool(name="x" * 65), ["name"]),
    (_tool(type="webhook"), ["type"]),
    (_tool(description=""), ["description"]),
    (_tool(parameters={"type": "array"}), ["parameters", "type"]),
    (_tool(parameters={"type": "object", "properties": []}), ["parameters", "properties"]),
    (
        _tool(
            parameters={"type": "object", "properties": {"a": {"type": "date", "description": ""}}}
        ),
        ["parameters", "properties", "a", "type"],
    ),
    (
        _tool(parameters={"type": "object", "properties": {"a": {"type": "string"}}}),
        ["parameters", "properties", "a", "description"],
    ),
    (
        _tool(
            parameters={
                "type": "object",
                "properties": {"a": {"type": "string", "description": "a"}},
                "required": ["a", "b"],
            }
        ),
        ["parameters", "required", 1],
    ),
    (_tool(expects_response="yes"), ["expects_response"]),
    (_tool(response_timeout_secs=0), ["response_timeout_secs"]),
]


@pytest.mark.parametrize(("body", "field"), BAD_TOOLS)
def test_bad_tools_are_422_naming_the_field(body: dict[str, Any], field: list[Any]) -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            status, _, answer = await acall("POST", f"{emu.http_url}/v1/convai/tools", body)
            assert status == 422
            assert _locs(answer) == [["body", "tool_config", *field]]
            error = answer["detail"][0]
            assert isinstance(error["msg"], str) and isinstance(error["type"], str)
            if field == ["type"]:
                assert "client" in error["msg"]
            assert emu.tools == {}

    run(main())


def test_tool_body_shapes() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            base = f"{emu.http_url}/v1/convai/tools"
            status, _, body = await acall("POST", base, {"type": "client", "name": "a b"})
            assert status == 422
            assert _locs(body) == [["body", "name"], ["body", "description"]]
            assert body["detail"][1]["type"] == "missing"
            status, _, body = await acall("POST", base, raw=b"not json")
            assert status == 422 and _locs(body) == [["body"]]
            status, _, body = await acall("POST", base, [1, 2])
            assert status == 422 and _locs(body) == [["body"]]
            tool_id = await declare_tool(emu, attach=False)
            status, _, body = await acall("PATCH", f"{base}/{tool_id}", _tool(name="bad name"))
            assert status == 422 and _locs(body) == [["body", "tool_config", "name"]]

    run(main())


# ---------------------------------------------------------------------------------------
# Auth, 405, injected failures
# ---------------------------------------------------------------------------------------


def test_auth_405_and_injected_failures_on_the_new_endpoints() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key=KEY)) as emu:
            base = f"{emu.http_url}/v1/convai"
            for method, path, body in [
                ("GET", "/agents", None),
                ("PATCH", "/agents/demo-agent", {}),
                ("GET", "/tools", None),
                ("POST", "/tools", TOOL),
                ("GET", "/conversations", None),
                ("POST", "/conversations/conv_x/feedback", {"feedback": "like"}),
            ]:
                for headers in ({}, {"xi-api-key": "wrong"}):
                    status, _, answer = await acall(method, base + path, body, headers)
                    assert status == 401, (method, path)
                    assert answer["detail"]["status"] == "invalid_api_key"
            assert emu.tools == {}
            status, headers, body = await acall("DELETE", f"{base}/tools", None, AUTH)
            assert status == 405 and body == {"detail": "Method Not Allowed"}
            assert headers["Allow"] == "GET, POST"
            status, _, _ = await acall("POST", f"{base}/agents", {}, AUTH)
            assert status == 405
            status, _, _ = await acall("GET", f"{base}/conversations/conv_x/feedback", None, AUTH)
            assert status == 405
            status, _, _ = await acall("POST", f"{base}/no/such", {}, AUTH)
            assert status == 404
            emu.fail_rest(503, retry_after=1)
            emu.fail_rest(429)
            status, headers, _ = await acall("POST", f"{base}/tools", TOOL, AUTH)
            assert status == 503 and headers["Retry-After"] == "1"
            status, _, body = await acall("GET", f"{base}/conversations", None, AUTH)
            assert status == 429 and body["detail"]["status"] == "too_many_concurrent_requests"
            assert emu.tools == {}
            status, _, _ = await acall("POST", f"{base}/tools", TOOL, AUTH)
            assert status == 200 and len(emu.tools) == 1
            last = emu.rest_requests[-1]
            assert (last.method, last.status, last.body) == ("POST", 200, TOOL)
            assert last.headers["xi-api-key"] == "***"
            assert KEY not in repr(emu.rest_requests)

    run(main())


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emu_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options_of_the_management_features() -> None:
    cfg = emu_cli.config_from_args(
        _parse(
            "--extra-agents=5",
            "--list-style=page",
            '--declared-tool-call=open_door:{"door": "front"}',
            "--tool-call-after-silence=2.5",
        )
    )
    assert (cfg.extra_agents, cfg.list_style) == (5, "page")
    assert cfg.declared_tool_call == "open_door"
    assert cfg.declared_tool_parameters == {"door": "front"}
    assert cfg.declared_tool_after_silence_s == 2.5
    defaults = emu_cli.config_from_args(_parse())
    assert (defaults.extra_agents, defaults.list_style, defaults.declared_tool_call) == (
        0,
        "cursor",
        None,
    )
    with pytest.raises(ValueError, match="--declared-tool-call"):
        emu_cli.config_from_args(_parse("--tool-call-after-silence=1"))
    with pytest.raises(ValueError, match="declared_tool_call"):
        emu_cli.config_from_args(_parse("--declared-tool-call=bad name"))
    with pytest.raises(ValueError, match="JSON"):
        emu_cli.config_from_args(_parse("--declared-tool-call=x:{nope"))
