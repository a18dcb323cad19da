"""Device helpers: finding devices by name, index or default, and accepted rates
(against the fake PortAudio host of :mod:`hello_device.testing.fake_pyaudio`)."""

from __future__ import annotations

import pytest

from hello_device.audio.backends.pyaudio import (
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_OUTPUT_UNDERFLOW,
)
from hello_device.audio.devices import (
    PA_INT16,
    find_device,
    list_devices,
    pick_rate,
    supported_rates,
)
from hello_device.errors import AudioDeviceError
from hello_device.testing.fake_pyaudio import (
    FakeDevice,
    FakeHost,
    hat_codec,
    usb_mic,
)


def test_constants_match_pyaudio() -> None:
    pyaudio = pytest.importorskip("pyaudio")
    assert pyaudio.paInt16 == PA_INT16
    assert pyaudio.paContinue == PA_CONTINUE
    assert pyaudio.paInputOverflow == PA_INPUT_OVERFLOW
    assert pyaudio.paOutputUnderflow == PA_OUTPUT_UNDERFLOW


def test_find_device_by_name_index_and_default() -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), usb_mic(), hat_codec()], 2, 0)
    pa = host.factory()
    assert find_device(pa, None, "input").index == 2
    assert find_device(pa, None, "output").index == 0
    assert find_device(pa, "usb pnp", "input").index == 1
    assert find_device(pa, "WM8960", "output").index == 2
    assert find_device(pa, 1, "input").name.startswith("USB PnP")
    assert find_device(pa, "2", "input").index == 2  # digits: an index
    with pytest.raises(AudioDeviceError) as err:
        find_device(pa, "respeaker", "input")
    message = str(err.value)
    assert "no microphone (input device) matches 'respeaker'" in message
    assert "#1 'USB PnP Sound Device: Audio (hw:2,0)'" in message
    assert "Headphones" not in message  # only input devices are listed
    with pytest.raises(AudioDeviceError, match="has no output channels"):
        find_device(pa, 1, "output")
    with pytest.raises(AudioDeviceError, match="there is no device #7"):
        find_device(pa, 7, "input")


def test_find_device_exact_name_beats_substring() -> None:
    host = FakeHost([FakeDevice("pulse", 32, 32), FakeDevice("pulse monitor", 2, 0)])
    assert find_device(host.factory(), "PULSE", "input").name == "pulse"


def test_find_device_without_any_default() -> None:
    host = FakeHost([FakeDevice("HDMI", 0, 2)], default_in=5)
    with pytest.raises(AudioDeviceError, match="there is no default microphone"):
        find_device(host.factory(), None, "input")


def test_list_devices_reports_accepted_rates() -> None:
    host = FakeHost([hat_codec(), usb_mic()])
    devices = list_devices(host.factory())
    assert [(d.index, d.max_input_channels, d.max_output_channels) for d in devices] == [
        (0, 2, 2),
        (1, 1, 0),
    ]
    assert devices[0].input_rates == (48000,)
    assert devices[0].output_rates == (44100,)
    assert devices[1].input_rates == (16000, 44100, 48000)
    assert devices[1].output_rates == ()
    assert devices[0].host_api == "ALSA"


def test_rate_preference_and_default_rate_fallback() -> None:
    odd = FakeDevice("odd", 1, 1, default_rate=96000, in_rates=frozenset({96000, 44100}))
    pa = FakeHost([odd]).factory()
    dev = find_device(pa, None, "input")
    assert supported_rates(pa, dev, "input", 1) == [44100, 96000]
    assert pick_rate(pa, dev, "input", 1) == 44100
    only_default = FakeDevice("x", 1, 1, default_rate=96000, in_rates=frozenset({96000}))
    pa = FakeHost([only_default]).factory()
    assert pick_rate(pa, find_device(pa, 0, "input"), "input", 1) == 96000
    none = FakeDevice("none", 1, 1, in_rates=frozenset())
    pa = FakeHost([none]).factory()
    with pytest.raises(AudioDeviceError, match="accepts none of the sample rates"):
        pick_rate(pa, find_device(pa, 0, "input"), "input", 1)
