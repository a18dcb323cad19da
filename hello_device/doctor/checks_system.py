"""GPIO pins and the systemd service (unit file and service user)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from hello_device.doctor.context import (
    Context,
    file_mode,
    file_owner,
    may_access,
    split_fix,
    with_stop_hint,
)
from hello_device.doctor.results import CheckResult, failed, passed, skipped, warned
from hello_device.doctor.unitfile import SYSUSERS_FILE, UNIT_NAME
from hello_device.errors import (
    GpioError,
)
from hello_device.settings import (
    DEFAULT_CONFIG_PATH,
)

# -- GPIO


def _discard(callback: Callable[[], None]) -> None:
    """The GPIO callbacks go nowhere: the doctor only claims and releases the pins."""


def check_gpio(ctx: Context) -> CheckResult:
    """The pin factory loads; every configured pin can be claimed and released."""
    name = "GPIO"
    assert ctx.settings is not None
    g = ctx.settings.gpio
    buttons_set = (g.button_pin, g.mute_pin, g.like_pin, g.dislike_pin)
    if all(pin is None for pin in buttons_set) and g.led_type == "none":
        return skipped(name, "no pins configured (gpio.button_pin, gpio.mute_pin, gpio.led_type)")
    from hello_device.gpio.facade import Gpio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero's PinFactoryFallback chatter
        try:
            gpio = Gpio(
                g,
                call_soon=_discard,
                on_feedback=lambda score: None,
                pin_factory=ctx.probes.pin_factory,
            )
        except GpioError as exc:
            detail, hint = split_fix(str(exc))
            return failed(name, detail, with_stop_hint(ctx, hint or "check the [gpio] settings"))
        try:
            factory = gpio.pin_factory
            if factory is None:
                from gpiozero import Device

                factory = Device.pin_factory
            factory_name = type(factory).__name__ if factory is not None else "default"
            gpio.resync()
            buttons = gpio.buttons
            pressed = bool(buttons.is_pressed) if buttons is not None and g.button_pin else False
            muted = buttons.muted if buttons is not None else None
        finally:
            gpio.close()
    pins: list[str] = []
    if g.button_pin is not None:
        pins.append(f"button GPIO{g.button_pin}")
    if g.mute_pin is not None:
        pins.append(f"mute switch GPIO{g.mute_pin}")
    if g.like_pin is not None:
        pins.append(f"like button GPIO{g.like_pin}")
    if g.dislike_pin is not None:
        pins.append(f"dislike button GPIO{g.dislike_pin}")
    if g.led_type != "none":
        pins.append(f"{g.led_type} LED GPIO{'/'.join(map(str, g.led_pins))}")
    detail = f"{factory_name}: {', '.join(pins)} claimed and released"
    wiring = (
        "check the wiring (hardware/wiring.md): a switch to GND needs "
        "gpio.button_pull_up = true, a switch to 3V3 needs false"
    )
    if pressed:
        return warned(name, f"{detail}; the button reads pressed while at rest", wiring)
    if muted:
        return warned(
            name,
            f"{detail}; the mute switch reads closed: the microphone is muted",
            f"open the switch if that is not meant; {wiring}",
        )
    if "Mock" not in factory_name:
        problem = gpiochip_problem(ctx)
        if problem:
            return warned(name, f"{detail}, but {problem}", _GPIOCHIP_FIX)
    return passed(name, detail)


_GPIOCHIP_FIX = (
    "Raspberry Pi OS gives /dev/gpiochip* to group gpio through a udev rule; elsewhere add "
    'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660" to '
    "/etc/udev/rules.d/60-gpiochip.rules and run: sudo udevadm trigger"
)


def gpiochip_problem(ctx: Context) -> str:
    """Why the service user could not open the GPIO character devices ('' if it can)."""
    account = ctx.service_account()
    if account is None or account.uid == 0:
        return ""
    for chip in sorted(ctx.probes.dev_dir.glob("gpiochip*")):
        try:
            st = chip.stat()
        except OSError:
            continue
        if not may_access(account, st, 6):
            return (
                f"the service user {account.name} cannot open {chip} "
                f"({file_owner(st, ctx.probes.accounts)}, mode {file_mode(st)})"
            )
    return ""


# -- systemd


def check_unit(ctx: Context) -> CheckResult:
    """The unit is installed and enabled, and its ``ExecStart`` program exists."""
    name = "systemd unit"
    root = ctx.probes.root
    unit = ctx.unit
    install = (
        "sudo install -m 644 systemd/hello-device.service /etc/systemd/system/ && "
        "sudo systemctl daemon-reload && sudo systemctl enable --now hello-device"
    )
    if unit is None:
        return failed(name, f"{UNIT_NAME} is not installed", install)
    shown = (
        "/" + str(unit.path.relative_to(root)) if unit.path.is_relative_to(root) else str(unit.path)
    )
    if unit.masked:
        return failed(
            name, f"{shown} is masked: it can never start", "sudo systemctl unmask hello-device"
        )
    if not unit.exec_start:
        return failed(name, f"{shown} has no ExecStart= line", install)
    program = unit.exec_start[0].lstrip("@-:+!")
    if not (root / program.lstrip("/")).exists():
        return failed(
            name,
            f"{shown} runs {program}, which does not exist",
            "install hello-device there (python3 -m venv /opt/hello-device ...), or fix "
            "ExecStart with: sudo systemctl edit --full hello-device",
        )
    if not unit.enabled_by:
        return failed(
            name,
            f"{shown} is installed but not enabled: it will not start at boot",
            "sudo systemctl enable --now hello-device",
        )
    state = ctx.service_state()
    active = state.get("ActiveState", "")
    sub = state.get("SubState", "")
    running = f", {active}" + (f" ({sub})" if sub else "") if active else ""
    detail = f"{shown}, enabled ({', '.join(unit.enabled_by)}){running}"
    if state.get("NeedDaemonReload") == "yes":
        return warned(
            name,
            f"{detail}; the file changed since systemd read it",
            "sudo systemctl daemon-reload",
        )
    reads = unit.config_path or str(DEFAULT_CONFIG_PATH)
    if os.path.abspath(reads) != os.path.abspath(ctx.config_path):
        return warned(
            name,
            f"{detail}; the service reads {reads}, this run checked {ctx.config_path}",
            f"run: hello-device doctor --config {reads}",
        )
    if active == "failed":
        return warned(
            name,
            f"{detail}; the last run failed ({state.get('Result', 'unknown reason')})",
            "see why: journalctl -u hello-device -b -n 50; after fixing it: sudo systemctl "
            "restart hello-device",
        )
    return passed(name, detail)


def check_service_user(ctx: Context) -> CheckResult:
    """The service user exists and is in the ``audio`` and ``gpio`` groups."""
    name = "service user"
    accounts = ctx.probes.accounts
    user = ctx.service_user_name()
    sysusers = f"sudo systemd-sysusers /{SYSUSERS_FILE}"
    if not (ctx.probes.root / SYSUSERS_FILE).exists():
        sysusers = (
            f"sudo install -m 644 systemd/hello-device.sysusers /{SYSUSERS_FILE} && {sysusers}"
        )
    account = accounts.user(user)
    if account is None:
        return failed(name, f"user {user} does not exist", sysusers)
    unit = ctx.unit
    granted = set(unit.supplementary_groups) if unit is not None else set()
    missing_groups: list[str] = []
    not_member: list[str] = []
    for group_name in ("audio", "gpio"):
        group = accounts.group(group_name)
        if group is None:
            missing_groups.append(group_name)
        elif group.gid not in account.gids:
            not_member.append(group_name)
    if missing_groups:
        return failed(
            name,
            f"group {' and '.join(missing_groups)} does not exist (the unit's "
            "SupplementaryGroups= would stop the service from starting)",
            sysusers,
        )
    if not_member:
        groups = ",".join(not_member)
        fix = f"sudo usermod -aG {groups} {user} (or: {sysusers})"
        detail = f"{user} (uid {account.uid}) is not in group {' and '.join(not_member)}"
        if set(not_member) <= granted:
            return warned(name, f"{detail}; the unit adds it (SupplementaryGroups=)", fix)
        return failed(name, detail, fix)
    return passed(name, f"{user} (uid {account.uid}) is in groups audio and gpio")
