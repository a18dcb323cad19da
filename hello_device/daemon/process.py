"""The daemon as a process: ``hello-device run`` in the foreground, and the hard deadline
that ends it within 2 s of SIGTERM whatever any thread is doing."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hello_device.errors import (
    AudioDeviceError,
    ConfigError,
)
from hello_device.logs import (
    REDACTOR,
)
from hello_device.settings import (
    Settings,
)

if TYPE_CHECKING:
    pass

from hello_device.daemon.device import Daemon

log = logging.getLogger(__name__)

HARD_STOP_S = 1.8
"""After SIGTERM, the process ends within this long whatever any thread is doing: if the
clean stop has not finished by then, it exits at once (status 1), so systemd never has
to SIGKILL it."""


def run_daemon(settings: Settings, config_path: str | None = None) -> int:
    """Run the daemon in the foreground; return the exit code."""
    if settings.platform.api_key:
        REDACTOR.add(settings.platform.api_key.reveal())
    try:
        daemon = Daemon(settings, config_path=config_path, hard_stop_s=HARD_STOP_S)
        return asyncio.run(daemon.run())
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:  # found only when used: a wake-word model that will not load
        log.error("config error: %s", exc)
        return 2
    except AudioDeviceError as exc:
        log.error("audio: %s", exc)
        return 1
