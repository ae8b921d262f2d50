"""Where an embedding actor pool goes on a cluster of several nodes (repeval.pipeline.placement): Ray Data spreads the
actors, and a pool the check accepted could leave no node room for a decode task — the stream stood still.

One test runs a real cluster of two local 4-CPU nodes (``ray.cluster_utils.Cluster``: the head and one more, the
fewest that show it — a third, CPU-less head cost ~8% more CPU time), in a subprocess of its own — it cannot share
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
import json, sys, threading
import ray
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "include_dashboard": False})
out = {}
try:
    cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.config.run import ResourcesConfig
    from repeval.pipeline.resources import stream_resources

    asked = ResourcesConfig(embed_in_decode="never", embed_actors=2, embed_num_cpus=2, decode_num_cpus=3)
    res = stream_resources(EmbeddingModelConfig(id="mfcc-stats"), asked)
    out["pool"] = res.describe()

    def decode(batch):
        return batch

    class Embed:
        def __call__(self, batch):
            batch["node"] = [ray.get_runtime_context().get_node_id()] * len(batch["id"])
            return batch

    ds = ray.data.range(8, override_num_blocks=4).map_batches(decode, **res.decode_kwargs(4))
    ds = ds.map_batches(Embed, **res.actor_kwargs(2))
    rows = []
    worker = threading.Thread(target=lambda: rows.extend(ds.take_all()), daemon=True)
    worker.start()
    worker.join(timeout=float(sys.argv[1]))
    out["rows"] = len(rows)
    out["nodes"] = len({r["node"] for r in rows})
finally:
    print("RESULT " + json.dumps(out), flush=True)
    try:
        ray.shutdown()
    finally:
        cluster.shutdown()
"""


def test_a_pool_ray_would_spread_so_that_no_node_keeps_a_decode_task_is_asked_for_on_one_node() -> None:
    """Two 4-CPU nodes, two 2-CPU actors, decode tasks of 3 CPUs: the check found that one node holds both actors and
    the other the task, but Ray Data spread the actors one to a node and no decode task ever started (the stream
    hung). The actors are asked for on one node now, and the stream ends."""
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
