"""Hostile values for the mutator (huge and control-laden text, numeric extremes,
bad base64, deep nesting) and a JSON encoder that writes raw fragments and duplicated keys."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.faults.corpus import AUDIO_B64, MAX_HUGE

# ---------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as is (nesting too deep for json.dumps, giant numbers)."""

    text: str


PIECES = [
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
        piece = rng.choice(PIECES) if rng.random() < 0.6 else chr(rng.randrange(0x20, 0x3000))
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


Pairs = list[tuple[str, Any]]
Dups = dict[int, tuple[dict[str, Any], Pairs]]
"""id(object) -> (the object, kept alive so that its id stays its own; extra pairs)."""


def encode(value: object, ensure_ascii: bool = True, dup: Dups | None = None) -> str:
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
