"""GPIO checks on gpiozero's MockFactory; the systemd unit and service user checks
on a fake file-system root."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpiozero import Button
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device import doctor
from hello_device.doctor import (
    Account,
    Group,
    Status,
)
from tests.conftest import REPO
from tests.doctor.support import (
    AGENT,
    GPIO_GID,
    GROUPS,
    KEY,
    MEMBER,
    SERVICE,
    SERVICE_UID,
    FakeAccounts,
    FakeCommands,
    context,
    install_unit,
    make_probes,
    needs_root,
    with_service,
    write_config,
)

# --------------------------------------------------------------------------- GPIO

GPIO_ALL = (
    'pin_factory = "mock"\nbutton_pin = 17\nmute_pin = 27\nled_type = "rgb"\n'
    "led_pins = [12, 13, 19]"
)


def test_gpio_pins_claimed_and_released(tmp_path: Path) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    path = write_config(tmp_path, gpio=GPIO_ALL)
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert (result.status, result.detail) == (
        Status.PASS,
        "MockFactory: button GPIO17, mute switch GPIO27, rgb LED GPIO12/13/19 claimed and released",
    )
    for pin in (17, 27, 12, 13, 19):  # released: each can be claimed again
        Button(pin, pin_factory=factory).close()
    # Through gpio.pin_factory = "mock", as in the configuration file.
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.PASS


def test_gpio_without_pins_is_skipped(tmp_path: Path) -> None:
    result = doctor.check_gpio(context(write_config(tmp_path), make_probes(tmp_path)))
    assert result.lines() == [
        "SKIP  GPIO: no pins configured (gpio.button_pin, gpio.mute_pin, gpio.led_type)"
    ]


def test_gpio_factory_missing(tmp_path: Path) -> None:
    try:
        import lgpio  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only on a board with lgpio
        pytest.skip("lgpio is installed here")
    path = write_config(tmp_path, gpio='pin_factory = "lgpio"\nbutton_pin = 17')
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail == "gpio.pin_factory = \"lgpio\": No module named 'lgpio'"
    assert result.fix.startswith("install lgpio: `sudo apt install python3-lgpio`")


def test_gpio_invalid_pin(tmp_path: Path) -> None:
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nbutton_pin = 50')
    result = doctor.check_gpio(context(path, make_probes(tmp_path)))
    assert result.status is Status.FAIL
    assert result.detail == (
        "cannot open the button on GPIO50: PinInvalidPin: 50 is not a valid pin name"
    )
    assert result.fix == "check the BCM pin numbers in [gpio]"


class GroundedPin(MockPWMPin):
    """A pin whose switch to ground is closed: it reads low even with the pull-up."""

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self.drive_low()


def test_gpio_switch_closed_at_rest(tmp_path: Path) -> None:
    factory = MockFactory(pin_class=GroundedPin)
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nmute_pin = 27')
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the mute switch reads closed: the microphone is muted")
    assert "button_pull_up" in result.fix

    factory = MockFactory(pin_class=GroundedPin)
    path = write_config(tmp_path, gpio='pin_factory = "mock"\nbutton_pin = 17')
    result = doctor.check_gpio(context(path, make_probes(tmp_path, pin_factory=factory)))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the button reads pressed while at rest")


@needs_root
def test_gpiochip_the_service_cannot_open(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    chip = dev / "gpiochip0"
    chip.write_text("")
    chip.chmod(0o600)
    path = write_config(tmp_path)
    ctx = context(path, make_probes(tmp_path, accounts=with_service(), dev_dir=dev))
    assert doctor.gpiochip_problem(ctx) == (
        f"the service user hello-device cannot open {chip} (root:root, mode 0600)"
    )
    os.chown(chip, 0, GPIO_GID)
    chip.chmod(0o660)
    assert doctor.gpiochip_problem(ctx) == ""


# --------------------------------------------------------------------------- systemd


def active(
    state: str = "active", sub: str = "running", reload: str = "no", result: str = "success"
) -> FakeCommands:
    return FakeCommands(
        systemctl=f"ActiveState={state}\nSubState={sub}\nResult={result}\n"
        f"NeedDaemonReload={reload}\nLoadState=loaded\n"
    )


def test_unit_installed_enabled_and_running(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path, run=active())
    install_unit(probes.root, config=path)
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.detail) == (
        Status.PASS,
        "/etc/systemd/system/hello-device.service, enabled (multi-user.target.wants), "
        "active (running)",
    )


def test_unit_not_installed(tmp_path: Path) -> None:
    result = doctor.check_unit(context(write_config(tmp_path), make_probes(tmp_path)))
    assert (result.status, result.detail) == (Status.FAIL, "hello-device.service is not installed")
    assert "sudo systemctl enable --now hello-device" in result.fix


def test_unit_not_enabled_masked_or_without_its_program(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path)
    unit = install_unit(probes.root, config=path, enable=False)
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail.endswith("is installed but not enabled: it will not start at boot")
    assert result.fix == "sudo systemctl enable --now hello-device"

    (probes.root / "opt/hello-device/bin/hello-device").unlink()
    result = doctor.check_unit(context(path, probes))
    assert result.detail == (
        "/etc/systemd/system/hello-device.service runs /opt/hello-device/bin/hello-device, "
        "which does not exist"
    )

    unit.unlink()
    unit.symlink_to("/dev/null")
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.fix) == (Status.FAIL, "sudo systemctl unmask hello-device")


def test_unit_reading_another_config_failed_or_stale(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    probes = make_probes(tmp_path, run=active())
    install_unit(probes.root)  # reads /etc/hello-device/config.toml
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(
        f"the service reads /etc/hello-device/config.toml, this run checked {path}"
    )
    assert result.fix == "run: hello-device doctor --config /etc/hello-device/config.toml"

    probes = make_probes(tmp_path, run=active("failed", "failed", result="exit-code"))
    shutil.rmtree(probes.root)
    probes.root.mkdir()
    install_unit(probes.root, config=path)
    result = doctor.check_unit(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith(", failed (failed); the last run failed (exit-code)")
    assert result.fix.startswith("see why: journalctl -u hello-device -b -n 50")

    probes = dataclasses.replace(probes, run=active(reload="yes"))
    result = doctor.check_unit(context(path, probes))
    assert (result.status, result.fix) == (Status.WARN, "sudo systemctl daemon-reload")


def test_unit_drop_ins_override_exec_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install_unit(root)
    dropins = root / "etc/systemd/system/hello-device.service.d"
    dropins.mkdir()
    (dropins / "override.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/hello-device run -c /srv/hd.toml\n"
        "User=kiosk\nSupplementaryGroups=video\n"
    )
    unit = doctor.read_unit(root)
    assert unit is not None
    assert unit.exec_start == ("/usr/local/bin/hello-device", "run", "-c", "/srv/hd.toml")
    assert unit.config_path == "/srv/hd.toml"
    assert unit.user == "kiosk"
    assert unit.supplementary_groups == ("audio", "gpio", "video")
    assert unit.protect_system == "strict"
    assert unit.state_directories == ("hello-device",)
    assert unit.enabled_by == ("multi-user.target.wants",)


def test_service_user(tmp_path: Path) -> None:
    probes = make_probes(tmp_path, accounts=with_service())
    result = doctor.check_service_user(context(write_config(tmp_path), probes))
    assert (result.status, result.detail) == (
        Status.PASS,
        f"hello-device (uid {SERVICE_UID}) is in groups audio and gpio",
    )


def test_service_user_missing(tmp_path: Path) -> None:
    result = doctor.check_service_user(context(write_config(tmp_path), make_probes(tmp_path)))
    assert (result.status, result.detail) == (Status.FAIL, "user hello-device does not exist")
    assert result.fix == (
        "sudo install -m 644 systemd/hello-device.sysusers /usr/lib/sysusers.d/hello-device.conf"
        " && sudo systemd-sysusers /usr/lib/sysusers.d/hello-device.conf"
    )


def test_service_user_groups(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    groups = {k: v for k, v in GROUPS.items() if k != "gpio"}
    probes = make_probes(tmp_path, accounts=FakeAccounts({"hello-device": MEMBER}, groups))
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail.startswith("group gpio does not exist (the unit's SupplementaryGroups=")

    outsider = dataclasses.replace(SERVICE, gids=frozenset({SERVICE_UID}))
    probes = make_probes(tmp_path, accounts=FakeAccounts({"hello-device": outsider}, GROUPS))
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.FAIL
    assert result.detail == f"hello-device (uid {SERVICE_UID}) is not in group audio and gpio"
    assert result.fix.startswith("sudo usermod -aG audio,gpio hello-device")

    install_unit(probes.root)  # SupplementaryGroups=audio gpio adds them for the service
    result = doctor.check_service_user(context(path, probes))
    assert result.status is Status.WARN
    assert result.detail.endswith("; the unit adds it (SupplementaryGroups=)")


@dataclass
class RootAccounts:
    """:class:`doctor.Accounts` read from ``root/etc/passwd`` and ``root/etc/group``."""

    root: Path

    def _rows(self, name: str) -> list[list[str]]:
        text = (self.root / "etc" / name).read_text()
        return [line.split(":") for line in text.splitlines() if line]

    def user(self, name: str) -> Account | None:
        row = next((r for r in self._rows("passwd") if r[0] == name), None)
        if row is None:
            return None
        uid, gid = int(row[2]), int(row[3])
        extra = {int(g[2]) for g in self._rows("group") if name in g[3].split(",")}
        return Account(name, uid, gid, frozenset({gid} | extra))

    def group(self, name: str) -> Group | None:
        row = next((r for r in self._rows("group") if r[0] == name), None)
        return Group(name, int(row[2]), tuple(filter(None, row[3].split(",")))) if row else None

    def user_name(self, uid: int) -> str:
        return next((r[0] for r in self._rows("passwd") if int(r[2]) == uid), str(uid))

    def group_name(self, gid: int) -> str:
        return next((r[0] for r in self._rows("group") if int(r[2]) == gid), str(gid))


@needs_root
@pytest.mark.skipif(
    not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
    reason="systemd-sysusers/systemd-tmpfiles are not installed here",
)
def test_the_repository_provisioning_files_satisfy_the_doctor(tmp_path: Path) -> None:
    """The real sysusers and tmpfiles files, applied with ``--root``, give a service user
    and directories that the user, configuration and key checks accept."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for tool, name in (("systemd-sysusers", "sysusers"), ("systemd-tmpfiles", "tmpfiles")):
        args = [tool, f"--root={root}"] + (["--create"] if name == "tmpfiles" else [])
        done = subprocess.run(
            [*args, str(REPO / "systemd" / f"hello-device.{name}")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    accounts = RootAccounts(root)
    service = accounts.user("hello-device")
    assert service is not None
    etc = root / "etc" / "hello-device"
    config = etc / "config.toml"
    key = etc / "api-key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    os.chown(key, service.uid, service.gid)
    config.write_text(
        f'[platform]\nagent_id = "{AGENT}"\napi_key_file = "{key}"\n'
        f'[state]\ndir = "{root / "var/lib/hello-device"}"\n'
    )
    config.chmod(0o640)
    os.chown(config, 0, service.gid)
    probes = make_probes(tmp_path, root=root, accounts=accounts)
    install_unit(root, config=config)
    ctx = context(config, probes)
    results = [
        doctor.check_configuration(ctx),
        doctor.check_api_key(ctx),
        doctor.check_service_user(ctx),
        doctor.check_unit(ctx),
    ]
    assert [r.status for r in results] == [Status.PASS] * 4, results
    assert (
        results[1].detail
        == f"set, from the key file {key} (mode 0600, owner hello-device:hello-device)"
    )
    assert results[2].detail == f"hello-device (uid {service.uid}) is in groups audio and gpio"
    state = root / "var/lib/hello-device"
    assert (state.stat().st_uid, oct(state.stat().st_mode & 0o777)) == (service.uid, "0o700")
