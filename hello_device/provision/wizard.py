"""``hello-device setup``: what the technician answers, turned into a checked configuration.

:func:`collect` asks (or takes from flags) the agent, the API key, the sound devices, the
trigger and the GPIO pins, with the current configuration's values as defaults, so a
second run changes only what is answered differently. :func:`write` stores the key
(0600, for the service user) and the configuration (checked exactly as the daemon loads
it, through a staging file; the previous one kept as ``config.toml.previous``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hello_device.core.text import one_line
from hello_device.errors import ConfigError
from hello_device.provision.files import (
    SERVICE_USER,
    gid_of,
    install_config,
    key_file_for,
    key_problem,
    uid_of,
    write_atomically,
)
from hello_device.provision.tomlwrite import dumps
from hello_device.settings import Settings
from hello_device.settings.schema import BUILTIN_WAKE_MODELS

__all__ = ["Answers", "Prompts", "Search", "collect", "read_current", "write"]

TRIGGERS = ("button", "voice", "wake_word", "auto")


@dataclass
class Answers:
    """What the configuration will say (None: keep what it says now)."""

    agent_id: str | None = None
    api_base_url: str | None = None
    api_key: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    trigger: str | None = None
    wake_model: str | None = None
    button_pin: int | None = None
    led_pins: list[int] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Prompts:
    """The terminal, handed in (tests drive a real pseudo-terminal through these)."""

    ask: Callable[[str], str]
    ask_secret: Callable[[str], str]
    say: Callable[[str], None]


def read_current(config_path: Path) -> dict[str, dict[str, Any]]:
    """The configuration file as tables (empty if there is none yet)."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read the current configuration: {exc}") from exc
    return {k: dict(v) for k, v in data.items() if isinstance(v, dict)}


Search = Callable[[str, str | None], list[tuple[str, str]]]
"""(word, API key typed now or None) -> the platform's matching ``(agent_id, name)``."""


def collect(
    current: dict[str, dict[str, Any]],
    given: Answers,
    prompts: Prompts | None,
    devices: Sequence[str] = (),
    search: Search | None = None,
) -> Answers:
    """Fill in what ``given`` leaves open: from ``prompts`` (interactive), else keep."""
    if prompts is None:
        return given
    platform = current.get("platform", {})
    audio = current.get("audio", {})
    gpio = current.get("gpio", {})
    a = given
    if a.api_key is None:
        have = "Enter keeps the current one" if _has_key(current) else "Enter for none"
        a.api_key = prompts.ask_secret(f"API key (hidden; {have}): ").strip() or None
    while a.agent_id is None:
        hint = ", ?word to search the platform, ? to list" if search is not None else ""
        answer = _ask(prompts, f"Agent id{hint}", platform.get("agent_id", ""))
        if search is not None and answer.startswith("?"):
            a.agent_id = _pick_agent(prompts, search, answer[1:].strip(), a.api_key)
        else:
            a.agent_id = answer or None
            break
    if devices and (a.input_device is None or a.output_device is None):
        prompts.say("Sound devices found:")
        for line in devices:
            prompts.say(f"  {line}")
    if a.input_device is None:
        a.input_device = _ask(
            prompts, "Microphone (name or index)", audio.get("input_device", "default")
        )
    if a.output_device is None:
        a.output_device = _ask(
            prompts, "Loudspeaker (name or index)", audio.get("output_device", "default")
        )
    conversation = current.get("conversation", {})
    while a.trigger is None:
        answer = _ask(
            prompts,
            "Trigger: button, voice, wake_word or auto",
            conversation.get("start", "button"),
        )
        if answer in TRIGGERS:
            a.trigger = answer
        else:
            prompts.say(f"  please answer one of: {', '.join(TRIGGERS)}")
    if a.trigger == "wake_word" and a.wake_model is None:
        current_model = current.get("wake_word", {}).get("model", "okay_nabu")
        models = ", ".join(BUILTIN_WAKE_MODELS)
        a.wake_model = _ask(prompts, f"Wake word ({models}, or a model's .json)", current_model)
    if a.trigger == "button" and a.button_pin is None:
        a.button_pin = _ask_int(prompts, "Button GPIO pin (BCM number)", gpio.get("button_pin"))
    if a.led_pins is None:
        shown = ",".join(str(p) for p in gpio.get("led_pins", []))
        while True:
            text = _ask(prompts, "LED GPIO pins (comma-separated, empty for none)", shown)
            try:
                a.led_pins = [int(x) for x in text.replace(" ", "").split(",") if x]
                break
            except ValueError:
                prompts.say("  please give BCM pin numbers, like 12 or 5,6,13")
    return a


def write(
    config_path: Path, current: dict[str, dict[str, Any]], answers: Answers
) -> tuple[Settings, list[str]]:
    """Store the key and the configuration; return the settings and what was done."""
    done: list[str] = []
    data = {table: dict(values) for table, values in current.items()}
    platform = data.setdefault("platform", {})
    if answers.agent_id:
        platform["agent_id"] = answers.agent_id
    if answers.api_base_url:
        platform["api_base_url"] = answers.api_base_url
    if answers.api_key:
        key = answers.api_key.strip()
        problem = key_problem(key)
        if problem:
            raise ConfigError(f"API key: {problem}")
        key_path = key_file_for(config_path, platform.get("api_key_file"))
        write_atomically(
            key_path, key + "\n", 0o600, owner=uid_of(SERVICE_USER), group=gid_of(SERVICE_USER)
        )
        platform.pop("api_key", None)
        platform["api_key_file"] = str(key_path)
        done.append(f"API key written to {key_path} (mode 0600)")
    audio = data.setdefault("audio", {})
    for name, value in (
        ("input_device", answers.input_device),
        ("output_device", answers.output_device),
    ):
        if value is None:
            continue
        if value in ("", "default"):
            audio.pop(name, None)
        else:
            audio[name] = int(value) if value.isdigit() else value
    if answers.trigger:
        data.setdefault("conversation", {})["start"] = answers.trigger
    if answers.wake_model:
        data.setdefault("wake_word", {})["model"] = answers.wake_model
    gpio = data.setdefault("gpio", {})
    if answers.button_pin is not None:
        gpio["button_pin"] = answers.button_pin
    if answers.led_pins is not None:
        if answers.led_pins:
            gpio["led_pins"] = answers.led_pins
            gpio.setdefault("led_type", "led" if len(answers.led_pins) == 1 else "rgb")
        else:
            gpio.pop("led_pins", None)
    settings, previous = install_config(
        config_path, dumps(data).encode("utf-8"), shown_as=str(config_path)
    )
    if previous is not None:
        done.append(f"previous configuration kept as {previous}")
    done.append(f"configuration written to {config_path} (mode 0640)")
    return settings, done


LISTED_AGENTS = 30
"""A search shows at most this many agents."""


def _pick_agent(prompts: Prompts, search: Search, word: str, key: str | None) -> str | None:
    """The agents whose name holds ``word``, numbered; the one picked (None: ask again)."""
    try:
        found = search(word, key)
    except Exception as exc:  # the platform is down, the key refused: say so, ask again
        prompts.say(f"  cannot search the platform: {exc}")
        return None
    if not found:
        prompts.say(f"  no agent's name contains {word!r}")
        return None
    for i, (agent_id, name) in enumerate(found, 1):
        prompts.say(f"  {i}. {one_line(name, 60)} ({one_line(agent_id, 64)})")
    if len(found) >= LISTED_AGENTS:
        prompts.say(f"  (the first {LISTED_AGENTS}: type ?word to narrow the list)")
    choice = prompts.ask("Pick a number (Enter to search again): ").strip()
    if choice.isdigit() and 1 <= int(choice) <= len(found):
        return found[int(choice) - 1][0]
    return None


def _has_key(current: dict[str, dict[str, Any]]) -> bool:
    platform = current.get("platform", {})
    return bool(platform.get("api_key") or platform.get("api_key_file"))


def _ask(prompts: Prompts, question: str, default: Any) -> str:
    shown = "" if default in (None, "") else f" [{default}]"
    answer = prompts.ask(f"{question}{shown}: ").strip()
    return answer or ("" if default is None else str(default))


def _ask_int(prompts: Prompts, question: str, default: Any) -> int | None:
    while True:
        text = _ask(prompts, question, default)
        if not text:
            return None
        if text.isdigit() and int(text) <= 63:
            return int(text)
        prompts.say("  please give a BCM pin number, 0 to 63")
