"""Provisioning a device: the files a technician leaves on the boot partition."""

from hello_device.provision.boot_partition import BOOT_DIRS, Outcome, find_boot_dir, provision

__all__ = ["BOOT_DIRS", "Outcome", "find_boot_dir", "provision"]
