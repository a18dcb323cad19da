"""What the device shows and reports: one error at a time on the LEDs and in systemd's STATUS,
the earcons, the watchdog (fed only while audio really moves), and the once-a-second
housekeeping."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hello_device.audio.earcons import earcon
from hello_device.core.turn import (
    DeviceState,
)
from hello_device.daemon.platform_link import refusal_text
from hello_device.logs import (
    set_log_context,
)

if TYPE_CHECKING:
    pass

from hello_device.daemon.base import DaemonBase

log = logging.getLogger(__name__)


class StatusMixin(DaemonBase):
    """LEDs, STATUS, earcons, the watchdog and housekeeping."""

    def _on_audio_status(self, problem: str | None) -> None:
        self._audio_problem = problem
        self._show_error()

    def _show_error(self, conversation_error: str | None = None) -> None:
        """The one error the LEDs and STATUS show: the sound card's first (nothing works
        without it), then the platform's refusal, then the last conversation's."""
        if self._audio_problem is not None:
            text: str | None = f"audio: {self._audio_problem}"
        elif self._provider is not None and self._provider.needs_human:
            text = refusal_text(self._provider.failure)
        else:
            text = conversation_error
        if self.state.set_error(text, self.clock()) and text is not None:
            self.events.publish("error", message=text)

    async def _housekeeping(self) -> None:
        """Once a second: state timeouts, GPIO edges a bounce window may have hidden, and,
        while the platform refuses the device, a technician's edit of the configuration
        or key file (applied at once, as a reload)."""
        self._remember_watched_files()
        while not self._stop.is_set():
            await asyncio.sleep(1.0)
            self.state.tick(self.clock())
            if self.gpio is not None:
                self.gpio.resync()
            self._sample_ping_rtt()
            if self.provider.needs_human and self._watched_files_changed():
                log.info("the configuration changed on disk; reloading")
                self.request_reload()

    def _sample_ping_rtt(self) -> None:
        """The keep-alive round trip, into the metrics each time websockets measured a
        new one."""
        session = self.session
        rtt = session.ping_rtt_s if session is not None else None
        if rtt is not None and rtt != self._last_rtt and self.metrics is not None:
            self.metrics.ping_rtt.observe(rtt)
        self._last_rtt = rtt

    def _earcon(self, kind: str) -> None:
        e = self.settings.earcons
        if e.enabled and e.volume > 0:
            self.player.push(earcon(kind, self.player.rate, e.volume))  # type: ignore[arg-type]

    async def wait_state(self, state: DeviceState, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the visible state is ``state`` (raises TimeoutError)."""
        if self.state.state is state:
            return
        reached = asyncio.Event()

        def listener(old: DeviceState, new: DeviceState, reason: str) -> None:
            if new is state:
                reached.set()

        self.state.add_listener(listener)
        try:
            await asyncio.wait_for(reached.wait(), timeout)
        finally:
            self.state.remove_listener(listener)

    def _on_state(self, old: DeviceState, new: DeviceState, reason: str) -> None:
        set_log_context(DEVICE_STATE=new.value)
        log.debug("state %s -> %s (%s)", old.value, new.value, reason)
        if self.gpio is not None:
            self.gpio.show(new)
        self.notifier.status(self._status_text())
        self.events.publish("state", state=new.value, previous=old.value, reason=reason)

    def _status_text(self) -> str:
        extras = []
        session = self.session
        if self._wake_note is not None and self.state.in_conversation:
            extras.append(self._wake_note)
        if session is not None and session.conversation_id:
            extras.append(f"conversation {session.conversation_id}")
        if self.reconnects:
            extras.append(f"{self.reconnects} reconnects since boot")
        if self.state.error:
            extras.append(self.state.error)
        text = self.state.state.value
        return text + (" — " + "; ".join(extras) if extras else "")

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        last = -1
        while True:
            await asyncio.sleep(interval)
            frames = self.backend.frames_captured
            if frames != last or self._audio_problem is not None:
                # Audio advances, or the backend is handling a fault it reported (and
                # retries with backoff): alive. Stuck without knowing it: starve systemd.
                self.notifier.watchdog()
                last = frames
            else:
                log.warning("audio has not advanced for %.1f s; not feeding the watchdog", interval)
