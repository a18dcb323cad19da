"""The device tools that need the daemon: ``get_device_status``, ``show_on_screen`` (a
``display`` event for the local API's screen apps) and ``end_conversation`` (their
schemas, as the agent sees them, are in :mod:`hello_device.conversation.tool_specs`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hello_device.conversation.session import Session
from hello_device.core.text import peer
from hello_device.daemon.feedback import FeedbackMixin

log = logging.getLogger(__name__)

END_AFTER_REPLY_MAX_S = 20.0
"""``end_conversation`` waits at most this long for the agent's reply to finish."""
STATUS_FIELDS = ("state", "volume", "muted", "online", "last_error", "conversation_id")
"""What ``get_device_status`` tells the agent (the local API's snapshot has these)."""
SCREEN_TEXT_MAX = 500
"""``show_on_screen`` shows at most this many characters."""
QUIET_S = 0.6
"""The reply counts as finished once nothing played for this long."""
REPLY_START_S = 3.0
"""A call that comes before its reply's audio waits this long for the audio to start (the
platform's speech synthesis); after that, silence means the goodbye was said already."""


class AgentToolsMixin(FeedbackMixin):
    """Registers the daemon's own tools on :attr:`tools`."""

    def _add_daemon_tools(self) -> None:
        self.tools.register("get_device_status", self._tool_device_status)
        self.tools.register("show_on_screen", self._tool_show_on_screen)
        self.tools.register("end_conversation", self._tool_end_conversation)

    def _tool_device_status(self) -> dict[str, Any]:
        """The local API's snapshot, without what identifies the device and its agent."""
        snapshot = self.api_snapshot()
        return {key: snapshot[key] for key in STATUS_FIELDS}

    def _tool_show_on_screen(self, text: str) -> str:
        shown = str(text).strip()[:SCREEN_TEXT_MAX]
        if not shown:
            raise ValueError("text is empty")
        if self.events.clients == 0:
            raise RuntimeError("no screen is connected to this device")
        self.events.publish("display", text=shown)
        return "shown on the screen"

    def _tool_end_conversation(self, reason: str = "") -> str:
        session = self.session
        if session is None:
            raise ValueError("no conversation is open")
        self._spawn(self._end_after_reply(session, peer(str(reason), 80)))
        return "the conversation ends once this reply has been played"

    async def _end_after_reply(self, session: Session, reason: str) -> None:
        """End ``session`` once the agent's reply has played: its audio started (or did
        not within :data:`REPLY_START_S`) and then stopped for :data:`QUIET_S`; bounded
        by :data:`END_AFTER_REPLY_MAX_S`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + END_AFTER_REPLY_MAX_S
        heard = self.player.playing
        quiet_since = start
        while loop.time() < deadline and self.session is session:
            now = loop.time()
            if self.player.playing:
                heard, quiet_since = True, now
            elif (heard or now - start >= REPLY_START_S) and now - quiet_since >= QUIET_S:
                break
            await asyncio.sleep(0.1)
        if self.session is session:
            log.info("the agent ended the conversation%s", f" ({reason})" if reason else "")
            self.end_conversation("ended by the agent")
