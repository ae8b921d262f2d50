"""Starting or attaching to Ray, and reading the cluster's resources."""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from repeval.ray_auth import (  # noqa: F401  (re-exported: they lived here)
    AUTH_MODE_ENV,
    AUTH_TOKEN_ENVS,
    prepare_token_auth,
    restrict_token_file,
)
from repeval.ray_cluster import attach_ray, with_worker_setup_hook
from repeval.ray_signals import exit_on_sigterm, keeping_sigterm_handler, shut_down_uninterrupted_at_exit

log = logging.getLogger(__name__)


def worker_soft_limit(cpus: float) -> int:
    """Worker processes a Ray node keeps alive when idle: twice its CPUs plus four.

    With Ray's default, a node whose CPUs are held by an actor pool kills an idle task worker about a second
    after its task, so nearly every decode task of an embedding stream started a fresh worker process and
    paid its imports again (numpy, soundfile, audiomentations, ``ray.data``: about 3 s of CPU each). On
    2 CPUs a 2,000-clip CREPE-tiny stream started a new decode worker every 6–8 s: 30 of its 150
    core-seconds, 76 s instead of 63 s. Clusters set the same number with ``RAY_num_workers_soft_limit``
    on every node (see ``cluster/``).
    """
    return int(2 * math.ceil(cpus) + 4)


def init_ray(num_cpus: int | None = None, **kwargs: Any) -> None:
    """Attach to ``RAY_ADDRESS`` when set (``ray job submit``), else start an embedded Ray.

    The embedded instance binds its dashboard to 127.0.0.1 and is quiet by default.
    """
    import ray

    from repeval.cpu import use_huge_pages

    use_huge_pages()  # the embedded Ray's workers inherit it (torch reads it once, at a process' first tensor)
    if ray.is_initialized():
        return
    with keeping_sigterm_handler():
        _init_ray(num_cpus, **kwargs)
    exit_on_sigterm()  # ray.init set its own handler, which forgets the signal, unless repeval's was set before
    shut_down_uninterrupted_at_exit()
    restrict_token_file()


def _init_ray(num_cpus: int | None = None, **kwargs: Any) -> None:
    """:func:`init_ray`'s ``ray.init``: attach to ``RAY_ADDRESS`` or start the embedded Ray."""
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "0")
    if os.environ.get("RAY_ADDRESS"):
        check_ray_address(os.environ["RAY_ADDRESS"])
        log.info("attaching to Ray cluster at %s", os.environ["RAY_ADDRESS"])
        # Ray's own lines at WARNING, as in the embedded Ray: not its INFO lines ("Connecting to existing Ray
        # cluster", Tune's "Wrote the latest version of all result files" after every grid); what the job's workers
        # print still reaches its log
        opts: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING, **kwargs}
        # every worker of the job drops the exit request a SIGTERM may raise in a collection callback, rather than
        # print it into the job's log (repeval/quiet_exit.py); the embedded Ray shows no worker output by default,
        # and a job-wide runtime env there would leave Ray's prestarted workers unused
        opts["runtime_env"] = with_worker_setup_hook(os.environ["RAY_ADDRESS"], opts.get("runtime_env"))
        attach_ray(os.environ["RAY_ADDRESS"], **opts)
    else:
        from repeval.cpu import ray_process_environment

        prepare_token_auth()
        owner = start_ray_watchdog()
        with ray_process_environment():  # Ray's processes start with glibc's settings; this process keeps its own
            if owner:  # marks them for the watchdog, which ends them if this process dies without stopping them
                os.environ[RAY_OWNER_ENV] = owner
            try:
                ray.init(**_embedded_options(num_cpus, kwargs))
            except Exception as exc:
                said = start_timed_out(exc)
                if said is None:
                    raise
                raise said from exc
            finally:
                os.environ.pop(RAY_OWNER_ENV, None)
        if owner:
            tell_watchdog_session()
        stop_monitor_first_at_exit()


def start_timed_out(exc: Exception) -> RuntimeError | None:
    """The one-line error, with its fix, of an embedded Ray that did not start in time — Ray 2.60 raises a bare
    ``Exception`` ("The current node timed out during startup …") when its raylet has not registered with its GCS
    within 30 s, which the CLI printed as a page of traceback; ``None`` for any other failure."""
    if type(exc) is not Exception or "timed out during startup" not in str(exc):
        return None
    return RuntimeError(
        "the Ray that repeval starts on this machine did not come up: its raylet did not register within Ray's 30 "
        "seconds — the machine is most likely too busy (`uptime` shows its load) or short of memory (`free -h`): "
        "rerun the command when it is less loaded (everything finished so far is saved)"
    )


#: the variable whose value marks the processes of the embedded Ray this process starts (see repeval/ray_watchdog.py)
RAY_OWNER_ENV = "REPEVAL_RAY_OWNER"
#: where watchdogs keep the session directories of running commands' Rays, for the backstop of a later one
RAY_OWNER_RECORDS = Path.home() / ".ray" / "repeval_owners"
#: this process' watchdog and the write end of its pipe, kept open while this process lives
_watchdog: list[Any] = []


def _forget_watchdog() -> None:
    """In a child forked (not exec'd) from this process: close its copy of the watchdog's pipe, which would otherwise
    keep the pipe open after this process died (the watchdog then noticed the death only by its parent changing, up to
    :data:`repeval.ray_watchdog.PARENT_CHECK_S` later), and forget the watchdog, which watches this process only."""
    if _watchdog:
        try:
            os.close(_watchdog[1])
        except OSError:
            pass
        _watchdog.clear()
        start_ray_watchdog.cache_clear()  # a Ray this child started would get a watchdog of its own


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_watchdog)


@functools.cache  # one watchdog per process, for every embedded Ray it starts
def start_ray_watchdog() -> str | None:
    """Start the watchdog that ends this process' embedded Ray if this process dies without stopping it; returns
    the value of :data:`RAY_OWNER_ENV` that marks that Ray's processes (None where there is no watchdog).

    Ray 2.60 ties its GCS, raylet, dashboard, monitor and log monitor to the driver (``PR_SET_PDEATHSIG``), but after
    a ``kill -9`` of the driver (the OOM killer, a CI job's timeout) the raylet's dashboard and runtime-env agents
    stayed behind for another minute, and every such run left its own. The watchdog
    (``python -I -S repeval/ray_watchdog.py``, in a session of its own, so a terminal's signals and a kill of the
    command's process group miss it) waits on a pipe whose write end only this process holds, and SIGKILLs the marked
    processes once this process has ended; when it starts, it also ends what an earlier command's Ray left behind
    when that command and its watchdog were both killed (``pkill -9 -f repeval``). Linux only (it reads ``/proc``);
    elsewhere, or if it cannot start, the run goes on without one."""
    import secrets

    if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        return None
    try:  # the value names this process (pid and start time) for the backstop of a later command's watchdog
        started = Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None
    token = f"{os.getpid()}-{started}-{secrets.token_hex(12)}"
    read_end, write_end = os.pipe()  # not inherited by any process started later (PEP 446): EOF = this one ended
    script = Path(__file__).with_name("ray_watchdog.py")
    argv = [sys.executable, "-I", "-S", str(script), str(os.getpid()), token, str(RAY_OWNER_RECORDS)]
    try:  # posix_spawn, not Popen: a Popen never waited for says "subprocess N is still running" at this one's exit
        pid = os.posix_spawn(
            sys.executable,
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
    except OSError as exc:
        os.close(write_end)
        log.warning("could not start the watchdog of the embedded Ray (%s): a kill -9 may leave Ray's agents", exc)
        return None
    finally:
        os.close(read_end)
    _watchdog[:] = [pid, write_end]
    return token


def tell_watchdog_session() -> None:
    """Write the embedded Ray's session directory to the watchdog's pipe: processes that retitle themselves
    (``ray::DashboardAgent``, ``ray::IDLE``) blank the start of their environment, where Ray may have put
    :data:`RAY_OWNER_ENV`; the watchdog also ends the ``ray::`` processes that hold a file open there (their logs)."""
    import ray

    node = getattr(getattr(ray._private, "worker", None), "_global_node", None)
    session_dir = getattr(node, "get_session_dir_path", lambda: None)()
    if _watchdog and session_dir:
        try:
            named = {session_dir, os.path.realpath(session_dir)}  # as in Ray's arguments; as its open files read
            os.write(_watchdog[1], b"".join(os.fsencode(d) + b"\n" for d in sorted(named)))
        except OSError as exc:  # the watchdog has ended
            log.warning("the watchdog of the embedded Ray has ended (%s): a kill -9 may leave Ray's agents", exc)


#: how long :func:`check_ray_address` waits for the cluster's GCS port to accept a connection
RAY_ADDRESS_CONNECT_TIMEOUT_S = 10.0


class RayUnreachable(RuntimeError):
    """``RAY_ADDRESS`` names a Ray cluster that does not answer."""


def check_ray_address(
    address: str, timeout_s: float = RAY_ADDRESS_CONNECT_TIMEOUT_S, given: str = "RAY_ADDRESS"
) -> None:
    """Fail at once, naming the fix, when ``RAY_ADDRESS`` cannot be a running cluster's address.

    Ray 2.60's ``ray.init`` takes a dashboard URL (``http://127.0.0.1:8265``, what ``ray job submit`` is given)
    with a ``ValueError`` deep in its own stack, and an address where nothing listens (a cluster stopped since
    ``export RAY_ADDRESS=...``, a typo in the port) with "Failed to connect to GCS" warnings for minutes (20
    attempts of about 35 s each; still waiting after 5 minutes when measured) before it raises. Here an HTTP address raises ``ValueError`` and a
    ``host:port`` (or ``ray://host:port``) whose port refuses a TCP connection within ``timeout_s`` raises
    :class:`RayUnreachable`; ``auto``, ``local`` and anything else are left to Ray. ``given``: where the address
    comes from (``RAY_ADDRESS``, or ``--address`` of ``repeval plan``), as the errors name it."""
    addr = address.strip()
    if given == "RAY_ADDRESS":
        fix = "unset RAY_ADDRESS to run an embedded Ray, or set it to a running head's GCS address (host:6379)"
    else:
        fix = f"leave out {given} to plan for this machine, or give a running head's GCS address (host:6379)"
    if addr.lower().startswith(("http://", "https://")):
        raise ValueError(
            f"{given}={addr} is a dashboard (job API) address, which `ray job` commands take, not the address "
            f"of a Ray cluster for repeval to attach to: {fix}; give `ray job submit` its address with "
            "RAY_API_SERVER_ADDRESS (or --address) instead"
        )
    hostport = addr[len("ray://") :] if addr.lower().startswith("ray://") else addr
    host, sep, port = hostport.rpartition(":")
    host = host.strip("[]")  # an IPv6 literal
    if not sep or not host or not port.isdigit() or "/" in hostport:
        return
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RayUnreachable(
            f"no Ray cluster answers at {given}={addr} ({exc or type(exc).__name__}): start it (`ray start "
            f"--head`), or {fix}"
        ) from None


def cluster_resources(address: str, given: str = "RAY_ADDRESS") -> dict[str, float]:
    """The resources of the Ray cluster at ``address`` (:func:`cluster_nodes`' first part)."""
    return cluster_nodes(address, given)[0]


def cluster_nodes(address: str, given: str = "RAY_ADDRESS") -> tuple[dict[str, float], list[dict[str, float]]]:
    """The resources of the Ray cluster at ``address`` (``ray.cluster_resources()``) and each live node's
    (:func:`repeval.ray_fit.alive_node_resources`: what the plan checks the run's requests against, node by node,
    as the run does), read by attaching to it as a driver — never starting a Ray — and detaching; those of the Ray
    this process is attached to already, if any. With the resources the largest node's memory
    (:func:`repeval.plan_memory.largest_node_memory`: the plan judges a trial's frames by it, as the run does, not by
    every node's sum). Raises as :func:`check_ray_address` does (``given`` names where the address comes from)."""
    import ray

    from repeval.plan_memory import largest_node_memory
    from repeval.ray_fit import alive_node_resources

    def read() -> tuple[dict[str, float], list[dict[str, float]]]:
        nodes = alive_node_resources()
        return {**ray.cluster_resources(), **largest_node_memory(nodes)}, nodes

    if ray.is_initialized():
        return read()
    check_ray_address(address, given=given)
    attach_ray(address, given, log_to_driver=False, logging_level=logging.WARNING)
    try:
        return read()
    finally:
        ray.shutdown()


def local_cpus() -> float:
    """The CPUs an embedded Ray started here would have (Ray's own count: the cgroup's quota and the CPUs this
    process may run on), without starting it; ``os.cpu_count()`` where Ray's count is not available."""
    try:
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus())
    except Exception:  # another Ray: the machine's count
        return float(os.cpu_count() or 1)


def _embedded_options(num_cpus: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``ray.init`` options of the embedded Ray: local dashboard (off), quiet logs, repeval's worker soft limit;
    ``kwargs`` override them."""
    opts: dict[str, Any] = {
        # a Ray of its own, also beside a `ray start` cluster on this machine: ray.init() without an address attached
        # to the one /tmp/ray/ray_current_cluster names (and refused repeval's _system_config there) — RAY_ADDRESS
        # is what attaches
        "address": "local",
        # worker stdout/stderr (per-trial chatter) only with `repeval -v`; failures are recorded anyway
        "log_to_driver": log.isEnabledFor(logging.DEBUG) or os.environ.get("REPEVAL_WORKER_LOGS") == "1",
        "include_dashboard": False,
        "dashboard_host": "127.0.0.1",
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if num_cpus is not None:
        opts["num_cpus"] = num_cpus
    kwargs = dict(kwargs)
    system = dict(kwargs.pop("_system_config", None) or {})
    if "RAY_num_workers_soft_limit" not in os.environ:
        system.setdefault("num_workers_soft_limit", worker_soft_limit(num_cpus or os.cpu_count() or 1))
    if system:
        opts["_system_config"] = system
    opts.update(kwargs)
    return opts


@functools.cache  # registered once per process
def stop_monitor_first_at_exit() -> None:
    """At exit, SIGKILL the embedded Ray's autoscaler monitor before Ray's own shutdown reaches it.

    ``ray.shutdown`` stops the raylet and the GCS first, then SIGTERMs the monitor (``monitor.py``), whose handler
    reports "autoscaler failed" to the GCS — gone by then — and hangs until Ray SIGKILLs it after a one-second
    grace period: every embedded run's exit waited that second (``kill monitor: 1.02 s`` of a 1.46 s
    ``ray.shutdown``, measured on the 2-core development VM). The monitor keeps no state of its own (an embedded
    node never scales), so it is killed at once, as Ray does a second later. An exit handler registered after
    Ray's (Ray registers ``ray.shutdown`` when imported): it runs first. Only a node this process started is
    touched; after an explicit ``ray.shutdown()`` there is none and this does nothing; a Ray without these
    internals is left alone."""
    import atexit

    atexit.register(_shutdown_at_exit)


def _shutdown_at_exit() -> None:
    """The exit handler :func:`stop_monitor_first_at_exit` registers: the monitor killed, then ``ray.shutdown()``
    called here rather than by Ray's own exit handler, which first sleeps 0.5 s "to make sure that log messages
    finish printing" — every command's output is printed by then (its own lines; what workers log is in Ray's log
    files, and a trial's or a decode task's warnings travel through repeval's own files)."""
    import ray

    _kill_monitor()
    if ray.is_initialized():
        ray.shutdown()


def _kill_monitor() -> None:
    import ray

    worker = getattr(getattr(ray, "_private", None), "worker", None)
    processes = getattr(getattr(worker, "_global_node", None), "all_processes", None)  # {} when only connected
    if not isinstance(processes, dict):
        return
    for info in processes.get("monitor", []):
        proc = getattr(info, "process", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):  # Ray's shutdown, next, kills what is left
                pass


def wants_gpu(mode: str, amount: float, cluster_gpus: float) -> bool:
    """Whether a stage requests ``amount`` GPUs under ``run.resources.use_gpu`` = ``mode``."""
    if amount <= 0 or mode == "never":
        return False
    return mode == "always" or cluster_gpus > 0


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))


#: while a stream's resource limits are still zero, Ray Data re-reads them this often instead of once a second
PROMPT_LIMITS_S = 0.05
#: … for at most this long after the stream's first read (a cluster that really has no CPU is not polled for ever)
PROMPT_LIMITS_WINDOW_S = 10.0


def prompt_stream_limits() -> bool:
    """Let a Ray Data stream run tasks in parallel from its start instead of 1–2 s into it.

    Ray Data 2.60's ``ResourceManager.get_global_limits`` re-reads the cluster's resources at most once a
    second, from its autoscaling coordinator, and that reply is asynchronous: the first read returns the
    still-empty cache, so the limits are zero and the stream runs one task at a time until a later read
    (measured on 2 CPUs: the second decode task started 1–2 s after the first; five alternating pairs of a
    2,000-clip mfcc-stats stream took 5.6–6.4 s, mean 5.94 s, with this against 5.9–6.8 s, mean 6.48 s,
    without). While the limits are still zero, within the stream's first ``PROMPT_LIMITS_WINDOW_S``, this
    re-reads them every ``PROMPT_LIMITS_S`` instead;
    Ray Data keeps at most one coordinator request in flight, so this adds a few requests per stream.
    After the first non-zero answer Ray's cadence is unchanged. Installed once per process, in the driver;
    returns False (and changes nothing) on a Ray without this internal method.
    """
    try:
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:
        return False
    original = getattr(ResourceManager, "get_global_limits", None)
    if original is None or not hasattr(ResourceManager, "GLOBAL_LIMITS_UPDATE_INTERVAL_S"):
        return False
    if getattr(original, "_repeval_prompt", False):
        return True

    def get_global_limits(self: Any) -> Any:
        now = time.time()
        first = self.__dict__.setdefault("_repeval_first_limits_read", now)
        limits = original(self)
        last = self._global_limits_last_update_time
        refreshed = last >= now  # this call re-read them (Ray stamps its read with the time)
        if refreshed and limits.cpu == 0 and limits.gpu == 0 and now - first < PROMPT_LIMITS_WINDOW_S:
            # read again PROMPT_LIMITS_S after this read, not a whole interval after it
            self._global_limits_last_update_time = last - self.GLOBAL_LIMITS_UPDATE_INTERVAL_S + PROMPT_LIMITS_S
        return limits

    get_global_limits._repeval_prompt = True  # type: ignore[attr-defined]
    get_global_limits.__wrapped__ = original  # type: ignore[attr-defined]
    ResourceManager.get_global_limits = get_global_limits  # type: ignore[method-assign]
    return True
