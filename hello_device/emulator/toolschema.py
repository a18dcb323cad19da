"""Validation of a client tool's configuration, as the platform checks ``POST``/``PATCH
/v1/convai/tools``: each error is FastAPI-style (``loc``, ``msg``, ``type``) and names the
field, under ``["body", "tool_config", …]`` (or ``["body", …]`` for the flat variant)."""

from __future__ import annotations

import re
from typing import Any

from hello_device.emulator.answers import _error, _Invalid

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PROPERTY_TYPES = ("string", "number", "integer", "boolean", "array", "object")
DEFAULT_RESPONSE_TIMEOUT_S = 20
MAX_RESPONSE_TIMEOUT_S = 120


def tool_config_from_body(body: Any) -> dict[str, Any]:
    """The validated, completed ``tool_config`` of a request body (nested or flat);
    :class:`_Invalid` with every error found."""
    if not isinstance(body, dict):
        raise _Invalid([_error(["body"], "Input should be a valid dictionary", "dict_type")])
    if "tool_config" in body:
        config, loc = body["tool_config"], ["body", "tool_config"]
    else:
        config, loc = body, ["body"]
    if not isinstance(config, dict):
        raise _Invalid([_error(loc, "Input should be a valid dictionary", "dict_type")])
    errors: list[dict[str, Any]] = []
    if "type" not in config:
        errors.append(_error([*loc, "type"], "Field required", "missing"))
    elif config["type"] != "client":
        msg = f"Unsupported tool type {config['type']!r}: the emulator supports only 'client' tools"
        errors.append(_error([*loc, "type"], msg))
    name = config.get("name")
    if name is None:
        errors.append(_error([*loc, "name"], "Field required", "missing"))
    elif not isinstance(name, str) or not TOOL_NAME_RE.match(name):
        msg = "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
        errors.append(_error([*loc, "name"], msg, "string_pattern_mismatch"))
    description = config.get("description")
    if description is None:
        errors.append(_error([*loc, "description"], "Field required", "missing"))
    elif not isinstance(description, str) or not description.strip():
        errors.append(_error([*loc, "description"], "description must be a non-empty string"))
    parameters = config.get("parameters")
    if parameters is not None:
        errors += _schema_errors(parameters, [*loc, "parameters"])
    expects = config.get("expects_response", False)
    if not isinstance(expects, bool):
        errors.append(_error([*loc, "expects_response"], "Input should be a valid boolean"))
    timeout = config.get("response_timeout_secs", DEFAULT_RESPONSE_TIMEOUT_S)
    if (
        not isinstance(timeout, int)
        or isinstance(timeout, bool)
        or not 1 <= timeout <= MAX_RESPONSE_TIMEOUT_S
    ):
        msg = f"response_timeout_secs must be an integer from 1 to {MAX_RESPONSE_TIMEOUT_S}"
        errors.append(_error([*loc, "response_timeout_secs"], msg))
    if errors:
        raise _Invalid(errors)
    return {
        "type": "client",
        "name": name,
        "description": description,
        "parameters": parameters,
        "expects_response": expects,
        "response_timeout_secs": timeout,
    }


def _schema_errors(schema: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Errors of a tool's ``parameters``: a JSON schema object of typed, described
    properties, whose ``required`` names existing properties."""
    if not isinstance(schema, dict):
        return [_error(loc, "parameters must be a JSON schema object")]
    errors: list[dict[str, Any]] = []
    if schema.get("type") != "object":
        errors.append(_error([*loc, "type"], 'parameters must have "type": "object"'))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        errors.append(_error([*loc, "properties"], "properties must be an object"))
        properties = {}
    for key, prop in properties.items():
        here = [*loc, "properties", key]
        if not isinstance(prop, dict):
            errors.append(_error(here, f"property {key!r} must be an object"))
            continue
        if prop.get("type") not in PROPERTY_TYPES:
            msg = f"property {key!r}: type must be one of {', '.join(PROPERTY_TYPES)}"
            errors.append(_error([*here, "type"], msg))
        if not isinstance(prop.get("description"), str):
            msg = f"property {key!r}: a description (string) is required"
            errors.append(_error([*here, "description"], msg))
    required = schema.get("required", [])
    if not isinstance(required, list):
        errors.append(_error([*loc, "required"], "required must be a list of property names"))
    else:
        for i, item in enumerate(required):
            if not isinstance(item, str) or item not in properties:
                msg = f"required names {item!r}, which is not a property"
                errors.append(_error([*loc, "required", i], msg))
    return errors
