"""How a ``repeval`` process ends with its embedded Ray: the autoscaler monitor killed before Ray's shutdown reaches
it (``repeval.ray_utils.stop_monitor_first_at_exit``), a second Ctrl-C or a SIGTERM at exit or while Ray starts
ending the command as one, and the hook that drops the exit request a SIGTERM raises in a collection callback, in
the command and in every worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

MONITOR = """
import atexit, sys
seen = {}
atexit.register(lambda: print("MONITOR", seen, flush=True))  # registered before `import ray`: runs after its shutdown
import ray._private.node as node
kill = node.Node._kill_process_type
def spy(self, process_type, *args, **kwargs):
    if process_type == "monitor":
        proc = self.all_processes[process_type][0].process
        seen["alive"] = proc.poll() is None
        result = kill(self, process_type, *args, **kwargs)
        seen["returncode"] = proc.returncode
        return result
    return kill(self, process_type, *args, **kwargs)
node.Node._kill_process_type = spy
from repeval.ray_utils import init_ray
init_ray(num_cpus=1)
import ray
print("GCS", ray.get_runtime_context().gcs_address, flush=True)
"""


SECOND_CTRL_C = """
import atexit, os, signal, threading
from repeval.ray_utils import init_ray
init_ray(num_cpus=1)
# a second Ctrl-C while Ray shuts down at exit (it sleeps half a second between its workers and its node); registered
# last, this runs first, before repeval's and Ray's exit handlers
atexit.register(lambda: threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start())
"""


SIGTERM_AT_EXIT = """
import atexit, os, signal, threading
from repeval.ray_signals import exit_on_sigterm
from repeval.ray_utils import init_ray
exit_on_sigterm()  # as the command and the jobs' entry points do (init_ray sets it again)
init_ray(num_cpus=1)
# `ray job stop` as the command ends: SIGTERM while the exit handlers run (registered last, this runs first)
atexit.register(lambda: threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start())
"""


def _process_group(pgid: int) -> list[int]:
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                left.append(int(proc.name))
        except (OSError, ValueError):
            pass  # ended meanwhile
    return left


class Exited:
    """A process started now and watched by a thread, which looks for what is left in its process group the moment
    it exits (as a test waiting for it would, but while the module's other tests run)."""

    def __init__(self, script: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out = self.err = ""
        self.left: list[int] = []
        self._watch = threading.Thread(target=self._wait, daemon=True)
        self._watch.start()

    def _wait(self) -> None:
        self.out, self.err = self.proc.communicate()
        self.left = _process_group(self.proc.pid)

    def wait(self, timeout: float = 180) -> Exited:
        self._watch.join(timeout)
        assert not self._watch.is_alive(), f"still running after {timeout:.0f} s"
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._watch.join(30)
        for pid in _process_group(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def ray_exits(ray_session) -> Iterator[dict[str, Exited]]:
    """The embedded-Ray processes below, started together: each costs a Ray start (~10 s), mostly waiting. The
    first beside a `ray start` cluster (here the session's Ray, named in its temp folder's ``ray_current_cluster``)."""
    import ray

    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TMPDIR": "/tmp"}
    env.pop("RAY_ADDRESS", None)
    started = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths go under it
    (started / "ray").mkdir()
    (started / "ray" / "ray_current_cluster").write_text(ray.get_runtime_context().gcs_address)
    procs = {
        "monitor": Exited(MONITOR, {**env, "RAY_TMPDIR": str(started)}),
        "second_ctrl_c": Exited(SECOND_CTRL_C, env),
        "sigterm_at_exit": Exited(SIGTERM_AT_EXIT, env),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():  # what a failing test left running
            proc.stop()
        shutil.rmtree(started, ignore_errors=True)


def test_the_embedded_rays_monitor_is_gone_when_rays_shutdown_reaches_it(ray_exits):
    # Ray's shutdown SIGTERMs the monitor after the GCS has gone, and its handler then hangs until Ray SIGKILLs it
    # a second later; repeval's exit handler SIGKILLs it first
    p = ray_exits["monitor"].wait()
    assert p.proc.returncode == 0, p.err[-3000:]
    line = next(ln for ln in p.out.splitlines() if ln.startswith("MONITOR "))
    assert line == "MONITOR {'alive': False, 'returncode': -9}", line


def test_the_embedded_ray_is_its_own_beside_a_ray_start_cluster(ray_session, ray_exits):
    # with a `ray start` cluster on the machine (its address in /tmp/ray/ray_current_cluster), ray.init() attached
    # to it: `repeval run` without RAY_ADDRESS stopped with Ray's "When connecting to an existing cluster,
    # _system_config must not be provided" (without repeval's _system_config it would have run there)
    import ray

    p = ray_exits["monitor"].wait()
    assert p.proc.returncode == 0, p.err[-3000:]
    (line,) = [ln for ln in p.out.splitlines() if ln.startswith("GCS ")]
    assert line != f"GCS {ray.get_runtime_context().gcs_address}", line


def test_a_second_ctrl_c_does_not_break_off_rays_shutdown(ray_exits):
    # it did: ray.shutdown stopped in its sleep and the embedded Ray's dashboard and runtime-env agents outlived the
    # process (in their process group)
    p = ray_exits["second_ctrl_c"].wait()
    for pid in p.left:
        os.kill(pid, signal.SIGKILL)
    assert p.proc.returncode == 0 and "KeyboardInterrupt" not in p.err, p.err[-3000:]
    assert p.left == [], "Ray processes outlived the process"


def test_a_sigterm_while_the_exit_handlers_run_ends_the_process_with_143_and_no_traceback(ray_exits):
    # repeval's SIGTERM handler raised SystemExit inside the exit handler it landed in: Python printed "Exception
    # ignored in atexit callback" with its traceback, went on, and the process exited 0
    p = ray_exits["sigterm_at_exit"].wait()
    # 143 from repeval's handler; now and then SIGTERM's default action had been put back by then (in Ray's shutdown,
    # seen in 1 of ~6 runs) and the signal ended the process itself: -15 here, the same status 143 in a shell
    assert p.proc.returncode in (143, -signal.SIGTERM), (p.proc.returncode, p.err[-3000:])
    assert "Traceback" not in p.err and "SystemExit" not in p.err, p.err[-3000:]


SIGTERM_IN_INIT = """
import os, signal
import ray._private.node as node
from repeval import ray_signals, ray_utils
ray_signals.exit_on_sigterm()  # as the command's entry point does
start = node.Node.__init__
def start_after_sigterm(self, *args, **kwargs):  # `kill` while ray.init starts Ray (half a minute on a busy machine)
    os.kill(os.getpid(), signal.SIGTERM)
    return start(self, *args, **kwargs)
node.Node.__init__ = start_after_sigterm
try:
    ray_utils.init_ray(num_cpus=1)
finally:
    print("SIGTERM_SEEN", ray_signals.sigterm_received(), flush=True)
"""


def test_a_sigterm_while_ray_starts_stops_the_command_as_one_after_it():
    # ray.init set a handler of its own first thing (sys.exit(15)): the command ended with status 15 and, the signal
    # not recorded, without saying it was stopped nor the line that resumes its run. No Ray starts here
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TMPDIR": "/tmp"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-c", SIGTERM_IN_INIT], capture_output=True, text=True, env=env, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (143, "SIGTERM_SEEN True"), (r.returncode, r.stdout, r.stderr[-3000:])


def test_the_processes_the_tests_start_take_ctrl_c_also_when_the_test_run_is_in_the_background():
    # the Ctrl-C tests (here, tests/tuning/test_grid.py, tests/reliability/test_driver_faults.py) signal drivers they
    # started; a test run started in the background by a script (`make test &`) has SIGINT ignored, and so had those
    # drivers, which ran on until killed (tests/conftest.py)
    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "True", (r.stdout, r.stderr)


# A Ray worker's SIGTERM handler (Ray's own function raising the SystemExit, as ``worker.main_loop`` sets it), and a
# SIGTERM that lands in a weakref callback — a collection running in the worker's main thread when Ray's kill comes;
# argv[1] installs repeval's hook (``quiet``) or not, argv[2] makes the callback raise another error after it;
# ``driver``: a command's handler instead (repeval.ray_signals.exit_on_sigterm), ``driver-unhooked`` without its hook
CALLBACK_SIGTERM = """
import os, signal, sys, weakref
from ray._raylet import raise_sys_exit_with_custom_error_message
def sigterm_handler(signum, frame):
    raise_sys_exit_with_custom_error_message("The process receives a SIGTERM.", exit_code=1)
signal.signal(signal.SIGTERM, sigterm_handler)
if sys.argv[1].startswith("driver"):
    from repeval import ray_signals
    ray_signals.exit_on_sigterm()
    if sys.argv[1] == "driver-unhooked":
        sys.unraisablehook = sys.__unraisablehook__
if sys.argv[1] == "quiet":
    from repeval.quiet_exit import quiet_exit_requests_in_callbacks
    quiet_exit_requests_in_callbacks()
    quiet_exit_requests_in_callbacks()  # a second actor in the same worker: one hook
class Held: pass
def sigterm_lands_here(ref):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100000): pass  # the handler runs between these bytecodes
def another_error(ref):
    raise ValueError("a callback's own error")
held = [Held(), Held()]
refs = [weakref.ref(held[0], sigterm_lands_here)]
if sys.argv[2] == "also-error":
    refs.append(weakref.ref(held[1], another_error))
del held[:]
if sys.argv[1] == "driver-unhooked":  # a command goes on working after the collection
    import time
    time.sleep(2)
elif sys.argv[1] == "driver":  # …waiting on another thread (a queue, a join): the stop delivered again must wake it
    import threading, time
    def lost():  # the main thread still waiting long after the stop: it was lost (no handler runs in this thread)
        time.sleep(15)
        os._exit(0)
    threading.Thread(target=lost, daemon=True).start()
    threading.Event().wait()
print("went on")
"""


def _callback_sigterm(*args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REPEVAL_MKL_SHIM": "0"}
    r = subprocess.run(
        [sys.executable, "-c", CALLBACK_SIGTERM, *args], capture_output=True, text=True, timeout=120, env=env
    )
    went_on = "went on" if status == 0 else ""
    assert r.returncode == status and r.stdout.strip() == went_on, (r.returncode, r.stdout, r.stderr[-3000:])
    return r


def test_without_the_hook_a_sigterm_in_a_callback_prints_a_systemexit_traceback():
    # the control: what a job's log showed from a probe trial's worker that Tune ended (CI, a two-node job)
    err = _callback_sigterm("loud", "-").stderr
    assert "Exception ignored in" in err and "Traceback" in err and "SystemExit: 1" in err, err


def test_the_hook_drops_an_exit_request_in_a_callback_and_prints_every_other_error():
    assert _callback_sigterm("quiet", "-").stderr == ""
    err = _callback_sigterm("quiet", "also-error").stderr
    assert "ValueError: a callback's own error" in err and "SystemExit" not in err, err
    assert err.count("Exception ignored in") == 1, err


def test_a_commands_sigterm_that_lands_in_a_callback_is_delivered_again_and_stops_it():
    # the control: the stop was printed as ignored, and lost (the command went on, as a job until Ray's SIGKILL)
    err = _callback_sigterm("driver-unhooked", "-").stderr
    assert "Exception ignored in" in err and "SystemExit: 143" in err, err
    # with the hook: it stops at its next instruction, with SIGTERM's status; another callback's error still printed
    assert _callback_sigterm("driver", "-", status=143).stderr == ""
    err = _callback_sigterm("driver", "also-error", status=143).stderr
    assert "ValueError: a callback's own error" in err and "SystemExit" not in err, err


def test_a_job_driver_names_the_hook_as_its_workers_setup_hook_unless_one_is_named():
    import json

    from repeval.quiet_exit import quiet_exit_requests_in_callbacks
    from repeval.ray_cluster import RAY_JOB_CONFIG_ENV, SETUP_HOOK, SETUP_HOOK_ENV, with_worker_setup_hook

    env = with_worker_setup_hook("10.0.0.1:6379", {"env_vars": {"A": "1"}}, env={})
    assert env == {"env_vars": {"A": "1"}, SETUP_HOOK: quiet_exit_requests_in_callbacks}
    assert with_worker_setup_hook("10.0.0.1:6379", env={}) == {SETUP_HOOK: quiet_exit_requests_in_callbacks}
    # Ray refuses a second hook: the driver's runtime env or the job's (`ray job submit --runtime-env`) keeps its own
    theirs = {SETUP_HOOK: "their.module.setup"}
    assert with_worker_setup_hook("10.0.0.1:6379", theirs, env={}) == theirs
    job = {RAY_JOB_CONFIG_ENV: json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip", **theirs}})}
    assert with_worker_setup_hook("10.0.0.1:6379", None, env=job) is None
    from ray._private import ray_constants

    assert ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR == SETUP_HOOK_ENV  # Ray's private name (docs/cluster.md)
    passed_on = {"env_vars": {SETUP_HOOK_ENV: "their.module.setup"}}  # as Ray passes a hook on to the workers
    job = {RAY_JOB_CONFIG_ENV: json.dumps({"runtime_env": passed_on})}
    assert with_worker_setup_hook("10.0.0.1:6379", None, env=job) is None
    assert with_worker_setup_hook("ray://10.0.0.1:10001", env={}) is None  # Ray Client: no callable to export


# a second driver on the session's Ray, attached as a `ray job submit` driver is (init_ray with RAY_ADDRESS): whether
# the hook is installed, and `repeval` imported, in the worker of a task with a runtime env of its own — as the
# isolated process groups' actors and Tune's trial actors have; Ray merges the job's into it (a plain task's worker
# gets the job's as it is)
ATTACHED_DRIVER = """
import json, sys
import ray
from repeval.ray_utils import init_ray
init_ray()
def seen():
    return [getattr(sys.unraisablehook, "_repeval_quiet_exit", False), "repeval" in sys.modules]
task = ray.remote(num_cpus=0, runtime_env={"env_vars": {"REPEVAL_PROCESS_GROUP": "probe"}})(seen)
print(json.dumps(ray.get(task.remote())))
"""


def test_every_worker_of_an_attached_job_installs_the_hook_as_it_starts_without_importing_repeval(ray_session):
    # the tasks run code of the driver's own (no repeval): only the job's setup hook can have installed it, by value
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address, "REPEVAL_MKL_SHIM": "0"}
    r = subprocess.run([sys.executable, "-c", ATTACHED_DRIVER], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[true, false]", (r.stdout, r.stderr[-3000:])


def test_a_decode_task_installs_the_hook_in_its_worker_process(ray_session, tmp_path):
    """The embedded Ray names no setup hook (it slowed every first task by seconds): a decode task installs the hook
    itself, at its first batch (repeval.pipeline.stages.DecodeDeform), so Ray Data's SIGTERM to its decode workers
    prints nothing under `repeval -v` either. The task runs in a worker of its own (a runtime env no other test
    uses: a new process), so an earlier task cannot have installed it."""
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 8000)

    def decode_in_worker(path: str) -> list[bool]:
        import numpy as np
        import pyarrow as pa

        from repeval.pipeline.stages import DecodeDeform

        installed = [getattr(sys.unraisablehook, "_repeval_quiet_exit", False)]
        batch = {"track_id": np.array(["a"]), "audio_path": np.array([path]), "split": np.array(["test"])}
        batch["scenarios"] = [np.array(["clean"])]  # type: ignore[assignment]
        rows = pa.concat_tables(DecodeDeform(8000, {}, 0, chunk_s=5.0)(batch))
        return [*installed, getattr(sys.unraisablehook, "_repeval_quiet_exit", False), rows.num_rows == 1]

    fresh = {"env_vars": {"REPEVAL_TEST_FRESH_WORKER": "decode-hook"}}
    task = ray_session.remote(num_cpus=0, runtime_env=fresh)(decode_in_worker)
    assert ray_session.get(task.remote(str(tmp_path / "a.wav")), timeout=120) == [False, True, True]


def test_the_quiet_hook_never_goes_over_a_commands_redelivering_hook():
    """A command's process (its SIGTERM handler repeval's) that runs decode code itself keeps its redelivering hook:
    the quiet hook over it would drop the stop it must deliver again."""
    from repeval.quiet_exit import quiet_exit_requests_in_callbacks, redeliver_exit_requests_in_callbacks

    saved = sys.unraisablehook
    try:
        sys.unraisablehook = sys.__unraisablehook__
        redeliver_exit_requests_in_callbacks(signal.SIGTERM)
        redelivering = sys.unraisablehook
        quiet_exit_requests_in_callbacks()
        assert sys.unraisablehook is redelivering
    finally:
        sys.unraisablehook = saved
