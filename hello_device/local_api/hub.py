"""Events out to local API clients: one JSON text per event, encoded once, queued per
client with a bound. Publishing never waits: a client that does not read loses its
oldest events (and is told how many with a ``lagged`` event), never slows the daemon.
Everything runs on the event loop thread."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from typing import Any

QUEUE_EVENTS = 256
"""Events kept per client that does not read (a minute of a busy conversation)."""


class Subscriber:
    """One client's queue of event texts, oldest first."""

    def __init__(self, maxlen: int = QUEUE_EVENTS) -> None:
        self.maxlen = maxlen
        self.dropped = 0
        """Events dropped since the client last read (reported as ``lagged``)."""
        self.levels = False
        """The client asked for ``levels`` events."""
        self._queue: collections.deque[str] = collections.deque()
        self._results: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Events waiting."""
        return len(self._queue)

    @property
    def unread_results(self) -> int:
        return len(self._results)

    def put_result(self, text: str) -> None:
        """A command's answer: never dropped (commands are rate-limited), sent before
        the events queued meanwhile."""
        self._results.append(text)
        self._ready.set()

    def put(self, text: str) -> None:
        if len(self._queue) >= self.maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(text)
        self._ready.set()

    async def get(self) -> str:
        """The next event text (a ``lagged`` notice first, if events were dropped)."""
        while not self._queue and not self._results:
            self._ready.clear()
            await self._ready.wait()
        if self._results:
            return self._results.popleft()
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            return json.dumps({"type": "lagged", "dropped": dropped})
        return self._queue.popleft()


class EventHub:
    """The daemon publishes here; each connected client has a :class:`Subscriber`."""

    def __init__(self, scrub: Callable[[str], str] = lambda text: text) -> None:
        self._scrub = scrub
        self._clients: set[Subscriber] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribers(self) -> list[Subscriber]:
        return list(self._clients)

    def scrub(self, text: str) -> str:
        """``text`` without any known secret (what every answer goes through)."""
        return self._scrub(text)

    def subscribe(self, maxlen: int = QUEUE_EVENTS) -> Subscriber:
        subscriber = Subscriber(maxlen)
        self._clients.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._clients.discard(subscriber)

    def encode(self, kind: str, fields: dict[str, Any]) -> str:
        """One event as the clients get it (secrets scrubbed)."""
        return self._scrub(json.dumps({"type": kind, **fields}, ensure_ascii=False))

    def publish(self, kind: str, **fields: Any) -> None:
        """An event for every client (nothing at all is done without clients)."""
        if not self._clients:
            return
        text = self.encode(kind, fields)
        for subscriber in self._clients:
            subscriber.put(text)

    def publish_levels(self, make: Callable[[], dict[str, Any]]) -> None:
        """A ``levels`` event for the clients that asked for them."""
        wanting = [s for s in self._clients if s.levels]
        if wanting:
            text = self.encode("levels", make())
            for subscriber in wanting:
                subscriber.put(text)
