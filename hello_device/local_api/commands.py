"""Commands of the local API: their names, their arguments, and the checks that turn
bad input into a clear error (never an exception out of the server)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_TEXT_CHARS = 2000
"""Longest ``text`` of ``user_message`` and ``contextual_update``."""

COMMANDS: dict[str, tuple[str, ...]] = {
    "start_conversation": (),
    "end_conversation": (),
    "mute": (),
    "unmute": (),
    "set_volume": ("volume",),
    "user_message": ("text",),
    "contextual_update": ("text",),
    "feedback": ("score",),
    "reload": (),
}
"""Every command and the arguments it takes."""


@dataclass(frozen=True)
class Command:
    """A checked command."""

    name: str
    volume: float = 0.0
    text: str = ""
    score: str = ""


class CommandError(ValueError):
    """The command cannot be run; the message says why (it goes back to the client)."""


def parse_command(name: object, args: dict[str, Any]) -> Command:
    """A :class:`Command` from a name and its arguments, or :class:`CommandError`."""
    if not isinstance(name, str) or name not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise CommandError(f"unknown command {str(name)[:40]!r} (known: {known})")
    allowed = COMMANDS[name]
    extra = sorted(set(args) - set(allowed))
    if extra:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no arguments"
        raise CommandError(f"{name} {takes}, not {', '.join(repr(e[:40]) for e in extra)}")
    if name == "set_volume":
        volume = args.get("volume")
        if isinstance(volume, bool) or not isinstance(volume, int | float):
            raise CommandError("set_volume needs volume, a number from 0.0 to 1.0")
        if not math.isfinite(volume) or not 0.0 <= volume <= 1.0:
            raise CommandError(f"volume {volume!r} is out of range 0.0 to 1.0")
        return Command(name, volume=float(volume))
    if name in ("user_message", "contextual_update"):
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CommandError(f"{name} needs text, a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise CommandError(f"text is {len(text)} characters; at most {MAX_TEXT_CHARS}")
        return Command(name, text=text)
    if name == "feedback":
        score = args.get("score")
        if score not in ("like", "dislike"):
            raise CommandError('feedback needs score, "like" or "dislike"')
        return Command(name, score=str(score))
    return Command(name)
