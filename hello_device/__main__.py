"""``python -m hello_device`` runs the command-line interface."""

import sys

from hello_device.cli import main

sys.exit(main())
