"""The conversation's URL and the settings it starts with."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hello_device.settings import Settings


def conversation_url(settings: Settings) -> str:
    """The public conversation URL for the configured agent."""
    p = settings.platform
    if p.ws_url:
        base = p.ws_url
    else:
        parts = urlsplit(p.api_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        base = urlunsplit((scheme, parts.netloc, "/v1/convai/conversation", "", ""))
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query))
    query.setdefault("agent_id", p.agent_id)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def initiation_overrides(settings: Settings) -> dict[str, Any]:
    """The ``conversation_config_override`` of the initiation: only what the file sets
    (an agent that does not allow an override closes the socket with 1008)."""
    c = settings.conversation
    agent: dict[str, Any] = {}
    if c.first_message is not None:
        agent["first_message"] = c.first_message
    if c.language is not None:
        agent["language"] = c.language
    if c.prompt is not None:
        agent["prompt"] = {"prompt": c.prompt}
    overrides: dict[str, Any] = {}
    if agent:
        overrides["agent"] = agent
    if c.voice_id:
        overrides["tts"] = {"voice_id": c.voice_id}
    return overrides
