"""``python -m hello_device.doctor``."""

import sys

from hello_device.doctor.cli import main

sys.exit(main())
