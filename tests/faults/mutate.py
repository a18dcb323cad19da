"""Seeded mutations of server -> client messages, for the fuzz tests.

:data:`CORPUS` holds one valid example of every server message type of PROTOCOL.md and
``agent.asyncapi.yaml`` (and of the variants PROTOCOL.md lists), with realistic payloads.
:func:`mutation` turns ``(seed, index)`` into one mutated WebSocket frame; it is pure: the
same pair always gives the same frame, on any machine and in any order, so a failure is
replayed from the two numbers alone::

    HELLO_DEVICE_FUZZ_SEED=1234 pytest tests/faults/test_fuzz.py
    python -m tests.faults.mutate 1234 417      # show mutation 417 of seed 1234

What the mutator does, to the message tree or to its JSON text:

* structure: delete a key, null a value, swap a value's type (str, int, float, list,
  dict, bool), rename a key, an unknown or mismatched ``type``, the payload object at the
  wrong level (flattened, doubly wrapped, in a list, under another type's key);
* values: huge strings (up to ~1 MB, with control characters, newlines, ANSI escapes,
  U+2028/U+2029, bidi overrides, lone surrogates, format strings), numeric extremes
  (2**70, 4300-digit integers, too many digits, -0.0, 1e308, 1e999, NaN), empty,
  oversized and invalid base64, nesting 10,000 deep and around the 64 levels the client
  accepts;
* text: duplicated keys, truncation at a random point, flipped bits, inserted control
  characters, a byte-order mark, trailing data;
* frame: a binary frame (the JSON as bytes, random bytes, nothing), text that is not
  UTF-8, the whole message replaced by a JSON scalar or array.

Text frames are always valid Unicode without lone surrogates (they go over a real
WebSocket); text that is not UTF-8 is a ``bytes`` frame (:attr:`Mutation.not_utf8` says
so; the protocol-level test also feeds it as text decoded with ``surrogateescape``).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import random
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as is (nesting too deep for json.dumps, giant numbers)."""

    text: str


_PIECES = [
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x00",
    "\x07",
    "\x08",
    "\x1b[31m",
    "\x1b[2J\x1b[H",
    "\x1b]0;pwned\x07",
    "\x7f",
    "\x85",
    "\x9b",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200b",
    "\ufeff",
    "\ufffd",
    "\ud800",
    "\udfff",
    "\udc80",
    "é",
    "日本語",
    "🎙️",
    "%s%d%(name)s",
    "{0}{1}",
    '"',
    "\\",
    "</script>",
    "ERROR hello_device.session: forged line",
    "sk_not_a_real_key",
    " ",
    "a",
    "0",
]


def text(rng: random.Random, size: int) -> str:
    """``size`` characters: words and every kind of character a log line must not carry."""
    if size <= 0:
        return ""
    chunk: list[str] = []
    length = 0
    while length < min(size, 4096):
        piece = rng.choice(_PIECES) if rng.random() < 0.6 else chr(rng.randrange(0x20, 0x3000))
        chunk.append(piece)
        length += len(piece)
    block = "".join(chunk)
    return (block * (size // len(block) + 1))[:size]


def huge_text(rng: random.Random) -> str:
    """Log-uniform length from 1 character to ~1 MB."""
    return text(rng, int(2 ** rng.uniform(0, math.log2(MAX_HUGE))))


_DIGITS_LIMIT = 4300  # CPython's default limit on the digits of an int read from text


def numeric_extreme(rng: random.Random) -> object:
    choices: list[Callable[[], object]] = [
        lambda: 2**70,
        lambda: -(2**70),
        lambda: 2**63,
        lambda: 2**63 - 1,
        lambda: -(2**63),
        lambda: 2**53 + 1,
        lambda: -1,
        lambda: 0,
        lambda: 1e308,
        lambda: -1e308,
        lambda: 5e-324,
        lambda: -0.0,
        lambda: 0.5,
        lambda: 1e18,
        lambda: 1e19,
        lambda: float("nan"),
        lambda: float("inf"),
        lambda: float("-inf"),
        lambda: Raw("1e999"),
        lambda: Raw("-1e999"),
        lambda: Raw("1" + "0" * (_DIGITS_LIMIT - 1)),  # the longest integer accepted
        lambda: Raw("-" + "9" * _DIGITS_LIMIT),
        lambda: Raw("9" * (_DIGITS_LIMIT + 1)),  # too many digits: not JSON to Python
        lambda: Raw("1" + "0" * 400 + ".5"),
        lambda: Raw("0." + "0" * 400 + "1"),
        lambda: str(2**70),
        lambda: "-0",
        lambda: "1e3",
        lambda: "0x10",
        lambda: " 7",
        lambda: "٣",  # an Arabic-Indic digit: int() accepts it, JSON integers do not
        lambda: "9" * 19,
        lambda: rng.randrange(-(2**64), 2**64),
    ]
    return rng.choice(choices)()


def base64_value(rng: random.Random) -> object:
    def oversized() -> str:
        n = int(2 ** rng.uniform(10, math.log2(MAX_HUGE * 3 // 4)))
        return base64.b64encode(rng.randbytes(n)).decode("ascii")

    choices: list[Callable[[], object]] = [
        lambda: "",
        oversized,
        lambda: base64.b64encode(rng.randbytes(rng.randrange(1, 64) * 2 + 1)).decode(),
        lambda: "!!!!",
        lambda: "QUJDR",
        lambda: "QUJDRA",
        lambda: "QUJD\nRA==",
        lambda: " QUJDRA== ",
        lambda: "QUJDRA==QUJDRA==",
        lambda: "====",
        lambda: "-_-_",
        lambda: "QUJDRA==é",
        lambda: "data:audio/wav;base64,UklGRg==",
        lambda: AUDIO_B64[: rng.randrange(len(AUDIO_B64))],
        lambda: AUDIO_B64 + "=",
        lambda: base64.urlsafe_b64encode(rng.randbytes(300)).decode(),
        lambda: text(rng, rng.randrange(1, 200)),
        lambda: rng.randbytes(8).hex(),
    ]
    return rng.choice(choices)()


def deep(rng: random.Random) -> Raw:
    """Nesting of 10,000 levels or around the 64 the client accepts (the message itself
    adds two more)."""
    depth = rng.choice([10_000, 10_000, 61, 62, 63, 64, 65, 66, 100, 1000])
    if rng.random() < 0.5:
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def swapped(rng: random.Random, value: object) -> object:
    """``value`` as another JSON type."""
    choices: list[Callable[[], object]] = [
        lambda: str(value) if not isinstance(value, str) else text(rng, rng.randrange(0, 12)),
        lambda: rng.randrange(-1000, 1000),
        lambda: rng.random() * 10,
        lambda: [value],
        lambda: [],
        lambda: {"value": value},
        lambda: {},
        lambda: True,
        lambda: False,
        lambda: None,
    ]
    return rng.choice(choices)()


def scalar(rng: random.Random) -> object:
    choices: list[Callable[[], object]] = [
        lambda: text(rng, rng.randrange(0, 40)),
        lambda: rng.randrange(-(2**31), 2**31),
        rng.random,
        lambda: True,
        lambda: None,
        lambda: [],
        lambda: {},
        lambda: numeric_extreme(rng),
    ]
    return rng.choice(choices)()


# ---------------------------------------------------------------------------------------
# Encoding (with raw fragments and duplicated keys)


_Pairs = list[tuple[str, Any]]
_Dups = dict[int, tuple[dict[str, Any], _Pairs]]
"""id(object) -> (the object, kept alive so that its id stays its own; extra pairs)."""


def encode(value: object, ensure_ascii: bool = True, dup: _Dups | None = None) -> str:
    """JSON text of ``value``; ``Raw`` fragments as is; ``dup`` gives objects extra
    (key, value) pairs written after their own (duplicated keys)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        extra = (dup or {}).get(id(value))
        pairs = [*value.items(), *(extra[1] if extra and extra[0] is value else [])]
        return (
            "{"
            + ",".join(
                json.dumps(str(k), ensure_ascii=ensure_ascii) + ":" + encode(v, ensure_ascii, dup)
                for k, v in pairs
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(encode(v, ensure_ascii, dup) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


# ---------------------------------------------------------------------------------------
# The mutation


@dataclass(frozen=True)
class Mutation:
    seed: int
    index: int
    source: str
    """The corpus entry it started from."""
    ops: tuple[str, ...]
    frame: str | bytes
    """A text frame (valid Unicode, no lone surrogates) or a binary frame."""
    not_utf8: bool = False
    """``frame`` is bytes meant as a text frame that is not valid UTF-8."""

    def describe(self) -> str:
        kind = "binary" if isinstance(self.frame, bytes) else "text"
        size = len(self.frame)
        head = self.frame[:160]
        return (
            f"seed {self.seed} index {self.index}: {self.source} + {' + '.join(self.ops)} "
            f"({kind}, {size} {'bytes' if kind == 'binary' else 'chars'}): {head!r}"
        )


_Node = dict[str, Any] | list[Any]


def _containers(value: object, path: str = "") -> Iterator[tuple[_Node, str]]:
    """Every dict and list in the tree, with a readable path."""
    if isinstance(value, dict):
        yield value, path or "."
        for key, child in value.items():
            yield from _containers(child, f"{path}.{key}")
    elif isinstance(value, list):
        yield value, path or "."
        for i, child in enumerate(value):
            yield from _containers(child, f"{path}[{i}]")


def _slot(rng: random.Random, message: dict[str, Any]) -> tuple[_Node, Any, str] | None:
    """A random (container, key or index, path) of a non-empty container."""
    slots = [(node, path) for node, path in _containers(message) if node]
    if not slots:
        return None
    # Favour the payload object: most fields that matter live there.
    weights = [3 if path.count(".") == 1 and path != "." else 1 for _, path in slots]
    node, path = rng.choices(slots, weights)[0]
    if isinstance(node, dict):
        key: Any = rng.choice(list(node))
        return node, key, f"{path.rstrip('.')}.{key}"
    index = rng.randrange(len(node))
    return node, index, f"{path}[{index}]"


def _payload_key(message: dict[str, Any]) -> str | None:
    keys = [k for k, v in message.items() if k != "type" and isinstance(v, dict)]
    return keys[0] if keys else None


def _set(rng: random.Random, message: dict[str, Any], name: str, make: Any) -> str:
    slot = _slot(rng, message)
    if slot is None:
        message["extra"] = make(None)
        return f"{name}(.extra)"
    node, key, path = slot
    node[key] = make(node[key])
    return f"{name}({path})"


def _delete_key(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    slot = _slot(rng, message)
    if slot is None:
        return "delete_key(none)"
    node, key, path = slot
    del node[key]
    return f"delete_key({path})"


def _null(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    return _set(rng, message, "null", lambda _: None)


def _swap_type(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    return _set(rng, message, "swap_type", lambda v: swapped(rng, v))


def _huge_string(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    return _set(rng, message, "huge_string", lambda _: huge_text(rng))


def _numeric(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    return _set(rng, message, "numeric_extreme", lambda _: numeric_extreme(rng))


def _deep(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    return _set(rng, message, "deep_nesting", lambda _: deep(rng))


def _base64(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    for node, path in _containers(message):
        if isinstance(node, dict) and "audio_base_64" in node:
            node["audio_base_64"] = base64_value(rng)
            return f"base64({path}.audio_base_64)"
    return _set(rng, message, "base64", lambda _: base64_value(rng))


def _rename_key(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    dicts = [(node, path) for node, path in _containers(message) if isinstance(node, dict) and node]
    if not dicts:
        return "rename_key(none)"
    node, path = rng.choice(dicts)
    assert isinstance(node, dict)
    key = rng.choice(list(node))
    new = rng.choice(
        [
            "",
            key.upper(),
            key + " ",
            key.replace("_", "-"),
            text(rng, rng.randrange(1, 30)),
            huge_text(rng),
            "__proto__",
        ]
    )
    node[new] = node.pop(key)
    return f"rename_key({path.rstrip('.')}.{key})"


def _unknown_type(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        message["type"] = rng.choice(sorted(SERVER_TYPES))  # another type's name
    elif choice == 1:
        message["type"] = text(rng, rng.randrange(1, 40))
    elif choice == 2:
        message["type"] = huge_text(rng)
    elif choice == 3:
        message["type"] = rng.choice(["AUDIO", " audio", "audio\x00", "", "audio_event", "Ping"])
    elif choice == 4:
        message["type"] = scalar(rng)
    else:
        message.pop("type", None)
    return f"unknown_type({choice})"


def _wrong_level(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    key = _payload_key(message)
    choice = rng.randrange(6)
    if key is None or choice == 0:  # the message inside its own payload key
        inner = copy.deepcopy(message)
        message[key or "payload"] = inner
    elif choice == 1:  # flattened: the payload's fields at the top
        body = message.pop(key)
        for k, v in body.items():
            message.setdefault(k, v)
    elif choice == 2:  # wrapped once more
        message[key] = {key: message[key]}
    elif choice == 3:  # in a list
        message[key] = [message[key]]
    elif choice == 4:  # under another type's key
        other = rng.choice(
            [_payload_key(m) for m in CORPUS.values() if _payload_key(m) not in (None, key)]
        )
        message[str(other)] = message.pop(key)
    else:  # payload as a JSON string of itself
        message[key] = encode(message[key])
    return f"wrong_level({choice})"


def _duplicate_key(rng: random.Random, message: dict[str, Any], dup: _Dups) -> str:
    dicts = [(node, path) for node, path in _containers(message) if isinstance(node, dict) and node]
    if not dicts:
        return "duplicate_key(none)"
    node, path = rng.choice(dicts)
    assert isinstance(node, dict)
    key = rng.choice(list(node))
    value = rng.choice([None, scalar(rng), swapped(rng, node[key]), node[key]])
    if rng.random() < 0.5:  # the duplicate first: json.loads keeps the last one
        node[key], value = value, node[key]
    dup.setdefault(id(node), (node, []))[1].append((key, value))
    return f"duplicate_key({path.rstrip('.')}.{key})"


_TREE_OPS: list[tuple[Callable[[random.Random, dict[str, Any], _Dups], str], int]] = [
    (_delete_key, 6),
    (_null, 5),
    (_swap_type, 8),
    (_huge_string, 3),
    (_numeric, 6),
    (_base64, 4),
    (_deep, 2),
    (_rename_key, 3),
    (_unknown_type, 3),
    (_wrong_level, 3),
    (_duplicate_key, 3),
]


def _text_op(rng: random.Random, frame: str) -> tuple[str, str]:
    choice = rng.randrange(7)
    if choice == 0:
        cut = rng.randrange(len(frame) + 1)
        return frame[:cut], f"truncate({cut})"
    if choice == 1:
        data = bytearray(frame.encode("utf-8", "surrogatepass"))
        flips = rng.randrange(1, 9)
        for _ in range(flips):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return data.decode("utf-8", "replace"), f"byte_flip({flips})"
    if choice == 2:
        chars = list(frame)
        for _ in range(rng.randrange(1, 5)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(_PIECES[:13]))
        return "".join(chars), "insert_controls"
    if choice == 3:
        return "\ufeff" + frame, "bom"
    if choice == 4:
        return frame + rng.choice(["x", "}", frame, "\x00", "\n" * 3]), "trailing_data"
    if choice == 5:
        pad = " \t\r\n" * rng.randrange(1, 2000)
        return pad + frame + pad, "whitespace"
    return frame.replace('"', "'", rng.randrange(1, 4)), "single_quotes"


def _frame_op(rng: random.Random, frame: str) -> tuple[str | bytes, str, bool]:
    choice = rng.randrange(8)
    if choice == 0:
        return frame.encode("utf-8", "surrogatepass"), "binary_json", False
    if choice == 1:
        return rng.randbytes(rng.randrange(0, 4096)), "binary_random", False
    if choice == 2:
        return b"", "binary_empty", False
    if choice == 3:  # text that is not UTF-8
        data = bytearray(frame.encode("utf-8", "surrogatepass"))
        bad = rng.choice([b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"])
        pos = rng.randrange(len(data) + 1)
        data[pos:pos] = bad
        return bytes(data), "not_utf8", True
    if choice == 4:
        return frame.encode("utf-16"), "utf16", True
    if choice == 5:
        return (
            rng.choice(["42", "-0.0", "null", "true", '"audio"', '""', "1e999", "NaN"]),
            "scalar",
            False,
        )
    if choice == 6:
        return (
            rng.choice(["[]", "[" + frame + "]", "[" + frame + "," + frame + "]"]),
            "array",
            False,
        )
    return "", "empty_text", False


def mutation(seed: int, index: int) -> Mutation:
    """Mutation ``index`` of ``seed``: a pure function of the two numbers."""
    rng = random.Random(f"hello-device-fuzz/{seed}/{index}")
    names = sorted(CORPUS)
    source = rng.choices(names, [3 if CORPUS[n]["type"] in DEVICE_TYPES else 1 for n in names])[0]
    message = copy.deepcopy(CORPUS[source])
    dup: _Dups = {}
    ops: list[str] = []
    roll = rng.random()  # < 0.2: a text mutation too; < 0.3: a frame mutation
    # Every mutation changes something: without a text or frame mutation, at least one
    # change to the tree.
    fewest = 0 if roll < 0.3 else 1
    fns, weights = zip(*_TREE_OPS, strict=True)
    for _ in range(rng.choices([0, 1, 2, 3], [1 - fewest, 10, 5, 2])[0]):
        ops.append(rng.choices(fns, weights)[0](rng, message, dup))
    ensure_ascii = rng.random() < 0.5
    frame = encode(message, ensure_ascii, dup)
    try:
        frame.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only as \u escapes on the wire
        frame = encode(message, True, dup)
    if roll < 0.2:
        frame, op = _text_op(rng, frame)
        ops.append(op)
    elif roll < 0.3:
        out, op, not_utf8 = _frame_op(rng, frame)
        ops.append(op)
        return Mutation(seed, index, source, tuple(ops), out, not_utf8)
    return Mutation(seed, index, source, tuple(ops), frame)


def mutations(seed: int, count: int, start: int = 0) -> Iterator[Mutation]:
    for index in range(start, start + count):
        yield mutation(seed, index)


def main(argv: list[str]) -> int:
    """``python -m tests.faults.mutate SEED INDEX [--full]``: show one mutation."""
    if len(argv) < 2:
        print("usage: python -m tests.faults.mutate SEED INDEX [--full]", file=sys.stderr)
        return 2
    m = mutation(int(argv[0], 0), int(argv[1]))
    print(m.describe())
    if "--full" in argv:
        sys.stdout.write(m.frame if isinstance(m.frame, str) else repr(m.frame))
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
