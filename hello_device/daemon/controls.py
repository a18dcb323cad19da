"""The device's controls: the GPIO button and mute switch, and the commands every surface
(buttons, device tools, and later the local API and MQTT) goes through: mute,
push-to-talk, volume.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hello_device.core.buttons import Action

from hello_device.daemon.base import DaemonBase

log = logging.getLogger(__name__)


class ControlsMixin(DaemonBase):
    """Buttons, the mute switch, and the commands behind them."""

    def set_volume(self, value: float) -> None:
        """The output volume, 0..1 (the agent's set_volume tool and the local API)."""
        self.player.volume = value
        self.events.publish("volume", volume=round(self.player.volume, 3))

    def _open_gpio(self, loop: asyncio.AbstractEventLoop) -> None:
        g = self.settings.gpio
        pins = (g.button_pin, g.mute_pin, g.like_pin, g.dislike_pin)
        if all(pin is None for pin in pins) and g.led_type == "none":
            return
        from hello_device.errors import GpioError
        from hello_device.gpio.facade import Gpio

        try:
            self.gpio = Gpio(
                g,
                call_soon=loop.call_soon_threadsafe,
                on_press=self._button_pressed,
                on_release=self._button_released,
                on_long_press=self._button_long_pressed,
                on_mute_changed=self.set_muted,
                on_feedback=self._feedback_pressed,
            )
        except GpioError as exc:
            log.error("GPIO unavailable, running without button and LED: %s", exc)
            return
        self.gpio.show(self.state.state)

    def _feedback_pressed(self, score: Literal["like", "dislike"]) -> None:
        error = self.give_feedback(score)
        if error is not None:
            log.info("%s button: %s", score, error)

    def _button_pressed(self) -> None:
        if self.gpio is not None:
            self._run_actions(self.gpio.logic.pressed(self.session is not None))

    def _button_released(self) -> None:
        if self.gpio is not None:
            self._run_actions(self.gpio.logic.released(self.session is not None))

    def _button_long_pressed(self) -> None:
        if self.gpio is not None:
            actions = self.gpio.logic.long_pressed(self.session is not None, self._muted)
            self._run_actions(actions)

    def _run_actions(self, actions: list[Action]) -> None:
        from hello_device.core.buttons import Action

        for action in actions:
            log.debug("button: %s", action.name)
            if action is Action.START and self.session is None:
                self.start_conversation()
            elif action is Action.END:
                self.end_conversation("ended with the button")
            elif action in (Action.PTT_DOWN, Action.PTT_UP):
                self.set_push_to_talk_held(action is Action.PTT_DOWN)
            elif action in (Action.MUTE, Action.UNMUTE):
                self.set_muted(action is Action.MUTE)

    def set_muted(self, muted: bool) -> None:
        if muted == self._muted:
            return
        self._muted = muted
        self.state.set_muted(muted, self.clock())
        log.info("microphone %s", "muted" if muted else "unmuted")
        self.events.publish("muted", muted=muted)

    def set_push_to_talk_held(self, held: bool) -> None:
        self._ptt_held = held
