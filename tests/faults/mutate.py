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

import copy
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.faults.corpus import CORPUS, DEVICE_TYPES, SERVER_TYPES
from tests.faults.values import (
    PIECES,
    Dups,
    base64_value,
    deep,
    encode,
    huge_text,
    numeric_extreme,
    scalar,
    swapped,
    text,
)

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


def _delete_key(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    slot = _slot(rng, message)
    if slot is None:
        return "delete_key(none)"
    node, key, path = slot
    del node[key]
    return f"delete_key({path})"


def _null(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    return _set(rng, message, "null", lambda _: None)


def _swap_type(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    return _set(rng, message, "swap_type", lambda v: swapped(rng, v))


def _huge_string(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    return _set(rng, message, "huge_string", lambda _: huge_text(rng))


def _numeric(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    return _set(rng, message, "numeric_extreme", lambda _: numeric_extreme(rng))


def _deep(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    return _set(rng, message, "deep_nesting", lambda _: deep(rng))


def _base64(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
    for node, path in _containers(message):
        if isinstance(node, dict) and "audio_base_64" in node:
            node["audio_base_64"] = base64_value(rng)
            return f"base64({path}.audio_base_64)"
    return _set(rng, message, "base64", lambda _: base64_value(rng))


def _rename_key(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
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


def _unknown_type(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
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


def _wrong_level(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
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


def _duplicate_key(rng: random.Random, message: dict[str, Any], dup: Dups) -> str:
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


_TREE_OPS: list[tuple[Callable[[random.Random, dict[str, Any], Dups], str], int]] = [
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
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(PIECES[:13]))
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
    dup: Dups = {}
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
