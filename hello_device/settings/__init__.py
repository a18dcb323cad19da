"""Settings: one TOML file parsed into frozen, typed dataclasses.

:func:`load_settings` reads a file, checks every key and value against the schema
(:mod:`.schema`), and either returns :class:`Settings` or raises
:class:`~hello_device.errors.ConfigError` with one line per problem, each naming the
file and the dotted key. The API key is held in a :class:`Secret`, whose ``str`` and
``repr`` never show it.
"""

from hello_device.settings.loading import (
    dump_settings,
    explicit_keys,
    field_docs,
    load_settings,
    parse_settings,
)
from hello_device.settings.schema import (
    API_KEY_ENV,
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    AudioSettings,
    BargeInSettings,
    ConversationSettings,
    DeviceSettings,
    EarconSettings,
    GpioSettings,
    LocalApiSettings,
    LoggingSettings,
    MetricsSettings,
    MqttSettings,
    PlatformSettings,
    Secret,
    Settings,
    StateSettings,
    VadSettings,
    WakeWordSettings,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_CONFIG_PATH",
    "SECTIONS",
    "AudioSettings",
    "BargeInSettings",
    "ConversationSettings",
    "DeviceSettings",
    "EarconSettings",
    "GpioSettings",
    "LocalApiSettings",
    "LoggingSettings",
    "MetricsSettings",
    "MqttSettings",
    "PlatformSettings",
    "Secret",
    "Settings",
    "StateSettings",
    "VadSettings",
    "WakeWordSettings",
    "dump_settings",
    "explicit_keys",
    "field_docs",
    "load_settings",
    "parse_settings",
]
