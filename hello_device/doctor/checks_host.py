"""Checks of this machine: configuration, API key, clock, state directory."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from hello_device.doctor.context import (
    AS_SERVICE_HINT,
    Context,
    current_user,
    file_mode,
    file_owner,
    service_can_read,
    writable_dir,
)
from hello_device.doctor.results import CheckResult, failed, passed, warned
from hello_device.doctor.unitfile import TMPFILES_FILE
from hello_device.settings import (
    API_KEY_ENV,
)
from hello_device.timefmt import format_age, format_time

CLOCK_MIN_YEAR = 2024
CLOCK_MAX_YEAR = 2099
CLOCK_SLACK_S = 600.0
"""How far the clock may be behind a reference time (install, cache) before it counts."""


def check_configuration(ctx: Context) -> CheckResult:
    """The configuration file loads, with every problem listed; the service can read it."""
    name = "configuration"
    path = ctx.config_path
    settings = ctx.settings
    if settings is None:
        problems = ctx.config_problems or [f"{path}: cannot be loaded"]
        prefix = f"{path}: "
        notes = [p.removeprefix(prefix) for p in problems]
        count = len(problems)
        detail = f"{path} has {count} problem{'s' if count != 1 else ''}"
        text = " ".join(problems).lower()
        if "permission denied" in text:
            fix = f"run the doctor as root (sudo hello-device doctor); {AS_SERVICE_HINT}"
        elif "no such file" in text:
            fix = (
                f"copy config.example.toml to {path} (sudo install -m 640 -o root -g "
                f"hello-device config.example.toml {path}) and set platform.agent_id"
            )
        else:
            fix = (
                f"edit {path} (every key is explained in config.example.toml), then check "
                f"it with: hello-device check-config {path}"
            )
        return failed(name, detail, fix, notes)
    notes = [w for w in ctx.load_warnings if "api_key_file" not in w]
    detail = (
        f"{path} is valid (agent {settings.platform.agent_id}, audio {settings.audio.backend}, "
        f"start {settings.conversation.start})"
    )
    account = ctx.service_account()
    if account is not None and os.geteuid() != account.uid:
        ok, why = service_can_read(account, Path(path))
        if not ok:
            return warned(
                name,
                f"{detail}, but the service user {account.name} cannot read it: {why}",
                f"sudo chown root:{account.name} {path} && sudo chmod 640 {path} "
                f"(and the directory: sudo chown root:{account.name} {Path(path).parent} && "
                f"sudo chmod 750 {Path(path).parent})",
                notes,
            )
    if notes:
        return warned(name, detail, "see the notes above", notes)
    return passed(name, detail)


def check_api_key(ctx: Context) -> CheckResult:
    """Where the key comes from, and that only the service can read it. Never the key."""
    name = "API key"
    assert ctx.settings is not None
    settings = ctx.settings
    source = settings.api_key_source
    accounts = ctx.probes.accounts
    account = ctx.service_account()
    if source == "none" or not settings.platform.api_key:
        return warned(
            name,
            "not set: only a public agent can be reached without one",
            "put the key alone in a file (sudo install -m 600 -o hello-device -g hello-device "
            "/dev/null /etc/hello-device/api-key, then write it with sudoedit) and set "
            'platform.api_key_file = "/etc/hello-device/api-key"',
        )
    if source == "environment":
        return passed(
            name,
            f"set, from the environment variable {API_KEY_ENV} of this shell (the service "
            "sees it only if its unit sets it too)",
        )
    if source == "file":
        path = Path(settings.source)
        where = f"set in {path} itself"
    else:
        key_file = settings.platform.api_key_file or ""
        path = Path(key_file)
        if not path.is_absolute():
            path = Path(settings.source).parent / path
        where = f"from the key file {path}"
    try:
        st = path.stat()
    except OSError as exc:
        return failed(name, f"{where}, which cannot be examined: {exc.strerror}", AS_SERVICE_HINT)
    mode, owner = file_mode(st), file_owner(st, accounts)
    facts = f"mode {mode}, owner {owner}"
    service_gid = account.gid if account is not None else None
    if st.st_mode & stat.S_IROTH:
        return failed(
            name,
            f"{where}, which everyone on this machine can read ({facts})",
            f"sudo chmod {'640' if source == 'file' else '600'} {path}",
        )
    if source == "key file" and st.st_mode & stat.S_IRGRP and st.st_gid != service_gid:
        return warned(
            name,
            f"{where}, which group {accounts.group_name(st.st_gid)} can read ({facts})",
            f"sudo chmod 600 {path}",
        )
    if source == "key file" and account is not None and account.uid != 0:
        ok, why = service_can_read(account, path)
        if not ok:
            return failed(
                name,
                f"{where} ({facts}), but the service user {account.name} cannot read it: {why}",
                f"sudo chown {account.name}:{account.name} {path} && sudo chmod 600 {path}",
            )
    if source == "file":
        return passed(name, f"{where} ({facts}); a separate key file (mode 0600) is preferred")
    return passed(name, f"set, {where} ({facts})")


def check_clock(ctx: Context) -> CheckResult:
    """The clock is plausible: TLS certificates and signed URLs depend on it."""
    name = "clock"
    probes = ctx.probes
    now = probes.clock()
    shown = format_time(now)
    fix = (
        "the Pi has no battery-backed clock and sets it from the network: check "
        "timedatectl status; enable time sync with sudo timedatectl set-ntp true "
        "(systemd-timesyncd); outgoing UDP port 123 must be open"
    )
    year = time.gmtime(now).tm_year if now > 0 else 1970
    if year < CLOCK_MIN_YEAR or year > CLOCK_MAX_YEAR:
        return failed(
            name,
            f"the clock says {shown}: that cannot be right, and TLS certificates will look invalid",
            fix,
        )
    refs: list[tuple[str, float]] = []
    built = probes.installed_at()
    if built is not None:
        refs.append(("this copy of hello-device was installed", built))
    if ctx.settings is not None:
        from hello_device.platform.cache import AgentConfigCache

        cached = AgentConfigCache(ctx.settings.state.dir, clock=probes.clock).load(
            ctx.settings.platform.agent_id, quarantine=False
        )
        if cached is not None:
            refs.append(("the cached agent configuration was fetched", cached.fetched_at))
    for what, when in refs:
        if now < when - CLOCK_SLACK_S:
            return failed(
                name,
                f"the clock says {shown}, before {what} ({format_time(when)}); TLS "
                "certificates may look invalid",
                fix,
            )
    synced = probes.run(
        ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
        probes.limits.command_s,
    )
    answer = (synced or "").strip().lower()
    if answer == "no":
        return warned(
            name,
            f"{shown}, but not synchronised with a time server (yet)",
            fix,
        )
    note = "synchronised" if answer == "yes" else "synchronisation unknown"
    return passed(name, f"{shown} ({note})")


def check_state_dir(ctx: Context) -> CheckResult:
    """The state directory (cached agent configuration) is writable."""
    name = "state directory"
    assert ctx.settings is not None
    directory = Path(ctx.settings.state.dir)
    user = current_user(ctx.probes.accounts)
    fix_create = f"sudo systemd-tmpfiles --create /{TMPFILES_FILE} (or start the service once)"
    sandbox = _sandbox_warning(ctx, directory)
    if directory.exists() and not directory.is_dir():
        return failed(
            name, f"{directory} exists but is not a directory", "set state.dir to a directory"
        )
    if not directory.exists():
        parent = next((p for p in directory.parents if p.exists()), Path("/"))
        if not parent.is_dir():
            return failed(
                name,
                f"{directory} cannot be created: {parent} is not a directory",
                "set state.dir to a directory, e.g. /var/lib/hello-device",
            )
        return warned(name, f"{directory} does not exist yet", fix_create)
    why = writable_dir(directory)
    if why is not None:
        return failed(
            name,
            f"{directory} is not writable by {user} ({why})",
            f"{fix_create}; {AS_SERVICE_HINT}",
        )
    from hello_device.platform.cache import AgentConfigCache

    cached = AgentConfigCache(directory, clock=ctx.probes.clock).load(
        ctx.settings.platform.agent_id, quarantine=False
    )
    cache = (
        f"cached agent configuration from {format_time(cached.fetched_at)}, "
        f"age {format_age(cached.age_s)}"
        if cached is not None
        else "no cached agent configuration yet"
    )
    detail = f"{directory} is writable by {user} ({cache})"
    if sandbox:
        return warned(name, f"{detail}, but {sandbox}", 'keep state.dir = "/var/lib/hello-device"')
    return passed(name, detail)


def _sandbox_warning(ctx: Context, directory: Path) -> str:
    """Why the unit's ``ProtectSystem=strict`` would stop the service writing ``directory``."""
    unit = ctx.unit
    if unit is None or unit.protect_system != "strict":
        return ""
    allowed = [Path("/var/lib") / d for d in unit.state_directories]
    allowed += [Path(p.lstrip("-+")) for p in unit.read_write_paths]
    target = directory.resolve() if directory.exists() else directory
    if any(target == a or a in target.parents for a in allowed):
        return ""
    shown = ", ".join(str(a) for a in allowed) or "nothing"
    return f"the unit (ProtectSystem=strict) lets the service write only {shown}"
