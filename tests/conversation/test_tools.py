"""Device tools: results are always strings; every failure is an error result."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from hello_device.conversation.tools import (
    ToolRegistry,
    default_registry,
)


def call(reg: ToolRegistry, name: str, params: dict[str, object]) -> tuple[str, bool]:
    return asyncio.run(reg.call(name, params))


def test_unknown_tool_is_an_error() -> None:
    assert call(ToolRegistry(), "launch_rocket", {}) == ("unknown tool: launch_rocket", True)


def test_results_are_strings_and_structured_results_json() -> None:
    reg = ToolRegistry()
    reg.register("plain", lambda: "hi")
    reg.register("data", lambda x: {"x": x, "ok": True})
    reg.register("nothing", lambda: None)

    async def later(n: int) -> list[int]:
        await asyncio.sleep(0)
        return list(range(n))

    reg.register("async", later)
    assert call(reg, "plain", {}) == ("hi", False)
    result, err = call(reg, "data", {"x": 3})
    assert not err and json.loads(result) == {"x": 3, "ok": True}
    assert call(reg, "nothing", {}) == ("", False)
    assert call(reg, "async", {"n": 3}) == ("[0,1,2]", False)


def test_bad_parameters_raising_and_timeouts_are_errors() -> None:
    reg = ToolRegistry(timeout_s=0.05)
    reg.register("one", lambda a: a)

    def boom() -> None:
        raise RuntimeError("disk on fire")

    async def slow() -> None:
        await asyncio.Event().wait()

    reg.register("boom", boom)
    reg.register("slow", slow)
    result, err = call(reg, "one", {"b": 1})
    assert err and "bad parameters" in result
    assert call(reg, "boom", {}) == ("boom failed: disk on fire", True)
    assert call(reg, "slow", {}) == ("slow timed out", True)


def test_default_tools() -> None:
    volume = [1.0]
    reg = default_registry(
        "dev1", "Lobby", "1.2.3", lambda v: volume.__setitem__(0, v), lambda: volume[0]
    )
    info, err = call(reg, "get_device_info", {})
    assert not err and json.loads(info) == {
        "device_id": "dev1",
        "device_name": "Lobby",
        "version": "1.2.3",
    }
    assert call(reg, "set_volume", {"level": 40})[0] == '{"volume":0.4}' and volume[0] == 0.4
    assert call(reg, "set_volume", {"level": 0.5})[0] == '{"volume":0.5}'
    assert call(reg, "set_volume", {"level": -3})[1] is True
    assert volume[0] == 0.5


HOSTILE = "\x1b[2J\n\u2028\u202e\udc80" + "x" * 1_000_000
"""What a misbehaving platform can put in a tool call: controls, a lone surrogate, 1 MB."""


def test_the_platforms_text_reaches_the_log_escaped_and_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the fuzzer: an unknown tool's name, the parameter names in a TypeError
    and a tool's error about a parameter value were logged whole (a megabyte, raw control
    characters) instead of through peer()."""
    caplog.set_level(logging.DEBUG, "hello_device.conversation.tools")
    volume = [1.0]
    reg = default_registry("d", "n", "1", lambda v: volume.__setitem__(0, v), lambda: volume[0])
    assert call(reg, HOSTILE, {})[1] is True
    assert call(reg, "get_device_info", {HOSTILE: 1})[1] is True
    assert call(reg, "set_volume", {"level": HOSTILE})[1] is True
    assert len(caplog.records) == 3
    for record in caplog.records:
        message = record.getMessage()
        assert len(message) < 500, message[:200]
        assert not any(c in message for c in "\x1b\n\u2028\u202e\udc80"), ascii(message)
        assert "more)" in message  # shortened, and says so
    assert volume == [1.0]
