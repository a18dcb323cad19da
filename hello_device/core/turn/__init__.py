"""Turn taking: the VAD gate, the barge-in detector and the turn state machine.

Everything here is pure: no asyncio, no threads, no clock reads and no I/O. Time comes in
as arguments (``now`` in seconds, ``agent_turn_ms``) or is counted in frames; audio
comes in as 16 kHz mono int16 little-endian frames of 10, 20 or 30 ms.
"""

from hello_device.core.turn.bargein import BargeInDetector
from hello_device.core.turn.state import (
    DeviceState,
    Listener,
    TurnStateMachine,
)
from hello_device.core.turn.vad import (
    SILENCE_DBFS,
    GateResult,
    VadGate,
    frame_dbfs,
)

__all__ = [
    "SILENCE_DBFS",
    "BargeInDetector",
    "DeviceState",
    "GateResult",
    "Listener",
    "TurnStateMachine",
    "VadGate",
    "frame_dbfs",
]
