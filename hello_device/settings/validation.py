"""Checking values against the schema: every problem named by file and dotted key.

Values that may be a secret (an API key pasted in the wrong place) are never echoed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import types
import typing
from typing import Any, Literal

from hello_device.settings import schema
from hello_device.settings.schema import Secret

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- parsing

_TOML_TYPE = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a table",
    list: "an array",
}


def _toml_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _show(value: Any, secret: bool) -> str:
    """How a bad value may appear in an error: secrets and long strings never do."""
    if secret:
        return "(value hidden)"
    if isinstance(value, str):
        if len(value) > 40 or _looks_like_secret(value):
            return "(value hidden)"
        return f'"{value}"'
    if isinstance(value, (dict, list)):
        return _toml_type_name(value)
    return repr(value).lower() if isinstance(value, bool) else repr(value)


_SECRETISH = re.compile(r"^(sk|xi|key)[_-]|[A-Za-z0-9_-]{32,}")


def _looks_like_secret(value: str) -> bool:
    """Strings that may be an API key pasted in the wrong place are never echoed."""
    return len(value) > 40 or bool(_SECRETISH.search(value))


class Collector:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def add(self, key: str, message: str) -> None:
        parts = [p if not _looks_like_secret(p) else "(name hidden)" for p in key.split(".")]
        self.problems.append(f"{self.path}: {'.'.join(parts)}: {message}")


def _check_value(
    hint: Any, value: Any, key: str, meta: dict[str, Any], errs: Collector
) -> tuple[bool, Any]:
    """Check ``value`` against a type hint; return (ok, converted value)."""
    secret = bool(meta.get("secret"))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        # Try each alternative silently; report against all of them when none fits.
        for alt in args:
            trial = Collector(errs.path)
            ok, conv = _check_value(alt, value, key, meta, trial)
            if ok:
                return True, conv
            if typing.get_origin(alt) is not Literal and _matches_base(alt, value):
                # Right type, wrong value (range, pattern): the specific error helps most.
                errs.problems.extend(trial.problems)
                return False, None
        if any(typing.get_origin(a) is Literal for a in args) and isinstance(value, (str, int)):
            errs.add(key, f"{_show(value, secret)} is not allowed; must be {_describe(hint)}")
            return False, None
        errs.add(key, f"must be {_describe(hint)}, not {_toml_type_name(value)}")
        return False, None
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) in {type(c) for c in choices}:
            return True, value
        allowed = ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in choices)
        errs.add(key, f"{_show(value, secret)} is not allowed; use one of {allowed}")
        return False, None
    if origin is dict:
        if not isinstance(value, dict):
            errs.add(key, f"must be a table, not {_toml_type_name(value)}")
            return False, None
        _, vhint = typing.get_args(hint)
        out: dict[str, Any] = {}
        good = True
        for k, v in value.items():
            ok, conv = _check_value(vhint, v, f"{key}.{k}", {}, errs)
            good &= ok
            out[k] = conv
        return good, out
    if origin is list:
        if not isinstance(value, list):
            errs.add(key, f"must be an array, not {_toml_type_name(value)}")
            return False, None
        (ihint,) = typing.get_args(hint)
        items = []
        good = True
        for i, v in enumerate(value):
            ok, conv = _check_value(ihint, v, f"{key}[{i}]", meta, errs)
            good &= ok
            items.append(conv)
        return good, items
    if hint is Secret:
        if not isinstance(value, str):
            errs.add(key, f"must be a string, not {_toml_type_name(value)} (value hidden)")
            return False, None
        if not value.strip() or any(c.isspace() for c in value.strip()):
            errs.add(key, "must be a single word with no spaces (value hidden)")
            return False, None
        return True, Secret(value.strip())
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errs.add(key, f"must be a number, not {_toml_type_name(value)}")
            return False, None
        value = float(value)
    elif hint in (int, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        errs.add(
            key,
            f"must be {_TOML_TYPE[hint]}, not {_toml_type_name(value)}"
            + (" (value hidden)" if secret else ""),
        )
        return False, None
    return _check_range(value, key, meta, errs, secret)


def _matches_base(hint: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return hint is bool
    if hint is int:
        return isinstance(value, int)
    if hint is float:
        return isinstance(value, (int, float))
    return hint is str and isinstance(value, str)


def _check_range(
    value: Any, key: str, meta: dict[str, Any], errs: Collector, secret: bool
) -> tuple[bool, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            errs.add(key, f"{_show(value, secret)} is out of range; allowed {lo} to {hi}")
            return False, None
        choices = meta.get("choices")
        if choices and value not in choices:
            errs.add(
                key,
                f"{_show(value, secret)} is not allowed; use one of "
                + ", ".join(map(str, choices)),
            )
            return False, None
    if isinstance(value, str):
        pattern = meta.get("pattern")
        if pattern and not re.match(pattern, value):
            errs.add(key, f"{_show(value, secret)} is not valid; it must match {pattern}")
            return False, None
        max_len = meta.get("max_len")
        if max_len and len(value) > max_len:
            errs.add(key, f"is longer than {max_len} characters")
            return False, None
        schemes = meta.get("url")
        if schemes:
            m = re.match(r"^([a-z]+)://[^/\s?#]+", value)
            if not m or m.group(1) not in schemes:
                allowed = " or ".join(f"{s}://" for s in schemes)
                errs.add(key, f"{_show(value, secret)} is not a URL starting with {allowed}")
                return False, None
    return True, value


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(
            f'"{c}"' if isinstance(c, str) else str(c) for c in typing.get_args(hint)
        )
    if hint is Secret:
        return "a string"
    return str(_TOML_TYPE.get(hint, hint))


def build_section(cls: type, raw: Any, name: str, errs: Collector) -> Any:
    if not isinstance(raw, dict):
        errs.add(name, f"must be a table ([{name}]), not {_toml_type_name(raw)}")
        return cls()
    hints = typing.get_type_hints(cls, globalns=vars(schema))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            close = closest_name(key, list(fields))
            hint = f"; did you mean {name}.{close}?" if close else ""
            errs.add(dotted, f"unknown key{hint} (allowed: {', '.join(fields)})")
            continue
        ok, conv = _check_value(hints[key], value, dotted, dict(fields[key].metadata), errs)
        if ok:
            kwargs[key] = conv
    for fname, f in fields.items():
        if f.metadata.get("required") and fname not in raw:
            errs.add(f"{name}.{fname}", "is required")
    return cls(**kwargs)


def closest_name(word: str, options: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return found[0] if found else None
