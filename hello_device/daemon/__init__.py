"""The daemon: builds the pieces from the settings and supervises them.

- :mod:`.device`: :class:`Daemon`, the running device (tasks, audio, state, systemd);
- :mod:`.conversations`: the conversation loop and the frame executor;
- :mod:`.platform_link`: the agent configuration, reloads and refusals;
- :mod:`.controls`: buttons, mute and the commands behind them;
- :mod:`.process`: ``hello-device run`` as a process, and its hard stop deadline.
"""

from hello_device.daemon.device import Daemon, make_backend
from hello_device.daemon.process import run_daemon

__all__ = ["Daemon", "make_backend", "run_daemon"]
