"""A hostile platform: megabyte strings, forged log lines, control characters, floods.

Everything a server chooses reaches the log only shortened (≤ 300 characters of it, then
"…(N more)") and with control characters escaped: it can neither flood the journal nor
forge a line. Floods (thousands of pings, minutes of audio in a second) are absorbed.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from hello_device.core.text import PEER_TEXT_CHARS
from hello_device.emulator import EmulatorConfig
from hello_device.testing import virtual_time
from tests.conftest import UNIT

from .harness import KEY, Case, capture_logs, check_logs, run_all, speech_loop

pytestmark = pytest.mark.slow

FORGED = "\n2026-11-26 12:00:00,000 ERROR   hello_device.app: forged line\x1b[31m\r\u2028"
HUGE = "A" * 1_000_000


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return speech_loop(
        tmp_path_factory.mktemp("audio") / "speech.wav", shared_audio / "utterance.wav"
    )


def hostile_messages() -> list[str]:
    text = FORGED + HUGE
    return [
        json.dumps(
            {
                "type": "user_transcript",
                "user_transcription_event": {"user_transcript": text, "event_id": 1},
            }
        ),
        json.dumps(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": 2},
            }
        ),
        json.dumps(
            {
                "type": "agent_response_correction",
                "agent_response_correction_event": {
                    "original_agent_response": text,
                    "corrected_agent_response": text,
                },
            }
        ),
        json.dumps(
            {"type": "error", "error_event": {"code": 1011, "message": text, "error_type": FORGED}}
        ),
        json.dumps(
            {
                "type": "client_tool_call",
                "client_tool_call": {"tool_name": text, "tool_call_id": FORGED, "parameters": {}},
            }
        ),
        json.dumps({"type": FORGED + "x" * 10_000}),
        json.dumps(
            {
                "type": "internal_tentative_agent_response",
                "tentative_agent_response_internal_event": {"tentative_agent_response": text},
            }
        ),
        "{" + FORGED,  # not JSON, with a forged line in it
    ]


async def barrage(case: Case) -> None:
    emu = case.emulator
    assert emu is not None
    record = await emu.wait_conversation(1, timeout=10 * UNIT)
    await asyncio.wait_for(record.initiated.wait(), 10 * UNIT)
    for message in hostile_messages():
        await emu.send_raw(message)
    # Floods: thousands of pings, then five minutes of agent audio within a second.
    for event_id in range(100, 3100):
        await emu.send_raw(json.dumps({"type": "ping", "ping_event": {"event_id": event_id}}))
    chunk = base64.b64encode(bytes(3200)).decode()  # 100 ms of pcm_16000
    for _ in range(3000):
        await emu.send_raw(
            json.dumps({"type": "audio", "audio_event": {"audio_base_64": chunk, "event_id": 99}})
        )
    await emu.end_conversation(1011, "bye\nERROR forged\x1b[2J" + "é" * 40)


def test_hostile_strings_floods_and_forged_lines(speech: Path, tmp_path: Path) -> None:
    case = Case(
        "hostile", tmp_path, speech, EmulatorConfig(api_key=KEY, ping_interval_s=0), limit_s=40
    )
    with capture_logs() as logs:
        virtual_time.run(run_all([case], during=barrage))
    assert case.emulator is not None and case.daemon is not None
    first = case.emulator.conversations[0]
    assert set(range(100, 3100)) <= set(first.pong_ids)  # every ping of the flood answered
    # Five minutes of audio in a second: the excess over the playout cap was dropped.
    assert case.daemon.sessions[0].stats.audio_dropped > 0
    # One line per record, bounded; the server's own text shortened with a count.
    ours = [r for r in logs.records if not r.name.startswith("hello_device.emulator")]
    peer_lines = [r.getMessage() for r in ours if "AAAA" in r.getMessage()]
    assert peer_lines, "the hostile strings were not logged at all"
    for message in peer_lines:
        assert "more)" in message, message[:200]
        assert len(message) <= PEER_TEXT_CHARS + 200, len(message)
    forged = [r.getMessage() for r in ours if "forged" in r.getMessage()]
    assert forged and all("\\n" in m or "\\x1b" in m for m in forged), forged[:3]
    # The tool result sent back does not echo a megabyte either.
    results = first.tool_results
    assert results and all(len(json.dumps(r)) < 2000 for r in results), results[:1]
    check_logs(logs, [KEY], allowed_errors=("platform error",))
