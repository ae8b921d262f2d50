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
trials, the embedding actors) also install it themselves, for the embedded Ray (whose worker output a user sees only
with ``repeval -v``) and a job whose runtime env names a setup hook of its own. The hook reaches the workers pickled
by value: keep this module to the standard library.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def quiet_exit_requests_in_callbacks() -> None:
    """Install (once per process) the unraisable hook that drops a ``SystemExit`` raised in a callback (see the
    module's docstring) and passes every other unraisable exception to the hook installed before it."""
    hook = sys.unraisablehook
    if getattr(hook, "_repeval_quiet_exit", False):
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
