"""How a command that runs Ray ends on SIGTERM (``kill``, ``ray job stop``, a scheduler's time limit) and Ctrl-C: as
one stopped by the user — its run says it was interrupted, with the line that resumes it — and with Ray shut down
whole (:func:`repeval.ray_utils.init_ray` sets these up again after ``ray.init``, which sets its own handler)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any


@functools.cache  # registered once per process
def shut_down_uninterrupted_at_exit() -> None:
    """At exit, ignore Ctrl-C before Ray's own shutdown runs, so that it runs to its end.

    A second Ctrl-C a moment after the first (what an impatient user does) landed in ``ray.shutdown`` — it sleeps
    half a second between stopping the workers and the node — and broke it off: the embedded Ray's dashboard and
    runtime-env agents were left running after the process ended (sometimes the process aborted in Ray's C++ exit
    handler). An exit handler registered after Ray's (Ray registers ``ray.shutdown`` when imported): it runs first.
    The command has ended by then; SIGTERM and SIGKILL still end a shutdown that hangs."""
    import atexit

    atexit.register(_ignore_sigint)


def _ignore_sigint() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


#: the SIGTERMs :func:`exit_on_sigterm`'s handler received in this process
_sigterms: list[int] = []


#: the exit status of a command stopped by SIGTERM: the shell's 128 + signal number for a death by signal (Ctrl-C's
#: is 130)
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM


def exit_on_sigterm() -> None:
    """Make SIGTERM (`ray job stop`, a scheduler's time limit, `kill`) raise ``SystemExit(143)`` in the main thread
    and remember it: the command unwinds as it does for Ctrl-C, so its run says it was interrupted.

    Without a handler SIGTERM ends the process at once; Ray's driver handler (set by ``ray.init``, replaced here)
    raises ``SystemExit`` too, but a SIGTERM that lands in a blocking Ray call (``ray.wait`` in Tune's loop) comes out
    as ``SystemExit(1)``: :func:`sigterm_received` is what tells such an exit from others (the CLI then exits with
    :data:`SIGTERM_EXIT_STATUS` all the same).

    Once the process runs its exit handlers (Ray's shutdown, repeval's), a SIGTERM ends it at once with that status:
    a ``SystemExit`` raised there was printed as "Exception ignored in atexit callback" with its traceback (``ray job
    stop`` as a job ended), and the process went on to exit 0. (:func:`_exiting_now`, registered again at each call,
    so that it runs before the exit handlers registered until then — Ray's included once ``ray.init`` has run.)
    A SIGTERM whose ``SystemExit`` lands in a collection callback, where Python cannot raise it, is delivered again
    (:func:`repeval.quiet_exit.redeliver_exit_requests_in_callbacks`)."""
    if threading.current_thread() is threading.main_thread():
        import atexit

        from repeval.quiet_exit import redeliver_exit_requests_in_callbacks

        signal.signal(signal.SIGTERM, _on_sigterm)
        redeliver_exit_requests_in_callbacks(signal.SIGTERM)  # one that lands in a collection callback is not lost
        atexit.unregister(_exiting_now)
        atexit.register(_exiting_now)


#: set when this process starts running its exit handlers (:func:`exit_on_sigterm`)
_exiting: list[bool] = []


def _exiting_now() -> None:
    _exiting.append(True)


def _on_sigterm(signum: int, frame: Any) -> None:
    _sigterms.append(signum)
    stop_forwarding_worker_output()
    if _exiting:  # the command is over: no exception to unwind it (it would be printed, ignored), the status it gets
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(128 + signum)
    sys.exit(128 + signum)


#: the name under which ``ray.init(log_to_driver=True)`` (Ray 2.60's ``ray._private.worker.connect``) registers the
#: printing of the job's worker output on the driver's stdout/stderr
_WORKER_OUTPUT_HANDLER = "ray_print_logs"


def stop_forwarding_worker_output() -> None:
    """Stop printing what this driver's workers write (``log_to_driver``): once a job is stopped (``ray job stop``),
    Ray tears its workers down, and those caught starting an actor or running a task aborted in Ray's C++ code
    ("*** SIGABRT received", "Check failed: … ActorCreationTaskDone() … Broken pipe", "*** StackTrace Information
    ***") into the job's log, after or amid repeval's "terminated" line. Called from the SIGTERM handler, so the
    dispatcher's lock is not taken (``ray.shutdown`` may hold it when the signal lands): its list of handlers is
    replaced in one assignment, which its ``emit`` reads once. Nothing to do without Ray or without the handler."""
    worker = sys.modules.get("ray._private.worker")
    dispatcher: Any = getattr(worker, "global_worker_stdstream_dispatcher", None)
    handlers = getattr(dispatcher, "handlers", None)
    if isinstance(handlers, list):
        dispatcher.handlers = [h for h in handlers if not (isinstance(h, tuple) and h[0] == _WORKER_OUTPUT_HANDLER)]


def sigterm_received() -> bool:
    """Whether this process received a SIGTERM since :func:`exit_on_sigterm`."""
    return bool(_sigterms)


@contextlib.contextmanager
def keeping_sigterm_handler() -> Iterator[None]:
    """Keep repeval's SIGTERM handler (:func:`exit_on_sigterm`) through ``ray.init``, which sets its own first thing:
    a SIGTERM during Ray's start-up (half a minute on a loaded machine) ended the command with status 15, unrecorded
    — no line resuming its run. (Ray's C++ core worker still aborts on one that lands while it connects.)"""
    import ray._private.utils as ray_utils

    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        yield
        return
    setter = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = setter
