"""Embedded Ray keeps idle worker processes alive: decode tasks reuse them instead of starting (and importing)
a new process each time while an actor pool holds the node's other workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repeval.testing.ahead import ahead_fixture
from repeval.testing.processes import one_by_one

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, time
import ray
from repeval.ray_utils import init_ray

if os.environ["MODE"] == "repeval":
    init_ray(num_cpus=2)
else:  # Ray's defaults
    ray.init(address="local", num_cpus=2, include_dashboard=False)

@ray.remote(num_cpus=0.75)
class Holder:  # an embedding actor: holds a worker process of its own
    def pid(self):
        return os.getpid()

@ray.remote(num_cpus=0.25)
def task():  # a decode task
    return os.getpid()

def idle_worker_gone(pid):
    import psutil  # Ray's vendored copy, on sys.path once ray is imported
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True

holders = [Holder.remote() for _ in range(2)]
ray.get([h.pid.remote() for h in holders])
pids = [ray.get(task.remote())]
for _ in range(2):
    if os.environ["MODE"] == "repeval":
        time.sleep(1.25)  # five times the idle-worker kill threshold (set to 0.25 s by the test)
    else:  # Ray's defaults kill the idle worker: the next task runs once it is gone
        deadline = time.monotonic() + 60
        while not idle_worker_gone(pids[-1]) and time.monotonic() < deadline:
            time.sleep(0.05)
    pids.append(ray.get(task.remote()))
print("PIDS " + json.dumps(pids))
# then a shutdown as a `repeval` command's exit makes, the monitor first: at exit Ray's own waited a second for the
# monitor it had SIGTERMed, and half a second more for the workers' last logs (repeval.ray_utils)
from repeval.ray_utils import _kill_monitor
_kill_monitor()
ray.shutdown()
"""


def both_rays(environ: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """The script under repeval's ``init_ray``, then under Ray's defaults, with Ray's idle-worker kill threshold
    lowered from 1 s to 0.25 s so that an idle worker that outlives 1.25 s (repeval's) is one Ray keeps on purpose,
    not one it has yet to kill. Started as soon as the tests are collected (``ahead_fixture``): its two Rays start and
    run, one after the other, while the tests before this module do."""
    runs = []
    for mode in ("repeval", "default"):
        env = {**environ, "RAY_AUTH_MODE": "disabled", "MODE": mode, "RAY_idle_worker_killing_time_threshold_ms": "250"}
        env.pop("RAY_num_workers_soft_limit", None)
        env.pop("RAY_ADDRESS", None)
        runs.append(([sys.executable, "-c", SCRIPT], env))
    return one_by_one(*runs, timeout=180, cwd=REPO)


worker_runs = ahead_fixture("worker_runs", both_rays, scope="module")


def test_idle_decode_workers_are_reused_while_actors_hold_the_other_workers(worker_runs):
    pids = {}
    for mode, r in zip(("repeval", "default"), worker_runs, strict=True):
        assert r.returncode == 0, r.stderr[-3000:]
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith("PIDS "))
        pids[mode] = json.loads(line.removeprefix("PIDS "))
    # repeval's init_ray: one worker process runs every task
    assert len(set(pids["repeval"])) == 1, pids
    # Ray's defaults: each task starts a new process
    assert len(set(pids["default"])) == 3, pids
