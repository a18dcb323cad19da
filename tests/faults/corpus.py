"""One valid example of every server -> client message type (PROTOCOL.md,
``agent.asyncapi.yaml`` and the variants PROTOCOL.md lists), and the fuzz seed."""

from __future__ import annotations

import base64
import json
import math
import os
import random
import struct
from typing import Any

SEED_ENV = "HELLO_DEVICE_FUZZ_SEED"
MAX_HUGE = 1 << 20
"""Longest generated string, in characters (~1 MB)."""


def fuzz_seed() -> int:
    """``HELLO_DEVICE_FUZZ_SEED`` if set (decimal or 0x hex), else a fresh random seed."""
    text = os.environ.get(SEED_ENV, "").strip()
    if text:
        return int(text, 0)
    return random.SystemRandom().randrange(1 << 32)


# ---------------------------------------------------------------------------------------
# Corpus: one valid message of every server type


def _pcm_b64(ms: int, freq: float = 440.0, rate: int = 16000) -> str:
    samples = [
        round(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(rate * ms // 1000)
    ]
    return base64.b64encode(struct.pack(f"<{len(samples)}h", *samples)).decode("ascii")


AUDIO_B64 = _pcm_b64(40)
"""40 ms of a 440 Hz tone, pcm_16000 (the emulator's default output format)."""

CORPUS: dict[str, dict[str, Any]] = {
    "conversation_initiation_metadata": {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_01jz4k8v2m6q9t3w5x7y1a0b2c",
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        },
    },
    "audio": {
        "type": "audio",
        "audio_event": {
            "audio_base_64": AUDIO_B64,
            "event_id": 3,
            "alignment": {
                "chars": ["H", "i", "!"],
                "char_start_times_ms": [0, 93, 151],
                "char_durations_ms": [93, 58, 116],
            },
        },
    },
    "audio/variant": {
        "type": "audio",
        "audio_event": {"audio_base_64": AUDIO_B64, "event_id": 4, "is_final": True},
    },
    "interruption": {"type": "interruption", "interruption_event": {"event_id": 3}},
    "ping": {"type": "ping", "ping_event": {"event_id": 5, "ping_ms": 42}},
    "ping/first": {"type": "ping", "ping_event": {"event_id": 1, "ping_ms": None}},
    "agent_response": {
        "type": "agent_response",
        "agent_response_event": {
            "agent_response": "Hi! I'm the lobby assistant. How can I help you today?",
            "event_id": 2,
        },
    },
    "agent_response_correction": {
        "type": "agent_response_correction",
        "agent_response_correction_event": {
            "original_agent_response": "The museum opens at nine and closes at six, and",
            "corrected_agent_response": "The museum opens at nine",
            "event_id": 3,
        },
    },
    "user_transcript": {
        "type": "user_transcript",
        "user_transcription_event": {
            "user_transcript": "When does the museum open tomorrow?",
            "event_id": 3,
        },
    },
    "user_transcript/variant": {
        "type": "user_transcript",
        "user_transcription_event": {
            "user_transcript": "Turn it down a little.",
            "event_id": 6,
            "is_final": True,
            "confidence": 0.93,
        },
    },
    "tentative_user_transcript": {
        "type": "tentative_user_transcript",
        "tentative_user_transcription_event": {
            "user_transcript": "When does the mus",
            "event_id": 3,
        },
    },
    "internal_tentative_agent_response": {
        "type": "internal_tentative_agent_response",
        "tentative_agent_response_internal_event": {
            "tentative_agent_response": "The museum opens at"
        },
    },
    "client_tool_call": {
        "type": "client_tool_call",
        "client_tool_call": {
            "tool_name": "set_volume",
            "tool_call_id": "toolu_01HqNvD8k2VxTgZ7pY3sLw9R",
            "parameters": {"level": 0.6},
            "event_id": 7,
            "expects_response": True,
        },
    },
    "tool_call/variant": {
        "type": "tool_call",
        "tool_call_event": {
            "tool_name": "get_device_info",
            "tool_call_id": "call_8f3a2c1d",
            "parameters": {},
            "event_id": 8,
        },
    },
    "vad_score": {"type": "vad_score", "vad_score_event": {"vad_score": 0.87}},
    "agent_chat_response_part": {
        "type": "agent_chat_response_part",
        "text_response_part": {"text": "The museum opens", "type": "delta", "event_id": 4},
    },
    "agent_chat_response_part/start": {
        "type": "agent_chat_response_part",
        "text_response_part": {"text": "", "type": "start", "event_id": 4},
    },
    "error": {
        "type": "error",
        "error_event": {
            "code": 1002,
            "message": "LLM response took over 20 seconds",
            "error_type": "llm_timeout",
            "reason": "The agent took too long to answer",
            "debug_message": "openai: read timeout after 20.0s",
            "details": {"model": "gpt-4o-mini", "attempts": 2},
        },
    },
    "error/variant": {
        "type": "error",
        "code": 1008,
        "message": "Override of first_message is not allowed for this agent",
    },
    "pong/variant": {"type": "pong", "event_id": 9},
    # Types of the contract that a device has no use for (debug-logged, ignored).
    "agent_reasoning_response_part": {
        "type": "agent_reasoning_response_part",
        "reasoning_response_part": {
            "text": "The user asks about opening hours; check the calendar.",
            "type": "delta",
            "event_id": "evt_reason_5",
        },
    },
    "rich_content": {
        "type": "rich_content",
        "rich_content": {
            "rich_content_id": "rc_17",
            "component": "item_card",
            "props": {"title": "Museum", "subtitle": "Open 9:00-18:00", "image_url": None},
            "event_id": 5,
        },
    },
    "agent_tool_request": {
        "type": "agent_tool_request",
        "agent_tool_request": {
            "tool_name": "opening_hours",
            "tool_call_id": "call_oh_1",
            "tool_type": "webhook",
            "event_id": 5,
        },
    },
    "agent_tool_response": {
        "type": "agent_tool_response",
        "agent_tool_response": {
            "tool_name": "opening_hours",
            "tool_call_id": "call_oh_1",
            "tool_type": "webhook",
            "is_error": False,
            "is_called": True,
            "event_id": 5,
        },
    },
    "agent_tool_response_full_payload": {
        "type": "agent_tool_response_full_payload",
        "agent_tool_response_full_payload": {
            "tool_name": "opening_hours",
            "tool_call_id": "call_oh_1",
            "tool_type": "webhook",
            "is_error": False,
            "is_blocked": False,
            "is_called": True,
            "event_id": 5,
            "full_tool_result": '{"open":"09:00","close":"18:00"}',
            "truncated": False,
        },
    },
    "mcp_tool_call": {
        "type": "mcp_tool_call",
        "mcp_tool_call": {
            "service_id": "svc_calendar",
            "tool_call_id": "mcp_call_3",
            "tool_name": "list_events",
            "tool_description": "List calendar events",
            "parameters": {"day": "2025-06-01"},
            "timestamp": "2025-06-01T09:30:00Z",
            "state": "success",
            "result": [{"type": "text", "text": "No events"}],
        },
    },
    "mcp_connection_status": {
        "type": "mcp_connection_status",
        "mcp_connection_status": {
            "integrations": [
                {
                    "integration_id": "int_1",
                    "integration_type": "mcp_server",
                    "is_connected": True,
                    "tool_count": 3,
                }
            ]
        },
    },
    "context_usage": {
        "type": "context_usage",
        "context_usage_event": {
            "event_id": 6,
            "model": "gpt-4o-mini",
            "context_tokens": 1834,
            "context_limit_tokens": 128000,
        },
    },
    "asr_initiation_metadata": {
        "type": "asr_initiation_metadata",
        "asr_initiation_metadata_event": {"language": "en", "model": "scribe_v1"},
    },
    "guardrail_triggered": {"type": "guardrail_triggered"},
    "internal_turn_probability": {
        "type": "internal_turn_probability",
        "turn_probability_internal_event": {"turn_probability": 0.42},
    },
    "agent_typing": {
        "type": "agent_typing",
        "agent_typing_event": {"is_typing": True, "duration_ms": 1500},
    },
    "external_agent_connected": {
        "type": "external_agent_connected",
        "external_agent_connected_event": {},
    },
    "external_agent_disconnected": {
        "type": "external_agent_disconnected",
        "external_agent_disconnected_event": {},
    },
}

SERVER_TYPES = frozenset(message["type"] for message in CORPUS.values())

DEVICE_TYPES = frozenset(
    {
        "conversation_initiation_metadata",
        "audio",
        "interruption",
        "ping",
        "pong",
        "agent_response",
        "agent_response_correction",
        "user_transcript",
        "tentative_user_transcript",
        "internal_tentative_agent_response",
        "agent_chat_response_part",
        "client_tool_call",
        "tool_call",
        "vad_score",
        "error",
    }
)
"""Types the device parses (PROTOCOL.md's table and variants); the others of the
contract are ignored. Mutations start from these three times as often."""


def valid_ping(event_id: int) -> str:
    return json.dumps({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 12}})


def valid_audio(event_id: int) -> str:
    return json.dumps(
        {"type": "audio", "audio_event": {"audio_base_64": AUDIO_B64, "event_id": event_id}}
    )


def user_transcript(text: str) -> str:
    return json.dumps(
        {"type": "user_transcript", "user_transcription_event": {"user_transcript": text}}
    )
