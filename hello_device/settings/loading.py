"""Reading a TOML file into :class:`~hello_device.settings.schema.Settings`.

All problems of a file are reported at once, each naming the file and the key. The API
key may come from ``platform.api_key``, the file named by ``platform.api_key_file``, or
the environment variable ``HELLO_DEVICE_API_KEY`` (which wins, so an operator can
inject it from systemd credentials); no error message ever echoes it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import logging
import os
import re
import stat
import tomllib
import typing
from pathlib import Path
from typing import Any

from hello_device.core.text import redact
from hello_device.core.urls import is_loopback_host, is_secure_or_loopback
from hello_device.errors import ConfigError
from hello_device.settings import schema
from hello_device.settings.schema import (
    API_KEY_ENV,
    BUILTIN_WAKE_MODELS,
    SECTIONS,
    LocalApiSettings,
    MqttSettings,
    Secret,
    Settings,
    WakeWordSettings,
)
from hello_device.settings.validation import Collector, build_section, closest_name

log = logging.getLogger(__name__)


def parse_settings(
    data: dict[str, Any],
    path: str = "<config>",
    env: typing.Mapping[str, str] | None = None,
    warn: typing.Callable[[str], None] | None = None,
) -> Settings:
    """Build :class:`Settings` from already-parsed TOML data, or raise ConfigError."""
    env = os.environ if env is None else env
    warn = warn or log.warning
    errs = Collector(path)
    sections: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in SECTIONS:
            close = closest_name(name, list(SECTIONS))
            hint = f"; did you mean [{close}]?" if close else ""
            errs.add(name, f"unknown section{hint} (allowed: {', '.join(SECTIONS)})")
            continue
        sections[name] = build_section(SECTIONS[name], raw, name, errs)
    if "platform" not in data:
        errs.add("platform.agent_id", "is required (add a [platform] section)")
    settings = Settings(**sections, source=path, explicit=explicit_keys(data))
    settings = _finish(settings, data, errs, env, warn, path)
    if errs.problems:
        # Safety net: whatever path a problem took, the key itself never shows.
        key = settings.platform.api_key
        secrets = [key.reveal()] if key else []
        raw_key = (
            data.get("platform", {}).get("api_key")
            if isinstance(data.get("platform"), dict)
            else None
        )
        if isinstance(raw_key, str) and raw_key.strip():
            secrets += [raw_key, raw_key.strip()]
        raise ConfigError([redact(p, [s for s in secrets if len(s) >= 4]) for p in errs.problems])
    return settings


def _finish(
    s: Settings,
    data: dict[str, Any],
    errs: Collector,
    env: typing.Mapping[str, str],
    warn: typing.Callable[[str], None],
    path: str,
) -> Settings:
    """Cross-field checks and derived values (device id, API key)."""
    device = s.device
    if not device.id:
        import socket

        host = re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname())[:64] or "device"
        device = dataclasses.replace(device, id=host)

    platform = s.platform
    raw_platform = data.get("platform", {}) if isinstance(data.get("platform"), dict) else {}
    key: Secret | None = platform.api_key
    source = "file" if key else "none"
    if "api_key" in raw_platform and "api_key_file" in raw_platform:
        errs.add("platform.api_key", "set either api_key or api_key_file, not both")
    if platform.api_key_file:
        key_path = Path(platform.api_key_file)
        if not key_path.is_absolute():
            key_path = Path(path).parent / key_path
        try:
            st = key_path.stat()
            text = key_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            errs.add("platform.api_key_file", f"cannot read {key_path}: {exc.strerror}")
        else:
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                warn(
                    f"{key_path} (platform.api_key_file) can be read by group or others; "
                    f"run: chmod 600 {key_path}"
                )
            if not text or any(c.isspace() for c in text):
                errs.add(
                    "platform.api_key_file",
                    f"{key_path} must hold the key alone on one line (value hidden)",
                )
            else:
                key, source = Secret(text), "key file"
        platform = dataclasses.replace(platform, api_key_file=str(key_path))
    env_key = env.get(API_KEY_ENV, "").strip()
    if env_key:
        key, source = Secret(env_key), "environment"
    if key is not platform.api_key:
        platform = dataclasses.replace(platform, api_key=key)

    for name, url in (("api_base_url", platform.api_base_url), ("ws_url", platform.ws_url)):
        if url and not platform.allow_insecure and not is_secure_or_loopback(url):
            errs.add(
                f"platform.{name}",
                "plain http:// or ws:// to a non-loopback host is refused; use https/wss "
                "or set platform.allow_insecure = true",
            )

    audio = s.audio
    if audio.backend == "file":
        if not audio.input_file:
            errs.add("audio.input_file", 'is required when audio.backend = "file"')
        if not audio.output_file:
            errs.add("audio.output_file", 'is required when audio.backend = "file"')
    # Relative audio files are relative to the configuration file.
    base = Path(path).parent
    if audio.input_file and not Path(audio.input_file).is_absolute():
        audio = dataclasses.replace(audio, input_file=str(base / audio.input_file))
    if audio.output_file and not Path(audio.output_file).is_absolute():
        audio = dataclasses.replace(audio, output_file=str(base / audio.output_file))

    wake = _check_wake(s, base, errs)
    local_api = _check_local_api(s, base, errs)
    mqtt = _check_mqtt(s, base, errs)

    gpio = s.gpio
    if gpio.led_type == "rgb" and len(gpio.led_pins) != 3:
        errs.add("gpio.led_pins", 'needs 3 pins (red, green, blue) when gpio.led_type = "rgb"')
    elif gpio.led_type in ("led", "pwm") and len(gpio.led_pins) != 1:
        errs.add("gpio.led_pins", f'needs exactly 1 pin when gpio.led_type = "{gpio.led_type}"')
    used = [
        p
        for p in (gpio.button_pin, gpio.mute_pin, gpio.like_pin, gpio.dislike_pin, *gpio.led_pins)
        if p is not None
    ]
    if len(used) != len(set(used)):
        errs.add(
            "gpio",
            "the same pin is used twice among button_pin, mute_pin, like_pin, dislike_pin and led_pins",
        )
    if s.conversation.start == "button" and gpio.button_pin is None:
        # Not an error: the daemon still works with a mock or no button, but say so.
        pass

    return dataclasses.replace(
        s,
        device=device,
        platform=platform,
        audio=audio,
        wake_word=wake,
        local_api=local_api,
        mqtt=mqtt,
        api_key_source=source,
    )


def _check_local_api(s: Settings, base: Path, errs: Collector) -> LocalApiSettings:
    """``listen`` is HOST:PORT, and not beyond loopback without a token (a relative
    ``token_file`` is relative to the configuration file)."""
    api = s.local_api
    if api.token_file and not Path(api.token_file).is_absolute():
        api = dataclasses.replace(api, token_file=str(base / api.token_file))
    host, _, port = api.listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        errs.add("local_api.listen", f"{api.listen!r} is not HOST:PORT (like 127.0.0.1:8766)")
    elif api.enabled and not api.token_file and not is_loopback_host(host):
        errs.add(
            "local_api.listen",
            f"{api.listen!r} is beyond loopback: set local_api.token_file too "
            "(every request must then carry the token)",
        )
    for origin in api.allowed_origins:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            errs.add("local_api.allowed_origins", f"{origin!r} is not an origin like https://host")
    return api


def _check_mqtt(s: Settings, base: Path, errs: Collector) -> MqttSettings:
    """The broker's URL, the extra's package and the files it names (relative to the
    configuration file)."""
    m = s.mqtt
    if m.password_file and not Path(m.password_file).is_absolute():
        m = dataclasses.replace(m, password_file=str(base / m.password_file))
    if m.tls_ca_file and not Path(m.tls_ca_file).is_absolute():
        m = dataclasses.replace(m, tls_ca_file=str(base / m.tls_ca_file))
    if m.url is None:
        return m
    if not re.fullmatch(r"mqtts?://[^/:\s]+(:\d{1,5})?/?", m.url):
        errs.add("mqtt.url", f"{m.url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    if importlib.util.find_spec("aiomqtt") is None:
        errs.add("mqtt.url", "MQTT needs the aiomqtt package: pip install 'hello-device[mqtt]'")
    for name in ("password_file", "tls_ca_file"):
        value = getattr(m, name)
        if value and not Path(value).is_file():
            errs.add(f"mqtt.{name}", f"{value} does not exist")
    return m


def _check_wake(s: Settings, base: Path, errs: Collector) -> WakeWordSettings:
    """The wake word's package and model, checked when it starts conversations (a
    custom model's path is relative to the configuration file)."""
    wake = s.wake_word
    if wake.model not in BUILTIN_WAKE_MODELS and not Path(wake.model).is_absolute():
        wake = dataclasses.replace(wake, model=str(base / wake.model))
    if s.conversation.start != "wake_word":
        return wake
    if importlib.util.find_spec("pymicro_wakeword") is None:
        errs.add(
            "conversation.start",
            '"wake_word" needs the pymicro-wakeword package: '
            "pip install 'hello-device[wake]' (64-bit x86 or ARM, or 32-bit ARM)",
        )
    if wake.model not in BUILTIN_WAKE_MODELS:
        model = Path(wake.model)
        if model.suffix != ".json" or not model.is_file():
            errs.add(
                "wake_word.model",
                f"{s.wake_word.model!r} is neither a built-in model "
                f"({', '.join(BUILTIN_WAKE_MODELS)}) nor an existing microWakeWord JSON manifest",
            )
    return wake


def explicit_keys(data: typing.Mapping[str, Any]) -> frozenset[str]:
    """Dotted keys present in parsed TOML data (``section.key``; a bare key for a
    value outside any table)."""
    keys: set[str] = set()
    for section, table in data.items():
        if isinstance(table, dict):
            keys.update(f"{section}.{key}" for key in table)
        else:
            keys.add(section)
    return frozenset(keys)


def load_settings(
    path: str | os.PathLike[str],
    env: typing.Mapping[str, str] | None = None,
    warn: typing.Callable[[str], None] | None = None,
) -> Settings:
    """Read and check a TOML file; raise ConfigError naming every problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {_redact_toml_error(str(exc), text)}") from None
    return parse_settings(data, str(p), env=env, warn=warn)


def _redact_toml_error(message: str, text: str) -> str:
    """tomllib messages name positions, not values; keep them but cut anything long."""
    return message[:200]


def dump_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as plain data, secrets masked (for ``config show``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = getattr(settings, name)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, Secret):
                value = "***"
            values[f.name] = value
        out[name] = values
    return out


def field_docs() -> dict[str, str]:
    """Dotted key -> first line of its docstring, read from this module's source."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    tree = ast.parse(inspect.getsource(schema))
    by_class = {cls.__name__: sec for sec, cls in SECTIONS.items()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in by_class:
            body = node.body
            for a, b in itertools.pairwise(body):
                if (
                    isinstance(a, ast.AnnAssign)
                    and isinstance(a.target, ast.Name)
                    and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)
                ):
                    docs[f"{by_class[node.name]}.{a.target.id}"] = " ".join(b.value.value.split())
    return docs
