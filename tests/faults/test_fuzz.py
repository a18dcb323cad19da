"""A seeded fuzzer of server -> client messages (see :mod:`tests.faults.mutate`).

The seed comes from ``HELLO_DEVICE_FUZZ_SEED`` when it is set, else it is random; every
test prints it and every assertion message carries it (with the index of the mutation
where there is one), so a failure replays with
``HELLO_DEVICE_FUZZ_SEED=<seed> pytest tests/faults/test_fuzz.py``;
``python -m tests.faults.mutate <seed> <index>`` shows one mutation.
``HELLO_DEVICE_FUZZ_SCALE=10`` multiplies the numbers of mutations for a longer hunt.

* :func:`test_protocol_survives_every_mutation`: 5,000 mutations straight into the
  sans-I/O :class:`~hello_device.core.protocol.ClientProtocol`, which must never raise, always
  answer a list of events and log only bounded single lines of UTF-8.
* :func:`test_daemon_survives_mutations_over_the_wire`: a real daemon in a conversation
  with the emulator gets 1,000 mutations on its WebSocket, with valid audio and pings in
  between; it must keep the conversation, answer every ping, log cleanly, and hold the
  next conversation normally once the platform cuts this one off (1011). A mutated tool
  call may really run a device tool (``set_volume`` to 0, say), and a mutated interruption
  with a huge id silences the rest of the conversation: both are legitimate, which is why
  recovery is judged in the next conversation, by the audio the device received.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from hello_device.core.protocol import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    ClientProtocol,
    ClientToolCall,
    ConversationMetadata,
    DroppedAudio,
    Event,
    Ignored,
    Interruption,
    Ping,
    Pong,
    ServerError,
    TentativeAgentResponse,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)
from hello_device.emulator import EmulatorConfig
from hello_device.logs import MESSAGE_MAX_CHARS
from hello_device.testing import virtual_time
from tests.conftest import UNIT

from .corpus import (
    CORPUS,
    DEVICE_TYPES,
    SEED_ENV,
    SERVER_TYPES,
    fuzz_seed,
    user_transcript,
    valid_audio,
    valid_ping,
)
from .harness import KEY, Case, capture_logs, check_logs, is_utf8, run_all, speech_loop, until
from .mutate import Mutation, mutation, mutations

SCALE_ENV = "HELLO_DEVICE_FUZZ_SCALE"
SCALE = float(os.environ.get(SCALE_ENV, "1"))
"""Multiplies the numbers of mutations, for a longer hunt on a workstation."""
PROTOCOL_MUTATIONS = round(5000 * SCALE)
WIRE_MUTATIONS = round(1000 * SCALE)
VALID_EVERY = 10
"""Over the wire, a valid audio chunk and a valid ping go out before every 10th mutation."""
PING_IDS = 900_000_000
"""Event ids of the valid pings the test sends (the emulator's own count from 1)."""

EVENT_TYPES = (
    ConversationMetadata,
    AgentAudio,
    Interruption,
    Ping,
    Pong,
    AgentResponse,
    AgentResponseCorrection,
    UserTranscript,
    TentativeUserTranscript,
    TentativeAgentResponse,
    AgentChatResponsePart,
    ClientToolCall,
    VadScore,
    ServerError,
    Ignored,
    DroppedAudio,
)


@pytest.fixture(scope="module")
def seed() -> int:
    return fuzz_seed()


@contextmanager
def seeded(prefix: str) -> Iterator[None]:
    """Every assertion message starts with the seed."""
    try:
        yield
    except AssertionError as exc:
        if prefix in str(exc):
            raise
        raise AssertionError(f"{prefix}: {exc}") from exc


def announce(seed: int) -> str:
    """Print the seed (pytest shows it with a failure, ``-s`` at once); return it as the
    prefix of every assertion message."""
    line = f"{SEED_ENV}={seed}"
    print(f"\nfuzz seed: {line}")
    return line


# ---------------------------------------------------------------------------------------
# The corpus and the mutator


EXPECTED: dict[str, type[Event]] = {
    "conversation_initiation_metadata": ConversationMetadata,
    "audio": AgentAudio,
    "interruption": Interruption,
    "ping": Ping,
    "pong": Pong,
    "agent_response": AgentResponse,
    "agent_response_correction": AgentResponseCorrection,
    "user_transcript": UserTranscript,
    "tentative_user_transcript": TentativeUserTranscript,
    "internal_tentative_agent_response": TentativeAgentResponse,
    "agent_chat_response_part": AgentChatResponsePart,
    "client_tool_call": ClientToolCall,
    "tool_call": ClientToolCall,
    "vad_score": VadScore,
    "error": ServerError,
}

CONTRACT_TYPES = {
    # PROTOCOL.md's table and agent.asyncapi.yaml's server messages ...
    "conversation_initiation_metadata",
    "audio",
    "interruption",
    "ping",
    "agent_response",
    "agent_response_correction",
    "user_transcript",
    "tentative_user_transcript",
    "internal_tentative_agent_response",
    "client_tool_call",
    "vad_score",
    "agent_chat_response_part",
    "error",
    "agent_reasoning_response_part",
    "rich_content",
    "agent_tool_request",
    "agent_tool_response",
    "agent_tool_response_full_payload",
    "mcp_tool_call",
    "mcp_connection_status",
    "context_usage",
    "asr_initiation_metadata",
    "guardrail_triggered",
    "internal_turn_probability",
    "agent_typing",
    "external_agent_connected",
    "external_agent_disconnected",
    # ... and the variants of other documentation.
    "tool_call",
    "pong",
}


def test_corpus_has_a_valid_message_of_every_server_type() -> None:
    import json

    assert SERVER_TYPES == CONTRACT_TYPES
    assert set(EXPECTED) == DEVICE_TYPES
    for name, message in CORPUS.items():
        (event,) = ClientProtocol().receive_text(json.dumps(message))
        kind = message["type"]
        if kind in DEVICE_TYPES:
            assert isinstance(event, EXPECTED[kind]), (name, event)
        else:
            assert isinstance(event, Ignored), (name, event)
            assert (event.type, event.reason) == (kind, "not used by the device"), (name, event)


def test_mutations_are_reproducible_from_seed_and_index() -> None:
    first = [mutation(11, i) for i in range(200)]
    assert [mutation(11, i) for i in reversed(range(200))] == first[::-1]
    assert [m.frame for m in first] != [mutation(12, i).frame for i in range(200)]
    assert all(m.ops for m in first)  # every one changes something


# ---------------------------------------------------------------------------------------
# Protocol level: thousands of mutations, no socket


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        taken, self.records = self.records, []
        return taken


@contextmanager
def records_of(name: str) -> Iterator[Records]:
    logger = logging.getLogger(name)
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def bad_record(record: logging.LogRecord) -> str | None:
    """Why ``record`` is not one bounded, printable line of UTF-8 (None if it is)."""
    message = record.getMessage()
    if record.exc_info is not None:
        return "a traceback"
    if len(message) > MESSAGE_MAX_CHARS:
        return f"{len(message)} characters"
    if any(c in message for c in "\n\r\x1b\u2028\u2029\u202e"):
        return "a control character"
    if not is_utf8(message):
        return "not UTF-8"
    return None


def feed(proto: ClientProtocol, m: Mutation) -> list[tuple[str, list[Event]]]:
    """The frame to the protocol as the connection would hand it; text that is not UTF-8
    also as the text a lenient decoder would make of it."""
    if isinstance(m.frame, str):
        return [("text", proto.receive_text(m.frame))]
    results = [("bytes", proto.receive_bytes(m.frame))]
    if m.not_utf8:
        results.append(("text", proto.receive_text(m.frame.decode("utf-8", "surrogateescape"))))
    return results


def test_protocol_survives_every_mutation(seed: int) -> None:
    prefix = announce(seed)
    proto = ClientProtocol()
    kinds: collections.Counter[str] = collections.Counter()
    with records_of("hello_device") as logs:
        for m in mutations(seed, PROTOCOL_MUTATIONS):
            try:
                results = feed(proto, m)
            except Exception as exc:
                pytest.fail(f"{prefix}: {m.describe()}: raised {exc!r}")
            for how, events in results:
                assert isinstance(events, list) and len(events) == 1, (
                    f"{prefix}: {m.describe()} ({how}): {events!r}"
                )
                for event in events:
                    assert isinstance(event, EVENT_TYPES), f"{prefix}: {m.describe()}: {event!r}"
                    if isinstance(event, Ignored):
                        assert len(event.excerpt) <= 120, f"{prefix}: {m.describe()}"
                    kinds[type(event).__name__] += 1
            for record in logs.take():
                problem = bad_record(record)
                assert problem is None, (
                    f"{prefix}: {m.describe()}: log record with {problem}: "
                    f"{record.getMessage()[:300]!a}"
                )
    # The mutator reaches past the parser's first checks: events of most kinds come out.
    assert kinds["Ignored"] < sum(kinds.values()) * 0.9, (prefix, kinds)
    assert len(kinds) >= 10, (prefix, kinds)
    print(f"{PROTOCOL_MUTATIONS} mutations: {dict(kinds)}")


# ---------------------------------------------------------------------------------------
# Over the wire: a real daemon, a real emulator, hundreds of mutations in a conversation


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return speech_loop(
        tmp_path_factory.mktemp("audio") / "speech.wav", shared_audio / "utterance.wav", times=4
    )


class Fuzzing:
    """What the ``during`` callback sent and saw."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.prefix = f"{SEED_ENV}={seed}"
        self.sent = 0
        self.valid = 0
        self.expected_pongs: collections.Counter[int] = collections.Counter()
        self.conversation_id: str | None = None
        self.pings_answered = 0
        self.bytes = 0
        self.seconds = 0.0

    async def __call__(self, case: Case) -> None:
        emu, daemon = case.emulator, case.daemon
        assert emu is not None and daemon is not None
        await until(daemon, lambda: daemon.session is not None and daemon.session.streaming)
        session = daemon.session
        assert session is not None
        self.conversation_id = session.conversation_id
        (record,) = [c for c in emu.conversations if c.conversation_id == session.conversation_id]

        # Once the daemon has handled this transcript, it has handled everything before it.
        sentinel = f"fuzz sentinel {self.seed}"
        heard = asyncio.Event()
        on_user_transcript = daemon.on_user_transcript

        def listen(text: str) -> None:
            on_user_transcript(text)
            if text == sentinel:
                heard.set()

        daemon.on_user_transcript = listen  # type: ignore[method-assign]

        # What the daemon must answer: every ping among the frames, as the protocol reads it.
        reference = ClientProtocol()
        started = time.monotonic()
        for m in mutations(self.seed, WIRE_MUTATIONS):
            frames: list[str | bytes] = [m.frame]
            if m.index % VALID_EVERY == 0:
                frames[:0] = [valid_audio(1_000_000 + m.index), valid_ping(PING_IDS + m.index)]
                self.valid += 2
            for frame in frames:
                parsed = (
                    reference.receive_bytes(frame)
                    if isinstance(frame, bytes)
                    else reference.receive_text(frame)
                )
                self.expected_pongs.update(e.event_id for e in parsed if isinstance(e, Ping))
                try:
                    await emu.send_raw(frame)
                except ConnectionClosed:
                    raise AssertionError(
                        f"{self.prefix}: the fuzzed conversation closed while mutation "
                        f"{m.index} went out (ended: {list(daemon.ended)[:1]}): one of the "
                        "mutations up to this one ended it, see the log"
                    ) from None
                self.bytes += len(frame)
            self.sent += 1
        await emu.send_raw(user_transcript(sentinel))
        waits = [asyncio.ensure_future(e.wait()) for e in (heard, session.done)]
        try:
            await asyncio.wait(waits, timeout=20 * UNIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        assert heard.is_set() and daemon.session is session, (
            f"{self.prefix}: the fuzzed conversation did not reach its last message "
            f"(ended: {list(daemon.ended)[:1]}); see the log for the message that ended it"
        )
        assert not record.finished.is_set(), self.prefix
        self.pings_answered = session.stats.pings
        self.seconds = time.monotonic() - started
        await emu.end_conversation(1011, "fuzzing done")


@pytest.mark.slow
def test_daemon_survives_mutations_over_the_wire(seed: int, speech: Path, tmp_path: Path) -> None:
    prefix = announce(seed)
    fuzzing = Fuzzing(seed)
    # Frequent emulator pings: answered between the mutations, recorded with their RTT.
    config = EmulatorConfig(api_key=KEY, ping_interval_s=0.05)
    case = Case("fuzz", tmp_path, speech, config)
    with seeded(prefix):
        with capture_logs() as logs:
            virtual_time.run(run_all([case], fuzzing))
        emu, daemon = case.emulator, case.daemon
        assert emu is not None and daemon is not None
        assert fuzzing.sent == WIRE_MUTATIONS
        assert case.code == 0

        # The fuzzed conversation lasted until the platform cut it off, then resumed.
        first = daemon.ended[0]
        assert first.code == 1011 and first.resumable and first.connected, first
        (record,) = [c for c in emu.conversations if c.conversation_id == fuzzing.conversation_id]

        # Every ping it got was answered: the valid ones, and the mutated ones still readable.
        pongs: collections.Counter[int] = collections.Counter(
            m["event_id"] for m in record.client_messages if m.get("type") == "pong"
        )
        missing = fuzzing.expected_pongs - pongs
        assert not missing, f"pings left unanswered: {sorted(missing)[:20]}"
        valid_pings = [PING_IDS + i for i in range(0, WIRE_MUTATIONS, VALID_EVERY)]
        assert all(i in fuzzing.expected_pongs for i in valid_pings)
        assert record.pongs, "the emulator's own pings went unanswered"

        check_logs(logs, [KEY, *emu.tokens_issued], allowed_errors=("platform error",))
    print(
        f"{fuzzing.sent} mutations and {fuzzing.valid} valid messages "
        f"({fuzzing.bytes / 1e6:.1f} MB) in {fuzzing.seconds:.1f} s in one conversation; "
        f"{fuzzing.pings_answered} pings answered; recovered in conversation "
        f"{len(emu.conversations)} after {(case.recovered_at or 0) - case.started:.1f} s"
    )
