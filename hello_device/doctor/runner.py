"""Every check in order, one line each, and the exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TextIO

from hello_device import __version__
from hello_device.doctor.checks_audio import check_loudspeaker, check_microphone
from hello_device.doctor.checks_host import (
    check_api_key,
    check_clock,
    check_configuration,
    check_state_dir,
)
from hello_device.doctor.checks_network import (
    check_agent_config,
    check_dns,
    check_reach,
    check_signed_url,
)
from hello_device.doctor.checks_system import check_gpio, check_service_user, check_unit
from hello_device.doctor.checks_wake import check_wake_word
from hello_device.doctor.context import Context, current_user
from hello_device.doctor.results import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CheckResult,
    Status,
    failed,
    skipped,
)
from hello_device.doctor.world import Probes
from hello_device.errors import (
    ConfigError,
)
from hello_device.logs import REDACTOR
from hello_device.settings import (
    Settings,
    load_settings,
)

log = logging.getLogger(__name__)


Check = Callable[[Context], CheckResult | None]
"""A check: its result, or None where it does not apply (an optional feature unused)."""

CHECKS: tuple[tuple[Check, bool], ...] = (
    (check_configuration, False),
    (check_api_key, True),
    (check_clock, False),
    (check_state_dir, True),
    (check_dns, True),
    (check_reach, True),
    (check_agent_config, True),
    (check_signed_url, True),
    (check_microphone, True),
    (check_loudspeaker, True),
    (check_wake_word, True),
    (check_gpio, True),
    (check_unit, False),
    (check_service_user, False),
)
"""Every check in report order, and whether it needs a loaded configuration."""

FEATURE_CHECKS = frozenset({check_wake_word})
"""Checks of an optional feature: reported only where it is configured (never as a
SKIP on a device that does not use it, nor when the configuration does not load)."""

NAMES: dict[Check, str] = {
    check_configuration: "configuration",
    check_api_key: "API key",
    check_clock: "clock",
    check_state_dir: "state directory",
    check_dns: "DNS",
    check_reach: "HTTPS",
    check_agent_config: "agent configuration",
    check_signed_url: "signed URL",
    check_microphone: "microphone",
    check_loudspeaker: "loudspeaker",
    check_wake_word: "wake word",
    check_gpio: "GPIO",
    check_unit: "systemd unit",
    check_service_user: "service user",
}


def _run_check(check: Check, ctx: Context) -> CheckResult | None:
    try:
        return check(ctx)
    except Exception as exc:  # one broken check must not hide the others
        log.debug("check %s failed unexpectedly", check.__name__, exc_info=True)
        return failed(
            NAMES.get(check, check.__name__),
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run again with --log-level DEBUG and report the output",
        )


def run_doctor(
    config_path: str,
    *,
    skip_network: bool = False,
    skip_audio: bool = False,
    probes: Probes | None = None,
    out: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run every check, print one line each, and return the exit code (0, 1 or 2)."""
    out = out or sys.stdout
    probes = probes or Probes()
    warned: list[str] = []
    settings: Settings | None = None
    problems: list[str] = []
    try:
        settings = load_settings(config_path, env=env, warn=warned.append)
    except ConfigError as exc:
        problems = list(exc.problems)
    secrets: list[str] = []
    if settings is not None and settings.platform.api_key:
        secrets.append(settings.platform.api_key.reveal())
        REDACTOR.add(secrets[0])
    ctx = Context(
        config_path,
        settings,
        probes,
        config_problems=problems,
        load_warnings=warned,
        skip_network=skip_network,
        skip_audio=skip_audio,
    )

    def emit(line: str) -> None:
        for secret in secrets:
            line = line.replace(secret, "***")
        print(line, file=out, flush=True)

    emit(
        f"hello-device {__version__} doctor: {config_path}, as user {current_user(probes.accounts)}"
    )
    counts = dict.fromkeys(Status, 0)
    for check, needs_settings in CHECKS:
        if needs_settings and settings is None:
            if check in FEATURE_CHECKS:
                continue
            result: CheckResult | None = skipped(NAMES[check], "needs a valid configuration")
        else:
            result = _run_check(check, ctx)
        if result is None:
            continue
        counts[result.status] += 1
        for line in result.lines():
            emit(line)
    if settings is None:
        code = EXIT_CONFIG
    elif counts[Status.FAIL]:
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    emit(f"doctor: {summary}; exit code {code}")
    return code
