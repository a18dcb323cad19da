"""``hello-device doctor``: every check a field technician needs, in one go.

One line per check, ``PASS|WARN|FAIL|SKIP  <check>: <detail>``, with an indented
``fix:`` line under every WARN and FAIL saying what to do about it::

    PASS  configuration: /etc/hello-device/config.toml is valid (agent agent_123, ...)
    FAIL  HTTPS: cannot reach api.elevenlabs.io:443: timed out after 3 s
          fix: a firewall may block outgoing port 443; ...

Exit code: 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
configuration file cannot be loaded at all (its problems are printed first; the checks
that need no configuration still run). SKIP lines (``--skip-network``, ``--skip-audio``,
no pins configured, a check whose prerequisite failed) never change the exit code.

The checks, in order: configuration, API key (where it comes from, the key file's mode
and owner; the key itself is never printed), clock (TLS needs it), state directory,
DNS, HTTPS (TCP and TLS handshake), agent configuration (fetched with
:class:`~hello_device.platform.client.PlatformClient`; 401 says the platform refused the
key), signed URL (private agents), microphone and loudspeaker (opened exactly like the
daemon opens them, through :class:`~hello_device.audio.backends.pyaudio.PyAudioBackend`
and :mod:`hello_device.audio.devices`; for the ``file`` backend: the input file is
readable, the output directory writable), GPIO (the pin factory loads, every configured
pin can be claimed and released), systemd unit (installed, enabled, its ``ExecStart``
exists) and service user (exists, in the ``audio`` and ``gpio`` groups).

Every check is a small function taking a :class:`Context` and returning a
:class:`CheckResult`. Everything that touches the outside world (name resolution, TCP/TLS,
HTTP, PortAudio, the pin factory, ``systemctl``/``timedatectl``, the user database, the
clock, the file system root for unit files) is a field of :class:`Probes`, so tests hand
in local or fake ones. The whole run is bounded: the network checks share one budget
(:attr:`Limits.network_s`), every blocking call has its own timeout, and the sound card
gets :attr:`Limits.audio_s` to deliver its first frame; about 15 s at worst (see
:class:`Limits`).

Run it as the service user (``sudo -u hello-device hello-device doctor``) to see what
the service sees, with the service stopped: while it runs it holds the sound card and
the pins, and the audio and GPIO checks then say so in their fix.
"""

from __future__ import annotations

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
from hello_device.doctor.checks_system import (
    check_gpio,
    check_service_user,
    check_unit,
    gpiochip_problem,
)
from hello_device.doctor.checks_wake import check_wake_word
from hello_device.doctor.cli import cmd_doctor, main, register
from hello_device.doctor.context import Context
from hello_device.doctor.results import CheckResult, Status
from hello_device.doctor.runner import CHECKS, NAMES, run_doctor
from hello_device.doctor.unitfile import (
    SYSUSERS_FILE,
    TMPFILES_FILE,
    UNIT_DIRS,
    UNIT_NAME,
    read_unit,
)
from hello_device.doctor.world import (
    Account,
    Accounts,
    Group,
    Limits,
    Probes,
    SystemAccounts,
    resolve_host,
    run_command,
    tls_connect,
)

__all__ = [
    "CHECKS",
    "NAMES",
    "SYSUSERS_FILE",
    "TMPFILES_FILE",
    "UNIT_DIRS",
    "UNIT_NAME",
    "Account",
    "Accounts",
    "CheckResult",
    "Context",
    "Group",
    "Limits",
    "Probes",
    "Status",
    "SystemAccounts",
    "check_agent_config",
    "check_api_key",
    "check_clock",
    "check_configuration",
    "check_dns",
    "check_gpio",
    "check_loudspeaker",
    "check_microphone",
    "check_reach",
    "check_service_user",
    "check_signed_url",
    "check_state_dir",
    "check_unit",
    "check_wake_word",
    "cmd_doctor",
    "gpiochip_problem",
    "main",
    "read_unit",
    "register",
    "resolve_host",
    "run_command",
    "run_doctor",
    "tls_connect",
]
