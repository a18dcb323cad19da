"""The user's rating of the agent: the like / dislike buttons and the local API's
``feedback`` command.

During a conversation the rating goes out as the protocol's ``feedback`` message, for the
agent's latest answer (once per answer). After the conversation ended, it rates that
conversation through ``POST /v1/convai/conversations/{id}/feedback`` — for
:data:`FEEDBACK_WINDOW_S` after the end, and until the next conversation is accepted, so
the next visitor's press never rates an old conversation. The status LED acknowledges
every accepted rating.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal

from hello_device.daemon.base import DaemonBase
from hello_device.errors import PlatformError

log = logging.getLogger(__name__)

Score = Literal["like", "dislike"]
FEEDBACK_WINDOW_S = 120.0
"""A conversation can be rated this long after it ended."""
POST_ATTEMPTS = 3
"""Attempts of the feedback request after a conversation (with backoff)."""


class FeedbackMixin(DaemonBase):
    """Ratings from the buttons and the local API."""

    _rateable: tuple[str, float] | None = None
    """(id, end time) of the last conversation that ended, until the next one opens."""
    _rated_after: str | None = None
    """The last conversation rated through the REST endpoint (once each)."""
    _background: set[asyncio.Task[None]]
    _ack_timer: asyncio.TimerHandle | None = None

    def give_feedback(self, score: Score) -> str | None:
        """Rate the agent's latest answer, or the conversation that just ended; an error
        message when there is nothing to rate (then nothing is sent)."""
        session = self.session
        if session is not None and session.conversation_id and not session.closing:
            error = session.send_feedback(score)
            if error is not None:
                return error
            log.info("feedback: %s for the agent's answer", score)
            where = "conversation"
            conversation_id = session.conversation_id
        else:
            if session is not None and session.conversation_id:  # ending right now
                target: str | None = session.conversation_id
            elif self._rateable is not None and self.clock() - self._rateable[1] <= (
                FEEDBACK_WINDOW_S
            ):
                target = self._rateable[0]
            else:
                target = None
            if target is None:
                return "no conversation to rate"
            if target == self._rated_after:
                return "this conversation is rated already"
            conversation_id, where = target, "after"
            self._rated_after = target
            log.info("feedback: %s for conversation %s", score, conversation_id)
            self._spawn(self._post_feedback(conversation_id, score))
        self.events.publish("feedback", score=score, conversation_id=conversation_id, sent=where)
        self._acknowledge(score)
        return None

    def conversation_rateable(self, conversation_id: str | None) -> None:
        """Called when a conversation ends (its id) or the next one opens (None)."""
        self._rateable = None if conversation_id is None else (conversation_id, self.clock())

    async def _post_feedback(self, conversation_id: str, score: Score) -> None:
        from hello_device.platform.management import ManagementApi

        try:
            api = ManagementApi(self.client)
            await api.send_feedback(conversation_id, score, attempts=POST_ATTEMPTS)
        except PlatformError as exc:
            log.warning("feedback for conversation %s not delivered: %s", conversation_id, exc)
        else:
            log.info("feedback for conversation %s delivered", conversation_id)

    def _acknowledge(self, score: Score) -> None:
        gpio = self.gpio
        if gpio is None:
            return
        from hello_device.errors import GpioError

        try:
            seconds = gpio.acknowledge(score)
        except GpioError as exc:
            log.warning("%s", exc)
            return
        if self._ack_timer is not None:  # a second rating within the first's flash
            self._ack_timer.cancel()
        if seconds > 0:
            self._ack_timer = asyncio.get_running_loop().call_later(seconds, gpio.resync_led)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, kept until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
