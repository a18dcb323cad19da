"""Zero-touch provisioning: a directory stands in for the FAT boot partition and another
for /etc/hello-device (real files, real modes; no root needed except for owners)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hello_device.provision import BOOT_DIRS, find_boot_dir, provision
from hello_device.settings import load_settings
from tests.conftest import REPO

KEY = "sk_test_PROVISION_0123456789abcdefSECRET"
VALID = '[platform]\nagent_id = "agent_provisioned"\napi_key_file = "api-key"\n'
RUNNING = '[platform]\nagent_id = "agent_running"\n'


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    d = tmp_path / "boot" / "firmware"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    d = tmp_path / "etc" / "hello-device"
    d.mkdir(parents=True)
    (d / "config.toml").write_text(RUNNING)
    return d


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_nothing_on_the_boot_partition_changes_nothing(boot: Path, etc: Path) -> None:
    outcome = provision([boot], etc / "config.toml")
    assert outcome.ok and not outcome.installed and not outcome.rejected
    assert (etc / "config.toml").read_text() == RUNNING
    assert sorted(p.name for p in etc.iterdir()) == ["config.toml"]


def test_config_and_key_are_installed_and_removed_from_the_boot_partition(
    boot: Path, etc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (boot / "hello-device.toml").write_text(VALID)
    (boot / "hello-device.key").write_text(f"  {KEY}\n")
    outcome = provision([boot], etc / "config.toml")
    assert outcome.ok, outcome.rejected
    assert (etc / "config.toml").read_text() == VALID
    assert mode(etc / "config.toml") == 0o640
    assert (etc / "api-key").read_text() == KEY + "\n" and mode(etc / "api-key") == 0o600
    assert (etc / "config.toml.previous").read_text() == RUNNING
    assert list(boot.iterdir()) == []  # the secret does not stay on the card
    settings = load_settings(etc / "config.toml", env={})
    assert settings.platform.agent_id == "agent_provisioned"
    assert settings.platform.api_key is not None and settings.platform.api_key.reveal() == KEY
    shown = caplog.text + "\n".join(outcome.installed + outcome.notes)
    assert KEY not in shown
    assert "API key installed" in caplog.text and "agent_provisioned" in caplog.text


def test_a_key_alone_goes_where_the_running_config_points(boot: Path, etc: Path) -> None:
    (etc / "config.toml").write_text('[platform]\nagent_id = "a"\napi_key_file = "keys/k"\n')
    (boot / "hello-device.key").write_text(KEY)
    outcome = provision([boot], etc / "config.toml")
    assert outcome.ok and (etc / "keys" / "k").read_text() == KEY + "\n"
    assert not (boot / "hello-device.key").exists()


def test_an_invalid_config_is_renamed_with_its_reason_and_the_running_one_kept(
    boot: Path, etc: Path
) -> None:
    (boot / "hello-device.toml").write_text('[platform]\nagent_id = ""\nvolume = 3\n')
    outcome = provision([boot], etc / "config.toml")
    assert not outcome.ok and "hello-device.toml" in outcome.rejected[0]
    assert (etc / "config.toml").read_text() == RUNNING
    assert not (etc / "config.toml.new").exists() and not (etc / "config.toml.previous").exists()
    assert not (boot / "hello-device.toml").exists()
    assert (boot / "hello-device.toml.rejected").exists()
    reason = (boot / "hello-device.toml.rejected.txt").read_text()
    assert "platform.agent_id" in reason and "hello-device.toml" in reason
    assert str(etc) not in reason  # the staging path is not what the technician wrote


def test_unparseable_toml_is_rejected(boot: Path, etc: Path) -> None:
    (boot / "hello-device.toml").write_text("[platform\nagent_id = 'x'\n")
    outcome = provision([boot], etc / "config.toml")
    assert not outcome.ok
    assert "invalid TOML" in (boot / "hello-device.toml.rejected.txt").read_text()


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("two words", "one line"), ("x" * 600, "600 characters"), ("kéy", "never")],
)
def test_an_invalid_key_is_rejected_and_never_installed(
    boot: Path, etc: Path, text: str, why: str
) -> None:
    (boot / "hello-device.key").write_text(text)
    outcome = provision([boot], etc / "config.toml")
    assert not outcome.ok and why in outcome.rejected[0]
    assert not (etc / "api-key").exists()
    assert (boot / "hello-device.key.rejected").exists()
    assert why in (boot / "hello-device.key.rejected.txt").read_text()


def test_the_newest_boot_layout_wins(tmp_path: Path) -> None:
    old, new = tmp_path / "boot", tmp_path / "boot" / "firmware"
    new.mkdir(parents=True)
    (old / "hello-device.toml").write_text(VALID)
    (new / "hello-device.toml").write_text(VALID)
    assert find_boot_dir([new, old]) == new
    (new / "hello-device.toml").unlink()
    assert find_boot_dir([new, old]) == old
    assert (Path("/boot/firmware"), Path("/boot")) == BOOT_DIRS


def test_cli_reports_and_exits_1_on_a_rejection(boot: Path, etc: Path) -> None:
    (boot / "hello-device.toml").write_text(VALID)
    (boot / "hello-device.key").write_text("not a key")
    cmd = [sys.executable, "-m", "hello_device", "provision", "--boot-dir", str(boot)]
    result = subprocess.run(
        [*cmd, "--config", str(etc / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("rejected: ") and "hello-device.key" in line for line in lines)
    # the configuration names api-key, which does not exist: rejected too, with the reason
    assert "api_key_file" in (boot / "hello-device.toml.rejected.txt").read_text()
    again = subprocess.run(
        [*cmd, "--config", str(etc / "config.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert again.returncode == 0 and again.stdout.strip() == "nothing to provision"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the service user needs root")
def test_as_root_the_key_belongs_to_the_service_user(boot: Path, etc: Path) -> None:
    import pwd

    stand_in = pwd.getpwnam("nobody")  # for hello-device, which this machine may not have
    (boot / "hello-device.key").write_text(KEY)
    assert provision([boot], etc / "config.toml", service_user="nobody").ok
    st = (etc / "api-key").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (stand_in.pw_uid, 0o600)
