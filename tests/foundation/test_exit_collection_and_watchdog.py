"""How a ``repeval`` process ends: without a last full collection of its heap (``repeval.cpu.skip_exit_collection``,
observed through an object that only that collection would finalize), and after a kill -9 with what its embedded
Ray left ended by its watchdog (``repeval.ray_utils.start_ray_watchdog``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# A reference cycle with a finalizer, held by a module that only ``sys.modules`` references: alive until exit,
# when clearing ``sys.modules`` leaves it to the interpreter's last collection — the only thing that would call
# ``__del__`` and write the marker file.
CYCLE = """
import sys, types
class Cycle:
    def __init__(self, marker):
        self.marker, self.me = marker, self
    def __del__(self, open=open):  # bound now: builtins are being torn down when the exit collection runs
        open(self.marker, "a").write("finalized by the exit collection\\n")
def hold(name):
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].keep = Cycle(sys.argv[1])
"""


def _run(body: str, marker: Path) -> str:
    script = CYCLE + body
    env = {**os.environ, "REPEVAL_MKL_SHIM": "0"}  # no re-execution of `python -c` by the entry points
    r = subprocess.run(
        [sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return marker.read_text() if marker.exists() else ""


def test_without_it_the_exit_collection_finalizes_the_cycle(tmp_path):
    # the control: what the tests below would see if the exit handler did nothing
    assert _run("hold('held')\n", tmp_path / "m") != ""


def test_skip_exit_collection_leaves_the_heap_to_the_process_exit(tmp_path):
    body = "import sys\nfrom repeval.cpu import skip_exit_collection\nskip_exit_collection()\nhold('held')\n"
    assert _run(body, tmp_path / "m") == ""


def test_it_runs_after_exit_handlers_registered_later_like_rays(tmp_path):
    # Ray registers ray.shutdown at import, after the entry point has registered this: objects such a handler
    # leaves behind must be frozen too, so the freeze has to run after it
    body = (
        "import atexit, sys\n"
        "from repeval.cpu import skip_exit_collection\n"
        "skip_exit_collection()\n"
        "skip_exit_collection()  # a second call registers nothing more\n"
        "atexit.register(hold, 'late')\n"
    )
    assert _run(body, tmp_path / "m") == ""
    # the same handler with the freeze registered after it (running first): the exit collection finalizes it
    body_wrong_order = (
        "import atexit, sys\n"
        "from repeval.cpu import skip_exit_collection\n"
        "atexit.register(hold, 'late')\n"
        "skip_exit_collection()\n"
    )
    assert _run(body_wrong_order, tmp_path / "m2") != ""


def test_the_command_and_the_job_entry_points_skip_it(tmp_path):
    # `repeval` (cli.entrypoint) with its typer app stubbed out; `python jobs/<stage>.py` (jobs/_common.main)
    cli = "import sys\nimport repeval.cli as c\nc.app = lambda *a, **k: None\nhold('held')\nc.entrypoint()\n"
    assert _run(cli, tmp_path / "cli") == ""
    jobs = Path(__file__).resolve().parents[2] / "jobs"
    job = (
        f"import sys\nsys.path.insert(0, {str(jobs)!r})\nimport repeval.cli as c\nimport _common\n"
        "c.script_command = lambda *a, **k: lambda *a, **k: None\nhold('held')\nsys.argv = ['embed.py']\n"
        "_common.main('embed')\n"
    )
    assert _run(job, tmp_path / "job") == ""


WATCHED_DRIVER = """
import os, subprocess, sys
from repeval import ray_utils
owner = ray_utils.start_ray_watchdog()
assert ray_utils.start_ray_watchdog() == owner  # one watchdog per process
# a process of its Ray that retitled itself (ray::DashboardAgent), which blanked its marker: found by its open log
session = sys.argv[1]
os.write(ray_utils._watchdog[1], session.encode() + b"\\n")  # what init_ray tells the watchdog
agent = subprocess.Popen(["bash", "-c", 'exec 3>>"$0/agent.log"; exec -a ray::DashboardAgent sleep 300', session],
                         start_new_session=True)
os.environ[ray_utils.RAY_OWNER_ENV] = owner  # as init_ray marks its Ray's processes: this one stands for them
marked = subprocess.Popen(["sleep", "300"], start_new_session=True)  # its own group and session, as Ray's workers
# a child forked without exec (multiprocessing's fork) must not hold the pipe open: the pipe's end of file is how
# the watchdog learns at once that this process died
pipe = os.readlink(f"/proc/self/fd/{ray_utils._watchdog[1]}")
r, w = os.pipe()
child = os.fork()
if child == 0:
    fds = os.listdir("/proc/self/fd")
    held = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")]
    os.write(w, f"{pipe in held}:{bool(ray_utils._watchdog)}".encode())
    os._exit(0)
os.close(w)
forked = os.read(r, 100).decode()
os.waitpid(child, 0)
print(marked.pid, agent.pid, forked, flush=True)
sys.stdin.read()
"""


def _started(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_watchdog_ends_its_dead_drivers_processes_and_no_others(tmp_path):
    # the driver's Ray after its kill -9 (the driver's own marked process), a Ray left by a command whose watchdog
    # was killed too (marked with an owner that has ended: the pid of this test with another start time, as after
    # a reuse of the pid), a live command's Ray (marked with this test process as owner) and a Ray of the user's
    # own (`ray start`: unmarked); only the first two may end
    owner = f"{os.getpid()}-{_started(os.getpid())}-test"
    env = {**os.environ, "REPEVAL_MKL_SHIM": "0"}
    others = {
        name: subprocess.Popen(["sleep", "300"], env={**env, **extra}, start_new_session=True)
        for name, extra in {
            "left_by_dead": {"REPEVAL_RAY_OWNER": f"{os.getpid()}-1-dead"},
            "live_owners": {"REPEVAL_RAY_OWNER": owner},
            "unmarked": {},
        }.items()
    }
    (tmp_path / "session").mkdir()
    (tmp_path / "other").mkdir()
    # another session's retitled process (another command's, or a `ray start` cluster's)
    others["other_session"] = subprocess.Popen(
        ["bash", "-c", 'exec 3>>"$0/agent.log"; exec -a ray::DashboardAgent sleep 300', str(tmp_path / "other")],
        env=env,
        start_new_session=True,
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", WATCHED_DRIVER, str(tmp_path / "session")],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    marked = agent = 0
    try:
        line = driver.stdout.readline().split()
        marked, agent = map(int, line[:2])
        assert line[2] == "False:False", "a forked child kept the watchdog's pipe open (or thought it had a watchdog)"
        assert _alive(marked) and _alive(agent)
        driver.kill()
        driver.wait(timeout=60)
        deadline = time.monotonic() + 30
        ended = lambda: not _alive(marked) and not _alive(agent) and others["left_by_dead"].poll() is not None  # noqa: E731
        while not ended() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(marked), "the dead driver's process outlived it"
        assert not _alive(agent), "the dead driver's retitled process outlived it"
        assert others["left_by_dead"].poll() == -signal.SIGKILL, "the backstop left a dead command's process"
        time.sleep(1.5)  # the watchdog's last scans
        assert [name for name, p in others.items() if p.poll() is not None] == ["left_by_dead"]
    finally:
        for p in [*others.values(), driver]:
            p.kill()
            p.wait(timeout=60)
        for pid in (marked, agent):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
