"""The provider's pace when the platform refuses the device or asks it to wait: once a
minute after a refusal (at once on request), storms of refresh requests coalesce, a
Retry-After holds back every attempt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hello_device.platform.provider import (
    NEEDS_HUMAN_RETRY_S,
    REFRESH_SPACING_S,
)
from hello_device.testing.transport import ScriptedTransport, json_response
from tests.platform.support import (
    AGENT_CONFIG,
    FakeSleep,
    Watch,
    provider,
)

# ------------------------------------------------------------------------- provider pace


class HeldSleep(FakeSleep):
    """Returns at once for the first ``free`` sleeps, then holds each one (until the
    sleeper is woken some other way and cancels it)."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free
        self.held = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        if self.free > 0:
            self.free -= 1
            await super().__call__(delay)
            return
        self.delays.append(delay)
        self.held.set()
        await asyncio.get_running_loop().create_future()


def test_a_refused_key_is_retried_once_a_minute_and_at_once_on_request(tmp_path: Path) -> None:
    """Item 1: after a refusal, one attempt a minute at most (jittered up to 75 s), or at
    once when a human changed something (SIGHUP)."""
    sleep, watch = HeldSleep(free=2), Watch()
    refused = json_response(401, {"detail": "Invalid API key"})
    t = ScriptedTransport(refused, refused, refused)
    t.add(json_response(200, AGENT_CONFIG))

    async def scenario() -> None:
        p = provider(tmp_path, t, sleep=sleep, on_change=watch)
        await p.boot()
        assert p.needs_human
        task = asyncio.create_task(p.run_background())
        try:
            await watch.until(lambda: len(t.calls) >= 3)
            await sleep.held.wait()  # the third minute-long wait has begun
            assert len(sleep.delays) == 3
            assert all(NEEDS_HUMAN_RETRY_S <= d <= 1.25 * NEEDS_HUMAN_RETRY_S for d in sleep.delays)
            sleep.now += 10  # the technician takes ten seconds, then: SIGHUP
            p.request_refresh()
            await watch.until(lambda: not p.needs_human)
            assert len(t.calls) == 4 and len(sleep.delays) == 3  # no wait for the minute
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_refresh_requests_coalesce(tmp_path: Path) -> None:
    """Item 8: a storm of refresh requests gives one fetch in flight and one pending,
    the pending one after the spacing."""
    sleep, watch = FakeSleep(), Watch()
    v = [dict(AGENT_CONFIG, name=f"v{i}") for i in range(10)]
    t = ScriptedTransport(*[json_response(200, config) for config in v])

    async def scenario() -> None:
        p = provider(tmp_path, t, sleep=sleep, on_change=watch)
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            for _ in range(20):  # a storm: all before the loop runs again
                p.request_refresh()
            await watch.until(lambda: len(t.calls) == 2 and p.pending is not None)
            assert sleep.delays == []  # the first one goes at once
            for _ in range(20):
                p.request_refresh()
            await watch.until(lambda: len(t.calls) == 3 and not p.is_stale())
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert len(t.calls) == 3  # boot, the first request, one for the second storm
    assert sleep.delays == [pytest.approx(REFRESH_SPACING_S)]


def test_retry_after_holds_back_the_next_attempt_of_any_kind(tmp_path: Path) -> None:
    """Item 4: the background loop never asks before a Retry-After has passed, however
    long it is (it used to be capped at the backoff limit)."""
    sleep, watch = FakeSleep(), Watch()
    t = ScriptedTransport(
        json_response(429, {}, {"Retry-After": "120"}), json_response(200, AGENT_CONFIG)
    )

    async def scenario() -> None:
        p = provider(tmp_path, t, sleep=sleep, reconnect_max_backoff_s=30.0, on_change=watch)
        await p.boot()
        task = asyncio.create_task(p.run_background())
        try:
            await watch.until(lambda: p.status == "online")
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert len(t.calls) == 2 and sum(sleep.delays) >= 120.0 - 0.01, sleep.delays
