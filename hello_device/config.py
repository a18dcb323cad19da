"""Configuration: one TOML file parsed into frozen, typed settings.

Each section of the file is a frozen dataclass below; each field carries its default,
its allowed values (``field(metadata=...)``) and a docstring. :func:`load_settings`
reads a file, checks every key and value against these declarations, and either
returns :class:`Settings` or raises :class:`~hello_device.errors.ConfigError` with one
line per problem, each naming the file and the dotted key. All problems in a file are
reported at once.

The API key is special: it may come from ``platform.api_key``, from the file named by
``platform.api_key_file``, or from the environment variable ``HELLO_DEVICE_API_KEY``
(which wins, so an operator can inject it from systemd credentials). It is held in a
:class:`Secret`, whose ``str``/``repr`` never show it, and no error message ever
echoes it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
import socket
import stat
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hello_device.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/hello-device/config.toml")
API_KEY_ENV = "HELLO_DEVICE_API_KEY"

AudioFormatName = Literal[
    "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000", "ulaw_8000"
]
AUDIO_FORMATS: tuple[str, ...] = typing.get_args(AudioFormatName)


class Secret:
    """A string that never shows itself in ``str``, ``repr``, f-strings or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that must send it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"


def _f(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with validation metadata (choices, min, max, secret, ...)."""
    if isinstance(default, (dict, list)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DeviceSettings:
    """``[device]``: who this device is."""

    id: str = _f("", pattern=r"^[A-Za-z0-9_.:-]{0,64}$")
    """Stable device id, sent to the agent as the dynamic variable ``device_id``.
    Default: the host name."""

    name: str = _f("hello-device", max_len=128)
    """Human-readable name, sent to the agent as ``device_name``."""


@dataclass(frozen=True)
class PlatformSettings:
    """``[platform]``: where the agent lives and how to reach it."""

    api_base_url: str = _f("https://api.elevenlabs.io", url=("http", "https"))
    """Base URL of the management REST API."""

    ws_url: str | None = _f(None, url=("ws", "wss"))
    """Override of the conversation WebSocket URL (default: derived from ``api_base_url``)."""

    agent_id: str = _f("", required=True, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    """Id of the agent to talk to (required)."""

    api_key: Secret | None = _f(None, secret=True)
    """API key. Prefer ``api_key_file`` or the ``HELLO_DEVICE_API_KEY`` environment
    variable; never printed or logged."""

    api_key_file: str | None = _f(None)
    """File holding the API key (mode 0600; a warning is logged if group or others can
    read it)."""

    auth_header: Literal["xi-api-key", "bearer"] = _f("xi-api-key")
    """How the key is sent: ``xi-api-key: KEY`` or ``Authorization: Bearer KEY``."""

    allow_insecure: bool = _f(False)
    """Allow ``http://`` / ``ws://`` to hosts other than loopback (never for production)."""

    dialect: Literal["elevenlabs", "variant"] = _f("elevenlabs")
    """Client message shapes: the real platform's, or the variant shapes some compatible
    servers expect (``{"type": "audio"}`` mic chunks, client interruption, ...)."""

    signed_url: Literal["auto", "always", "never"] = _f("auto")
    """Use a signed conversation URL: when the agent is private (auto), always, or never."""

    connect_timeout_s: float = _f(5.0, min=0.1, max=120.0)
    """Timeout for opening a connection to the platform (REST and WebSocket)."""

    read_timeout_s: float = _f(10.0, min=0.1, max=300.0)
    """Timeout for reading a REST answer."""

    config_max_age_s: float = _f(3600.0, min=0.0, max=30 * 86400.0)
    """Re-fetch the agent configuration at the start of a conversation when the copy is
    older than this (0: at every conversation)."""

    reconnect_max_backoff_s: float = _f(30.0, min=1.0, max=3600.0)
    """Upper bound of the exponential backoff between reconnection attempts."""


@dataclass(frozen=True)
class ConversationSettings:
    """``[conversation]``: when conversations start and what they send first."""

    start: Literal["button", "voice", "auto"] = _f("button")
    """What starts a conversation: a GPIO button, local voice activity, or ``auto`` (a
    kiosk: start at boot and again after each conversation ends)."""

    dynamic_variables: dict[str, str | int | float | bool] = _f({})
    """Dynamic variables sent at the start of every conversation (``device_id`` and
    ``device_name`` are added)."""

    first_message: str | None = _f(None)
    """Override of the agent's first message (only if the agent allows the override)."""

    language: str | None = _f(None, pattern=r"^[a-z]{2}(-[a-z]{2})?$")
    """Override of the conversation language, e.g. ``en`` (if the agent allows it)."""

    prompt: str | None = _f(None)
    """Override of the agent's system prompt (if the agent allows it)."""

    voice_id: str | None = _f(None)
    """Override of the agent's voice (if the agent allows it)."""

    connect_timeout_s: float = _f(10.0, min=0.5, max=120.0)
    """How long to wait for the socket and the platform's conversation metadata."""

    inactivity_timeout_s: float = _f(30.0, min=0.0, max=3600.0)
    """End a conversation after this long with neither user speech nor agent audio
    (0: never; the platform has its own limit)."""

    max_duration_s: float = _f(0.0, min=0.0, max=86400.0)
    """End a conversation after this long (0: the agent's own maximum)."""

    user_activity_interval_s: float = _f(0.0, min=0.0, max=3600.0)
    """Send ``user_activity`` this often to keep an idle but wanted conversation open
    (0: never)."""

    restart_delay_s: float = _f(1.0, min=0.0, max=3600.0)
    """In ``auto`` mode, the pause before the next conversation starts."""


@dataclass(frozen=True)
class AudioSettings:
    """``[audio]``: sound cards or files."""

    backend: Literal["pyaudio", "file"] = _f("pyaudio")
    """``pyaudio`` for real sound cards; ``file`` for a virtual card reading
    ``input_file`` and writing ``output_file`` in real time."""

    input_device: str | int | None = _f(None)
    """Microphone: a name substring, a PortAudio index, or unset for the default."""

    output_device: str | int | None = _f(None)
    """Loudspeaker: a name substring, a PortAudio index, or unset for the default."""

    input_channel: int | Literal["mix"] = _f("mix", min=0, max=63)
    """Microphone channel to use (0-based), or ``mix`` to average all channels."""

    frame_ms: Literal[10, 20, 30] = _f(20)
    """Length of one audio frame: the unit of capture, VAD and streaming."""

    volume: float = _f(1.0, min=0.0, max=1.0)
    """Output gain, 0.0 to 1.0."""

    output_buffer_ms: int = _f(60, min=10, max=500)
    """Audio held by the sound card in front of the playout queue (bounds the time
    between a flush and silence)."""

    input_file: str | None = _f(None)
    """File backend: WAV read as the microphone (any rate and channel count)."""

    output_file: str | None = _f(None)
    """File backend: 16-bit mono WAV written as the loudspeaker."""

    output_rate: int = _f(16000, choices=(8000, 16000, 22050, 24000, 44100, 48000))
    """File backend: sample rate of ``output_file``."""

    exit_at_end: bool = _f(False)
    """File backend: when the input ends, write 2 more seconds and stop the daemon."""

    loopback_gain: float = _f(0.0, min=0.0, max=4.0)
    """File backend: mix what the loudspeaker plays back into the microphone at this gain
    (1.0 = as loud as played), like a loudspeaker the microphone hears; for tests and
    benchmarks of the echo guard."""

    reopen_max_backoff_s: float = _f(30.0, min=0.5, max=3600.0)
    """Upper bound of the backoff between attempts to reopen a failed sound card."""


@dataclass(frozen=True)
class EarconSettings:
    """``[earcons]``: short generated sounds for listening-start, end and error."""

    enabled: bool = _f(True)
    """Play earcons at all."""

    volume: float = _f(0.3, min=0.0, max=1.0)
    """Earcon level relative to full scale."""


@dataclass(frozen=True)
class VadSettings:
    """``[vad]``: the local voice activity detector (webrtcvad)."""

    aggressiveness: int = _f(2, min=0, max=3)
    """webrtcvad aggressiveness: 0 (least) to 3 (most eager to call a frame non-speech)."""

    start_frames: int = _f(3, min=1, max=50)
    """Voiced frames in a row that confirm speech has started."""

    end_silence_ms: int = _f(0, min=0, max=10000)
    """Silence that ends an utterance; 0: the agent's turn hint, else 700 ms."""

    preroll_ms: int = _f(300, min=0, max=2000)
    """Audio kept from before the confirmed onset, so the first syllable is not lost."""

    send: Literal["speech", "all"] = _f("speech")
    """Inside a conversation: ``speech`` replaces non-speech frames with digital
    silence; ``all`` streams the microphone as it is."""


@dataclass(frozen=True)
class BargeInSettings:
    """``[barge_in]``: stopping the agent when the user talks over it."""

    enabled: bool = _f(True)
    """Stop playback locally as soon as confirmed user speech is heard."""

    min_speech_ms: int = _f(120, min=20, max=2000)
    """Voiced audio needed to confirm a barge-in."""

    warmup_ms: int = _f(250, min=0, max=5000)
    """No barge-in in the first part of each agent turn (the echo path settles)."""

    echo_margin_db: float = _f(6.0, min=0.0, max=40.0)
    """The microphone must exceed the level the playback predicts by this much."""

    echo_cancel: Literal["off", "webrtc"] = _f("off")
    """In-process echo cancellation (``webrtc`` needs the optional package)."""


@dataclass(frozen=True)
class GpioSettings:
    """``[gpio]``: button and LEDs, through gpiozero."""

    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "pigpio", "native"] = _f("auto")
    """gpiozero pin factory; ``mock`` for demos and tests."""

    button_pin: int | None = _f(None, min=0, max=63)
    """BCM pin of the talk button (unset: no button)."""

    button_pull_up: bool = _f(True)
    """Button wired to ground with the internal pull-up (true) or to 3V3 (false)."""

    bounce_ms: int = _f(30, min=0, max=1000)
    """Debounce time."""

    hold_s: float = _f(2.0, min=0.2, max=30.0)
    """A press held this long is a long press."""

    button_mode: Literal["toggle", "push_to_talk"] = _f("toggle")
    """``toggle``: press to start, press again to end; ``push_to_talk``: audio flows only
    while the button is held."""

    long_press: Literal["end", "mute", "none"] = _f("mute")
    """What a long press does."""

    mute_pin: int | None = _f(None, min=0, max=63)
    """BCM pin of a mute switch (closed: muted)."""

    led_type: Literal["none", "led", "pwm", "rgb"] = _f("none")
    """Status LED: none, a single LED, a dimmable (PWM) LED, or an RGB LED."""

    led_pins: list[int] = _f([], min=0, max=63)
    """BCM pins of the LED (one pin, or red, green, blue for ``rgb``)."""

    led_active_high: bool = _f(True)
    """LED lights when its pin is high (false for common-anode RGB LEDs)."""


@dataclass(frozen=True)
class LoggingSettings:
    """``[logging]``."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f("INFO")
    """Log level (``--log-level`` overrides it)."""

    target: Literal["auto", "journal", "stderr"] = _f("auto")
    """``auto``: journald under systemd, else standard error."""


@dataclass(frozen=True)
class StateSettings:
    """``[state]``: what the device keeps between boots."""

    dir: str = _f("/var/lib/hello-device")
    """Directory for the cached agent configuration."""


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    earcons: EarconSettings = field(default_factory=EarconSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    barge_in: BargeInSettings = field(default_factory=BargeInSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    state: StateSettings = field(default_factory=StateSettings)
    source: str = "<defaults>"
    """Path of the file these settings came from."""
    api_key_source: str = "none"
    """Where the API key came from: ``file``, ``key file``, ``environment`` or ``none``."""


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Settings)
    if f.default_factory is not dataclasses.MISSING
}

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


class _Collector:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def add(self, key: str, message: str) -> None:
        parts = [p if not _looks_like_secret(p) else "(name hidden)" for p in key.split(".")]
        self.problems.append(f"{self.path}: {'.'.join(parts)}: {message}")


def _check_value(
    hint: Any, value: Any, key: str, meta: dict[str, Any], errs: _Collector
) -> tuple[bool, Any]:
    """Check ``value`` against a type hint; return (ok, converted value)."""
    secret = bool(meta.get("secret"))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        # Try each alternative silently; report against all of them when none fits.
        for alt in args:
            trial = _Collector(errs.path)
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
    value: Any, key: str, meta: dict[str, Any], errs: _Collector, secret: bool
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


def _build_section(cls: type, raw: Any, name: str, errs: _Collector) -> Any:
    if not isinstance(raw, dict):
        errs.add(name, f"must be a table ([{name}]), not {_toml_type_name(raw)}")
        return cls()
    hints = typing.get_type_hints(cls, globalns=globals())
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            close = _closest(key, list(fields))
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


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return found[0] if found else None


def parse_settings(
    data: dict[str, Any],
    path: str = "<config>",
    env: typing.Mapping[str, str] | None = None,
    warn: typing.Callable[[str], None] | None = None,
) -> Settings:
    """Build :class:`Settings` from already-parsed TOML data, or raise ConfigError."""
    env = os.environ if env is None else env
    warn = warn or log.warning
    errs = _Collector(path)
    sections: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in SECTIONS:
            close = _closest(name, list(SECTIONS))
            hint = f"; did you mean [{close}]?" if close else ""
            errs.add(name, f"unknown section{hint} (allowed: {', '.join(SECTIONS)})")
            continue
        sections[name] = _build_section(SECTIONS[name], raw, name, errs)
    if "platform" not in data:
        errs.add("platform.agent_id", "is required (add a [platform] section)")
    settings = Settings(**sections, source=path)
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
        raise ConfigError([_redact_all(p, secrets) for p in errs.problems])
    return settings


def _finish(
    s: Settings,
    data: dict[str, Any],
    errs: _Collector,
    env: typing.Mapping[str, str],
    warn: typing.Callable[[str], None],
    path: str,
) -> Settings:
    """Cross-field checks and derived values (device id, API key)."""
    device = s.device
    if not device.id:
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

    gpio = s.gpio
    if gpio.led_type == "rgb" and len(gpio.led_pins) != 3:
        errs.add("gpio.led_pins", 'needs 3 pins (red, green, blue) when gpio.led_type = "rgb"')
    elif gpio.led_type in ("led", "pwm") and len(gpio.led_pins) != 1:
        errs.add("gpio.led_pins", f'needs exactly 1 pin when gpio.led_type = "{gpio.led_type}"')
    used = [p for p in (gpio.button_pin, gpio.mute_pin, *gpio.led_pins) if p is not None]
    if len(used) != len(set(used)):
        errs.add("gpio", "the same pin is used twice among button_pin, mute_pin and led_pins")
    if s.conversation.start == "button" and gpio.button_pin is None:
        # Not an error: the daemon still works with a mock or no button, but say so.
        pass

    return dataclasses.replace(
        s, device=device, platform=platform, audio=audio, api_key_source=source
    )


def _redact_all(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def is_secure_or_loopback(url: str) -> bool:
    """True for https/wss URLs, or any scheme to a loopback host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("https", "wss"):
        return True
    host = (parts.hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


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
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
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
