"""Conversation faults at every stage: closes of every kind, dead links, silent servers.

Each matrix runs its cases concurrently (see :mod:`tests.faults.harness`); each case
asserts no traceback, no secret in the logs, the daemon still running, recovery (a
later conversation heard the user and answered) and a bounded number of connections.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from hello_device.conversation.ending import SessionEnd
from hello_device.daemon import Daemon
from hello_device.emulator import FAULT_STAGES, Emulator, EmulatorConfig, Fault
from hello_device.testing import virtual_time
from tests.conftest import UNIT

from .harness import (
    KEY,
    Case,
    capture_logs,
    check_logs,
    run_all,
    settings_for,
    speech_loop,
    until,
)

pytestmark = pytest.mark.slow

CLOSES = [
    ("close", 1000),
    ("close", 1001),
    ("abort", None),
    ("close", 1002),
    ("close", 1008),
    ("close", 1011),
    ("close", 4000),
    ("close", 4999),
]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return speech_loop(
        tmp_path_factory.mktemp("audio") / "speech.wav", shared_audio / "utterance.wav"
    )


def secrets_of(cases: list[Case]) -> list[str]:
    tokens = [t for c in cases if c.emulator for t in c.emulator.tokens_issued]
    return [KEY, *tokens]


@pytest.mark.parametrize("stage", FAULT_STAGES)
def test_every_close_at_every_stage(stage: str, speech: Path, tmp_path: Path) -> None:
    cases = []
    for action, code in CLOSES:
        fault = Fault(stage, action, code or 1011)
        name = f"{action}{code or ''}@{stage}"
        config = EmulatorConfig(api_key=KEY, private=True, fault=fault)
        cases.append(Case(name, tmp_path / name, speech, config))
    with capture_logs() as logs:
        virtual_time.run(run_all(cases))
    for case in cases:
        assert case.code == 0, case.name
        assert case.emulator is not None and len(case.emulator.faults_injected) == 1, case.name
        # One connection per backoff step: the fault, at most one failed retry, recovery.
        assert len(case.emulator.conversations) <= 3, (case.name, case.emulator.conversations)
        # A private agent: every connection carried a fresh signature, none unsigned.
        assert len(case.emulator.tokens_issued) == len(case.emulator.conversations), case.name
    check_logs(logs, secrets_of(cases), allowed_errors=("code 1002", "code 1008"))


def test_resumable_closes_retry_within_a_second(speech: Path, tmp_path: Path) -> None:
    """1001, 1011, an abrupt close and the 4000–4999 range resume at once (the first
    retry's backoff is jittered within 1 s), unlike a policy close."""
    cases = []
    for action, code in [("close", 1011), ("close", 4001), ("abort", None), ("close", 1001)]:
        name = f"{action}{code or ''}"
        config = EmulatorConfig(fault=Fault("after_metadata", action, code or 1011))
        cases.append(Case(name, tmp_path / name, speech, config))
    with capture_logs() as logs:
        virtual_time.run(run_all(cases))
    for case in cases:
        assert case.daemon is not None
        ended = case.daemon.ended[0]
        assert ended.resumable, (case.name, ended)
        assert case.daemon.reconnects >= 1
        record = case.emulator.conversations if case.emulator else []
        gap = (
            record[1].chunk_arrivals[0] - record[0].chunk_arrivals[-1]
            if record[0].chunk_arrivals
            else 0
        )
        assert gap < 2.0 * UNIT, (case.name, gap)  # backoff ≤ 1 s plus connecting
    check_logs(logs, [KEY])


@pytest.mark.parametrize("stage", FAULT_STAGES)
def test_half_open_link_is_noticed_and_resumed(stage: str, speech: Path, tmp_path: Path) -> None:
    """The platform stops reading and sending, TCP stays up: the pings go unanswered,
    the link is declared dead and the conversation resumes as after an abrupt close."""
    config = EmulatorConfig(fault=Fault(stage, "half_open"))
    case = Case(f"half_open@{stage}", tmp_path, speech, config)
    with capture_logs() as logs:
        virtual_time.run(run_all([case]))
    assert case.daemon is not None
    first = case.daemon.ended[0]
    assert first.resumable and first.code is None, first
    check_logs(logs, [KEY])


def test_metadata_that_never_comes(speech: Path, tmp_path: Path) -> None:
    config = EmulatorConfig(fault=Fault("before_metadata", "silence"))
    case = Case("no-metadata", tmp_path, speech, config)
    with capture_logs() as logs:
        virtual_time.run(run_all([case]))
    assert case.daemon is not None
    first = case.daemon.ended[0]
    assert first.resumable and "metadata" in (first.error or ""), first
    check_logs(logs, [KEY])


class BlackHole:
    """A TCP server that accepts connections and never answers (a WebSocket handshake
    that never completes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_handshake_that_never_completes(speech: Path, tmp_path: Path) -> None:
    """The WebSocket's TCP connection opens but the handshake never answers: bounded by
    the connect timeout, then retried with backoff, one connection per step."""
    hole = BlackHole()

    async def scenario() -> tuple[list[SessionEnd], int]:
        settings = settings_for(
            tmp_path,
            f"http://127.0.0.1:{hole.port}",
            f"ws://127.0.0.1:{hole.port}/v1/convai/conversation",
            speech,
            platform={"connect_timeout_s": 0.5, "signed_url": "never"},
        )
        daemon = Daemon(settings, clock=asyncio.get_running_loop().time)
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(until(daemon, lambda: len(daemon.ended) >= 3), 20 * UNIT)
            assert not task.done()
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 10 * UNIT) == 0
        return list(daemon.ended), len(hole.accepted)

    try:
        with capture_logs() as logs:
            ended, accepted = virtual_time.run(scenario())
    finally:
        hole.close()
    assert all(e.resumable and "cannot connect" in (e.error or "") for e in ended[:3]), ended
    # boot fetch (+ background retries) on REST and one connection per conversation attempt
    ws_attempts = len(ended)
    assert accepted <= ws_attempts + 3, (accepted, ws_attempts)
    check_logs(logs, [KEY])


def test_close_code_policy() -> None:
    """The policy the matrix relies on: PROTOCOL.md's codes, 4000–4999 like 1011."""
    from hello_device.conversation.ending import is_resumable

    assert [is_resumable(c) for c in (None, 1001, 1006, 1011, 4000, 4999)] == [True] * 6
    assert [is_resumable(c) for c in (1000, 1002, 1008, 3000, 5000)] == [False] * 5


def test_a_user_who_wants_to_talk_cuts_the_resume_backoff_short(tmp_path: Path) -> None:
    """Four attempts in a row closed before the platform accepted them put the next one
    4-8 s away (5.2 s here without the trigger); a trigger (the wake word, the button)
    meanwhile starts it at once. (A Retry-After would still bind.)"""
    from tests.e2e import active, run_with_emulator, silence_wav

    waited: list[float] = []

    async def during(daemon: Daemon, emu: Emulator) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(daemon.ready.wait(), 10 * UNIT)
        daemon.start_conversation()
        fourth = await emu.wait_conversation(4, timeout=30 * UNIT)
        await asyncio.wait_for(fourth.finished.wait(), 10 * UNIT)
        started = loop.time()
        daemon.start_conversation()
        await active(emu, 5)
        waited.append(loop.time() - started)

    config = EmulatorConfig(fault=Fault("before_metadata", "close", 1011, conversations=4))
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 20.0),
            config,
            during,
            conversation={"start": "button"},
        )
    )
    assert run.code == 0
    assert run.daemon.reconnects == 4
    assert waited and waited[0] < 1.0, waited  # not the 4-8 s of the fifth backoff step
