"""Prometheus metrics with the official client library, in a registry of the device's
own (not the process-wide default): served at ``GET /metrics`` by the local API and,
with ``[metrics] textfile``, written atomically for node_exporter's textfile collector.

Counters and histograms move as things happen (a few calls from the daemon); values the
daemon already keeps (state, volume, reconnects, audio faults, the configuration's age)
are read when the metrics are collected, so nothing is kept twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

STATES = ("idle", "connecting", "listening", "thinking", "speaking", "muted", "error", "offline")


class DeviceView(Protocol):
    """What the collector reads from the daemon at collection time."""

    def metrics_values(self) -> dict[str, Any]: ...


class _DaemonCollector(Collector):
    def __init__(self, view: DeviceView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        v = self.view.metrics_values()
        state = GaugeMetricFamily(
            "hello_device_state", "The visible state (1 for the current one)", labels=["state"]
        )
        for name in STATES:
            state.add_metric([name], 1.0 if v["state"] == name else 0.0)
        yield state
        yield GaugeMetricFamily(
            "hello_device_muted", "The microphone is muted", value=float(v["muted"])
        )
        yield GaugeMetricFamily("hello_device_volume", "Output volume, 0..1", value=v["volume"])
        yield GaugeMetricFamily(
            "hello_device_connected", "A conversation is open", value=float(v["connected"])
        )
        yield CounterMetricFamily(
            "hello_device_reconnects", "Cut-off conversations resumed", value=v["reconnects"]
        )
        yield CounterMetricFamily(
            "hello_device_audio_underruns", "Playback starved mid-stream", value=v["underruns"]
        )
        yield CounterMetricFamily(
            "hello_device_capture_overflows", "Microphone input overflows", value=v["overflows"]
        )
        if v["config_fetched_at"] is not None:
            yield GaugeMetricFamily(
                "hello_device_config_fetch_timestamp_seconds",
                "When the agent configuration in use was fetched (Unix time)",
                value=v["config_fetched_at"],
            )
            yield GaugeMetricFamily(
                "hello_device_config_age_seconds",
                "Age of the agent configuration in use (a cached copy grows old offline)",
                value=max(0.0, time.time() - v["config_fetched_at"]),
            )  # fmt: skip


class DeviceMetrics:
    """The device's metrics; the daemon calls the ``count_*``/``observe_*`` methods."""

    def __init__(self, view: DeviceView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.conversations = Counter(
            "hello_device_conversations",
            "Conversations held, by how they ended",
            ["end"],
            registry=r,
        )
        self.barge_ins = Counter(
            "hello_device_barge_ins", "Barge-ins (the user talked over the agent)", registry=r
        )
        self.wake_words = Counter("hello_device_wake_words", "Wake words accepted", registry=r)
        self.platform_errors = Counter(
            "hello_device_platform_errors", "Platform failures, by kind", ["kind"], registry=r
        )
        self.refused_configs = Counter(
            "hello_device_refused_configs", "Reloads refused for a bad configuration", registry=r
        )
        self.capture_to_wire = Histogram(
            "hello_device_capture_to_wire_seconds",
            "End of a captured frame to the end of its send",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.response = Histogram(
            "hello_device_response_seconds",
            "End of the user's speech to the agent's first audio",
            buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=r,
        )
        self.barge_in_reaction = Histogram(
            "hello_device_barge_in_reaction_seconds",
            "User speech onset over the agent to its silence",
            buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
            registry=r,
        )
        self.ping_rtt = Histogram(
            "hello_device_ping_rtt_seconds", "WebSocket keep-alive round trip to the platform",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r,
        )  # fmt: skip
        r.register(_DaemonCollector(view))

    def count_conversation(self, normal: bool, resumable: bool) -> None:
        """One conversation that the platform accepted: ended normally (by either
        side), cut off (resumed as a new one), or on an error."""
        end = "normal" if normal else "cut_off" if resumable else "error"
        self.conversations.labels(end).inc()

    def exposition(self) -> bytes:
        """The text format, as ``GET /metrics`` serves it."""
        return generate_latest(self.registry)


async def write_textfile(
    metrics: DeviceMetrics, path: str, interval_s: float, stop: Callable[[], bool]
) -> None:
    """Every ``interval_s``: the metrics into ``path`` (written to a temporary file and
    renamed, so node_exporter never reads half a file). An unwritable path is logged
    once per change of the error, and retried."""
    last_error: str | None = None
    while not stop():
        try:
            await asyncio.to_thread(write_to_textfile, path, metrics.registry)
            if last_error is not None:
                log.info("metrics: writing %s again", path)
            last_error = None
        except OSError as exc:
            if str(exc) != last_error:
                log.error("metrics: cannot write %s: %s", path, exc.strerror or exc)
            last_error = str(exc)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.sleep(interval_s)
