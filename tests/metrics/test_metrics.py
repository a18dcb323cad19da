"""Prometheus metrics: ``GET /metrics`` on the local API parsed with prometheus_client's
own parser while a conversation with the emulator runs, and the textfile served by a
real ``prometheus-node-exporter`` (Debian's package, started here on loopback)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator
from tests.conftest import UNIT, needs_tool
from tests.e2e import active, run_with_emulator, silence_wav
from tests.local_api.support import Api, command, next_event, run_api

pytestmark = pytest.mark.slow


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_move_as_a_conversation_runs(shared_audio: Path, tmp_path: Path) -> None:
    scraped: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        status, before = await api.get("/metrics")
        assert status == 200
        scraped.append(samples(before))
        async with api.events() as ws:
            await next_event(ws, "snapshot")
            assert (await command(ws, 1, "start_conversation"))["ok"]
            await next_event(ws, "agent_response", within_s=30)
            await next_event(ws, "state", within_s=30)  # the answer plays
            assert (await command(ws, 2, "mute"))["ok"]
            assert (await command(ws, 3, "end_conversation"))["ok"]
            await next_event(ws, "conversation_ended")
        scraped.append(samples((await api.get("/metrics"))[1]))

    run = run_api(tmp_path, shared_audio / "utterance.wav", scenario)
    assert run.code == 0
    before, after = scraped
    assert before[("hello_device_state", (("state", "idle"),))] == 1.0
    assert ("hello_device_conversations_total", (("end", "normal"),)) not in before
    assert after[("hello_device_conversations_total", (("end", "normal"),))] == 1.0
    assert after[("hello_device_capture_to_wire_seconds_count", ())] > 100
    assert after[("hello_device_response_seconds_count", ())] == 1.0
    assert after[("hello_device_muted", ())] == 1.0
    assert after[("hello_device_state", (("state", "muted"),))] == 1.0
    assert after[("hello_device_reconnects_total", ())] == 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_node_exporter_serves_the_textfile(tmp_path: Path) -> None:
    exporter_path = needs_tool("prometheus-node-exporter", "prometheus-node-exporter")
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    port = free_port()
    exporter = subprocess.Popen(
        [
            exporter_path, f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults", "--collector.textfile",
            f"--collector.textfile.directory={textdir}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    scraped: list[str] = []

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        prom = textdir / "hello_device.prom"
        for _ in range(int(100 * UNIT)):  # the writer's first pass (bounded: 10 s)
            if prom.exists():
                break
            await asyncio.sleep(0.1)
        for _ in range(int(100 * UNIT)):
            try:
                text = await asyncio.to_thread(scrape)
            except OSError:  # the exporter is still starting
                await asyncio.sleep(0.1)
                continue
            got = samples(text) if "hello_device_state" in text else {}
            if got.get(("hello_device_state", (("state", "listening"),))) == 1.0:
                scraped.append(text)  # a pass written once the conversation was open
                return
            await asyncio.sleep(0.1)

    try:
        run = asyncio.run(
            run_with_emulator(
                tmp_path,
                silence_wav(tmp_path / "s.wav", 3.0),
                during=during,
                metrics={"textfile": str(textdir / "hello_device.prom"), "interval_s": 1.0},
            )
        )
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    assert run.code == 0
    assert scraped, "node_exporter never served the daemon's metrics"
    got = samples(scraped[0])
    assert got[("hello_device_connected", ())] == 1.0
    assert got[("hello_device_state", (("state", "idle"),))] == 0.0
    # node_exporter read the file without complaint
    assert got.get(("node_textfile_scrape_error", ()), 0.0) == 0.0
    assert [p.name for p in textdir.iterdir()] == ["hello_device.prom"]  # no temporary left
