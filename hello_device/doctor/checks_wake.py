"""The wake word: the package is there and the configured model loads."""

from __future__ import annotations

from hello_device.doctor.context import Context
from hello_device.doctor.results import CheckResult, failed, passed
from hello_device.errors import ConfigError


def check_wake_word(ctx: Context) -> CheckResult | None:
    """When the wake word starts conversations: its model loads, and at which cutoff
    (None, not reported, on a device that does not use it)."""
    name = "wake word"
    assert ctx.settings is not None
    if ctx.settings.conversation.start != "wake_word":
        return None
    wake = ctx.settings.wake_word
    try:
        from hello_device.wake.detector import WakeWordDetector

        detector = WakeWordDetector(wake)
    except ConfigError as exc:
        return failed(
            name,
            str(exc),
            "install the extra (the Debian package has it) or fix wake_word.model",
        )
    return passed(
        name,
        f"{detector.model_id} ({detector.wake_word!r}) loads; probability cutoff "
        f"{detector.cutoff:.2f} at sensitivity {wake.sensitivity:g}; tune it on site with "
        "hello-device wake-test",
    )
