"""JSON from peers with a nesting bound: deep documents are a clear error, never a
RecursionError."""

from __future__ import annotations

import pytest

from hello_device.core import boundedjson

# ------------------------------------------------------------------------- bounded JSON


def test_bounded_json() -> None:
    assert boundedjson.loads('{"a": [1, {"b": "[[[[["}]}') == {"a": [1, {"b": "[[[[["}]}
    assert boundedjson.loads(b"[" * 64 + b"]" * 64) is not None
    for deep in ("[" * 65 + "]" * 65, "[" * 10_000, '{"a":' * 5000 + "1" + "}" * 5000):
        with pytest.raises(boundedjson.JsonTooDeep, match="deeper than 64"):
            boundedjson.loads(deep)
    with pytest.raises(ValueError):
        boundedjson.loads("{not json")
    assert boundedjson.depth({"a": [[1]]}) == 3 and boundedjson.depth(5) == 0
