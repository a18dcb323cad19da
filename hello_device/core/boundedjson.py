"""JSON from peers, parsed with a bound on nesting.

``json.loads`` recurses once per level of nesting: a document nested 10,000 deep from a
hostile or broken server raises :class:`RecursionError` deep inside the parser (a
traceback in the log), and one nested a few hundred deep parses into an object that
recursive code later trips over. :func:`loads` refuses anything nested deeper than
``max_depth`` with a :class:`JsonTooDeep` (a :class:`ValueError`, so callers that
already handle "not JSON" handle it too).

It costs nothing on the hot path: a document cannot be nested deeper than it has
opening brackets, and counting them is one C call per bracket type (an audio message
has three). Only a document with more brackets than ``max_depth`` gets its depth
measured, after parsing, without recursion.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting accepted from a peer (agent configurations and tool schemas are ~10)."""


class JsonTooDeep(ValueError):
    """The document is nested deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` like :func:`json.loads`; raise :class:`JsonTooDeep` when it is
    nested deeper than ``max_depth``, :class:`ValueError` when it is not JSON."""
    if isinstance(data, str):
        openers = data.count("{") + data.count("[")
    else:
        openers = data.count(b"{") + data.count(b"[")
    if openers <= max_depth:
        return json.loads(data)
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    if depth(value, max_depth) > max_depth:
        raise JsonTooDeep(max_depth)
    return value


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), counted up to one
    past ``limit`` (then the walk stops), iteratively."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > limit:
                return deepest
        stack.extend((child, level) for child in children if isinstance(child, (dict, list)))
    return deepest
