"""Times and ages as people read them, for the CLI, the doctor and status lines."""

from __future__ import annotations

import time


def format_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 12 min``, ``2 d 4 h``; a negative age is "unknown"."""
    if seconds < 0:
        return "unknown: the clock is behind the fetch time"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def format_time(epoch: float) -> str:
    """``2026-12-06 12:46:37 UTC``; an epoch the platform cannot convert, as a number."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.0f} (epoch seconds)"
