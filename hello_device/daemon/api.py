"""The daemon's side of the local API: its snapshot, its commands (run through the same
methods as the button and the mute switch), and starting the server after READY (aiohttp
is imported only then, and only when the API is enabled)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any

from hello_device import __version__
from hello_device.daemon.base import DaemonBase
from hello_device.local_api.commands import Command

if TYPE_CHECKING:
    from hello_device.fleet.mqtt import MqttBridge
    from hello_device.local_api.server import LocalApiServer

log = logging.getLogger(__name__)


class ApiMixin(DaemonBase):
    """What the local API reads and asks of the daemon."""

    _api_server: LocalApiServer | None = None
    mqtt: MqttBridge | None = None
    """The MQTT bridge, when ``[mqtt] url`` is set."""
    api_started: asyncio.Event
    """Set once the local API serves (or could not, or is disabled)."""

    @property
    def api_port(self) -> int | None:
        """The local API's port, while it is served."""
        return self._api_server.bound_port if self._api_server is not None else None

    def api_snapshot(self) -> dict[str, Any]:
        session = self.session
        return {
            "state": self.state.state.value,
            "muted": self._muted,
            "volume": round(self.player.volume, 3),
            "conversation_id": session.conversation_id if session is not None else None,
            "device_id": self.settings.device.id,
            "agent_id": self.settings.platform.agent_id,
            "version": __version__,
            "online": not self.state.offline,
            "last_error": self.state.error,
        }

    def api_metrics(self) -> bytes | None:
        """The Prometheus text format, or None when metrics are off."""
        return self.metrics.exposition() if self.metrics is not None else None

    def metrics_values(self) -> dict[str, Any]:
        """What the metrics collector reads when it is scraped."""
        session = self.session
        provider = self._provider
        return {
            "state": self.state.state.value,
            "muted": self._muted,
            "volume": self.player.volume,
            "connected": session is not None and session.streaming,
            "reconnects": self.reconnects,
            "underruns": self.player.underruns,
            "overflows": getattr(self.backend, "overflows", 0),
            "config_fetched_at": provider.fetched_at if provider is not None else None,
        }

    def api_levels(self) -> dict[str, float]:
        return {
            "mic_dbfs": -120.0 if self._muted else round(self.pipeline.mic_dbfs, 1),
            "output_dbfs": round(self.player.level_dbfs(), 1),
        }

    def api_command(self, command: Command) -> str | None:
        """Run one command; an error message, or None when it was done."""
        name = command.name
        session = self.session
        if name == "start_conversation":
            if session is not None or self._opening:
                return "a conversation is already open"
            self.start_conversation()
        elif name == "end_conversation":
            if session is None:
                return "no conversation is open"
            self.end_conversation("ended by the local API")
        elif name in ("mute", "unmute"):
            buttons = self.gpio.buttons if self.gpio is not None else None
            if name == "unmute" and buttons is not None and buttons.muted:
                return "the mute switch is closed: open it to unmute"
            self.set_muted(name == "mute")
        elif name == "set_volume":
            self.set_volume(command.volume)
        elif name == "reload":
            self.request_reload()
        elif name == "feedback":
            return self.give_feedback("like" if command.score == "like" else "dislike")
        elif session is None:
            return "no conversation is open"
        else:
            return session.send_text(name, command.text)
        return None

    async def _start_api(self) -> None:
        """Serve the local API, if enabled; a port already taken is logged, not fatal.

        aiohttp is imported in a thread (0.15 s here, most of a second on a Pi Zero):
        the event loop, and the audio with it, go on meanwhile."""
        api = self.settings.local_api
        try:
            if not api.enabled:
                return
            name = "hello_device.local_api.server"
            module = await asyncio.to_thread(importlib.import_module, name)
            try:
                server = module.LocalApiServer(self, self.events, api, clock=self.clock)
                await server.start()
            except (OSError, ValueError) as exc:
                log.error("local API not started on %s: %s", api.listen, exc)
                return
            self._api_server = server
        finally:
            self.api_started.set()

    async def _run_mqtt(self) -> None:
        """The device on the MQTT broker, while the daemon runs (when configured)."""
        if self.settings.mqtt.url is None:
            return
        module = await asyncio.to_thread(importlib.import_module, "hello_device.fleet.mqtt")
        self.mqtt = module.MqttBridge(self, self.events, self.settings)
        await self.mqtt.run(self._stop, self.rng)

    async def _stop_api(self) -> None:
        if self._api_server is not None:
            await self._api_server.stop()
            self._api_server = None
