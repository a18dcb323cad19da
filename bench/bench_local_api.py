"""The local API's cost to the device (issue 15).

1. **Event latency**: the daemon in this process (wall clock), the file backend on
   ``two_turns.wav`` in real time, ``start = "auto"``, the emulator on loopback, one
   events client in a thread of its own (its own event loop) that also toggles mute
   five times a second: from the daemon's state change (its state listener) to the
   client's receipt of the ``state`` event, p50 / p99 / max.
2. **Capture to wire** with 0 clients and with 8 clients (7 reading, with level meters,
   and 1 that never reads): the session's per-frame latency from the end of a captured
   frame to the end of its ``send``, p50 / p99, over the same conversation, alternated.
3. **Idle CPU and RSS**: the daemon as a process of its own with the API off and on (no
   client): see bench/idle_cost.py.

Usage: .venv/bin/python bench/bench_local_api.py [--seconds 30] [--runs 2]
       [--cost-runs 3] [--window-s 30] [--skip-cost]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from idle_cost import compare
from machine import describe
from websockets.asyncio.client import connect

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import Settings, parse_settings

AUDIO = REPO / "tests" / "data" / "audio"
RATE = 16000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def padded(tmp: Path, seconds: float) -> Path:
    with wave.open(str(AUDIO / "two_turns.wav"), "rb") as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    data = np.zeros(int(seconds * RATE), dtype="<i2")
    data[: min(len(speech), len(data))] = speech[: len(data)]
    path = tmp / "mic.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())
    return path


def settings_for(tmp: Path, emu: Emulator, mic: Path) -> Settings:
    data = {
        "device": {"id": "bench-api"},
        "platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url},
        "conversation": {"start": "auto", "inactivity_timeout_s": 0},
        "audio": {
            "backend": "file",
            "input_file": str(mic),
            "output_file": str(tmp / "out.wav"),
            "exit_at_end": True,
        },
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp / "state")},
        "local_api": {"listen": "127.0.0.1:0", "max_clients": 16},
    }
    return parse_settings(data, str(tmp / "config.toml"), env={})


class ClientThread(threading.Thread):
    """Events clients on their own event loop: ``readers`` that read (and note when each
    state event arrived), ``sleepers`` that never read; ``toggle``: one reader mutes and
    unmutes five times a second."""

    def __init__(self, port: int, readers: int, sleepers: int, toggle: bool) -> None:
        super().__init__(daemon=True)
        self.port, self.readers, self.sleepers, self.toggle = port, readers, sleepers, toggle
        self.arrivals: list[tuple[str, str, float]] = []
        self.stop = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/v1/events"
        sockets = [await connect(url + "?levels=1") for _ in range(self.readers)]
        sleepers = [await connect(url, max_queue=1) for _ in range(self.sleepers)]
        tasks = [asyncio.create_task(self._read(ws, i == 0)) for i, ws in enumerate(sockets)]
        if self.toggle and sockets:
            tasks.append(asyncio.create_task(self._toggle(sockets[0])))
        self.connected.set()
        await asyncio.to_thread(self.stop.wait)
        for task in tasks:
            task.cancel()
        for ws in [*sockets, *sleepers]:
            await ws.close()

    async def _read(self, ws: object, record: bool) -> None:
        async for message in ws:  # type: ignore[attr-defined]
            now = time.monotonic()
            event = json.loads(message)
            if record and event["type"] == "state":
                self.arrivals.append((event["previous"], event["state"], now))

    async def _toggle(self, ws: object) -> None:
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            name = "mute" if n % 2 else "unmute"
            await ws.send(json.dumps({"type": "command", "id": n, "name": name}))  # type: ignore[attr-defined]


async def conversation(
    tmp: Path, mic: Path, readers: int, sleepers: int, toggle: bool
) -> tuple[list[float], list[float]]:
    """(state-event latencies, capture-to-wire latencies) of one run."""
    async with Emulator(EmulatorConfig()) as emu:
        daemon = Daemon(settings_for(tmp, emu, mic))
        changes: list[tuple[str, str, float]] = []

        def on_state(old: DeviceState, new: DeviceState, reason: str) -> None:
            changes.append((old.value, new.value, time.monotonic()))

        daemon.state.add_listener(on_state)
        run = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.api_started.wait(), 20)
        clients = None
        if readers or sleepers:
            assert daemon.api_port is not None
            clients = ClientThread(daemon.api_port, readers, sleepers, toggle)
            clients.start()
            await asyncio.to_thread(clients.connected.wait, 10)
        assert await run == 0
        if clients is not None:
            clients.stop.set()
            clients.join(10)
    latencies = match_latencies(changes, clients.arrivals) if clients is not None else []
    wire = [x for s in daemon.sessions for x in s.stats.wire_latency_s]
    return latencies, wire


def match_latencies(
    changes: list[tuple[str, str, float]], arrivals: list[tuple[str, str, float]]
) -> list[float]:
    """Each state event that arrived, against the daemon's change it reports (in order,
    by (previous, state)): the seconds in between."""
    latencies: list[float] = []
    pending = list(changes)
    for previous, state, arrived in arrivals:
        for i, (old, new, at) in enumerate(pending):
            if (old, new) == (previous, state) and at <= arrived:
                latencies.append(arrived - at)
                del pending[: i + 1]
                break
    return latencies


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {pct(values, 50) * 1000:.2f} ms, p99 {pct(values, 99) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms (n={len(values)})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--cost-runs", type=int, default=3)
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--skip-cost", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(describe())
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        mic = padded(tmp, args.seconds)
        events, _ = asyncio.run(conversation(tmp, mic, 1, 0, toggle=True))
        print(f"\n1. state change -> event at the client (loopback, own thread): {ms(events)}")
        wire: dict[str, list[float]] = {"0 clients": [], "8 clients (1 never reads)": []}
        for _ in range(args.runs):
            wire["0 clients"] += asyncio.run(conversation(tmp, mic, 0, 0, toggle=False))[1]
            wire["8 clients (1 never reads)"] += asyncio.run(
                conversation(tmp, mic, 7, 1, toggle=False)
            )[1]
        print(f"\n2. capture -> wire, {args.runs} runs of {args.seconds:g} s each:")
        for label, values in wire.items():
            print(f"  {label:<28} {ms(values)}")
        if not args.skip_cost:
            idle = padded(tmp, args.window_s + 10)
            variants = {
                "local API off": "[local_api]\nenabled = false",
                "local API on, no client": "",
            }
            compare(tmp, idle, variants, args.cost_runs, args.window_s, "the local API at idle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
