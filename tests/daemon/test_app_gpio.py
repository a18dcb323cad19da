"""The daemon driven by GPIO: a real button (gpiozero's MockFactory pins) starts and ends
conversations with the real emulator; the LED follows the device state; push-to-talk
and the mute switch decide what audio leaves the device.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.e2e import active, run_with_emulator, silence_wav

pytestmark = pytest.mark.slow

BUTTON, MUTE = 17, 27
RGB = [12, 13, 19]


def pin(daemon: Daemon, number: int):  # type: ignore[no-untyped-def]
    assert daemon.gpio is not None and daemon.gpio.pin_factory is not None
    return daemon.gpio.pin_factory.pin(number)


async def ready(daemon: Daemon) -> None:
    await asyncio.wait_for(daemon.ready.wait(), 10 * UNIT)
    assert daemon.gpio is not None


async def click(daemon: Daemon, number: int = BUTTON) -> None:
    p = pin(daemon, number)
    p.drive_low()
    await asyncio.sleep(0.05 * UNIT)  # a human press; edges must be further apart than bounce_ms
    p.drive_high()


GPIO = {
    "pin_factory": "mock",
    "button_pin": BUTTON,
    "mute_pin": MUTE,
    "bounce_ms": 10,
    "led_type": "rgb",
    "led_pins": RGB,
}


WAKE_EXTRA = pytest.mark.skipif(
    importlib.util.find_spec("pymicro_wakeword") is None, reason="the wake extra is not installed"
)


@pytest.mark.parametrize("start", ["button", pytest.param("wake_word", marks=WAKE_EXTRA)])
def test_button_starts_and_ends_a_conversation_and_the_led_follows(
    start: str, tmp_path: Path
) -> None:
    """The button, and the button beside the wake word (which hears nothing here)."""
    seen: list[DeviceState] = []

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await ready(daemon)
        daemon.state.add_listener(lambda old, new, why: seen.append(new))
        led = daemon.gpio.led.device  # type: ignore[union-attr]
        assert daemon.state.state is DeviceState.IDLE
        assert not emu.conversations  # nothing starts by itself in button mode
        await click(daemon)
        await active(emu, 1)
        await daemon.wait_state(DeviceState.LISTENING, 5 * UNIT)
        assert tuple(led.value) == (0, 0, 1)  # listening: blue
        await asyncio.sleep(0.3 * UNIT)  # a person presses again a moment later, not 6 ms later
        await click(daemon)
        record = emu.conversations[0]
        await asyncio.wait_for(record.finished.wait(), 5 * UNIT)
        assert record.close_code == 1000
        assert record.close_reason == "ended with the button"
        await daemon.wait_state(DeviceState.IDLE, 5 * UNIT)

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 5.0),
            during=during,
            conversation={"start": start},
            gpio=GPIO,
        )
    )
    assert run.code == 0
    assert len(run.emulator.conversations) == 1
    assert DeviceState.CONNECTING in seen and DeviceState.LISTENING in seen


def test_push_to_talk_sends_audio_only_while_held(shared_audio: Path, tmp_path: Path) -> None:
    held: dict[str, float] = {}

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await ready(daemon)
        p = pin(daemon, BUTTON)
        p.drive_low()  # press and hold: the conversation starts, audio flows
        record = await emu.wait_conversation(1, timeout=10 * UNIT)
        await asyncio.wait_for(record.initiated.wait(), 10 * UNIT)
        await asyncio.sleep(2.0 * UNIT)  # the user holds the button for two seconds
        p.drive_high()  # released: only silence from now on
        held["released_at"] = record.user_audio_s

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            shared_audio / "utterance.wav",
            config=EmulatorConfig(),
            during=during,
            conversation={"start": "button"},
            gpio={**GPIO, "button_mode": "push_to_talk"},
            vad={"send": "all"},
        )
    )
    assert run.code == 0
    audio = np.frombuffer(bytes(run.emulator.conversations[0].user_audio), dtype="<i2")
    cut = int((held["released_at"] + 0.1) * 16000)
    assert np.abs(audio[:cut].astype(np.int32)).max() > 1000  # speech while held
    assert not audio[cut:].any()  # digital silence after the release


def test_mute_switch_silences_the_microphone_and_shows_it(
    shared_audio: Path, tmp_path: Path
) -> None:
    """The switch is closed before the conversation starts (so no frame can slip out
    before the mute is applied, whatever the machine's speed): everything the platform
    gets is digital silence, and the LED shows it."""

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await ready(daemon)
        pin(daemon, MUTE).drive_low()  # switch closed: muted
        await daemon.wait_state(DeviceState.MUTED, 5 * UNIT)
        led = daemon.gpio.led.device  # type: ignore[union-attr]
        assert tuple(led.value) == (1, 0, 0)  # muted: red
        await click(daemon)  # then the user starts a conversation
        await active(emu, 1)
        assert daemon.state.state is DeviceState.MUTED  # muted shows over listening

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            shared_audio / "utterance.wav",
            during=during,
            conversation={"start": "button"},
            gpio=GPIO,
            vad={"send": "all"},
        )
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert record.audio_chunks > 100  # the microphone streamed the whole time...
    assert not record.utterances  # ...but the speech at 1.05 s never left the device
    assert not bytes(record.user_audio).strip(b"\x00")


def test_long_press_mutes_and_a_second_unmutes(tmp_path: Path) -> None:
    async def during(daemon: Daemon, emu: Emulator) -> None:
        await ready(daemon)
        await active(emu, 1)
        p = pin(daemon, BUTTON)
        p.drive_low()  # held past hold_s: a long press
        await daemon.wait_state(DeviceState.MUTED, 5 * UNIT)
        p.drive_high()  # the release after a long press is not a short press
        await asyncio.sleep(0.3 * UNIT)  # a pause before the second press
        assert daemon.session is not None  # the conversation goes on
        p.drive_low()
        await daemon.wait_state(DeviceState.LISTENING, 5 * UNIT)
        p.drive_high()

    run = asyncio.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 4.0),
            during=during,
            gpio={**GPIO, "hold_s": 0.3, "long_press": "mute"},
        )
    )
    assert run.code == 0
    assert len(run.emulator.conversations) == 1
