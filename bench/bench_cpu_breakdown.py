"""Where the daemon's CPU goes during a conversation, per captured frame (issue 3).

Runs the real daemon (file backend) against the emulator in a separate process, waits
until the conversation is steady, then measures for ``--seconds``:
- the whole process's CPU in percent of one core;
- the thread CPU time spent per call in the per-frame path (``Daemon.on_frame`` and the
  pieces of the socket send), measured in place, where caches are cold after each 20 ms
  sleep: much more than the same code costs in a hot ``timeit`` loop.
Also prints the floor: bare asyncio ticking at 50 Hz, with nothing to do.

Usage: .venv/bin/python bench/bench_cpu_breakdown.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_engine

import hello_device.conversation.session as session_module
from hello_device.audio.player import Player
from hello_device.core.protocol.client import ClientProtocol
from hello_device.core.turn.pipeline import FramePipeline
from hello_device.core.turn.vad import VadGate
from hello_device.daemon import Daemon
from hello_device.settings import parse_settings

COSTS: dict[str, list[float]] = {}


def timed(owner: Any, name: str, label: str) -> None:
    """Wrap ``owner.name`` to add up the thread CPU time of every call."""
    original: Callable[..., Any] = getattr(owner, name)
    COSTS[label] = [0.0, 0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            COSTS[label][0] += time.thread_time() - start
            COSTS[label][1] += 1

    setattr(owner, name, wrapper)


async def bare_ticking(seconds: float, frame_s: float = 0.02) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    start = loop.time()
    count = int(seconds / frame_s)
    state = {"i": 0}

    def tick() -> None:
        state["i"] += 1
        if state["i"] >= count:
            done.set_result(None)
        else:
            loop.call_at(start + (state["i"] + 1) * frame_s, tick)

    cpu = time.process_time()
    loop.call_at(start + frame_s, tick)
    await done
    return 100 * (time.process_time() - cpu) / seconds


async def run(seconds: float) -> None:
    floor = await bare_ticking(5.0)
    tmp = Path(tempfile.mkdtemp())
    mic = bench_engine.conversation_input(tmp / "in.wav", seconds + 4)
    proc, url = bench_engine.start_emulator("pcm_16000", "pcm_16000")
    try:
        settings = parse_settings(
            {
                "platform": {"agent_id": "demo-agent", "api_base_url": url},
                "conversation": {"start": "auto", "inactivity_timeout_s": 0},
                "audio": {
                    "backend": "file",
                    "input_file": str(mic),
                    "output_file": str(tmp / "out.wav"),
                    "exit_at_end": True,
                },
                "earcons": {"enabled": False},
                "state": {"dir": str(tmp / "state")},
            },
            "bench",
            env={},
        )
        daemon = Daemon(settings)
        timed(daemon, "on_frame", "Daemon.on_frame (all of it)")
        timed(FramePipeline, "process", "  FramePipeline.process")
        timed(VadGate, "process", "    VadGate.process")
        timed(session_module.Session, "send_frame", "  Session.send_frame (queue)")
        timed(ClientProtocol, "user_audio_bytes", "base64 + JSON (uplink task)")
        timed(session_module.Session, "flush_tail_if_idle", "  Session.flush_tail_if_idle")
        timed(Player, "read", "Player.read (file backend, per frame)")
        task = asyncio.create_task(daemon.run())
        await daemon.ready.wait()
        await asyncio.sleep(1.5)
        for entry in COSTS.values():
            entry[0], entry[1] = 0.0, 0
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        snapshot = {k: (v[0], int(v[1])) for k, v in COSTS.items()}
        await task
    finally:
        proc.terminate()
        proc.wait(5)
    print(f"bare asyncio ticking at 50 Hz (the floor): {floor:.2f} % of one core")
    print(f"whole process, steady conversation: {100 * cpu / wall:.2f} % of one core")
    print()
    print("| per-frame path | us per call | calls | % of one core |")
    print("|---|---|---|---|")
    for label, (spent, calls) in snapshot.items():
        per_call = 1e6 * spent / max(1, calls)
        print(f"| {label} | {per_call:.0f} | {calls} | {100 * spent / wall:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
