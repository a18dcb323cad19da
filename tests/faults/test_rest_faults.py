"""REST faults on the way to the management API, at boot and on the signed URL.

The device talks to a real TCP server (:class:`~tests.faults.restproxy.RestFaultProxy`)
that carries out each fault, then forwards to the emulator. Each case asserts: no
traceback, no secret in the logs, the daemon alive, a conversation that heard the user
and answered once the fault has passed, and requests spaced as the backoff and any
``Retry-After`` demand (one attempt per step: never retries stacked on retries).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from hello_device.emulator import EmulatorConfig
from tests.conftest import UNIT

from .harness import KEY, Case, capture_logs, check_logs, run_all, speech_loop, until
from .restproxy import RestFaultProxy

pytestmark = pytest.mark.slow

AGENT_PATH = "/v1/convai/agents/demo-agent"
SIGNED_PATH = "get-signed-url"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return speech_loop(
        tmp_path_factory.mktemp("audio") / "speech.wav", shared_audio / "utterance.wav"
    )


def rest_case(
    name: str, tmp_path: Path, speech: Path, path: str, kind: str, times: int, **options: Any
) -> Case:
    def setup(case: Case) -> None:
        proxy: RestFaultProxy = case.proxy
        proxy.fail(kind, times=times, only_path=path, **options)

    return Case(
        name,
        tmp_path / name,
        speech,
        EmulatorConfig(api_key=KEY, private=True),
        via_proxy=True,
        setup=setup,
        recovered_after=1,
        limit_s=40.0,
    )


BOOT_FAULTS = [
    ("503", "status", 3, {"status": 503}),
    ("500-html", "html", 2, {}),
    ("deep-json", "deep_json", 1, {}),
    ("truncated", "truncated", 2, {}),
    ("slow-body", "slow_body", 1, {}),
    ("reset", "reset", 2, {}),
    ("huge", "huge", 1, {}),
    ("redirect-other-host", "redirect_other_host", 2, {}),
]


def test_boot_faults(speech: Path, tmp_path: Path) -> None:
    """The agent configuration fails at a cold boot in every way a network can make it
    fail; the device comes up, retries one request per backoff step, and converses."""
    cases = [
        rest_case(f"boot-{name}", tmp_path, speech, AGENT_PATH, kind, times, **opts)
        for name, kind, times, opts in BOOT_FAULTS
    ]
    with capture_logs() as logs:
        asyncio.run(run_all(cases))
    for case in cases:
        proxy: RestFaultProxy = case.proxy
        faulted = [r for r in proxy.requests if r.fault]
        assert len(faulted) >= 1, case.name
        # One request per step: the agent endpoint is asked at most once more than it
        # failed before the device converses (no retry loops inside a step).
        assert proxy.count(AGENT_PATH) <= len(faulted) + 2, (case.name, proxy.requests)
        times = [r.at for r in proxy.requests if AGENT_PATH in r.path]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(g > 0.2 for g in gaps[: len(faulted)]), (case.name, gaps)
    check_logs(
        logs,
        [KEY],
        allowed_errors=("JSON", "HTML", "larger than", "redirected to", "malformed"),
    )


def test_signed_url_5xx_is_one_request_per_conversation_attempt(
    speech: Path, tmp_path: Path
) -> None:
    """Item 2 of the issue: the signed-URL endpoint fails with 5xx while the agent
    configuration works. Each conversation attempt makes exactly one signed-URL request
    (the bug made 20 in 20 s, 5 in one second), spaced by the conversation backoff."""
    case = rest_case("signed-5xx", tmp_path, speech, SIGNED_PATH, "status", 5, status=503)
    with capture_logs() as logs:
        asyncio.run(run_all([case]))
    proxy: RestFaultProxy = case.proxy
    assert case.daemon is not None
    signed = [r.at for r in proxy.requests if SIGNED_PATH in r.path]
    attempts = len(case.daemon.ended)  # the failed ones, and the one that conversed
    assert len(signed) == attempts, (len(signed), attempts)
    assert len(signed) == 6  # five failures, then the conversation
    assert not case.emulator or len(case.emulator.conversations) == 1  # never unsigned
    in_any_second = max(sum(1 for t in signed if s <= t < s + 1.0) for s in signed)
    assert in_any_second <= 2, signed
    check_logs(logs, [KEY])


@pytest.mark.parametrize("path", [AGENT_PATH, SIGNED_PATH])
def test_429_retry_after_binds_every_path(path: str, speech: Path, tmp_path: Path) -> None:
    """Item 4: a 429 with Retry-After (at a cold boot, or on the signed URL) holds back
    every later request, whichever path makes it."""
    case = rest_case("429", tmp_path, speech, path, "status", 1, status=429, retry_after=3)
    with capture_logs() as logs:
        asyncio.run(run_all([case]))
    proxy: RestFaultProxy = case.proxy
    limited = next(r for r in proxy.requests if r.fault)
    later = [r for r in proxy.requests if r.at > limited.at]
    assert later, proxy.requests
    assert min(r.at for r in later) - limited.at >= 3.0 - 0.05, [
        (r.path, r.at - limited.at) for r in later
    ]
    check_logs(logs, [KEY])


def test_deep_json_is_one_clear_line(speech: Path, tmp_path: Path) -> None:
    """Item 5: JSON nested 10,000 deep from the management API: no RecursionError, one
    line naming the problem."""
    case = rest_case("deep", tmp_path, speech, AGENT_PATH, "deep_json", 1)
    with capture_logs() as logs:
        asyncio.run(run_all([case]))
    lines = [m for m in (r.getMessage() for r in logs.records) if "nested deeper" in m]
    assert lines, logs.lines
    assert not any("RecursionError" in line for line in logs.lines)
    check_logs(logs, [KEY], allowed_errors=("nested deeper",))


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refusal_at_boot_waits_for_a_human(status: int, speech: Path, tmp_path: Path) -> None:
    """401/403 (the key) and 404 (the agent id) need a human: the device stays idle in
    ``error``, makes no further request within the window and no connection at all;
    once someone fixes it (here: the fault clears and a reload asks again), it talks."""
    case = rest_case(
        f"refused-{status}", tmp_path, speech, AGENT_PATH, "status", 10**6, status=status
    )

    async def fix_it(case: Case) -> None:
        daemon, proxy = case.daemon, case.proxy
        assert daemon is not None and case.emulator is not None
        await daemon.ready.wait()
        await until(daemon, lambda: daemon.provider.needs_human)
        assert daemon.state.state.value == "error"
        await asyncio.sleep(3.0 * UNIT)  # an observation window: the device must stay quiet
        assert proxy.count() == 1, [r.path for r in proxy.requests]
        assert case.emulator.conversations == []
        proxy.clear()
        daemon.request_reload()  # what SIGHUP does; no config file here, so just a refresh
        daemon.provider.request_refresh()

    with capture_logs() as logs:
        asyncio.run(run_all([case], during=fix_it))
    check_logs(logs, [KEY], allowed_errors=("refused the API key", "no agent with id"))
