"""The on-disk cache of the last good agent configuration: atomic, 0600, corrupt files
renamed aside, never a signed URL."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from hello_device.platform.cache import AgentConfigCache
from hello_device.platform.provider import (
    AgentConfigProvider,
)
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.platform.support import (
    AGENT,
    AGENT_CONFIG,
    FakeClock,
    cache_for,
    client,
    run,
    settings_with,
)
from tests.platform.test_client import SIGNED

# --------------------------------------------------------------------------- cache


def test_cache_atomic_write_mode_and_content(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    state = tmp_path / "var" / "state"
    cache = AgentConfigCache(state, clock=clock)
    path = cache.save(AGENT, AGENT_CONFIG)
    assert path == state / f"agent-{AGENT}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert sorted(p.name for p in state.iterdir()) == [path.name]
    doc = json.loads(path.read_text())
    assert doc == {"fetched_at": 1000.0, "agent_id": AGENT, "config": AGENT_CONFIG}
    clock.now = 1060.0
    loaded = cache.load(AGENT)
    assert loaded is not None
    assert (loaded.raw, loaded.fetched_at, loaded.age_s) == (AGENT_CONFIG, 1000.0, 60.0)
    cache.save(AGENT, {"agent_id": AGENT, "name": "v2"}, fetched_at=2000.0)
    assert sorted(p.name for p in state.iterdir()) == [path.name]
    again = cache.load(AGENT)
    assert again is not None and again.raw["name"] == "v2" and again.fetched_at == 2000.0
    assert cache.load("other_agent") is None


def test_cache_removes_stale_temp_files_only(tmp_path: Path) -> None:
    cache = AgentConfigCache(tmp_path)
    old = tmp_path / f".agent-{AGENT}.json.1.deadbeef.tmp"
    fresh = tmp_path / f".agent-{AGENT}.json.2.cafecafe.tmp"
    old.write_text("x")
    fresh.write_text("y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    cache.save(AGENT, {})
    assert not old.exists() and fresh.exists()


def test_cache_write_failure_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        AgentConfigCache(blocker).save(AGENT, {})
    with pytest.raises(ValueError):
        AgentConfigCache(tmp_path).save("../etc", {})


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1]",
        b'{"fetched_at": 1, "agent_id": "agent_0123"}',
        b'{"fetched_at": "x", "agent_id": "agent_0123", "config": {}}',
        b'{"fetched_at": 1, "agent_id": "someone_else", "config": {}}',
    ],
)
def test_corrupt_cache_is_renamed_aside_once(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AgentConfigCache(tmp_path, clock=FakeClock(0.0))
    path = tmp_path / f"agent-{AGENT}.json"
    path.write_bytes(content)
    assert cache.load(AGENT) is None
    assert not path.exists()
    aside = list(tmp_path.glob(f"agent-{AGENT}.json.corrupt-*"))
    assert [p.name for p in aside] == [f"agent-{AGENT}.json.corrupt-19700101T000000Z"]
    assert aside[0].read_bytes() == content
    assert cache.load(AGENT) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage()
    path.write_bytes(content)  # a second corrupt file gets its own name
    assert cache.load(AGENT) is None
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 2


def test_corrupt_cache_readonly_mode_keeps_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AgentConfigCache(tmp_path)
    path = tmp_path / f"agent-{AGENT}.json"
    path.write_bytes(b"garbage")
    assert cache.load(AGENT, quarantine=False) is None
    assert cache.load(AGENT, quarantine=False) is None
    assert path.exists()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_cache_never_holds_a_signed_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = ScriptedTransport(
            json_response(200, AGENT_CONFIG), json_response(200, {"signed_url": SIGNED})
        )
        c = client(t)
        p = AgentConfigProvider(settings_with(tmp_path), c, cache_for(tmp_path))
        await p.boot()
        assert await c.get_signed_url() == SIGNED

    run(scenario())
    for f in (tmp_path / "st").iterdir():
        assert "TOK42" not in f.read_text()
