"""Embedded Ray keeps idle worker processes alive: decode tasks reuse them instead of starting (and importing)
a new process each time while an actor pool holds the node's other workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, os, time
import ray
from repeval.ray_utils import init_ray

if os.environ["MODE"] == "repeval":
    init_ray(num_cpus=2)
else:  # Ray's defaults
    ray.init(num_cpus=2, include_dashboard=False)

@ray.remote(num_cpus=0.75)
class Holder:  # an embedding actor: holds a worker process of its own
    def pid(self):
        return os.getpid()

@ray.remote(num_cpus=0.25)
def task():  # a decode task
    return os.getpid()

holders = [Holder.remote() for _ in range(2)]
ray.get([h.pid.remote() for h in holders])
pids = [ray.get(task.remote())]
for _ in range(2):
    time.sleep(2.5)  # longer than Ray's idle-worker kill threshold (1 s)
    pids.append(ray.get(task.remote()))
print("PIDS " + json.dumps(pids))
"""


def _task_pids(mode: str) -> list[int]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "MODE": mode}
    env.pop("RAY_num_workers_soft_limit", None)
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("PIDS "))
    return json.loads(line.removeprefix("PIDS "))


def test_idle_decode_workers_are_reused_while_actors_hold_the_other_workers():
    # repeval's init_ray: one worker process runs every task
    assert len(set(_task_pids("repeval"))) == 1
    # Ray's defaults: each task starts a new process
    assert len(set(_task_pids("default"))) == 3
