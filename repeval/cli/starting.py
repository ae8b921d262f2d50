"""Ctrl-C and SIGTERM in the first moment of a ``repeval`` command, while its modules are imported — before the
command's own handlers (:func:`repeval.ray_signals.exit_on_sigterm`, the ``KeyboardInterrupt`` of
:func:`repeval.cli.entrypoint`) are there: Ctrl-C printed a ``KeyboardInterrupt`` traceback out of numpy's import, and
SIGTERM ended the command with status -15 and no word. Here each ends it with one line and the shell's status (130,
143): nothing has been done yet. Standard library only: imported first, before the imports it covers."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

#: what each signal's line says
_SAID = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}


def _stop(signum: int, frame: Any) -> None:
    os.write(2, f"{_SAID[signal.Signals(signum)]} while starting: nothing was done\n".encode())
    os._exit(128 + signum)


def quiet_while_starting() -> dict[int, Any]:
    """Install :func:`_stop` for Ctrl-C and SIGTERM where their handlers are Python's defaults (in the main thread
    only); the handlers it replaced, for :func:`started`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    replaced: dict[int, Any] = {}
    for signum, default in defaults.items():
        if signal.getsignal(signum) is default:
            replaced[signum] = signal.signal(signum, _stop)
    return replaced


def started(replaced: dict[int, Any]) -> None:
    """Put back the handlers :func:`quiet_while_starting` replaced, where :func:`_stop` is still the one: a process
    that imports :mod:`repeval.cli` (a test, a job's script) keeps its own."""
    for signum, handler in replaced.items():
        if signal.getsignal(signum) is _stop:
            signal.signal(signum, handler)
