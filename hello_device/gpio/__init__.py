"""Talk button, mute switch and status LED, through gpiozero only.

- :mod:`.factory`: the pin factory from ``gpio.pin_factory`` (``mock`` for demos and tests);
- :mod:`.button`: the talk button and the mute switch, events handed to the event loop;
- :mod:`.led`: the status LED, one pattern per device state;
- :mod:`.facade`: :class:`Gpio`, what the daemon uses.

What a press *means* and what each state *looks like* are pure and live in
:mod:`hello_device.core.buttons` and :mod:`hello_device.core.led_patterns`.
"""

from hello_device.gpio.facade import Gpio

__all__ = ["Gpio"]
