"""What the agent is told about each device tool: name, description, parameter schema.

The platform lets an agent call a client tool only when the tool is declared on it with
these three (PROTOCOL.md §1, "tools") and attached to the agent; ``hello-device tools
sync`` declares :data:`DEVICE_TOOLS` from here, so the code that runs a tool and the
schema the agent sees live side by side. Names match ``^[a-zA-Z0-9_-]{1,64}$``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """A client tool as the platform declares it."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )
    """A JSON schema object (``type: object``, ``properties``, ``required``)."""
    expects_response: bool = True
    """The agent waits for the result before it goes on."""

    def platform_config(self) -> dict[str, Any]:
        """The ``tool_config`` the tools API takes (type ``client``)."""
        return {
            "type": "client",
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(dict(self.parameters)),
            "expects_response": self.expects_response,
        }


def _schema(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


DEVICE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "get_device_info",
        "The device's id, its name (where it stands) and its software version.",
    ),
    ToolSpec(
        "get_local_time",
        "The current local date and time on the device, ISO 8601 with its UTC offset.",
    ),
    ToolSpec(
        "get_device_status",
        "The device's state right now: conversation state, loudspeaker volume (0 to 1), "
        "whether the microphone is muted, whether it is online, its last error.",
    ),
    ToolSpec(
        "set_volume",
        "Set the loudspeaker volume when the user asks for it louder or quieter. "
        "Answers the volume now in force (0 to 1).",
        _schema(
            ("level",),
            level={
                "type": "number",
                "description": "The new volume in percent, 0 to 100 (a value up to 1 is "
                "read as a fraction).",
            },
        ),
    ),
    ToolSpec(
        "show_on_screen",
        "Show a short text on the device's screen (its kiosk page), such as directions, "
        "a room number or a phone number, while you say it. Fails when no screen is "
        "connected to the device.",
        _schema(
            ("text",),
            text={"type": "string", "description": "The text to show, at most 500 characters."},
        ),
    ),
    ToolSpec(
        "end_conversation",
        "End the conversation on the device after your current reply has been played, "
        "when the user says goodbye or asks you to stop.",
        _schema(
            reason={
                "type": "string",
                "description": "A few words on why the conversation ends (for the log).",
            }
        ),
        expects_response=False,
    ),
)
"""Every tool the daemon offers the agent, in the order ``tools list`` shows them."""


def spec_of(name: str) -> ToolSpec | None:
    """The device tool called ``name``, if there is one."""
    return next((spec for spec in DEVICE_TOOLS if spec.name == name), None)
