"""The configuration's schema: one frozen dataclass per section of the TOML file.

Each field carries its default, its allowed values (``field(metadata=...)``: choices,
min, max, pattern, url schemes, secret) and a docstring, which ``config.example.toml``,
``config show`` and the error messages are built from.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hello_device.settings.fields import Secret, _f

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/hello-device/config.toml")
API_KEY_ENV = "HELLO_DEVICE_API_KEY"

__all__ = ["Secret"]  # re-exported: the schema's hints name it


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

    keepalive_interval_s: float = _f(4.0, min=0.0, max=300.0)
    """During a conversation, send a WebSocket ping this often (0: never). With
    ``keepalive_timeout_s`` it bounds how long a dead link (the platform silent, TCP still
    up) goes unnoticed: about interval + timeout + 1 s, 9 s by default."""

    keepalive_timeout_s: float = _f(4.0, min=0.0, max=300.0)
    """A ping not answered within this long means the link is dead; the conversation
    resumes as after an abrupt close (0: wait for ever)."""


@dataclass(frozen=True)
class ConversationSettings:
    """``[conversation]``: when conversations start and what they send first."""

    start: Literal["button", "voice", "wake_word", "auto"] = _f("button")
    """What starts a conversation: a GPIO button, local voice activity, the wake word
    (``[wake_word]``; the button works beside it), or ``auto`` (a kiosk: start at boot
    and again after each conversation ends)."""

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

    like_pin: int | None = _f(None, min=0, max=63)
    """BCM pin of a "thumbs up" button: the user likes the agent's answer (unset: none)."""

    dislike_pin: int | None = _f(None, min=0, max=63)
    """BCM pin of a "thumbs down" button (wired like the talk button)."""

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
class LocalApiSettings:
    """``[local_api]``: state and transcripts out, commands in, for a kiosk's screen app
    (HTTP and WebSocket on one port; see docs/local-api.md)."""

    enabled: bool = _f(True)
    """Serve the local API."""
    listen: str = _f("127.0.0.1:8766", max_len=300)
    """``HOST:PORT`` to listen on (port 0: any free port). Loopback only, unless
    ``token_file`` is set."""
    token_file: str | None = _f(None, max_len=4096)
    """A file holding a bearer token: then every request needs ``Authorization: Bearer
    TOKEN``, and a non-loopback ``listen`` is allowed."""
    allowed_origins: list[str] = _f([])
    """Web page origins allowed besides loopback ones (``https://kiosk.example``)."""
    serve_example: bool = _f(False)
    """Serve the example kiosk page at ``GET /``."""
    max_clients: int = _f(16, min=1, max=256)
    """Event clients connected at once."""
    commands_per_s: float = _f(20.0, min=0.1, max=1000.0)
    """Commands an events client may send per second (bursts of twice that); all HTTP
    commands share one such budget."""


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: Prometheus metrics, at ``GET /metrics`` on the local API and, for
    node_exporter's textfile collector, in a file (see docs/fleet.md)."""

    enabled: bool = _f(True)
    """Keep the metrics (and serve them on the local API)."""
    textfile: str | None = _f(None, max_len=4096)
    """Write them to this ``.prom`` file every ``interval_s`` (for node_exporter's
    ``--collector.textfile.directory``; written atomically)."""
    interval_s: float = _f(15.0, min=1.0, max=3600.0)
    """How often the textfile is written."""


@dataclass(frozen=True)
class MqttSettings:
    """``[mqtt]``: the device on an MQTT broker, with Home Assistant discovery (needs
    ``pip install 'hello-device[mqtt]'``; see docs/fleet.md). Off while ``url`` is unset."""

    url: str | None = _f(None, max_len=300)
    """``mqtt://host:1883`` or ``mqtts://host:8883``."""
    username: str | None = _f(None, max_len=200)
    """The broker account (unset: anonymous)."""
    password_file: str | None = _f(None, max_len=4096)
    """A file holding the password (mode 0600; never logged)."""
    client_id: str | None = _f(None, max_len=100)
    """Default: the device id."""
    topic_prefix: str | None = _f(None, max_len=200)
    """Default: ``hello-device/<device.id>``."""
    discovery_prefix: str = _f("homeassistant", max_len=200)
    """Home Assistant's discovery prefix; empty: no discovery."""
    tls_ca_file: str | None = _f(None, max_len=4096)
    """The CA that signed the broker's certificate (``mqtts``; default: the system's)."""
    keepalive_s: int = _f(60, min=5, max=3600)
    """MQTT keep-alive: the broker declares the device gone (the last will) after 1.5
    times this without a word from it."""
    publish_transcripts: bool = _f(False)
    """Also publish what was said (personal data: off by default)."""


BUILTIN_WAKE_MODELS = ("okay_nabu", "alexa", "hey_jarvis", "hey_mycroft")
"""The wake-word models inside the pymicro-wakeword package."""


@dataclass(frozen=True)
class WakeWordSettings:
    """``[wake_word]``: the on-device wake word (needs the ``wake`` extra:
    ``pip install 'hello-device[wake]'``); ``hello-device wake-test`` tunes it."""

    model: str = _f("okay_nabu", max_len=4096)
    """A built-in model (okay_nabu, alexa, hey_jarvis, hey_mycroft) or the path of a
    microWakeWord model's JSON manifest (a custom word)."""
    sensitivity: float = _f(0.5, min=0.0, max=1.0)
    """0.5 keeps the model's own probability cutoff; 1 lowers it to 0.5 (fires more
    readily), 0 raises it to 0.99 (fires less)."""
    refractory_s: float = _f(2.0, min=0.0, max=60.0)
    """After a detection, the word is not detected again for this long."""
    send_wake_audio: bool = _f(False)
    """Whether the wake phrase itself reaches the platform (default: only what follows)."""
    during_agent: Literal["interrupt", "ignore"] = _f("interrupt")
    """The wake word while the agent talks stops it (like a barge-in), or is ignored."""


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
    wake_word: WakeWordSettings = field(default_factory=WakeWordSettings)
    local_api: LocalApiSettings = field(default_factory=LocalApiSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    source: str = "<defaults>"
    """Path of the file these settings came from."""
    explicit: frozenset[str] = frozenset()
    """Dotted keys (``section.key``) the file set, captured when it was read: values
    the platform may supply apply only where the file is silent."""
    api_key_source: str = "none"
    """Where the API key came from: ``file``, ``key file``, ``environment`` or ``none``."""


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Settings)
    if f.default_factory is not dataclasses.MISSING
}
