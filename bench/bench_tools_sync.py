"""What ``hello-device tools sync`` costs against the loopback emulator: requests and
time of a first sync (everything declared and attached) and of the runs after it (nothing
to change), median over ``--runs`` fresh emulators.

    .venv/bin/python bench/bench_tools_sync.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe

from hello_device.conversation.tool_specs import DEVICE_TOOLS
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.platform.client import PlatformClient
from hello_device.platform.management import ManagementApi
from hello_device.platform.tool_sync import sync_tools
from hello_device.settings import PlatformSettings, Secret

KEY = "sk_bench_0123456789"


async def one_emulator() -> list[tuple[int, int, float]]:
    """(changes, requests, ms) of a first and a second sync."""
    found = []
    async with Emulator(EmulatorConfig(api_key=KEY)) as emu:
        settings = PlatformSettings(
            agent_id=emu.config.agent_id, api_base_url=emu.http_url, api_key=Secret(KEY)
        )
        for _ in range(2):
            before = len(emu.rest_requests)
            started = time.perf_counter()
            report = await sync_tools(ManagementApi(PlatformClient(settings)), DEVICE_TOOLS)
            ms = (time.perf_counter() - started) * 1000
            found.append((len(report.changes), len(emu.rest_requests) - before, ms))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(describe())
    runs = [asyncio.run(one_emulator()) for _ in range(args.runs)]
    print(f"{len(DEVICE_TOOLS)} device tools, {args.runs} fresh emulators")
    for index, name in ((0, "first sync"), (1, "second sync")):
        changes = {run[index][0] for run in runs}
        requests = {run[index][1] for run in runs}
        ms = statistics.median(run[index][2] for run in runs)
        print(f"{name}: changes {sorted(changes)}, requests {sorted(requests)}, median {ms:.1f} ms")


if __name__ == "__main__":
    main()
