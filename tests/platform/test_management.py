"""The management calls (agents, tools, conversations, feedback) against a scripted
transport: both pagination styles over several pages, a platform that repeats its cursor,
the error shapes (401, 404, 422, 429, 5xx), what is retried and what is not (a POST
that may have created a tool is never sent twice), PATCH falling back to PUT."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hello_device.conversation.tool_specs import DEVICE_TOOLS, ToolSpec, spec_of
from hello_device.errors import AuthError, NotFoundError, PlatformError, PlatformUnavailable
from hello_device.platform.management import ManagementApi, PlatformTool
from hello_device.platform.tool_sync import same_config, same_tool, survey, sync_tools
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.platform.support import AGENT, BASE, KEY, FakeSleep, client, fails, run


def api(t: ScriptedTransport, **kw: Any) -> ManagementApi:
    return ManagementApi(client(t, **kw))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def agents_page(ids: list[str], cursor: str | None) -> Any:
    items = [{"agent_id": i, "name": f"Kiosk {i}"} for i in ids]
    return json_response(200, {"agents": items, "next_cursor": cursor, "has_more": bool(cursor)})


# --------------------------------------------------------------------------- agents


def test_agents_follow_the_cursor_over_several_pages() -> None:
    t = ScriptedTransport(
        agents_page(["a1", "a2"], "c2"),
        agents_page(["a3", "a4"], "c3"),
        agents_page(["a5"], None),
    )
    found = run(api(t).agents("kiosk"))
    assert [a.agent_id for a in found] == ["a1", "a2", "a3", "a4", "a5"]
    assert [query(u).get("cursor") for u in t.urls] == [None, "c2", "c3"]
    assert all(query(u)["search"] == "kiosk" for u in t.urls)
    assert t.calls[0][2]["xi-api-key"] == KEY


def test_agents_read_the_page_numbered_variant() -> None:
    def page(n: int, ids: list[str]) -> Any:
        items = [
            {"agent_id": i, "name": i, "platform_settings": {"auth": {"mode": "private"}}}
            for i in ids
        ]
        return json_response(
            200,
            {"data": items, "pagination": {"page": n, "total_pages": 3, "has_more": n < 3}},
        )

    t = ScriptedTransport(page(1, ["a1"]), page(2, ["a2"]), page(3, ["a3"]))
    found = run(api(t).agents())
    assert [(a.agent_id, a.private) for a in found] == [("a1", True), ("a2", True), ("a3", True)]
    assert [query(u).get("page") for u in t.urls] == [None, "2", "3"]


def test_agents_stop_at_the_limit_and_on_a_repeated_cursor() -> None:
    t = ScriptedTransport(agents_page(["a1", "a2"], "c2"), agents_page(["a3"], "c2"))
    assert [a.agent_id for a in run(api(t).agents())] == ["a1", "a2", "a3"]
    assert len(t.calls) == 2  # the platform repeated c2: no endless loop
    t = ScriptedTransport(agents_page(["a1", "a2"], "c2"))
    assert [a.agent_id for a in run(api(t).agents(limit=2))] == ["a1", "a2"]
    assert query(t.urls[0])["page_size"] == "2"


def test_an_answer_without_the_list_is_one_clear_error() -> None:
    t = ScriptedTransport(json_response(200, {"items": []}))
    exc = fails(PlatformError, api(t).agents())
    assert "no 'agents' list" in str(exc) and "api_base_url" in str(exc)


def test_a_refused_key_is_one_line_without_the_key_and_not_retried() -> None:
    t = ScriptedTransport(
        json_response(401, {"detail": {"status": "invalid_api_key", "message": "bad " + KEY}})
    )
    exc = fails(AuthError, api(t).agents())
    assert "refused the API key (HTTP 401)" in str(exc) and KEY not in str(exc)
    assert len(t.calls) == 1


def test_429_and_5xx_are_retried_with_backoff_then_reported() -> None:
    sleep = FakeSleep()
    t = ScriptedTransport(
        json_response(429, {"detail": "slow down"}, {"Retry-After": "2"}),
        json_response(503, {"detail": "maintenance"}),
        agents_page(["a1"], None),
    )
    assert [a.agent_id for a in run(api(t, sleep=sleep).agents())] == ["a1"]
    assert len(t.calls) == 3
    t = ScriptedTransport(*[json_response(502, {"detail": "bad gateway"})] * 3)
    exc = fails(PlatformUnavailable, api(t, sleep=FakeSleep()).agents())
    assert "HTTP 502" in str(exc) and "gave up after 3 attempts" in str(exc)


# --------------------------------------------------------------------------- tools


def _spec(name: str) -> ToolSpec:
    spec = spec_of(name)
    assert spec is not None
    return spec


VOLUME = _spec("set_volume")


def tool_answer(tool_id: str, config: dict[str, Any]) -> Any:
    return json_response(200, {"id": tool_id, "tool_config": config, "access_info": {}})


def test_create_tool_posts_the_nested_config_and_reads_its_id() -> None:
    t = ScriptedTransport(tool_answer("tool_1", VOLUME.platform_config()))
    tool = run(api(t).create_tool(VOLUME.platform_config()))
    assert (tool.tool_id, tool.name) == ("tool_1", "set_volume")
    method, url, headers, _, _ = t.calls[0]
    assert (method, url) == ("POST", f"{BASE}/v1/convai/tools")
    assert headers["Content-Type"] == "application/json"
    body = t.json_bodies()[0]
    assert body["tool_config"]["type"] == "client"
    assert body["tool_config"]["parameters"]["required"] == ["level"]


def test_a_validation_error_names_the_field_and_a_post_is_never_repeated() -> None:
    t = ScriptedTransport(
        json_response(
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "tool_config", "name"],
                        "msg": "bad name",
                        "type": "value_error",
                    }
                ]
            },
        )
    )
    exc = fails(PlatformError, api(t).create_tool(VOLUME.platform_config()))
    assert "HTTP 422" in str(exc) and "body.tool_config.name: bad name" in str(exc)
    # A 500 after a POST: the tool may exist now; sending it again could declare it twice.
    t = ScriptedTransport(json_response(500, {"detail": "oops"}), tool_answer("t", {}))
    fails(PlatformUnavailable, api(t, sleep=FakeSleep()).create_tool(VOLUME.platform_config()))
    assert len(t.calls) == 1
    # A 429 means it was not done: that is retried.
    t = ScriptedTransport(json_response(429, {}), tool_answer("tool_2", {"name": "set_volume"}))
    assert run(api(t, sleep=FakeSleep()).create_tool(VOLUME.platform_config())).tool_id == "tool_2"


def test_update_falls_back_to_put_and_404_names_the_tool() -> None:
    t = ScriptedTransport(
        json_response(405, {"detail": "Method Not Allowed"}),
        tool_answer("tool_1", VOLUME.platform_config()),
    )
    run(api(t).update_tool("tool_1", VOLUME.platform_config()))
    assert [c[0] for c in t.calls] == ["PATCH", "PUT"]
    t = ScriptedTransport(json_response(404, {"detail": {"status": "tool_not_found"}}))
    exc = fails(NotFoundError, api(t).update_tool("tool_9", VOLUME.platform_config()))
    assert "no tool with id tool_9" in str(exc)


def test_flat_tool_listings_are_understood_and_answered_in_kind() -> None:
    flat = {"id": "tool_1", **VOLUME.platform_config()}
    t = ScriptedTransport(json_response(200, {"tools": [flat]}), json_response(200, flat))
    management = api(t)
    assert [tool.name for tool in run(management.tools())] == ["set_volume"]
    run(management.update_tool("tool_1", VOLUME.platform_config()))
    assert "tool_config" not in t.json_bodies()[1]


def test_a_flat_server_refusing_the_wrapper_gets_the_flat_body_once() -> None:
    refusal = {"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]}
    t = ScriptedTransport(json_response(422, refusal), tool_answer("tool_1", {}))
    assert run(api(t).create_tool(VOLUME.platform_config())).tool_id == "tool_1"
    first, second = t.json_bodies()
    assert "tool_config" in first and second == VOLUME.platform_config()


def test_put_replaces_the_whole_agent_with_the_new_tool_ids() -> None:
    document = {
        "agent_id": AGENT,
        "conversation_config": {"agent": {"first_message": "Hi", "prompt": {"prompt": "Be kind"}}},
    }
    t = ScriptedTransport(
        json_response(405, {"detail": "Method Not Allowed"}),
        json_response(200, document),
        json_response(200, document),
    )
    run(api(t).set_agent_tool_ids(["t1"]))
    assert [c[0] for c in t.calls] == ["PATCH", "GET", "PUT"]
    put = t.json_bodies()[2]
    assert put["conversation_config"]["agent"]["first_message"] == "Hi"  # nothing wiped
    assert put["conversation_config"]["agent"]["prompt"] == {
        "prompt": "Be kind",
        "tool_ids": ["t1"],
    }


def test_a_page_answered_twice_stops_the_listing() -> None:
    page_one = {
        "data": [{"agent_id": "a1", "name": "A"}],
        "pagination": {"page": 1, "total_pages": 3, "has_more": True},
    }
    t = ScriptedTransport(json_response(200, page_one), json_response(200, page_one))
    assert [a.agent_id for a in run(api(t).agents())] == ["a1"]  # no duplicate
    assert len(t.calls) == 2


def test_same_config_tolerates_the_platforms_empty_extras_only() -> None:
    ours = VOLUME.platform_config()
    theirs = json.loads(json.dumps(ours))
    theirs["response_timeout_secs"] = 20  # the platform's own setting: not compared
    theirs["parameters"]["properties"]["level"]["dynamic_variable"] = ""
    theirs["parameters"]["required"] = ["level"]
    assert same_tool(ours, theirs)
    assert not same_config(ours, theirs)  # inside the schema an extra must be empty
    del theirs["response_timeout_secs"]
    assert same_config(ours, theirs)
    theirs["parameters"]["properties"]["extra"] = {"type": "string", "description": "x"}
    assert not same_config(ours, theirs)
    changed = json.loads(json.dumps(ours))
    changed["description"] = "old words"
    assert not same_config(ours, changed)


def test_a_schema_stored_as_null_equals_one_without_parameters() -> None:
    status_spec = _spec("get_device_status")
    stored = {**status_spec.platform_config(), "parameters": None}
    assert same_tool(status_spec.platform_config(), stored)
    del stored["parameters"]
    assert same_tool(status_spec.platform_config(), stored)
    assert not same_tool(VOLUME.platform_config(), {**VOLUME.platform_config(), "parameters": None})


def test_another_agents_tool_and_a_webhook_of_the_same_name_are_left_alone() -> None:
    config = VOLUME.platform_config()
    webhook = {"id": "hook", "tool_config": {"type": "webhook", "name": "set_volume"}}
    others = {"id": "old", "tool_config": {**config, "description": "an older device's"}}
    t = ScriptedTransport(
        json_response(200, {"tools": [webhook, others]}),
        json_response(200, {}),  # the agent: no tools attached
        tool_answer("mine", config),  # POST
        json_response(200, {}),  # PATCH of the agent
    )
    report = run(sync_tools(api(t), [VOLUME]))
    assert report.changes == [
        "declare set_volume (mine): old of that name is another agent's",
        f"attach set_volume (mine) to agent {AGENT}",
    ]
    assert [c[0] for c in t.calls] == ["GET", "GET", "POST", "PATCH"]  # no PATCH of a tool


def test_survey_prefers_the_attached_copy_of_a_duplicated_name() -> None:
    config = VOLUME.platform_config()
    tools = [PlatformTool("old", {**config, "description": "old"}), PlatformTool("new", config)]
    (status,) = survey([VOLUME], tools, ["old"])
    assert (status.tool and status.tool.tool_id, status.state, status.attached) == (
        "old",
        "different",
        True,
    )
    (status,) = survey([VOLUME], tools, [])
    assert (status.tool and status.tool.tool_id, status.state) == ("new", "declared")


def test_sync_declares_updates_attaches_and_keeps_the_agents_other_tools() -> None:
    specs = [spec for spec in DEVICE_TOOLS if spec.name in ("set_volume", "get_local_time")]
    time_spec = _spec("get_local_time")
    stale = {**time_spec.platform_config(), "description": "old"}
    agent = {"conversation_config": {"agent": {"prompt": {"tool_ids": ["webhook_9", "t_time"]}}}}
    t = ScriptedTransport(
        json_response(200, {"tools": [{"id": "t_time", "tool_config": stale}]}),
        json_response(200, agent),
        tool_answer("t_time", time_spec.platform_config()),  # PATCH
        tool_answer("t_vol", VOLUME.platform_config()),  # POST
        json_response(200, agent),  # PATCH of the agent
    )
    report = run(sync_tools(api(t), specs))
    assert report.changes == [  # in the order of DEVICE_TOOLS
        "update get_local_time (t_time)",
        "declare set_volume (t_vol)",
        f"attach set_volume (t_vol) to agent {AGENT}",
    ]
    methods = [(c[0], urlsplit(c[1]).path) for c in t.calls]
    assert methods[-1] == ("PATCH", f"/v1/convai/agents/{AGENT}")
    ids = t.json_bodies()[-1]["conversation_config"]["agent"]["prompt"]["tool_ids"]
    assert ids == ["webhook_9", "t_time", "t_vol"]  # the agent's webhook stays


def test_dry_run_sends_nothing_but_reads() -> None:
    t = ScriptedTransport(json_response(200, {"tools": []}), json_response(200, {}))
    report = run(sync_tools(api(t), [VOLUME], dry_run=True))
    assert report.changes == [
        "would declare set_volume",
        f"would attach set_volume to agent {AGENT}",
    ]
    assert [c[0] for c in t.calls] == ["GET", "GET"]


# --------------------------------------------------------------------------- conversations


def test_conversations_are_this_agents_over_pages() -> None:
    def page(ids: list[str], cursor: str | None) -> Any:
        items = [
            {
                "conversation_id": i,
                "status": "done",
                "start_time_unix_secs": 1_700_000_000,
                "call_duration_secs": 12,
                "message_count": 4,
            }
            for i in ids
        ]
        return json_response(
            200, {"conversations": items, "next_cursor": cursor, "has_more": bool(cursor)}
        )

    t = ScriptedTransport(page(["c1", "c2"], "n"), page(["c3"], None))
    found = run(api(t).conversations(limit=3))
    assert [c.conversation_id for c in found] == ["c1", "c2", "c3"]
    assert found[0].duration_s == 12 and found[0].message_count == 4
    assert all(query(u)["agent_id"] == AGENT for u in t.urls)


def test_conversation_details_read_defensively() -> None:
    t = ScriptedTransport(
        json_response(
            200,
            {
                "conversation_id": "c1",
                "agent_id": AGENT,
                "status": "done",
                "transcript": [
                    {"role": "agent", "message": "Hello", "time_in_call_secs": 0},
                    {
                        "role": "user",
                        "message": "Louder",
                        "time_in_call_secs": 3,
                        "tool_calls": [{"tool_name": "set_volume"}],
                        "feedback": {"score": "like"},
                    },
                    "garbage",
                    {"role": 5},
                ],
                "metadata": {
                    "start_time_unix_secs": 1_700_000_000,
                    "call_duration_secs": 9,
                    "feedback": {"likes": 1, "dislikes": 0},
                },
            },
        )
    )
    conv = run(api(t).conversation("c1"))
    assert [(turn.role, turn.message) for turn in conv.turns] == [
        ("agent", "Hello"),
        ("user", "Louder"),
        ("?", ""),
    ]
    assert conv.turns[1].tool_calls == ("set_volume",) and conv.turns[1].feedback == "like"
    assert conv.duration_s == 9 and conv.feedback["likes"] == 1
    t = ScriptedTransport(json_response(404, {"detail": {"status": "conversation_not_found"}}))
    assert "no conversation with id nope" in str(fails(NotFoundError, api(t).conversation("nope")))


@pytest.mark.parametrize("score", ["like", "dislike"])
def test_feedback_after_the_call_is_the_real_platforms_body(score: str) -> None:
    t = ScriptedTransport(json_response(200, {}))
    run(api(t).send_feedback("c/1", score))  # type: ignore[arg-type]
    assert t.calls[0][0] == "POST"
    assert urlsplit(t.urls[0]).path == "/v1/convai/conversations/c%2F1/feedback"
    assert t.json_bodies() == [{"feedback": score}]


def test_an_identical_tool_of_another_agent_is_reused_not_declared_again() -> None:
    shared = {"id": "shared", "tool_config": VOLUME.platform_config()}
    t = ScriptedTransport(
        json_response(200, {"tools": [shared]}), json_response(200, {}), json_response(200, {})
    )
    report = run(sync_tools(api(t), [VOLUME]))
    assert report.changes == [f"attach set_volume (shared) to agent {AGENT}"]
    assert [c[0] for c in t.calls] == ["GET", "GET", "PATCH"]
