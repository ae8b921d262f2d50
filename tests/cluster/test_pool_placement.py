"""Where an embedding actor pool goes on a cluster of several nodes (repeval.pipeline.placement): Ray Data spreads the
actors, and a pool the check accepted could leave no node room for a decode task — the stream stood still.

One test runs a real cluster of two local 4-CPU nodes (``ray.cluster_utils.Cluster``, beside a CPU-less head: the
node the pool is asked for must be one the test can kill — a CPU-less head cost ~8% more CPU time), in a subprocess of its own — it cannot share
the session's embedded Ray — that shuts it down in a ``finally`` and gives up after a deadline of its own, so a
regression fails instead of hanging. The others check
the plan, which runs the same rules on given nodes.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from repeval.config.run import ResourcesConfig

REPO = Path(__file__).resolve().parents[2]
TWO_NODES = ({"CPU": 8.0, "node:10.0.0.1": 1.0, "node:10.0.0.2": 1.0}, [{"CPU": 4.0}, {"CPU": 4.0}])

DRIVER = r"""
import json, sys, threading, time
import ray
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
out = {}
deadline = float(sys.argv[1])


def stream(asked, n_rows, sleep_s, rows):
    # one stream of the pool of `asked` as repeval.pipeline.stream runs it; `rows` gets its rows as they come
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.resources import stream_resources
    from repeval.pipeline.stream import halt_stream

    res = stream_resources(EmbeddingModelConfig(id="mfcc-stats"), asked)

    def decode(batch):
        time.sleep(sleep_s)
        return batch

    class Embed:
        def __call__(self, batch):
            time.sleep(sleep_s)
            batch["node"] = [ray.get_runtime_context().get_node_id()] * len(batch["id"])
            return batch

    pool = res.packed_pool("mfcc-stats")
    ds = ray.data.range(n_rows, override_num_blocks=n_rows // 2).map_batches(decode, **res.decode_kwargs(n_rows // 2))
    ds = ds.map_batches(Embed, **res.actor_kwargs(2, pool))
    if pool is not None:
        pool.watch(lambda: halt_stream(ds, pool.error))

    def consume():
        try:
            for batch in ds.iter_batches(batch_size=None):
                if pool is not None:
                    pool.beat()
                rows.extend({"id": i, "node": n} for i, n in zip(batch["id"], batch["node"]))
        finally:
            if pool is not None:
                pool.close()

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    return res, pool, worker


try:
    cluster.add_node(num_cpus=4)
    cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    from ray.util import placement_group_table
    from repeval.config.run import ResourcesConfig
    from repeval.pipeline import placement

    placement.PACK_STALL_S = 5.0  # not a minute: the test's wait

    rows = []
    asked = ResourcesConfig(embed_in_decode="never", embed_actors=2, embed_num_cpus=2, decode_num_cpus=3)
    res, _, worker = stream(asked, 8, 0.0, rows)
    out["pool"] = res.describe()
    worker.join(timeout=deadline)
    out["rows"] = len(rows)
    out["nodes"] = len({r["node"] for r in rows})

    # the same stream, slowed down (one decode task at a time, on the node the pool leaves free), whose node dies
    # mid-stream: the other node holds the whole pool but then keeps no decode task's CPUs, and decode tasks are left
    # — the stream must stop, naming the dead node, instead of standing still
    rows = []
    res, pool, worker = stream(asked, 40, 1.0, rows)
    (pinned,) = [n for n in cluster.worker_nodes if n.node_id == res.pack_node]
    while len(rows) < 4 and worker.is_alive():
        time.sleep(0.1)
    cluster.remove_node(pinned, allow_graceful=False)
    worker.join(timeout=deadline)
    out["stopped"] = not worker.is_alive()
    out["after_kill"] = len(rows)
    out["error"] = str(pool.error) if pool.error else None
    out["pinned"] = pinned.node_id
    out["groups"] = sorted({g["state"] for g in placement_group_table().values()})
finally:
    print("RESULT " + json.dumps(out), flush=True)
    try:
        ray.shutdown()
    finally:
        cluster.shutdown()
"""


def test_a_pool_ray_would_spread_so_that_no_node_keeps_a_decode_task_is_asked_for_on_one_node_and_survives_it() -> None:
    """Two 4-CPU nodes, two 2-CPU actors, decode tasks of 3 CPUs: the check found that one node holds both actors and
    the other the task, but Ray Data spread the actors one to a node and no decode task ever started (the stream
    hung). The actors are asked for on one node now, and the stream ends.

    Then the node they were asked for dies mid-stream. The other holds the pool, but with it no decode task: asked
    for with a soft node affinity, the actors came back there and the stream stood still (no row, no error, for
    ever). The pool is one STRICT_PACK placement group now, whose watch stops the stream once Ray placed it again
    where no decode task fits and no batch comes (PACK_STALL_S, shortened), naming the dead node and the fix; the
    group is removed once the stream ends."""
    tmp = Path(tempfile.mkdtemp(prefix="rv-pack-", dir="/tmp"))  # Ray's temp dir (short unix socket paths)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # RAY_ENABLE_AUTO_CONNECT=0: a Ray call of the stream's thread, left running past the deadline, must not
        # ray.init() again after the shutdown — it connected to another Ray of this machine (and kept it from ending)
        env.update(
            {
                "TMPDIR": str(tmp),
                "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_AUTO_CONNECT": "0",
                "RAY_health_check_period_ms": "1000",  # the dead node found in ~5 s, not ~15 s (test_multinode.py)
            }
        )
        args = [sys.executable, "-c", DRIVER, "90"]
        r = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-6000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["rows"] == 8 and out["nodes"] == 1, out  # before: no row in 90 s (the decode tasks never started)
    assert out["pool"].startswith("2 embedding actors × 2 CPU (2 threads each), all on one node;"), out
    assert out["stopped"] and 4 <= out["after_kill"] < 40, out  # before: no row after the kill, for ever
    pinned, error = out["pinned"][:12], out["error"]
    assert error.startswith("node ") and error.split(", ")[0].endswith(f" ({pinned})"), out  # the dead node
    assert (
        ", where the 2 embedding actors of mfcc-stats ran, died, and Ray placed the pool (4 CPUs) again on node "
        in error
    )
    assert "which leaves no node a decode task's 3 CPUs (run.resources.decode_num_cpus): no batch for " in error
    assert error.endswith("run the command again to resume (it places the pool on the nodes up then)"), out
    assert out["groups"] == ["REMOVED"], out


@functools.cache
def _quickstart() -> Any:
    from repeval.config import load_config

    return load_config(REPO / "configs" / "quickstart.yaml")


def _embed_line(**resources: Any) -> str:
    from repeval.plan import make_plan

    cfg = _quickstart()
    run = cfg.run.model_copy(update={"resources": ResourcesConfig(embed_in_decode="never", **resources)})
    return make_plan(cfg.model_copy(update={"run": run}), cluster=TWO_NODES[0], nodes=TWO_NODES[1]).resources[
        "embed mfcc-stats"
    ]


def test_a_pool_no_node_holds_whole_that_ray_could_spread_so_is_refused_with_the_settings_that_fit() -> None:
    """Five 1-CPU actors on two 4-CPU nodes beside decode tasks of 3 CPUs: four on one node leave the other the task,
    so the check let it run — but no node holds all five, so no request keeps Ray from two or three on each, which
    leaves neither the room. Refused, naming what each setting may be; each value named fits."""
    asked = {"embed_num_cpus": 1, "decode_num_cpus": 3}
    refused = _embed_line(**asked)
    assert refused.startswith(
        "cannot be placed: the 5 embedding actors of mfcc-stats (1 CPU each) and its decode tasks (3 CPUs each, "
        "run.resources.decode_num_cpus) fit this Ray cluster (2 nodes) only if the actors leave a node that room, but "
        "no node holds them all"
    ), refused
    fixes = re.findall(r"set run\.resources\.(\w+) to at most ([\d.]+)", refused)
    assert fixes == [("decode_num_cpus", "1"), ("embed_actors", "4")], refused
    for key, value in fixes:
        fixed = _embed_line(**{**asked, key: float(value)})
        assert not fixed.startswith("cannot be placed"), (key, value, fixed)
    assert "all on one node" in _embed_line(**asked, embed_actors=4)  # 4 on one node: the other keeps 4 CPUs


def test_a_high_embed_num_cpus_refused_names_the_embed_num_cpus_that_fits() -> None:
    """Three actors of ``embed_num_cpus: 6`` (2.333 CPUs each, sized down from the cluster's total) on two 4-CPU nodes
    leave no node a 1-CPU decode task: the refusal only said to add a node, though 2 CPUs each fit these nodes."""
    asked = {"embed_num_cpus": 6, "decode_num_cpus": 1, "embed_actors": 3}
    refused = _embed_line(**asked)
    assert "set run.resources.embed_num_cpus to at most 2, or add a node with 1 CPU" in refused, refused
    assert not _embed_line(**{**asked, "embed_num_cpus": 2}).startswith("cannot be placed")
