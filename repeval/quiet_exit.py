"""A SIGTERM that lands in a garbage-collection callback of a Ray worker, said by Ray's kill and not by a traceback.

Ray ends a worker it no longer needs (a probe trial's actor once Tune is done with it, an embedding actor once the
stream ends, ``ray.kill``) with SIGTERM; the worker's handler (``sigterm_handler`` in Ray's ``worker.main_loop``)
raises ``SystemExit`` in its main thread. When the signal lands while that thread runs a weakref callback or a
``__del__`` — a collection — Python cannot raise there: it prints "Exception ignored in: <function
WeakSet.__init__.<locals>._remove …>", the traceback and "SystemExit: 1" to the worker's stderr, which a job's log
shows (``ray job submit`` attaches with ``log_to_driver``), and the worker goes on until Ray's kill ends it a moment
later. Seen once in a two-node job's log after its probe grid, among hundreds of clean runs: the timing is rare,
the lines alarming and meaningless to a user. :func:`quiet_exit_requests_in_callbacks` drops only those lines: an
exit request that could not be raised; every other unraisable exception is printed as before.

Where it is installed: a job's driver names it as the job's ``worker_process_setup_hook``
(:func:`repeval.ray_cluster.with_worker_setup_hook`), so every worker process of the job — Ray Data's tasks and
internal actors included, which run no repeval code — installs it as it starts; repeval's own actors (the probe
trials, the embedding actors) and decode tasks (at their first batch: a getattr once it is there) also install it
themselves, for the embedded Ray (whose worker output a user sees only with ``repeval -v``; a setup hook there made
every first task seconds slower) and a job whose runtime env names a setup hook of its own. The hook reaches the workers pickled
by value: keep this module to the standard library.

In a command's own process (a job's driver), whose SIGTERM handler is repeval's, such an exit request is a stop
that must not be lost: :func:`redeliver_exit_requests_in_callbacks` delivers the signal again.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)


def quiet_exit_requests_in_callbacks() -> None:
    """Install (once per process) the unraisable hook that drops a ``SystemExit`` raised in a callback (see the
    module's docstring) and passes every other unraisable exception to the hook installed before it. Not in a process
    whose own SIGTERM handler's exit request must be delivered again (:func:`redeliver_exit_requests_in_callbacks`: a
    command's process that runs a decode task's code itself — a test, a benchmark's loop): dropped, that stop would
    be lost."""
    hook = sys.unraisablehook
    if getattr(hook, "_repeval_quiet_exit", False) or getattr(hook, "_repeval_redeliver", False):
        return
    sys.unraisablehook = _hook_over(hook)


def _hook_over(previous: Any) -> Any:
    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, SystemExit):
            log.debug("an exit request (SystemExit) landed in %r; Ray's kill ends this worker", unraisable.object)
            return
        previous(unraisable)

    hook._repeval_quiet_exit = True  # type: ignore[attr-defined]
    return hook


#: how long after an exit request lost in a callback the signal comes again (a collection's callbacks take
#: microseconds to milliseconds)
REDELIVER_AFTER_S = 0.05


def redeliver_exit_requests_in_callbacks(signum: int) -> None:
    """Install (once per process) the unraisable hook of a process whose own handler of ``signum`` raises
    ``SystemExit(128 + signum)`` (a ``repeval`` command, a job's driver: :func:`repeval.ray_signals.exit_on_sigterm`):
    such an exit request that landed in a collection callback is the stop (``ray job stop``, a scheduler's time
    limit) lost there — Python printed "Exception ignored in … SystemExit: 143" into the job's log and the command
    went on, until the job supervisor's SIGKILL cut it off without its "terminated" line. The hook has a timer
    thread deliver the signal again to the main thread :data:`REDELIVER_AFTER_S` later, when the collection is
    over (delivered at once, the handler ran inside the hook, in the callback still), so the command stops as it
    would have; should the handler land in a callback again, its exit request comes here again. Every other
    unraisable exception goes to the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_repeval_redeliver", False):
        return

    main = threading.main_thread().ident

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, SystemExit) and exc.code == 128 + signum:
            log.debug("the exit request of signal %d landed in %r: delivered again", signum, unraisable.object)
            # a signal, not _thread.interrupt_main: a main thread waiting by then (a queue, a join, a sleep) is woken
            # by a signal, and by interrupt_main's flag only once its wait ends (never, for one without a timeout)
            timer = threading.Timer(REDELIVER_AFTER_S, signal.pthread_kill, (main, signum))
            timer.daemon = True
            try:
                timer.start()
                return
            except RuntimeError:  # no new thread (the interpreter is shutting down): said as Python says it
                pass
        previous(unraisable)

    hook._repeval_redeliver = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
