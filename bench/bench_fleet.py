"""MQTT and metrics: what they cost the device (issue 16).

A Mosquitto broker (Debian's ``mosquitto``) is started on a free loopback port.

1. **State change → MQTT message**: the daemon in this process (wall clock), the file
   backend on ``two_turns.wav`` in real time, ``start = "auto"``, the emulator; a
   subscriber in a thread of its own that also toggles mute five times a second over
   MQTT: from the daemon's state change to the subscriber's receipt of the ``state``
   event on ``<prefix>/event``, p50 / p99.
2. **Capture → wire** with MQTT on and off (the same conversation, alternated), and the
   CPU time this process spent (daemon and emulator together) over each run.
3. **Idle CPU and RSS** of the daemon as a process of its own: metrics off, metrics on,
   metrics and MQTT on (bench/idle_cost.py).
4. **The same in a conversation** (``hello-device emulator`` in a process of its own,
   ``start = "auto"``, ``two_turns.wav`` then silence): metrics off against metrics and
   MQTT on.

Usage: .venv/bin/python bench/bench_fleet.py [--seconds 30] [--runs 2] [--cost-runs 3]
       [--window-s 30] [--latency-only] [--conversation-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiomqtt
from bench_local_api import match_latencies, ms, padded
from idle_cost import compare
from machine import describe

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import Settings, parse_settings

PREFIX = "hello-device/bench-fleet"


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto")
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = tmp / "mosquitto.conf"
    # set_tcp_nodelay: the broker forwards small messages at once (docs/fleet.md)
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"set_tcp_nodelay true\nuser {os.environ.get('USER') or 'root'}\n")  # fmt: skip
    broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    """``hello-device emulator`` as a process of its own (its CPU is not counted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "hello_device", "emulator", "--port", str(port),
         "--agent-id", "demo-agent"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the emulator did not start")


def settings_for(tmp: Path, emu: Emulator, mic: Path, port: int | None) -> Settings:
    data = {
        "device": {"id": "bench-fleet"},
        "platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url},
        "conversation": {"start": "auto", "inactivity_timeout_s": 0},
        "audio": {"backend": "file", "input_file": str(mic),
                  "output_file": str(tmp / "out.wav"), "exit_at_end": True},
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp / "state")},
        "local_api": {"enabled": False},
    }  # fmt: skip
    if port is not None:
        data["mqtt"] = {"url": f"mqtt://127.0.0.1:{port}"}
    return parse_settings(data, str(tmp / "config.toml"), env={})


class Subscriber(threading.Thread):
    """Receives ``<prefix>/event`` (noting each state event's arrival) and toggles mute."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.arrivals: list[tuple[str, str, float]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(f"{PREFIX}/event")
            self.ready.set()
            toggler = asyncio.create_task(self._toggle(client))
            receiver = asyncio.create_task(self._receive(client))
            await asyncio.to_thread(self.stop.wait)
            toggler.cancel()
            receiver.cancel()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            now = time.monotonic()
            event = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            if event["type"] == "state":
                self.arrivals.append((event["previous"], event["state"], now))

    async def _toggle(self, client: aiomqtt.Client) -> None:
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            await client.publish(f"{PREFIX}/command/{'mute' if n % 2 else 'unmute'}", "{}")


async def conversation(
    tmp: Path, mic: Path, port: int | None, watch: bool
) -> tuple[list[float], list[float], float]:
    """(state → MQTT latencies, capture-to-wire latencies, CPU seconds of this process)."""
    cpu0 = time.process_time()
    async with Emulator(EmulatorConfig()) as emu:
        daemon = Daemon(settings_for(tmp, emu, mic, port))
        changes: list[tuple[str, str, float]] = []
        daemon.state.add_listener(
            lambda old, new, why: changes.append((old.value, new.value, time.monotonic()))
        )
        run = asyncio.create_task(daemon.run())
        sub = None
        if watch and port is not None:
            await asyncio.wait_for(daemon.ready.wait(), 20)
            for _ in range(400):  # bounded: 20 s
                if daemon.mqtt is not None and daemon.mqtt.connected.is_set():
                    break
                await asyncio.sleep(0.05)
            sub = Subscriber(port)
            sub.start()
            await asyncio.to_thread(sub.ready.wait, 10)
        assert await run == 0
        if sub is not None:
            sub.stop.set()
            sub.join(10)
    cpu = time.process_time() - cpu0
    latencies = match_latencies(changes, sub.arrivals) if sub is not None else []
    wire = [x for s in daemon.sessions for x in s.stats.wire_latency_s]
    return latencies, wire, cpu


def in_conversation(tmp: Path, mic: Path, base: str, port: int, runs: int, window_s: float) -> None:
    """Part 4: metrics and MQTT against neither, the daemon in a conversation."""
    emulator, url = start_emulator()
    try:
        auto = '[conversation]\nstart = "auto"\ninactivity_timeout_s = 0\n'
        variants = {
            "metrics off": base + auto + "[metrics]\nenabled = false",
            "metrics + MQTT on": base + auto + f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"',
        }
        compare(tmp, mic, variants, runs, window_s, "metrics and MQTT", platform_url=url)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--cost-runs", type=int, default=3)
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--latency-only", action="store_true", help="part 1 only")
    p.add_argument("--conversation-only", action="store_true", help="part 4 only")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(describe())
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        broker, port = start_broker(tmp)
        try:
            mic = padded(tmp, args.seconds)
            idle = padded(tmp, args.window_s + 10)
            base = "[local_api]\nenabled = false\n"
            if args.conversation_only:
                in_conversation(tmp, idle, base, port, args.cost_runs, args.window_s)
                return 0
            events, _, _ = asyncio.run(conversation(tmp, mic, port, watch=True))
            print(f"\n1. state change -> MQTT message at a subscriber (loopback): {ms(events)}")
            if args.latency_only:
                return 0
            wire: dict[str, list[float]] = {"MQTT off": [], "MQTT on": []}
            cpu_s: dict[str, list[float]] = {"MQTT off": [], "MQTT on": []}
            for _ in range(args.runs):
                for label, use in (("MQTT off", None), ("MQTT on", port)):
                    _, w, c = asyncio.run(conversation(tmp, mic, use, watch=False))
                    wire[label] += w
                    cpu_s[label].append(c)
            print(f"\n2. capture -> wire, {args.runs} runs of {args.seconds:g} s each:")
            for label, values in wire.items():
                print(f"  {label:<10} {ms(values)}; CPU of this process (daemon + emulator) "
                      f"median {statistics.median(cpu_s[label]):.2f} s a run")  # fmt: skip
            variants = {
                "metrics off": base + "[metrics]\nenabled = false",
                "metrics on": base,
                "metrics + MQTT on": base + f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"',
            }
            compare(tmp, idle, variants, args.cost_runs, args.window_s, "metrics and MQTT")
            in_conversation(tmp, idle, base, port, args.cost_runs, args.window_s)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
