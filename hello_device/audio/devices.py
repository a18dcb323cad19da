"""Sound-card discovery and selection over PortAudio (through a ``pyaudio.PyAudio``).

PortAudio numbers every device it found when it was initialised; a device that appears
later (a USB microphone plugged in) is only seen by a *new* PortAudio instance. Devices
are chosen the way ``audio.input_device`` and ``audio.output_device`` are written:

* unset (``None``): the host's default device for that direction;
* an integer, or a string of digits: a PortAudio device index;
* any other string: a case-insensitive name substring (an exact name wins over a
  substring; among several substrings the lowest index wins).

Sample rates: small sound cards often refuse 16 kHz. :func:`supported_rates` asks
PortAudio (``is_format_supported``) which of :data:`RATE_PREFERENCE` and the device's
default rate it accepts, so a stream is only opened at a rate the card takes and
PortAudio's "invalid sample rate" (-9997) never reaches the user.

Nothing here opens a stream; everything takes the PyAudio object as an argument, so the
tests hand in a fake one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from hello_device.errors import AudioDeviceError

__all__ = [
    "CHECK_RATES",
    "PA_INT16",
    "RATE_PREFERENCE",
    "DeviceInfo",
    "Kind",
    "PortAudioHost",
    "default_index",
    "describe_error",
    "find_device",
    "list_devices",
    "pick_rate",
    "supported_rates",
]

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]

PA_INT16: Final = 0x00000008
"""PortAudio's ``paInt16`` (the same value as ``pyaudio.paInt16``)."""

CHECK_RATES: Final = (16000, 44100, 48000)
"""Rates ``hello-device devices`` reports as accepted or not."""

RATE_PREFERENCE: Final = (16000, 48000, 44100, 32000, 22050, 24000, 8000)
"""Rates tried in this order (then the device's default rate): 16 kHz needs no
resampling for capture; 48 and 44.1 kHz are what nearly every codec takes."""


class PortAudioHost(Protocol):
    """The part of ``pyaudio.PyAudio`` these helpers use (tests pass a fake)."""

    def get_device_count(self) -> int: ...

    def get_device_info_by_index(self, device_index: int) -> Mapping[str, Any]: ...

    def get_default_input_device_info(self) -> Mapping[str, Any]: ...

    def get_default_output_device_info(self) -> Mapping[str, Any]: ...

    def get_host_api_info_by_index(self, host_api_index: int) -> Mapping[str, Any]: ...

    def is_format_supported(self, rate: float, **kwargs: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    """PortAudio's device index (valid for the PortAudio instance that listed it)."""
    name: str
    host_api: str
    """Host API name (``ALSA``, ``JACK``, ``OSS``...)."""
    max_input_channels: int
    max_output_channels: int
    default_rate: int
    """The device's default sample rate in Hz."""
    input_rates: tuple[int, ...] = ()
    """Which of :data:`CHECK_RATES` it accepts for capture (filled by ``list_devices``)."""
    output_rates: tuple[int, ...] = ()
    """Which of :data:`CHECK_RATES` it accepts for playback."""
    low_input_latency: float = 0.0
    """PortAudio's ``defaultLowInputLatency`` in seconds (what PyAudio requests)."""
    low_output_latency: float = 0.0
    """PortAudio's ``defaultLowOutputLatency`` in seconds (what PyAudio requests)."""

    def channels(self, kind: Kind) -> int:
        """Maximum channel count in that direction."""
        return self.max_input_channels if kind == "input" else self.max_output_channels

    @property
    def label(self) -> str:
        """``#3 'USB Audio Device: - (hw:1,0)'``: how messages name the device."""
        return f"#{self.index} {self.name!r}"


def _info(
    pa: PortAudioHost, raw: Mapping[str, Any], host_apis: dict[int, str] | None = None
) -> DeviceInfo:
    api_index = int(raw.get("hostApi", -1))
    api = host_apis.get(api_index) if host_apis is not None else None
    if api is None:
        try:
            api = str(pa.get_host_api_info_by_index(api_index)["name"])
        except (OSError, ValueError, KeyError, TypeError):
            api = "?"
        if host_apis is not None:
            host_apis[api_index] = api
    name = raw.get("name", "?")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return DeviceInfo(
        index=int(raw["index"]),
        name=str(name),
        host_api=api,
        max_input_channels=int(raw.get("maxInputChannels", 0)),
        max_output_channels=int(raw.get("maxOutputChannels", 0)),
        default_rate=round(float(raw.get("defaultSampleRate", 0.0))),
        low_input_latency=float(raw.get("defaultLowInputLatency", 0.0)),
        low_output_latency=float(raw.get("defaultLowOutputLatency", 0.0)),
    )


def _all_devices(pa: PortAudioHost) -> list[DeviceInfo]:
    host_apis: dict[int, str] = {}
    devices: list[DeviceInfo] = []
    try:
        count = pa.get_device_count()
    except OSError as exc:
        raise AudioDeviceError(f"PortAudio cannot list devices: {describe_error(exc)}") from exc
    for index in range(count):
        try:
            devices.append(_info(pa, pa.get_device_info_by_index(index), host_apis))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("skipping PortAudio device %d: %s", index, exc)
    return devices


def is_supported(
    pa: PortAudioHost, device: DeviceInfo, kind: Kind, rate: int, channels: int
) -> bool:
    """Whether PortAudio says the device takes 16-bit ``channels`` at ``rate`` Hz."""
    if channels < 1 or channels > device.channels(kind):
        return False
    try:
        if kind == "input":
            ok = pa.is_format_supported(
                rate, input_device=device.index, input_channels=channels, input_format=PA_INT16
            )
        else:
            ok = pa.is_format_supported(
                rate, output_device=device.index, output_channels=channels, output_format=PA_INT16
            )
    except (ValueError, OSError):  # PyAudio raises ValueError((text, code)) for "no"
        return False
    return bool(ok)


def supported_rates(
    pa: PortAudioHost,
    device: DeviceInfo,
    kind: Kind,
    channels: int,
    preference: Iterable[int] = RATE_PREFERENCE,
) -> list[int]:
    """The rates of ``preference`` (then the device's default) the device accepts, in order."""
    candidates = list(dict.fromkeys([*preference, device.default_rate]))
    return [r for r in candidates if r > 0 and is_supported(pa, device, kind, r, channels)]


def pick_rate(
    pa: PortAudioHost,
    device: DeviceInfo,
    kind: Kind,
    channels: int,
    preference: Iterable[int] = RATE_PREFERENCE,
) -> int:
    """The first rate of :func:`supported_rates`; AudioDeviceError if there is none."""
    preference = tuple(preference)
    rates = supported_rates(pa, device, kind, channels, preference)
    if not rates:
        tried = ", ".join(str(r) for r in dict.fromkeys([*preference, device.default_rate]))
        raise AudioDeviceError(
            f"{_noun(kind)} {device.label} accepts none of the sample rates {tried} Hz "
            f"with {channels} channel{'s' if channels != 1 else ''}"
        )
    return rates[0]


def list_devices(pa: PortAudioHost, *, probe_rates: bool = True) -> list[DeviceInfo]:
    """Every device PortAudio knows, with the :data:`CHECK_RATES` each accepts.

    Rates are checked with up to 2 channels (what the backend opens). Probing asks the
    host API about every device; ``probe_rates=False`` skips it.
    """
    devices = _all_devices(pa)
    if not probe_rates:
        return devices
    out = []
    for d in devices:
        ins = tuple(
            r
            for r in CHECK_RATES
            if d.max_input_channels
            and is_supported(pa, d, "input", r, min(2, d.max_input_channels))
        )
        outs = tuple(
            r
            for r in CHECK_RATES
            if d.max_output_channels
            and is_supported(pa, d, "output", r, min(2, d.max_output_channels))
        )
        out.append(
            DeviceInfo(
                d.index,
                d.name,
                d.host_api,
                d.max_input_channels,
                d.max_output_channels,
                d.default_rate,
                ins,
                outs,
                d.low_input_latency,
                d.low_output_latency,
            )
        )
    return out


def default_index(pa: PortAudioHost, kind: Kind) -> int | None:
    """The default device's index for that direction, or None when there is none."""
    try:
        raw = (
            pa.get_default_input_device_info()
            if kind == "input"
            else pa.get_default_output_device_info()
        )
        index = int(raw["index"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if index >= 0 else None


def find_device(pa: PortAudioHost, spec: str | int | None, kind: Kind) -> DeviceInfo:
    """The device ``spec`` names for ``kind`` (see the module docstring).

    Raises AudioDeviceError naming the devices that are available when nothing matches,
    or when the match has no channels in that direction.
    """
    noun = _noun(kind)
    devices = _all_devices(pa)
    usable = [d for d in devices if d.channels(kind) > 0]
    if isinstance(spec, str):
        spec = spec.strip()
        if spec.isdigit():
            spec = int(spec)
        elif not spec:
            spec = None
    if spec is None:
        index = default_index(pa, kind)
        found = next((d for d in devices if d.index == index), None)
        if found is None or found.channels(kind) == 0:
            raise AudioDeviceError(f"there is no default {noun}; {_available(usable, kind)}")
        return found
    if isinstance(spec, int) and not isinstance(spec, bool):
        found = next((d for d in devices if d.index == spec), None)
        if found is None:
            raise AudioDeviceError(f"there is no device #{spec}; {_available(usable, kind)}")
        if found.channels(kind) == 0:
            raise AudioDeviceError(
                f"device {found.label} has no {kind} channels; {_available(usable, kind)}"
            )
        return found
    wanted = str(spec).casefold()
    exact = [d for d in usable if d.name.casefold() == wanted]
    matches = exact or [d for d in usable if wanted in d.name.casefold()]
    if not matches:
        raise AudioDeviceError(f"no {noun} matches {spec!r}; {_available(usable, kind)}")
    if len(matches) > 1:
        log.debug(
            "%s %r matches %s; using %s",
            noun,
            spec,
            ", ".join(d.label for d in matches),
            matches[0].label,
        )
    return matches[0]


def _noun(kind: Kind) -> str:
    return "microphone (input device)" if kind == "input" else "loudspeaker (output device)"


def _available(devices: list[DeviceInfo], kind: Kind) -> str:
    if not devices:
        return f"PortAudio found no {kind} devices at all (is the sound card or server there?)"
    listed = ", ".join(d.label for d in devices)
    return f"{kind} devices: {listed}"


def describe_error(exc: BaseException) -> str:
    """PyAudio's errors as text: ``OSError(-9996, 'Invalid device')`` -> ``Invalid device``."""
    args = exc.args
    texts = [a for a in args if isinstance(a, str)]
    if texts:
        return "; ".join(texts)
    return str(exc) or type(exc).__name__
