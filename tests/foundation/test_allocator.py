"""glibc keeps the blocks a probe stack frees each step (repeval.cpu.keep_freed_memory).

Counted in page faults, not time. The pattern is a stack's step in miniature: glibc's dynamic
mmap threshold has risen to a 20 MiB block freed earlier (so its trim threshold is 40 MiB), then each
round allocates three 15 MiB blocks, writes and frees them — 45 MiB free at the heap's top, trimmed
back to the kernel by default and faulted in again by the next round, 4 KiB at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repeval.cpu import KEEP_FREED_ENV, MODEL_TUNABLES
from repeval.testing.ahead import ahead_fixture
from repeval.testing.processes import one_by_one

REPO = Path(__file__).resolve().parents[2]

ROUNDS = r"""
import ctypes, json, resource, sys
if sys.argv[1] == "keep":
    from repeval.cpu import keep_freed_memory
    print(json.dumps(keep_freed_memory()))
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MiB = 2**20
p = libc.malloc(20 * MiB)
ctypes.memset(p, 1, 20 * MiB)
libc.free(p)
out = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(15 * MiB) for _ in range(3)]
    for b in blocks:
        ctypes.memset(b, 1, 15 * MiB)
    for b in blocks:
        libc.free(b)
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(out))
"""
PAGES = 45 * 2**20 // 4096


def rounds(mode: str, **env: str) -> tuple[list[str], list[int]]:
    full = {k: v for k, v in os.environ.items() if k != KEEP_FREED_ENV} | env
    out = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    return [json.loads(x) for x in lines[:-1]], json.loads(lines[-1])


def test_freed_blocks_fault_in_again_by_default_and_not_when_kept():
    _, default = rounds("default")
    # every round's 45 MiB went back to the kernel and faults in again (a few pages may be kept at the top)
    assert min(default) >= 0.9 * PAGES, default
    status, kept = rounds("keep")
    assert status == ["freed blocks under 32 MiB stay in the process (glibc mallopt)"]
    # the first round grows the heap; later rounds reuse it
    assert max(kept[1:]) <= 0.02 * PAGES, kept


@pytest.mark.parametrize("value", ["0", "off"])
def test_a_user_can_keep_glibcs_default(value):
    status, faults = rounds("keep", **{KEEP_FREED_ENV: value})
    assert status == [f"glibc's default (freed blocks go back to the kernel; {KEEP_FREED_ENV}={value})"]
    assert min(faults) >= 0.9 * PAGES, faults


def test_a_process_started_with_its_own_malloc_settings_keeps_them():
    tunables = "glibc.malloc.arena_max=2"
    status, faults = rounds("keep", GLIBC_TUNABLES=tunables)
    assert status == [f"the process' GLIBC_TUNABLES ({tunables})"]
    assert min(faults) >= 0.9 * PAGES, faults  # mallopt was not called: the default's trimming is back


EMBED_ACTOR = r"""
import sys
from repeval.config.embed import EmbeddingModelConfig
from repeval.pipeline.embedder import Embed
Embed(EmbeddingModelConfig(id="mfcc-stats"))  # an embedding actor's constructor, in a fresh process
exec(sys.argv[2])
"""


def last_json_line(cmd: list[str], env: dict[str, str]):
    """Run ``cmd``; the JSON value on the last line it printed."""
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_embedding_actor_keeps_what_its_model_frees():
    body = ROUNDS.replace('if sys.argv[1] == "keep"', "if False")
    full = {k: v for k, v in os.environ.items() if k not in (KEEP_FREED_ENV, "GLIBC_TUNABLES")}
    kept = last_json_line([sys.executable, "-c", EMBED_ACTOR, "x", body], full)
    assert max(kept[1:]) <= 0.02 * PAGES, kept


EMBEDDED_RAY = r"""
import json, os, threading
import ray
from repeval.ray_utils import init_ray
init_ray(num_cpus=1, object_store_memory=80 * 2**20)

ROUNDS = {rounds!r}

@ray.remote
def in_a_thread():
    # what a Tune trial does: its function runs in a thread of the worker process, not the main one
    out = {{}}
    def body():
        import io, contextlib, sys
        sys.argv = ["x", "default"]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(ROUNDS, {{}})
        out["faults"] = json.loads(buf.getvalue().strip().splitlines()[-1])
    t = threading.Thread(target=body)
    t.start()
    t.join()
    return os.environ.get("GLIBC_TUNABLES"), out["faults"]

tunables, faults = ray.get(in_a_thread.remote())
print(json.dumps({{"worker": tunables, "driver": os.environ.get("GLIBC_TUNABLES"), "faults": faults}}))
# the monitor first, as a `repeval` command's exit does (repeval.ray_utils.stop_monitor_first_at_exit): Ray's
# shutdown SIGTERMs it after the GCS and waits a second for it (1.45 s from here to exit, 0.7 s so)
from repeval.ray_utils import _kill_monitor
_kill_monitor()
ray.shutdown()
"""


def both_rays(environ: dict[str, str]) -> dict[bool, subprocess.CompletedProcess[str]]:
    """Both embedded Rays of the test below (each costs a Ray start, ~10 s, mostly waiting). Started as soon as the
    tests are collected (``ahead_fixture``): they run, one after the other, while the tests before this module do."""
    runs = []
    for keep in (True, False):
        env = {k: v for k, v in environ.items() if k not in ("GLIBC_TUNABLES", "RAY_ADDRESS", KEEP_FREED_ENV)}
        if not keep:
            env[KEEP_FREED_ENV] = "0"
        runs.append(([sys.executable, "-c", EMBEDDED_RAY.format(rounds=ROUNDS)], env))
    return dict(zip((True, False), one_by_one(*runs, timeout=300, cwd=REPO), strict=True))


embedded_rays = ahead_fixture("embedded_rays", both_rays, scope="module")


@pytest.mark.parametrize("keep", [True, False])
def test_the_embedded_rays_workers_keep_what_a_threads_blocks_free(keep, embedded_rays):
    """A probe trial trains in a thread of a Ray worker, where glibc would give it an arena of its own whose
    heaps are unmapped and mapped afresh: the embedded Ray starts its processes with one arena and the
    thresholds that keep freed blocks (repeval.cpu.ray_process_env); the driver's own environment is left
    alone, and ``REPEVAL_KEEP_FREED=0`` leaves glibc's default."""
    r = embedded_rays[keep]
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["driver"] is None
    if keep:
        assert got["worker"] == MODEL_TUNABLES
        assert max(got["faults"][1:]) <= 0.02 * PAGES, got
    else:
        assert got["worker"] is None
        assert min(got["faults"]) >= 0.9 * PAGES, got
