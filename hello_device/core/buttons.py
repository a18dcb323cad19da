"""What the talk button means (pure): button events in, conversation actions out, for the
two button modes (``toggle``, ``push_to_talk``) and the long-press setting.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)

ButtonMode: TypeAlias = Literal["toggle", "push_to_talk"]
LongPress: TypeAlias = Literal["end", "mute", "none"]

# --------------------------------------------------------------------------- button logic


class Action(enum.Enum):
    """What the app should do in answer to a button event."""

    START = "start"
    """Start a conversation."""
    END = "end"
    """End the conversation."""
    PTT_DOWN = "ptt_down"
    """Push-to-talk: let microphone audio flow (the button is held)."""
    PTT_UP = "ptt_up"
    """Push-to-talk: stop microphone audio (the button was let go)."""
    MUTE = "mute"
    """Mute the microphone (send silence) and show it."""
    UNMUTE = "unmute"
    """Unmute the microphone."""


@dataclass(frozen=True)
class ButtonLogic:
    """Pure mapping from button events to :class:`Action`\\ s; no I/O, no state.

    ``toggle`` mode: a press starts a conversation, the next press ends it. When a long
    press is configured (``long_press`` is ``"end"`` or ``"mute"``) the toggle happens on
    the *release* of a short press, because at the moment of the press nobody knows yet
    whether it will become a long one (:class:`ButtonInput` does not report the release
    that ends a long press). With ``long_press = "none"`` the toggle happens on the press.

    ``push_to_talk`` mode: a press starts a conversation if none is open and lets audio
    flow; the release stops it. Holding the button *is* talking there, so long presses
    are off in this mode (:attr:`long_press_enabled` is false).
    """

    mode: ButtonMode = "toggle"
    """``toggle`` or ``push_to_talk`` (``gpio.button_mode``)."""

    long_press: LongPress = "mute"
    """What a long press does: ``end``, ``mute`` (toggles) or ``none`` (``gpio.long_press``)."""

    def __post_init__(self) -> None:
        if self.mode not in ("toggle", "push_to_talk"):
            raise ValueError(f"button mode must be toggle or push_to_talk, not {self.mode!r}")
        if self.long_press not in ("end", "mute", "none"):
            raise ValueError(f"long_press must be end, mute or none, not {self.long_press!r}")

    @classmethod
    def from_settings(cls, settings: GpioSettings) -> ButtonLogic:
        """The logic ``[gpio]`` asks for."""
        return cls(mode=settings.button_mode, long_press=settings.long_press)

    @property
    def long_press_enabled(self) -> bool:
        """Whether long presses are detected at all (toggle mode with a long-press action)."""
        return self.mode == "toggle" and self.long_press != "none"

    def pressed(self, in_conversation: bool) -> list[Action]:
        """The button went down."""
        if self.mode == "push_to_talk":
            return [Action.PTT_DOWN] if in_conversation else [Action.START, Action.PTT_DOWN]
        if self.long_press_enabled:
            return []  # decided on release: a short press toggles, a long one does not
        return [self._toggle(in_conversation)]

    def released(self, in_conversation: bool) -> list[Action]:
        """The button came up (never called for the release that ends a long press)."""
        if self.mode == "push_to_talk":
            return [Action.PTT_UP]  # even if the conversation ended meanwhile: fail closed
        if self.long_press_enabled:
            return [self._toggle(in_conversation)]
        return []

    def long_pressed(self, in_conversation: bool, muted: bool) -> list[Action]:
        """The button has been held for ``gpio.hold_s``."""
        if not self.long_press_enabled:
            return []
        if self.long_press == "end":
            return [Action.END] if in_conversation else []
        return [Action.UNMUTE] if muted else [Action.MUTE]

    @staticmethod
    def _toggle(in_conversation: bool) -> Action:
        return Action.END if in_conversation else Action.START
