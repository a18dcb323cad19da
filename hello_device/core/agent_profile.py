"""The agent's configuration, read defensively (pure).

:func:`map_agent_config` reads the platform's JSON, every field optional and with every
alias of PROTOCOL.md, into a frozen :class:`AgentProfile`; :func:`apply_profile` and
:func:`effective_settings` merge it with the settings, where a value the file set wins.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hello_device.core.formats import AUDIO_FORMATS
from hello_device.core.text import one_line
from hello_device.settings import (
    SECTIONS,
    Settings,
    dump_settings,
)

log = logging.getLogger(__name__)

DEFAULT_AUDIO_FORMAT = "pcm_16000"


@dataclass(frozen=True)
class AgentProfile:
    """What the device uses from the agent's configuration (every field may be absent)."""

    agent_id: str | None = None
    name: str | None = None
    user_input_audio_format: str = DEFAULT_AUDIO_FORMAT
    """Format of the microphone audio the device sends."""
    agent_output_audio_format: str = DEFAULT_AUDIO_FORMAT
    """Format of the agent audio the device receives."""
    first_message: str | None = None
    language: str | None = None
    turn_timeout_s: float | None = None
    silence_duration_ms: int | None = None
    """Silence that ends a user turn (a hint for the local VAD)."""
    prefix_padding_ms: int | None = None
    """Speech pre-roll (a hint for the local VAD)."""
    vad_threshold: float | None = None
    max_duration_s: float | None = None
    private: bool = False
    """The agent needs a signed URL."""


_MISSING = object()


def _dig(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _first(raw: Mapping[str, Any], paths: Iterable[str], kind: str) -> Any:
    """The first value at ``paths`` that has the right kind; wrong kinds are logged."""
    for path in paths:
        value = _dig(raw, path)
        if value is _MISSING or value is None:
            continue
        converted = _convert(value, kind)
        if converted is _MISSING:
            log.debug(
                "agent configuration: ignoring %s (%s, expected %s)",
                path,
                type(value).__name__,
                kind,
            )
            continue
        return converted
    return None


def _convert(value: Any, kind: str) -> Any:
    if kind == "str":
        return value if isinstance(value, str) else _MISSING
    if kind == "bool":
        return value if isinstance(value, bool) else _MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _MISSING
    if not math.isfinite(value):
        return _MISSING
    if kind == "seconds":  # any finite number (turn_timeout may be -1: disabled)
        return float(value)
    if kind == "duration":
        return float(value) if value >= 0 else _MISSING
    if kind == "ms":
        return round(value) if value >= 0 else _MISSING
    if kind == "unit":
        return float(value) if 0.0 <= value <= 1.0 else _MISSING
    raise ValueError(kind)  # pragma: no cover - programming error


def _turn_hint_paths(name: str) -> list[str]:
    return [
        f"conversation_config.turn_detection.{name}",
        f"conversation_config.turn.{name}",
        f"turn_detection.{name}",
        f"turn.{name}",
    ]


def _audio_format(raw: Mapping[str, Any], paths: list[str], what: str) -> str:
    value = _first(raw, paths, "str")
    if value is None:
        return DEFAULT_AUDIO_FORMAT
    name = str(value).strip().lower()
    if name in AUDIO_FORMATS:
        return name
    log.warning(
        "agent configuration: unknown %s %r; using %s",
        what,
        one_line(value, 40),
        DEFAULT_AUDIO_FORMAT,
    )
    return DEFAULT_AUDIO_FORMAT


def map_agent_config(raw: Mapping[str, Any]) -> AgentProfile:
    """Read the platform's agent configuration defensively (every alias, never raises)."""
    if not isinstance(raw, Mapping):
        log.debug("agent configuration: not an object (%s); using defaults", type(raw).__name__)
        return AgentProfile()
    enable_auth = _first(raw, ["platform_settings.auth.enable_auth"], "bool")
    mode = _first(raw, ["platform_settings.auth.mode"], "str")
    private = enable_auth is True or (isinstance(mode, str) and mode.lower() == "private")
    language = _first(
        raw, ["conversation_config.agent.language", "conversation_config.stt.language"], "str"
    )
    return AgentProfile(
        agent_id=_first(raw, ["agent_id"], "str"),
        name=_first(raw, ["name"], "str"),
        user_input_audio_format=_audio_format(
            raw, ["conversation_config.asr.user_input_audio_format"], "user_input_audio_format"
        ),
        agent_output_audio_format=_audio_format(
            raw,
            [
                "conversation_config.tts.agent_output_audio_format",
                "conversation_config.tts.output_format",
            ],
            "agent_output_audio_format",
        ),
        first_message=_first(raw, ["conversation_config.agent.first_message"], "str"),
        language=language.strip() if isinstance(language, str) and language.strip() else None,
        turn_timeout_s=_first(raw, ["conversation_config.turn.turn_timeout"], "seconds"),
        silence_duration_ms=_first(raw, _turn_hint_paths("silence_duration_ms"), "ms"),
        prefix_padding_ms=_first(raw, _turn_hint_paths("prefix_padding_ms"), "ms"),
        vad_threshold=_first(raw, _turn_hint_paths("threshold"), "unit"),
        max_duration_s=_first(
            raw, ["conversation_config.conversation.max_duration_seconds"], "duration"
        ),
        private=private,
    )


PLATFORM_KEYS: dict[str, str] = {
    "conversation.first_message": "first_message",
    "conversation.language": "language",
    "conversation.max_duration_s": "max_duration_s",
    "vad.end_silence_ms": "silence_duration_ms",
    "vad.preroll_ms": "prefix_padding_ms",
}
"""Settings the platform can supply (dotted key -> :class:`AgentProfile` field)."""

PLATFORM_ROWS: dict[str, str] = {
    "platform.user_input_audio_format": "user_input_audio_format",
    "platform.agent_output_audio_format": "agent_output_audio_format",
    "platform.private": "private",
    "platform.turn_timeout_s": "turn_timeout_s",
}
"""Read-only rows that only the platform supplies (dotted key -> profile field)."""


def effective_settings(
    settings: Settings,
    profile: AgentProfile | None,
    profile_source: str,
    explicit: set[str] | None = None,
) -> list[tuple[str, object, str]]:
    """Every setting as ``(dotted key, value, source)``, secrets masked as ``***``.

    ``source`` is ``default``, ``file`` (set in the TOML file), ``environment`` (the API
    key from ``HELLO_DEVICE_API_KEY``), or ``profile_source`` (``platform`` or ``cache``)
    for values the agent configuration supplies and the file does not set. ``explicit``
    defaults to the keys the file set when it was read (``settings.explicit``). The read-only
    ``platform.*`` rows of :data:`PLATFORM_ROWS` follow the ``[platform]`` section.
    """
    if explicit is None:
        explicit = set(settings.explicit)
    use_profile = profile is not None and profile_source not in ("none", "default")
    rows: list[tuple[str, object, str]] = []
    for section, values in dump_settings(settings).items():
        for name, file_value in values.items():
            key = f"{section}.{name}"
            value: object = file_value
            source = "file" if key in explicit else "default"
            if key == "platform.api_key":
                if settings.api_key_source == "environment":
                    source = "environment"
                elif settings.api_key_source in ("file", "key file"):
                    source = "file"
            field_name = PLATFORM_KEYS.get(key)
            if field_name and source == "default" and use_profile:
                assert profile is not None
                platform_value = getattr(profile, field_name)
                if platform_value is not None:
                    value, source = platform_value, profile_source
            rows.append((key, value, source))
        if section == "platform":
            for key, field_name in PLATFORM_ROWS.items():
                if use_profile:
                    assert profile is not None
                    rows.append((key, getattr(profile, field_name), profile_source))
                else:
                    rows.append((key, getattr(AgentProfile(), field_name), "default"))
    return rows


def apply_profile(
    settings: Settings, profile: AgentProfile | None, explicit: set[str] | None = None
) -> Settings:
    """Settings with the platform's local-behaviour hints where the file sets nothing.

    Only ``vad.end_silence_ms``, ``vad.preroll_ms`` and ``conversation.max_duration_s``
    are replaced (clamped to their allowed ranges). ``conversation.first_message`` and
    ``conversation.language`` are deliberately left alone: the app sends those as
    conversation overrides, which must carry only what the file sets (an agent that does
    not allow overrides closes the socket with 1008).
    """
    if profile is None:
        return settings
    if explicit is None:
        explicit = set(settings.explicit)
    changes: dict[str, dict[str, Any]] = {}
    for key in ("vad.end_silence_ms", "vad.preroll_ms", "conversation.max_duration_s"):
        if key in explicit:
            continue
        value = getattr(profile, PLATFORM_KEYS[key])
        if value is None:
            continue
        section, name = key.split(".")
        cls = SECTIONS[section]
        meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
        lo, hi = meta.get("min"), meta.get("max")
        clamped = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
        if clamped != value:
            log.debug("platform value for %s (%s) clamped to %s", key, value, clamped)
        changes.setdefault(section, {})[name] = clamped
    if not changes:
        return settings
    replaced = {
        section: dataclasses.replace(getattr(settings, section), **values)
        for section, values in changes.items()
    }
    return dataclasses.replace(settings, **replaced)
