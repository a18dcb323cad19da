"""The microphone's hot path onto the WebSocket: one masked text frame per audio frame.

websockets builds a frame in several Python layers (``Protocol.send_text`` makes a
``Frame``, ``Frame.serialize`` asks the kernel for four random bytes with a
``getrandom`` call, ``Connection.send_data`` drains a list); at 50 frames a second on a
small board each layer counts. :class:`AudioFrameWriter` does the same job for the one
message the device sends all the time, the microphone chunk, in a few operations: the
RFC 6455 client frame is header + masking key + masked payload, written straight to the
connection's transport (plain or TLS) on the caller's turn of the event loop.

It writes only when that is exactly what websockets would have written: the connection
is a client's, open, uncompressed, not in the middle of a fragmented message, and
websockets has nothing of its own waiting to be written. Otherwise :meth:`write` returns
False and the caller falls back to websockets' own path, so ordering with control frames
(pongs, close) and every other message is kept.

Masking keys come from ``os.urandom`` as RFC 6455 section 5.3 asks (a strong source of
entropy, unpredictable per frame), fetched 4 KiB at a time instead of once per frame.
"""

from __future__ import annotations

import os
from typing import Final

from websockets.asyncio.client import ClientConnection
from websockets.protocol import CLIENT, State

try:  # websockets' C helper (always built for the platforms we ship wheels for)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python fallback
    from websockets.utils import apply_mask

__all__ = ["AudioFrameWriter", "MaskPool", "text_frame"]

_POOL_BYTES: Final = 4096


class MaskPool:
    """Four-byte masking keys from ``os.urandom``, fetched in blocks."""

    def __init__(self, block: int = _POOL_BYTES) -> None:
        if block < 4 or block % 4:
            raise ValueError(f"block must be a positive multiple of 4, not {block}")
        self._block = block
        self._pool = b""
        self._pos = block

    def next(self) -> bytes:
        pos = self._pos
        if pos >= self._block:
            self._pool = os.urandom(self._block)
            pos = 0
        self._pos = pos + 4
        return self._pool[pos : pos + 4]


def text_frame(payload: bytes, mask: bytes) -> bytes:
    """One final, masked text frame (RFC 6455 section 5.2) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        header = b"\x81\xff" + n.to_bytes(8, "big")
    return header + mask + apply_mask(payload, mask)


class AudioFrameWriter:
    """Writes text frames for one websockets client connection (see the module doc)."""

    def __init__(self, ws: ClientConnection, masks: MaskPool | None = None) -> None:
        self._ws = ws
        self._protocol = ws.protocol
        self._masks = masks or MaskPool()
        # The sans-I/O attributes this relies on; a websockets release without them
        # leaves every frame to websockets' own path (slower, never wrong).
        self.enabled = isinstance(getattr(self._protocol, "writes", None), list) and all(
            hasattr(self._protocol, name)
            for name in ("expect_continuation_frame", "extensions", "side", "state")
        )

    def write(self, payload: bytes) -> bool:
        """Write ``payload`` (UTF-8 JSON) as one text frame now; False: use ``ws.send``.

        Raises ``OSError`` when the transport fails at once (a broken socket); the
        connection's receive side then notices and reports the close.
        """
        protocol = self._protocol
        if (
            not self.enabled
            or protocol.state is not State.OPEN
            or protocol.writes
            or protocol.expect_continuation_frame
            or protocol.extensions
            or protocol.side is not CLIENT
        ):
            return False
        self._ws.transport.write(text_frame(payload, self._masks.next()))
        return True
