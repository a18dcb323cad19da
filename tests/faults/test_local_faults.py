"""Faults on the device itself: its files, and a stop that races with everything else.

Filesystem faults: a state directory that is missing, that cannot be a directory, a
corrupt cache, an output file that cannot be written. As root, permission bits do not
stop a write, so "cannot write" is made with a path whose parent is a regular file; the
read-only-directory variant runs for a normal user.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig, Fault
from hello_device.testing import virtual_time
from tests.conftest import UNIT
from tests.e2e import silence_wav

from .harness import KEY, Case, capture_logs, check_logs, run_all, settings_for, speech_loop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return speech_loop(
        tmp_path_factory.mktemp("audio") / "speech.wav", shared_audio / "utterance.wav"
    )


def state_case(name: str, tmp_path: Path, speech: Path, prepare: str) -> Case:
    base = tmp_path / name
    base.mkdir(parents=True)
    state = base / "state"
    if prepare == "missing":
        state = base / "not" / "yet" / "there"
    elif prepare == "a-file":
        state.write_text("not a directory")
    elif prepare == "corrupt-cache":
        state.mkdir()
        (state / "agent-demo-agent.json").write_text('{"fetched_at": 1, "config": [')
    return Case(
        name,
        base,
        speech,
        EmulatorConfig(api_key=KEY),
        sections={"state": {"dir": str(state)}},
        recovered_after=1,
    )


def test_state_directory_faults(speech: Path, tmp_path: Path) -> None:
    """The cache cannot be written, or holds garbage: the device talks anyway."""
    cases = [
        state_case(name, tmp_path, speech, name) for name in ("missing", "a-file", "corrupt-cache")
    ]
    with capture_logs() as logs:
        virtual_time.run(run_all(cases))
    assert (tmp_path / "missing" / "not" / "yet" / "there" / "agent-demo-agent.json").is_file()
    assert any("cannot write the agent configuration cache" in m for m in logs.lines)
    # The corrupt copy was reported, then replaced by the platform's (never fatal).
    assert any("corrupt" in m and "corrupt-cache" in m for m in logs.lines)
    cached = json.loads(
        (tmp_path / "corrupt-cache" / "state" / "agent-demo-agent.json").read_text()
    )
    assert cached["agent_id"] == "demo-agent"
    check_logs(logs, [KEY])


async def _run_until_exit(settings_path: Path, speech: Path, output: Path) -> tuple[int, Daemon]:
    async with Emulator(EmulatorConfig()) as emu:
        settings = settings_for(settings_path, emu.http_url, None, speech)
        import dataclasses

        settings = dataclasses.replace(
            settings, audio=dataclasses.replace(settings.audio, output_file=str(output))
        )
        daemon = Daemon(settings, clock=asyncio.get_running_loop().time)
        code = await asyncio.wait_for(daemon.run(), 10 * UNIT)
    return code, daemon


def test_unwritable_output_is_a_clear_error_and_exit_1(speech: Path, tmp_path: Path) -> None:
    """Item 7: the daemon used to run silently, then ignore SIGTERM. Now: one line naming
    the file and why, state ``error``, exit status 1, at once."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with capture_logs() as logs:
        code, daemon = virtual_time.run(_run_until_exit(tmp_path, speech, blocker / "out.wav"))
    assert code == 1
    assert daemon.state.error is not None and "audio.output_file" in daemon.state.error
    errors = [r.getMessage() for r in logs.records if r.levelname == "ERROR"]
    assert errors == [
        f"audio: cannot write audio.output_file {blocker / 'out.wav'}: {blocker} is not a directory"
    ]
    check_logs(logs, [], allowed_errors=("cannot write audio.output_file",))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway")
def test_read_only_output_directory(speech: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with capture_logs() as logs:
            code, _ = virtual_time.run(_run_until_exit(tmp_path, speech, folder / "out.wav"))
    finally:
        folder.chmod(0o755)
    assert code == 1
    assert any("permission denied" in r.getMessage() for r in logs.records)


def test_stop_races_with_conversations_starting_and_ending(speech: Path, tmp_path: Path) -> None:
    """Item 16: a stop may come at any point of the conversation loop (here the input
    ends, or ``stop()`` is called, at seeded random moments while every conversation is
    closed right after it starts and a new one follows at once). Every run must end."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)

    async def one(i: int, when: float, by_stop: bool) -> int:
        fault = Fault("after_metadata", "close", 1000, conversations=10**6)
        short = silence_wav(tmp_path / f"run{i}" / "in.wav", when)  # ends at a random moment
        async with Emulator(EmulatorConfig(fault=fault)) as emu:
            settings = settings_for(
                tmp_path / f"run{i}",
                emu.http_url,
                None,
                speech if by_stop else short,
                conversation={"restart_delay_s": 0.0},
                audio={"exit_at_end": not by_stop},
                platform={"signed_url": "never"} if i % 2 else {},
            )
            daemon = Daemon(settings, clock=asyncio.get_running_loop().time)
            task = asyncio.create_task(daemon.run())
            if by_stop:
                await asyncio.sleep(when)  # a random moment is the point of this test
                daemon.stop()
            return await asyncio.wait_for(task, 15 * UNIT)

    async def many() -> list[int]:
        runs = [one(i, rng.uniform(0.0, 2.0), rng.random() < 0.5) for i in range(16)]
        return await asyncio.gather(*runs)

    for i in range(16):
        (tmp_path / f"run{i}").mkdir()
    with capture_logs() as logs:
        codes = virtual_time.run(many())
    assert codes == [0] * 16, f"seed {seed}: {codes}"
    check_logs(logs, [KEY])
