"""The turn state machine: what the device is doing, for LEDs, logs and systemd STATUS.

Pure: no clock, no threads, no I/O. Every event takes ``now`` (any monotonic seconds the
caller likes, ``time.monotonic()`` in the daemon) and listeners are called synchronously.

Two layers make up the visible state:

* the **conversation state**, driven by conversation and turn events;
* three **overlays** — muted, error, offline — that hide it while set and restore it when
  cleared. Priority: ERROR > OFFLINE > MUTED > conversation state.

Conversation transitions (any event not listed for a state is ignored: it returns
``False`` and changes nothing)::

    event                    from                          to
    -----------------------  ----------------------------  ----------
    conversation_starting    IDLE                          CONNECTING
    conversation_started     IDLE, CONNECTING              LISTENING
    wake_word                IDLE, CONNECTING              LISTENING   (heard at once;
                                                                        connects behind)
    conversation_ended       any                           IDLE
    user_speech_started      THINKING                      LISTENING   (user goes on)
    user_speech_ended        LISTENING                     THINKING    (waiting for the agent)
    agent_audio_started      CONNECTING, LISTENING,        SPEAKING
                             THINKING
    agent_audio_finished     SPEAKING                      LISTENING
    barge_in                 SPEAKING                      LISTENING
    tick                     THINKING for thinking_timeout LISTENING   (an LED never sticks)

Decisions for the odd cases:

* ``user_speech_started`` while SPEAKING stays SPEAKING: whether the user really talks
  over the agent is the barge-in detector's call, which then reports ``barge_in``.
* ``agent_audio_started`` while CONNECTING goes to SPEAKING: agent audio (a greeting)
  proves the conversation is up even if ``conversation_started`` was not seen yet. While
  IDLE it is ignored: audio outside a conversation is stale.
* ``wake_word`` shows LISTENING at once: what the user says next is kept until the
  conversation is open, so the device is listening before it is connected; the
  ``conversation_starting`` that follows is then ignored.
* ``conversation_started`` from IDLE is accepted (a caller may skip ``starting``); from a
  state inside a conversation it is ignored, as is ``conversation_starting``.
* Events keep working under an overlay: the conversation state moves underneath (and
  THINKING still times out), and becomes visible again when the overlay clears.

Each event method returns whether the conversation state (or the overlay) changed.
Listeners are called with ``(old, new, reason)`` on every change of the *visible* state,
after the change; ``since`` is the time of the last visible change. A listener that
raises does not stop the others; the first exception is re-raised once all were called
(an :class:`ExceptionGroup` if several raised).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class DeviceState(StrEnum):
    """What the device shows (one LED pattern per state); a ``str`` whose value is the
    lowercase name."""

    IDLE = "idle"
    """No conversation; waiting for a trigger."""
    CONNECTING = "connecting"
    """A conversation is being opened."""
    LISTENING = "listening"
    """In a conversation, the user's turn."""
    THINKING = "thinking"
    """The user finished; waiting for the agent's answer."""
    SPEAKING = "speaking"
    """The agent's audio is playing."""
    MUTED = "muted"
    """The microphone is muted (overlay)."""
    ERROR = "error"
    """Something needs attention (overlay)."""
    OFFLINE = "offline"
    """The platform cannot be reached (overlay)."""


Listener = Callable[[DeviceState, DeviceState, str], None]
"""Called with ``(old, new, reason)`` on every visible state change."""

_IN_CONVERSATION = frozenset(
    {DeviceState.CONNECTING, DeviceState.LISTENING, DeviceState.THINKING, DeviceState.SPEAKING}
)


_THINKING = DeviceState.THINKING


class TurnStateMachine:
    """The device's turn state; see the module docstring for the transitions.

    :param thinking_timeout_s: THINKING falls back to LISTENING after this long
        (checked by :meth:`tick`).
    :param now: the time the machine starts at (IDLE since then).
    """

    def __init__(self, thinking_timeout_s: float = 8.0, now: float = 0.0) -> None:
        if thinking_timeout_s <= 0:
            raise ValueError(f"thinking_timeout_s must be positive, not {thinking_timeout_s!r}")
        self.thinking_timeout_s = thinking_timeout_s
        self._conversation = DeviceState.IDLE
        self._conversation_since = now
        self._muted = False
        self._error: str | None = None
        self._offline = False
        self._since = now
        self._listeners: list[Listener] = []

    # -- reading -------------------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        """The visible state: ERROR > OFFLINE > MUTED > the conversation state."""
        if self._error is not None:
            return DeviceState.ERROR
        if self._offline:
            return DeviceState.OFFLINE
        if self._muted:
            return DeviceState.MUTED
        return self._conversation

    @property
    def since(self) -> float:
        """Time of the last visible change (the start time before any)."""
        return self._since

    @property
    def conversation_state(self) -> DeviceState:
        """The conversation state underneath the overlays."""
        return self._conversation

    @property
    def muted(self) -> bool:
        """The mute overlay is set."""
        return self._muted

    @property
    def error(self) -> str | None:
        """The error overlay's message, or ``None``."""
        return self._error

    @property
    def offline(self) -> bool:
        """The offline overlay is set."""
        return self._offline

    @property
    def in_conversation(self) -> bool:
        """A conversation is open or opening (the conversation state is not IDLE)."""
        return self._conversation in _IN_CONVERSATION

    # -- listeners -----------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(old, new, reason)`` on every visible change."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    # -- conversation events -------------------------------------------------------

    def conversation_starting(self, now: float) -> bool:
        """A trigger fired and the conversation is being opened."""
        return self._move({DeviceState.IDLE}, DeviceState.CONNECTING, now, "conversation starting")

    def conversation_started(self, now: float) -> bool:
        """The conversation is open: the user's turn."""
        return self._move(
            {DeviceState.IDLE, DeviceState.CONNECTING},
            DeviceState.LISTENING,
            now,
            "conversation started",
        )

    def wake_word(self, now: float) -> bool:
        """The wake word was heard: listening now, while the conversation opens."""
        return self._move(
            {DeviceState.IDLE, DeviceState.CONNECTING}, DeviceState.LISTENING, now, "wake word"
        )

    def conversation_ended(self, now: float) -> bool:
        """The conversation is over (from any state)."""
        return self._move(set(DeviceState), DeviceState.IDLE, now, "conversation ended")

    def user_speech_started(self, now: float) -> bool:
        """The local VAD confirmed user speech (THINKING goes back to LISTENING)."""
        return self._move({DeviceState.THINKING}, DeviceState.LISTENING, now, "user speaking")

    def user_speech_ended(self, now: float) -> bool:
        """The user finished: waiting for the agent (LISTENING to THINKING)."""
        return self._move({DeviceState.LISTENING}, DeviceState.THINKING, now, "user done")

    def agent_audio_started(self, now: float) -> bool:
        """Agent audio became audible."""
        return self._move(
            {DeviceState.CONNECTING, DeviceState.LISTENING, DeviceState.THINKING},
            DeviceState.SPEAKING,
            now,
            "agent speaking",
        )

    def agent_audio_finished(self, now: float) -> bool:
        """The agent's audio finished playing: the user's turn again."""
        return self._move({DeviceState.SPEAKING}, DeviceState.LISTENING, now, "agent done")

    def barge_in(self, now: float) -> bool:
        """The user talked over the agent and playback was stopped."""
        return self._move({DeviceState.SPEAKING}, DeviceState.LISTENING, now, "barge-in")

    def tick(self, now: float) -> bool:
        """Apply timeouts: THINKING for ``thinking_timeout_s`` falls back to LISTENING."""
        # Runs on every frame: the member is a module constant (an Enum attribute
        # lookup on the class costs ten times more).
        if (
            self._conversation is _THINKING
            and now - self._conversation_since >= self.thinking_timeout_s
        ):
            return self._move(
                {DeviceState.THINKING}, DeviceState.LISTENING, now, "thinking timed out"
            )
        return False

    # -- overlays ------------------------------------------------------------------

    def set_muted(self, muted: bool, now: float) -> bool:
        """Set or clear the mute overlay."""
        if muted == self._muted:
            return False
        old = self.state
        self._muted = muted
        self._changed(old, now, "muted" if muted else "unmuted")
        return True

    def set_error(self, message: str | None, now: float) -> bool:
        """Set the error overlay with a message, or clear it with ``None``.

        A new message while in error replaces the old one without a visible change.
        """
        if message == self._error:
            return False
        old = self.state
        self._error = message
        self._changed(old, now, f"error: {message}" if message is not None else "error cleared")
        return True

    def set_offline(self, offline: bool, now: float) -> bool:
        """Set or clear the offline overlay."""
        if offline == self._offline:
            return False
        old = self.state
        self._offline = offline
        self._changed(old, now, "offline" if offline else "online")
        return True

    # -- internals -----------------------------------------------------------------

    def _move(
        self, allowed: set[DeviceState], target: DeviceState, now: float, reason: str
    ) -> bool:
        if self._conversation not in allowed or self._conversation is target:
            return False
        old = self.state
        self._conversation = target
        self._conversation_since = now
        self._changed(old, now, reason)
        return True

    def _changed(self, old: DeviceState, now: float, reason: str) -> None:
        new = self.state
        if new is old:
            return
        self._since = now
        errors: list[Exception] = []
        for callback in list(self._listeners):
            try:
                callback(old, new, reason)
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("state listeners failed", errors)
