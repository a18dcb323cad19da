"""Keep ALSA's and JACK's device-probing noise off standard error.

When PortAudio starts, ALSA tries every PCM its configuration defines and JACK looks for
a server, and both print what fails (``ALSA lib pcm.c:2666:(snd_pcm_open_noupdate)
Unknown PCM cards.pcm.rear``, ``jack server is not running or cannot be started``...)
through an error hook of their own. :func:`silence_probe_noise` points those hooks at
callbacks here (``snd_lib_error_set_handler`` in libasound, ``jack_set_error_function``
and ``jack_set_info_function`` in libjack) once for the process, before PortAudio first
starts: file descriptor 2 is never touched, so what other threads write is never held
back or lost. A library that is not there (macOS, a host without JACK) is skipped.

What the hooks receive goes to this module's logger at DEBUG: the first
:data:`MAX_LOGGED` messages, then only a count (:func:`noise_count`). ALSA's handler
is variadic in C; the callback declares the five fixed arguments only and never reads
the printf arguments (the format is logged as it is), which the calling conventions of
x86-64, ARM and AArch64 Linux allow. (alsa-lib 1.2.15 and later pass ``"%s"`` with the
finished text as argument: the log then shows only file, line and function.) At exit the
previous hooks are put back, so neither library calls into a finalising interpreter.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

__all__ = ["MAX_LOGGED", "noise_count", "silence_probe_noise"]

log = logging.getLogger(__name__)

MAX_LOGGED: Final = 20
"""Messages logged one by one (at DEBUG) per process; later ones are only counted."""

_ALSA_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)

_lock = threading.Lock()
_count_lock = threading.Lock()
_done = False
_silenced = False
_count = 0
_alive: list[object] = []
"""The callbacks and libraries handed to C: never freed."""
_undo: list[Callable[[], object]] = []
"""What puts the previous hooks back (run at exit)."""


def silence_probe_noise() -> bool:
    """Route ALSA's and JACK's messages to the debug log (once; later calls are free).

    True if at least one of the two libraries now reports through this module.
    """
    global _done, _silenced
    with _lock:
        if not _done:
            _done = True
            alsa = _silence_alsa()
            jack = _silence_jack()
            _silenced = alsa or jack
            if _undo:
                atexit.register(_restore)
            log.debug("probe noise to the debug log: ALSA %s, JACK %s", _yes(alsa), _yes(jack))
        return _silenced


def noise_count() -> int:
    """Messages ALSA and JACK reported through the hooks so far."""
    return _count


def _yes(done: bool) -> str:
    return "yes" if done else "no (library not found)"


def _load(name: str, soname: str) -> ctypes.CDLL | None:
    """The library PortAudio links (loading the same soname gives the same copy)."""
    for candidate in (soname, ctypes.util.find_library(name)):
        if candidate:
            try:
                return ctypes.CDLL(candidate)
            except OSError:
                continue
    return None


def _setter(lib: ctypes.CDLL, name: str) -> Callable[[int | None], object] | None:
    """``lib.name(void *)``, or None if the library lacks it."""
    try:
        fn = getattr(lib, name)
    except AttributeError:
        return None
    fn.argtypes = [ctypes.c_void_p]
    fn.restype = None
    setter: Callable[[int | None], object] = fn
    return setter


def _install(setter: Callable[[int | None], object], handler: CFuncPtr) -> None:
    _alive.append(handler)
    setter(ctypes.cast(handler, ctypes.c_void_p).value)


def _silence_alsa() -> bool:
    lib = _load("asound", "libasound.so.2")
    setter = None if lib is None else _setter(lib, "snd_lib_error_set_handler")
    if setter is None:
        return False
    _alive.append(lib)
    _install(setter, _ALSA_HANDLER(_on_alsa))
    _undo.append(lambda: setter(None))  # NULL: ALSA's own default handler
    return True


def _silence_jack() -> bool:
    lib = _load("jack", "libjack.so.0")
    if lib is None:
        return False
    installed = False
    for kind, callback in (("error", _on_jack_error), ("info", _on_jack_info)):
        setter = _setter(lib, f"jack_set_{kind}_function")
        if setter is None:
            continue
        try:  # libjack exports the current hook: put it back at exit
            previous = ctypes.c_void_p.in_dll(lib, f"jack_{kind}_callback").value
        except ValueError:
            previous = None
        _install(setter, _JACK_HANDLER(callback))
        if previous is not None:
            _undo.append(functools.partial(setter, previous))
        installed = True
    if installed:
        _alive.append(lib)
    return installed


def _restore() -> None:
    """At exit: the libraries' previous hooks (ours stay alive for late callers)."""
    for undo in _undo:
        with contextlib.suppress(Exception):
            undo()


def _counted() -> bool:
    """Count one message; whether it is to be logged."""
    global _count
    with _count_lock:
        _count += 1
        n = _count
    if n == MAX_LOGGED + 1:
        log.debug("more ALSA/JACK messages follow; they are only counted")
    return n <= MAX_LOGGED


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace").rstrip()


def _on_alsa(
    file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None
) -> None:
    """ALSA's error handler (any thread): the format unexpanded, the place, the errno."""
    with contextlib.suppress(Exception):
        if _counted():
            log.debug(
                "ALSA %s:%d:(%s) %s%s",
                _text(file),
                line,
                _text(function),
                _text(fmt),
                f": {os.strerror(abs(err))}" if err else "",
            )


def _on_jack_error(message: bytes | None) -> None:
    with contextlib.suppress(Exception):
        if _counted():
            log.debug("JACK: %s", _text(message))


def _on_jack_info(message: bytes | None) -> None:
    with contextlib.suppress(Exception):
        if _counted():
            log.debug("JACK info: %s", _text(message))
