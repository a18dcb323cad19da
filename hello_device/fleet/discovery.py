"""Home Assistant MQTT discovery: one device, its entities, each a retained config
message under ``<discovery_prefix>/<component>/<node>/<object>/config`` (pure)."""

from __future__ import annotations

import re
from typing import Any

from hello_device import __version__


def node_id(device_id: str) -> str:
    """The device id as Home Assistant's topic level wants it."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id) or "hello_device"


def topics(prefix: str) -> dict[str, str]:
    """The device's own topics."""
    return {
        "availability": f"{prefix}/availability",
        "state": f"{prefix}/state",
        "event": f"{prefix}/event",
        "transcript": f"{prefix}/transcript",
        "command": f"{prefix}/command",
        "mute_set": f"{prefix}/ha/mute/set",
        "volume_set": f"{prefix}/ha/volume/set",
    }


def discovery_messages(
    discovery_prefix: str, prefix: str, device_id: str, device_name: str, transcripts: bool
) -> list[tuple[str, dict[str, Any] | None]]:
    """(topic, payload) of every entity, for a retained publish; ``None``: an entity to
    remove (the text sensors when transcripts are off: an empty retained config deletes
    it in Home Assistant, and no old text stays on the broker)."""
    node = node_id(device_id)
    t = topics(prefix)
    device = {
        "identifiers": [f"hello-device-{node}"],
        "name": device_name or device_id,
        "model": "hello-device voice appliance",
        "manufacturer": "hello-device",
        "sw_version": __version__,
    }

    def entity(component: str, obj: str, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        payload = {
            "name": name,
            "unique_id": f"{node}_{obj}",
            "object_id": f"{node}_{obj}",
            "availability_topic": t["availability"],
            "device": device,
            **fields,
        }
        return f"{discovery_prefix}/{component}/{node}/{obj}/config", payload

    state = {"state_topic": t["state"]}
    messages: list[tuple[str, dict[str, Any] | None]] = [
        entity("sensor", "state", "State", value_template="{{ value_json.state }}",
               icon="mdi:account-voice", **state),
        entity("switch", "mute", "Mute", command_topic=t["mute_set"], payload_on="ON",
               payload_off="OFF", value_template="{{ 'ON' if value_json.muted else 'OFF' }}",
               icon="mdi:microphone-off", **state),
        entity("number", "volume", "Volume", command_topic=t["volume_set"], min=0.0, max=1.0,
               step=0.05, mode="slider", value_template="{{ value_json.volume }}",
               icon="mdi:volume-high", **state),
        entity("button", "start", "Start conversation",
               command_topic=f"{t['command']}/start_conversation", payload_press="{}",
               icon="mdi:play"),
        entity("button", "end", "End conversation",
               command_topic=f"{t['command']}/end_conversation", payload_press="{}",
               icon="mdi:stop"),
        entity("sensor", "last_error", "Last error", entity_category="diagnostic",
               value_template="{{ value_json.last_error or 'none' }}", icon="mdi:alert", **state),
        entity("sensor", "conversations_today", "Conversations today",
               value_template="{{ value_json.conversations_today }}", icon="mdi:counter",
               **state),
    ]  # fmt: skip
    for obj, name, key in (("user_text", "Last user text", "user"),
                           ("agent_text", "Last agent text", "agent")):  # fmt: skip
        text_topic, payload = entity(
            "sensor", obj, name, state_topic=t["transcript"],
            value_template=f"{{{{ value_json.{key} }}}}", icon="mdi:text",
        )  # fmt: skip
        messages.append((text_topic, payload if transcripts else None))
    return messages
