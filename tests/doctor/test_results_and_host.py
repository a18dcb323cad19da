"""Result lines and the checks of this machine: configuration, API key, clock, state
directory."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from hello_device import doctor
from hello_device.doctor import (
    CheckResult,
    Status,
)
from hello_device.platform.cache import AgentConfigCache
from tests.doctor.support import (
    AGENT,
    AUDIO_GID,
    KEY,
    SERVICE_UID,
    FakeCommands,
    context,
    fix_after,
    install_unit,
    line_of,
    make_probes,
    needs_root,
    run,
    with_service,
    write_config,
)

# --------------------------------------------------------------------------- results


def test_result_lines() -> None:
    bad = CheckResult("clock", Status.FAIL, "it is 1970", "set the time", ("a", "b"))
    assert bad.lines() == [
        "FAIL  clock: it is 1970",
        "      - a",
        "      - b",
        "      fix: set the time",
    ]
    assert CheckResult("GPIO", Status.PASS, "ok", "never shown").lines() == ["PASS  GPIO: ok"]
    assert CheckResult("DNS", Status.SKIP, "--skip-network").lines() == [
        "SKIP  DNS: --skip-network"
    ]


def test_register_adds_doctor_with_its_flags() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    doctor.register(sub)
    args = parser.parse_args(["doctor", "--config", "c.toml", "--skip-network", "--skip-audio"])
    assert (args.config, args.skip_network, args.skip_audio) == ("c.toml", True, True)
    assert args.func is doctor.cmd_doctor
    args = parser.parse_args(["doctor"])
    assert (args.config, args.skip_network, args.skip_audio) == (
        "/etc/hello-device/config.toml",
        False,
        False,
    )


# --------------------------------------------------------------------------- configuration


def test_configuration_valid(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_configuration(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS
    assert result.detail == f"{path} is valid (agent {AGENT}, audio file, start button)"


def test_invalid_configuration_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[platform]\nagent_id = "a"\n[audio]\nframe_ms = 25\nvolumme = 1\n')
    code, lines = run(path, make_probes(tmp_path))
    assert code == 2
    assert lines[1] == f"FAIL  configuration: {path} has 2 problems"
    assert lines[2].startswith("      - audio.frame_ms: 25 is not allowed")
    assert lines[3].startswith("      - audio.volumme: unknown key; did you mean audio.volume?")
    assert lines[4] == (
        f"      fix: edit {path} (every key is explained in config.example.toml), then check "
        f"it with: hello-device check-config {path}"
    )
    # The checks that need no configuration still run; the others say why they did not.
    assert line_of(lines, "clock").startswith("PASS  clock: ")
    assert line_of(lines, "GPIO") == "SKIP  GPIO: needs a valid configuration"
    assert line_of(lines, "systemd unit").startswith("FAIL  systemd unit: ")
    assert lines[-1] == "doctor: 1 PASS, 0 WARN, 3 FAIL, 9 SKIP; exit code 2"


def test_unparseable_and_missing_files_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[platform\n")
    code, lines = run(broken, make_probes(tmp_path))
    assert code == 2
    assert lines[1] == f"FAIL  configuration: {broken} has 1 problem"
    assert lines[2].startswith("      - invalid TOML: ")

    missing = tmp_path / "nowhere.toml"
    code, lines = run(missing, make_probes(tmp_path))
    assert code == 2
    assert lines[2] == "      - no such file"
    assert fix_after(lines, "configuration").startswith(
        f"fix: copy config.example.toml to {missing}"
    )


@needs_root
def test_configuration_the_service_user_cannot_read(tmp_path: Path) -> None:
    path = write_config(tmp_path, mode=0o600)  # root-owned, 0600: only root reads it
    probes = make_probes(tmp_path, accounts=with_service())
    result = doctor.check_configuration(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        f"but the service user hello-device cannot read it: it cannot read {path} (mode 0600)"
    )
    assert result.fix.startswith(f"sudo chown root:hello-device {path} && sudo chmod 640")
    path.chmod(0o640)  # group hello-device may read it, as the README says
    assert doctor.check_configuration(context(path, probes)).status is Status.PASS


# --------------------------------------------------------------------------- API key


@needs_root
def test_api_key_file_readable_only_by_the_service(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.PASS
    assert result.detail == (
        f"set, from the key file {tmp_path / 'etc' / 'api-key'} "
        "(mode 0600, owner hello-device:hello-device)"
    )
    assert KEY not in repr(result)


def test_api_key_file_everyone_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    key.chmod(0o644)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"from the key file {key}, which everyone on this machine")
    assert result.fix == f"sudo chmod 600 {key}"


@needs_root
def test_api_key_file_another_group_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    os.chown(key, SERVICE_UID, AUDIO_GID)
    key.chmod(0o640)
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.WARN
    assert "which group audio can read (mode 0640, owner hello-device:audio)" in result.detail
    assert result.fix == f"sudo chmod 600 {key}"


@needs_root
def test_api_key_file_the_service_cannot_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "etc" / "api-key"
    os.chown(key, 0, 0)  # 0600 root:root: only root can read it, not the service
    result = doctor.check_api_key(context(path, make_probes(tmp_path, accounts=with_service())))
    assert result.status is Status.FAIL
    assert result.detail.endswith(
        f"but the service user hello-device cannot read it: it cannot read {key} (mode 0600)"
    )
    assert result.fix == f"sudo chown hello-device:hello-device {key} && sudo chmod 600 {key}"


def test_api_key_from_the_environment_or_missing(tmp_path: Path) -> None:
    path = write_config(tmp_path, key_file=False)
    probes = make_probes(tmp_path)
    result = doctor.check_api_key(context(path, probes, env={"HELLO_DEVICE_API_KEY": KEY}))
    assert result.status is Status.PASS
    assert result.detail.startswith("set, from the environment variable HELLO_DEVICE_API_KEY")
    result = doctor.check_api_key(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail == "not set: only a public agent can be reached without one"
    assert 'platform.api_key_file = "/etc/hello-device/api-key"' in result.fix


def test_api_key_inline_in_a_world_readable_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, key_file=False, platform=f'api_key = "{KEY}"', mode=0o644)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"set in {path} itself, which everyone on this machine")
    assert result.fix == f"sudo chmod 640 {path}"
    path.chmod(0o640)
    result = doctor.check_api_key(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS
    assert "a separate key file (mode 0600) is preferred" in result.detail


# --------------------------------------------------------------------------- clock


def test_clock_plausible_and_synchronised(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = time.time()
    probes = make_probes(
        tmp_path,
        clock=lambda: now,
        installed_at=lambda: now - 86400,
        run=FakeCommands(timedatectl="yes\n"),
    )
    result = doctor.check_clock(context(path, probes))
    assert result.status is Status.PASS
    assert result.detail.endswith("UTC (synchronised)")


def test_clock_in_1970_or_2000_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    for when in (0.0, 946684800.0):
        result = doctor.check_clock(context(path, make_probes(tmp_path, clock=lambda w=when: w)))
        assert result.status is Status.FAIL
        assert "cannot be right, and TLS certificates will look invalid" in result.detail
        assert "timedatectl" in result.fix


def test_clock_behind_the_install_time_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = 1_750_000_000.0
    probes = make_probes(tmp_path, clock=lambda: now, installed_at=lambda: now + 7 * 86400)
    result = doctor.check_clock(context(path, probes))
    assert result.status is Status.FAIL
    assert "before this copy of hello-device was installed (2025-06-22" in result.detail


def test_clock_behind_the_cached_configuration_fails(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    now = 1_750_000_000.0
    AgentConfigCache(tmp_path / "state").save(AGENT, {"agent_id": AGENT}, fetched_at=now + 3600)
    result = doctor.check_clock(context(path, make_probes(tmp_path, clock=lambda: now)))
    assert result.status is Status.FAIL
    assert "before the cached agent configuration was fetched (2025-06-15 16:06:40 UTC)" in (
        result.detail
    )


def test_clock_not_synchronised_warns(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = doctor.check_clock(
        context(path, make_probes(tmp_path, run=FakeCommands(timedatectl="no\n")))
    )
    assert result.status is Status.WARN
    assert result.detail.endswith("but not synchronised with a time server (yet)")


# --------------------------------------------------------------------------- state directory


def test_state_dir_writable_with_a_cache(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    AgentConfigCache(tmp_path / "state").save(AGENT, {"agent_id": AGENT}, fetched_at=1.75e9)
    probes = make_probes(tmp_path)
    me = probes.accounts.user_name(os.geteuid())  # root in CI, anyone on a workstation
    result = doctor.check_state_dir(context(path, probes))
    assert result.status is Status.PASS
    assert result.detail.startswith(f"{tmp_path / 'state'} is writable by {me} (cached agent")
    assert "from 2025-06-15 15:06:40 UTC" in result.detail
    assert [p.name for p in (tmp_path / "state").iterdir()] == [f"agent-{AGENT}.json"]


def test_state_dir_missing_or_not_a_directory(tmp_path: Path) -> None:
    probes = make_probes(tmp_path)
    path = write_config(tmp_path, state=tmp_path / "later")
    result = doctor.check_state_dir(context(path, probes))
    assert (result.status, result.detail) == (
        Status.WARN,
        f"{tmp_path / 'later'} does not exist yet",
    )
    assert "systemd-tmpfiles --create" in result.fix

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = write_config(tmp_path, state=blocker)
    result = doctor.check_state_dir(context(path, probes))
    assert (result.status, result.detail) == (
        Status.FAIL,
        f"{blocker} exists but is not a directory",
    )
    path = write_config(tmp_path, state=blocker / "state")
    result = doctor.check_state_dir(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail == f"{blocker / 'state'} cannot be created: {blocker} is not a directory"


def test_state_dir_outside_what_the_sandboxed_unit_may_write(tmp_path: Path) -> None:
    probes = make_probes(tmp_path)
    install_unit(probes.root)
    path = write_config(tmp_path)
    result = doctor.check_state_dir(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        "but the unit (ProtectSystem=strict) lets the service write only /var/lib/hello-device"
    )
