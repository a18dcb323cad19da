"""Constants of the PyAudio backend: PortAudio flags and the fault-handling timings."""

from __future__ import annotations

from typing import Final

PA_CONTINUE: Final = 0
"""``paContinue``."""
PA_INPUT_OVERFLOW: Final = 0x2
"""``paInputOverflow`` callback status flag."""
PA_OUTPUT_UNDERFLOW: Final = 0x4
"""``paOutputUnderflow`` callback status flag."""

MIN_OUTPUT_BLOCK_MS: Final = 10
MAX_OUTPUT_BLOCK_MS: Final = 50


def output_block_ms_for(output_buffer_ms: int) -> int:
    """Playback callback period for an ``audio.output_buffer_ms`` budget.

    A sample pushed into an empty queue waits up to one block for the next callback,
    then about two blocks in PortAudio's buffer, plus whatever the host adds: a quarter
    of the budget per block keeps the whole inside it. 15 ms at the default 60 ms;
    never under 10 ms (Python callbacks) nor over 50 ms.
    """
    return max(MIN_OUTPUT_BLOCK_MS, min(MAX_OUTPUT_BLOCK_MS, output_buffer_ms // 4))


STALL_TIMEOUT_S: Final = 1.0
"""A stream whose callback has not run for this long is considered dead."""
START_GRACE_S: Final = 3.0
"""How long a freshly started stream may take to deliver its first callback (sound
servers can take a few hundred milliseconds)."""
CHECK_INTERVAL_S: Final = 0.25
"""How often the streams' health is checked."""
CAPTURE_QUEUE_CHUNKS: Final = 25
"""Capture chunks (of ``frame_ms`` each) waiting for the loop before the oldest is dropped."""
BACKOFF_BASE_S: Final = 0.5
"""First reopen delay (before jitter); doubles per failed attempt."""
STABLE_S: Final = 10.0
"""Streams that ran this long reset the backoff."""
CLOSE_TIMEOUT_S: Final = 3.0
"""Longest wait for PortAudio to close the streams on exit."""
GLITCH_REPORT_S: Final = 60.0
"""At most one warning summing up underflows, overflows and drops per this period."""
