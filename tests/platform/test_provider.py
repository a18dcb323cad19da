"""The provider: boot (platform, cache, offline), background retries one per step,
refresh on request and when stale, and failures that never escape."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hello_device.core.agent_profile import (
    map_agent_config,
)
from hello_device.errors import (
    PlatformError,
)
from hello_device.logs import RedactFilter
from hello_device.platform.http import (
    HttpResponse,
    UrllibTransport,
)
from hello_device.platform.provider import (
    REFRESH_SPACING_S,
    AgentConfigProvider,
)
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.conftest import UNIT
from tests.platform.support import (
    AGENT,
    AGENT_CONFIG,
    KEY,
    FakeClock,
    FakeSleep,
    Watch,
    cache_for,
    fails,
    provider,
    psettings,
    real_client,
    run,
    settings_with,
    wait_until,
)


def test_boot_online_saves_cache(tmp_path: Path) -> None:
    p = provider(tmp_path, ScriptedTransport(json_response(200, AGENT_CONFIG)))
    profile = run(p.boot())
    assert profile is not None and profile.first_message == "Hello!"
    assert (p.status, p.source, p.current) == ("online", "platform", profile)
    assert p.fetched_at == FakeClock().now
    cached = cache_for(tmp_path).load(AGENT)
    assert cached is not None and cached.raw == AGENT_CONFIG


def test_boot_offline_from_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG, fetched_at=clock.now - 7200)
    p = provider(tmp_path, ScriptedTransport(ConnectionRefusedError(111, "refused")), clock)
    profile = run(p.boot())
    assert profile == map_agent_config(AGENT_CONFIG)
    assert (p.status, p.source, p.fetched_at) == ("cached", "cache", clock.now - 7200)
    assert p.status_message.startswith(
        "platform unreachable (cannot reach api.example.test: connection refused); "
        "using the agent configuration cached at "
    )
    assert "(age 2 h 0 min)" in p.status_message
    assert any(
        r.levelno == logging.WARNING and "platform unreachable" in r.getMessage()
        for r in caplog.records
    )


def test_boot_without_cache_or_network_is_offline(tmp_path: Path) -> None:
    p = provider(tmp_path, ScriptedTransport(TimeoutError("timed out")))
    assert run(p.boot()) is None
    assert (p.status, p.source, p.current) == ("offline", "none", None)
    assert "no cached agent configuration" in p.status_message


def test_boot_with_corrupt_cache(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    bad = tmp_path / "st" / f"agent-{AGENT}.json"
    bad.write_text("{{{")
    p = provider(tmp_path, ScriptedTransport(OSError(101, "Network is unreachable")))
    assert run(p.boot()) is None and p.status == "offline"
    assert not bad.exists() and list((tmp_path / "st").glob("*.corrupt-*"))
    bad.write_text("{{{")
    p = provider(tmp_path, ScriptedTransport(json_response(200, AGENT_CONFIG)))
    assert run(p.boot()) is not None and p.status == "online"
    assert json.loads(bad.read_text())["config"] == AGENT_CONFIG


def test_boot_refused_key_falls_back_to_cache_with_error_status(tmp_path: Path) -> None:
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG)
    p = provider(tmp_path, ScriptedTransport(json_response(401, {"detail": "Invalid API key"})))
    profile = run(p.boot())
    assert profile is not None and (p.status, p.source) == ("error", "cache")
    assert p.status_message.startswith("the platform refused the API key (HTTP 401)")
    assert "using the agent configuration cached at" in p.status_message
    p = provider(tmp_path / "empty", ScriptedTransport(json_response(404, {})))
    assert run(p.boot()) is None
    assert p.status == "error" and p.status_message.startswith("no agent with id")


def test_boot_timeout_bounds_the_fetch(tmp_path: Path) -> None:
    gate = threading.Event()

    class Stuck(ScriptedTransport):
        def request(self, *args: Any, **kwargs: Any) -> HttpResponse:
            gate.wait(10 * UNIT)
            raise TimeoutError("timed out")

    async def scenario() -> AgentConfigProvider:
        p = provider(tmp_path, Stuck())
        started = time.monotonic()
        try:
            assert await p.boot(timeout=0.05) is None
        finally:
            gate.set()
        assert time.monotonic() - started < 2 * UNIT
        return p

    p = run(scenario())
    assert p.status == "offline" and "within 0.05 s" in p.status_message


def test_background_retries_with_backoff_then_holds_pending(tmp_path: Path) -> None:
    changed = asyncio.Event()
    sleep = FakeSleep()
    t = ScriptedTransport(
        ConnectionRefusedError(111, "refused"),  # boot
        ConnectionRefusedError(111, "refused"),
        TimeoutError("timed out"),
        json_response(200, AGENT_CONFIG),
    )

    def on_change(p: AgentConfigProvider) -> None:
        if p.status == "online":
            changed.set()

    async def scenario() -> AgentConfigProvider:
        p = provider(tmp_path, t, sleep=sleep, on_change=on_change)
        assert await p.boot() is None
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(changed)
        finally:
            task.cancel()
        assert p.current is None and p.pending is not None  # not applied mid-conversation
        assert p.status == "online"
        profile = p.take_update()
        assert profile is not None and p.current is profile and p.source == "platform"
        assert p.take_update() is None
        return p

    run(scenario())
    assert len(t.calls) == 4  # one attempt per backoff step
    assert len(sleep.delays) == 3
    for delay, step in zip(sleep.delays, (1.0, 2.0, 4.0), strict=True):
        assert step / 2 <= delay <= step
    assert cache_for(tmp_path).load(AGENT) is not None


def test_background_backoff_is_capped_and_honours_retry_after(tmp_path: Path) -> None:
    sleep = FakeSleep()
    done = asyncio.Event()
    t = ScriptedTransport(*[ConnectionRefusedError(111, "x") for _ in range(7)])
    t.add(json_response(429, {}, {"Retry-After": "20"}), json_response(200, AGENT_CONFIG))

    async def scenario() -> None:
        p = provider(
            tmp_path,
            t,
            sleep=sleep,
            reconnect_max_backoff_s=30.0,
            on_change=lambda p: done.set() if p.status == "online" else None,
        )
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(done)
        finally:
            task.cancel()

    run(scenario())
    # steps 1, 2, 4, 8, 16, 30, 30 ...; the wait after the 429 is at least Retry-After
    assert all(d <= 30.0 for d in sleep.delays)
    assert sleep.delays[5] >= 15.0 and sleep.delays[6] >= 15.0
    assert sleep.delays[-1] >= 20.0


def test_refused_key_logged_once_per_retry_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    online = asyncio.Event()
    refused = json_response(401, {"detail": "Invalid API key"})
    t = ScriptedTransport(refused, refused, refused, refused)
    t.add(json_response(403, {"detail": "missing permission convai_read"}), refused)
    t.add(json_response(200, AGENT_CONFIG))

    async def scenario() -> AgentConfigProvider:
        p = provider(
            tmp_path, t, on_change=lambda p: online.set() if p.status == "online" else None
        )
        await p.boot()
        assert p.status == "error"
        task = asyncio.create_task(p.run_background())
        try:
            await wait_until(online)
        finally:
            task.cancel()
        return p

    p = run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3, errors  # 401 at boot, 403 (new message), 401 again (changed)
    assert "HTTP 401" in errors[0] and "HTTP 403" in errors[1] and "HTTP 401" in errors[2]
    debug = [r.getMessage() for r in caplog.records if "(again)" in r.getMessage()]
    assert len(debug) == 3
    assert p.status == "online"
    assert any("platform reachable again" in r.getMessage() for r in caplog.records)


def test_request_refresh_fetches_now_and_applies_at_boundary(tmp_path: Path) -> None:
    v2 = dict(AGENT_CONFIG, name="v2")
    watch = Watch()
    sleep = FakeSleep()
    t = ScriptedTransport(
        json_response(200, AGENT_CONFIG), json_response(200, AGENT_CONFIG), json_response(200, v2)
    )

    async def scenario() -> None:
        p = provider(tmp_path, t, sleep=sleep, on_change=watch)
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(t.calls) == 1  # online: the background task only waits
            p.request_refresh()  # SIGHUP; the platform still has the same config
            await watch.until(lambda: not p.is_stale())
            assert len(t.calls) == 2
            assert p.pending is None and p.current is not None and p.current.name == "Front desk"
            p.request_refresh()
            await watch.until(lambda: p.pending is not None)
            assert p.current.name == "Front desk"  # not applied until the boundary
            update = p.take_update()
            assert update is not None and update.name == "v2" and p.current is update
        finally:
            task.cancel()
        # Refreshes while online do not back off; the second one only waits out the
        # spacing that makes a storm of requests coalesce.
        assert sleep.delays == [pytest.approx(REFRESH_SPACING_S)]

    run(scenario())


def test_refresh_if_stale_with_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock(10_000.0)
    v2 = dict(AGENT_CONFIG, name="v2")
    t = ScriptedTransport(json_response(200, AGENT_CONFIG))

    async def scenario() -> None:
        p = provider(tmp_path, t, clock, config_max_age_s=3600.0)
        await p.boot()
        clock.now += 1800
        assert not p.is_stale()
        assert await p.refresh_if_stale() is False and len(t.calls) == 1
        clock.now += 1800  # now exactly max age
        t.add(json_response(200, v2))
        assert await p.refresh_if_stale() is True and len(t.calls) == 2
        assert p.current is not None and p.current.name == "v2" and p.fetched_at == clock.now
        assert p.source == "platform" and p.status == "online"
        clock.now += 4000
        t.add(ConnectionResetError(104, "reset"))
        assert await p.refresh_if_stale() is False
        assert p.current.name == "v2" and p.status == "cached"  # kept on failure
        # The platform failed: retries belong to the background loop, a conversation
        # start adds no request.
        assert await p.refresh_if_stale() is False and len(t.calls) == 3
        t.add(json_response(200, AGENT_CONFIG))
        online = asyncio.Event()
        p.on_change = lambda p: online.set() if p.status == "online" else None
        task = asyncio.create_task(p.run_background())
        try:
            await asyncio.wait_for(online.wait(), 5)
        finally:
            task.cancel()
        assert len(t.calls) == 4 and p.take_update() is not None
        assert await p.refresh_if_stale() is False
        p.request_refresh()
        assert p.is_stale()
        t.add(json_response(200, AGENT_CONFIG))
        assert await p.refresh_if_stale() is True and not p.is_stale()
        clock.now -= 86400  # the clock went back (no RTC, before NTP): age unknown
        assert p.is_stale()

    run(scenario())


def test_refresh_if_stale_max_age_zero_and_timeout(tmp_path: Path) -> None:
    gate = threading.Event()

    class Slow(ScriptedTransport):
        def request(self, *args: Any, **kwargs: Any) -> HttpResponse:
            response = super().request(*args, **kwargs)
            if len(self.calls) > 1:  # every fetch after boot hangs
                gate.wait(10 * UNIT)
                raise TimeoutError("timed out")
            return response

    async def scenario() -> None:
        t = Slow(json_response(200, AGENT_CONFIG), json_response(200, AGENT_CONFIG))
        p = provider(tmp_path, t, config_max_age_s=0.0)
        await p.boot()
        assert p.is_stale()
        try:
            assert await p.refresh_if_stale(timeout=0.05) is False
        finally:
            gate.set()
        assert p.current is not None and p.status == "cached"

    run(scenario())


def test_take_update_without_pending_is_none(tmp_path: Path) -> None:
    p = provider(tmp_path, ScriptedTransport(json_response(200, AGENT_CONFIG)))
    run(p.boot())
    assert p.take_update() is None


def test_provider_cache_write_failure_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "st").write_text("not a directory")
    p = provider(tmp_path, ScriptedTransport(json_response(200, AGENT_CONFIG)))
    assert run(p.boot()) is not None and p.status == "online"
    assert any(
        "cannot write the agent configuration cache" in r.getMessage() for r in caplog.records
    )


def test_unexpected_transport_failure_never_escapes_boot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = ScriptedTransport(ValueError(f"Invalid header value {KEY!r}"))
    cache_for(tmp_path).save(AGENT, AGENT_CONFIG)
    p = provider(tmp_path, t)
    assert run(p.boot()) is not None
    assert (p.status, p.source) == ("cached", "cache")  # retried with backoff
    assert p.status_message.startswith("unexpected ValueError while fetching")
    # The traceback goes with the record; the log handlers (RedactFilter, as set up by
    # the CLI with the key) scrub the key from it.
    failed = [r for r in caplog.records if r.exc_info and "unexpected failure" in r.getMessage()]
    assert len(failed) == 1
    redactor = RedactFilter()
    redactor.add(KEY)
    redactor.filter(failed[0])
    text = failed[0].exc_text or ""
    assert "Traceback" in text and "ValueError" in text
    assert KEY not in text


def test_invalid_url_is_not_retried() -> None:
    sleep = FakeSleep()
    c = real_client("http://127.0.0.1:99999", sleep)
    exc = fails(PlatformError, c.fetch_agent_config())
    assert "not a valid http(s) URL" in str(exc) and sleep.delays == []


def test_from_settings_builds_real_pieces(tmp_path: Path) -> None:
    p = AgentConfigProvider.from_settings(settings_with(tmp_path))
    assert isinstance(p._client.transport, UrllibTransport)
    assert p.status == "offline" and p.current is None and p.source == "none"


def test_settings_dataclass_untouched() -> None:
    # PlatformSettings carries the key only as a Secret: repr never shows it.
    assert KEY not in repr(psettings())
    assert KEY not in repr(dataclasses.asdict(psettings()))
