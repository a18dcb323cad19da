"""Server messages for the protocol tests, built the way the platform sends them."""

from __future__ import annotations

import base64
import json
from typing import Any

from hello_device.core.protocol import (
    ClientProtocol,
    Event,
)

PCM = bytes(range(256)) * 4
B64 = base64.b64encode(PCM).decode()
ALIGNMENT = {"chars": ["h", "i"], "char_start_times_ms": [0, 50], "char_durations_ms": [50, 50]}
LOGGER = "hello_device.core.protocol.client"


def one(proto: ClientProtocol, message: object) -> Event:
    """Feed one message (a dict is JSON-encoded first) and return its single event."""
    text = message if isinstance(message, str) else json.dumps(message)
    events = proto.receive_text(text)
    assert len(events) == 1
    return events[0]


def audio(event_id: object, payload: str = B64) -> dict[str, Any]:
    return {"type": "audio", "audio_event": {"audio_base_64": payload, "event_id": event_id}}


def interruption(event_id: object) -> dict[str, Any]:
    return {"type": "interruption", "interruption_event": {"event_id": event_id}}


def metadata(conversation_id: str = "conv_1") -> dict[str, Any]:
    return {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": conversation_id,
            "agent_output_audio_format": "pcm_24000",
            "user_input_audio_format": "ulaw_8000",
        },
    }


def tool_call(kind: str, key: str, **extra: object) -> dict[str, Any]:
    body = {"tool_name": "set_volume", "tool_call_id": "t1", "parameters": {"level": 3}}
    return {"type": kind, key: body | extra}
