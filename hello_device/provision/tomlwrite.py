"""Writing a configuration back as TOML (``tomllib`` only reads).

Enough for hello-device's configuration: top-level tables of strings, numbers, booleans,
lists of those, and one level of inline tables (``dynamic_variables``). Comments and key
order of a hand-edited file are not kept; the wizard keeps the previous file beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps"]


def dumps(data: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text for ``{table: {key: value}}``."""
    out: list[str] = []
    for table, values in data.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"top-level {table!r} must be a table")
        if not values:
            continue
        out.append(f"[{_key(table)}]")
        out.extend(f"{_key(k)} = {_value(v)}" for k, v in values.items())
        out.append("")
    return "\n".join(out)


def _key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        # A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
