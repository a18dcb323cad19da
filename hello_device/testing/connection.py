"""A conversation WebSocket in memory, for the session's tests (a :class:`Socket`).

What the session sends is recorded in :attr:`FakeConnection.sent` (decoded from JSON);
the test plays the platform with :meth:`~FakeConnection.receive` (a server message),
:meth:`~FakeConnection.server_close` (a close frame with a code) and
:meth:`~FakeConnection.drop` (the connection lost without one). Closing raises, from the
session's pending ``recv``, the same ``ConnectionClosed`` exceptions websockets raises,
so the session's close-code policy runs unchanged. Not faked: the WebSocket protocol
itself (pings, fragmentation, flow control); those are tested against real servers.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from hello_device.conversation.ending import SessionEnd
from hello_device.settings import PlatformSettings

_OK_CODES = (1000, 1001)


class FakeConnection:
    """One conversation's socket; see the module docstring."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        """Every message the session sent, decoded (binary or non-JSON ones as
        ``{"_raw": ...}``)."""
        self._inbox: asyncio.Queue[str | bytes | ConnectionClosed] = asyncio.Queue()
        self._closed: ConnectionClosed | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.sent_changed = asyncio.Event()

    # -- the Socket interface ------------------------------------------------------

    async def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            decoded = json.loads(message)
        except ValueError:
            decoded = {"_raw": message}
        self.sent.append(decoded if isinstance(decoded, dict) else {"_raw": decoded})
        self.sent_changed.set()

    async def recv(self) -> str | bytes:
        if self._closed is not None:
            raise self._closed
        item = await self._inbox.get()
        if isinstance(item, ConnectionClosed):
            self._closed = item
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The device closes: recorded, and a pending ``recv`` ends."""
        if self._closed is None:
            self._set_closed(ConnectionClosedOK(None, Close(code, reason)), code, reason)

    # -- the platform's side ---------------------------------------------------------

    def receive(self, message: dict[str, Any] | str | bytes) -> None:
        """The platform sends ``message`` (a dict goes out as JSON)."""
        self._inbox.put_nowait(json.dumps(message) if isinstance(message, dict) else message)

    def metadata(
        self, conversation_id: str = "conv_fake", mic: str = "pcm_16000", agent: str = "pcm_16000"
    ) -> None:
        """The platform accepts the conversation."""
        self.receive(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": conversation_id,
                    "user_input_audio_format": mic,
                    "agent_output_audio_format": agent,
                },
            }
        )

    def agent_audio(self, pcm: bytes, event_id: int = 1) -> None:
        self.receive(
            {
                "type": "audio",
                "audio_event": {
                    "audio_base_64": base64.b64encode(pcm).decode(),
                    "event_id": event_id,
                },
            }
        )

    def server_close(self, code: int, reason: str = "") -> None:
        """The platform closes with ``code``."""
        frame = Close(code, reason)
        cls = ConnectionClosedOK if code in _OK_CODES else ConnectionClosedError
        self._set_closed(cls(frame, None), code, reason, queue=True)

    def drop(self) -> None:
        """The connection is lost without a close frame (code 1006)."""
        self._set_closed(ConnectionClosedError(None, None), 1006, "", queue=True)

    def _set_closed(
        self, exc: ConnectionClosed, code: int, reason: str, *, queue: bool = False
    ) -> None:
        self.close_code, self.close_reason = code, reason
        if queue:
            self._inbox.put_nowait(exc)
        else:
            self._closed = exc
            self._inbox.put_nowait(exc)

    # -- reading what the session sent -------------------------------------------------

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == kind]

    def audio_chunks(self) -> list[bytes]:
        """The microphone audio the session sent, one chunk per message."""
        return [
            base64.b64decode(m["user_audio_chunk"]) for m in self.sent if "user_audio_chunk" in m
        ]

    async def wait_sent(self, predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until ``predicate(self)`` holds (checked at each message the session sends)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.sent_changed.clear()
                await self.sent_changed.wait()


class FakeConnector:
    """A connector for the session that hands out prepared fake connections (or ends)."""

    def __init__(self, *results: FakeConnection | SessionEnd) -> None:
        self.results = list(results)
        self.urls: list[str] = []

    async def __call__(self, url: str, platform: PlatformSettings) -> FakeConnection | SessionEnd:
        self.urls.append(url)
        return self.results.pop(0)
