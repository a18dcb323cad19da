"""The command line: ``hello-device SUBCOMMAND`` (:func:`main`).

:mod:`.main` holds the entry point and the lazy sub-command registry, :mod:`.common`
what the commands share; one module per group of commands: :mod:`.run` (``run``,
``check-config``, ``version``), :mod:`.demo`, :mod:`.emulator`, :mod:`.audio`
(``devices``, ``audio-test``), :mod:`.platform` (``config show``, ``fetch-config``).
``doctor`` registers itself from :mod:`hello_device.doctor`.
"""

from hello_device.cli.main import main

__all__ = ["main"]
