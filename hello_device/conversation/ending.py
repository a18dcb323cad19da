"""How a conversation ended, and what that means for the next one (close-code policy).

PROTOCOL.md: 1000 is the end of the conversation; 1001, 1011 and the other "try again"
codes, a connection lost without a close frame, and the application range 4000–4999
(left open by the contract, treated like 1011) mean it was cut off and resumes as a new
one; 1002 (an operational failure) and 1008 (a policy violation) are reported and not
hammered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from hello_device.core.text import peer

log = logging.getLogger(__name__)

RESUMABLE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which a conversation that was cut off resumes as a new one."""


def is_resumable(code: int | None) -> bool:
    """True for close codes after which a cut-off conversation resumes as a new one: no
    close frame at all, the standard "try again" codes, and the application range
    4000–4999, whose meaning PROTOCOL.md leaves open (treated like 1011)."""
    return code is None or code in RESUMABLE_CODES or 4000 <= code <= 4999


@dataclass
class SessionEnd:
    """How a conversation ended."""

    code: int | None
    """WebSocket close code (None: the connection was lost without a close frame, or
    never opened)."""
    reason: str = ""
    resumable: bool = False
    """True when the conversation was cut off (network, 1001, 1011) and should resume
    as a new one."""
    by_client: bool = False
    """True when this device ended it (stop, inactivity, button, maximum duration)."""
    error: str | None = None
    """The platform's error message or the connection problem, if any."""
    connected: bool = False
    """True once the platform accepted the conversation (metadata received)."""


def end_from_close(
    exc: ConnectionClosed, connected: bool, conversation_id: str | None, error: str | None
) -> SessionEnd:
    """The :class:`SessionEnd` for a closed socket (logged once, at the right level)."""
    rcvd = exc.rcvd
    code = rcvd.code if rcvd is not None else None
    reason = peer(rcvd.reason) if rcvd is not None else ""
    if code == 1000:
        log.info("the platform ended conversation %s", conversation_id)
        return SessionEnd(1000, reason, connected=connected, error=error)
    if code is None or is_resumable(code):
        what = "connection lost" if code is None else f"closed with code {code}"
        log.warning("conversation %s cut off (%s)", conversation_id, what)
        return SessionEnd(code, reason, resumable=True, connected=connected, error=error)
    explanation = {
        1002: "the platform reported an operational error",
        1008: "the platform refused a message or setting (policy)",
    }.get(code, "the platform closed the conversation")
    log.error("%s: code %d %s %s", explanation, code, peer(reason), peer(error or ""))
    return SessionEnd(code, reason, connected=connected, error=error or explanation)


def describe(exc: BaseException) -> str:
    return peer(str(exc) or type(exc).__name__, 200)
