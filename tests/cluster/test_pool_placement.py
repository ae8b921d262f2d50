"""Where an embedding actor pool goes on a cluster of several nodes (repeval.pipeline.placement): Ray Data spreads the
actors, and a pool the check accepted could leave no node room for a decode task — the stream stood still.

One test runs a real ``repeval embed``, twice, on a real cluster of 4-CPU nodes (``ray.cluster_utils.Cluster``,
beside a CPU-less head: the nodes the test kills must not be the head), in a subprocess of its own — it cannot share
the session's embedded Ray — that shuts it down in a ``finally`` and gives up after a deadline of its own, so a
regression fails instead of hanging; started ahead of the tests (``packed_pool``). The others check the plan, which runs
the same rules on given nodes.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from repeval.config.run import ResourcesConfig
from repeval.testing.ahead import ahead_fixture
from repeval.testing.processes import again_if_ray_timed_out

REPO = Path(__file__).resolve().parents[2]
TWO_NODES = ({"CPU": 8.0, "node:10.0.0.1": 1.0, "node:10.0.0.2": 1.0}, [{"CPU": 4.0}, {"CPU": 4.0}])

DRIVER = r"""
import glob, json, os, subprocess, sys, time
from pathlib import Path
import numpy as np, pyarrow.parquet as pq, soundfile as sf
import ray
from ray.cluster_utils import Cluster

deadline, root = float(sys.argv[1]), Path(sys.argv[2])
# a model of 0.3 s a track, so that the stream is still running when a node is killed
(root / "slow_model.py").write_text(
    "import time\nfrom repeval.models import EmbeddingModel, register_model\n\n\n"
    "@register_model('slow-model')\nclass SlowModel(EmbeddingModel):\n    sample_rate_hz = 16000\n"
    "    embedding_dim = 2\n\n    def embed(self, audio):\n        time.sleep(0.3)\n"
    "        return audio[:2].reshape(1, 2).astype('float32')\n"
)
rows = ["track_id,audio_path,label"]
for i in range(48):
    sf.write(root / f"t{i}.wav", (0.1 * np.sin(np.arange(8000) * (i + 1) / 50)).astype("float32"), 16000)
    rows.append(f"t{i},{root / f't{i}.wav'},{'ab'[i % 2]}")
(root / "m.csv").write_text("\n".join(rows) + "\n")
resources = "{embed_in_decode: never, embed_actors: 2, embed_num_cpus: 2, decode_num_cpus: 3, pool_stall_s: 2}"
(root / "exp.yaml").write_text(
    f"run: {{runs_dir: {root / 'runs'}, store: {root / 'store'}, part_rows: 2, resources: {resources}}}\n"
    f"plugins: [{root / 'slow_model.py'}]\n"
    "experiments:\n- task: {name: t, type: multiclass_classification}\n"
    f"  datasets: [{{name: d, type: catalog, manifest: {root / 'm.csv'}, label_column: label}}]\n"
    "  embedding_models: [{id: slow, type: slow-model}]\n  downstream_models: [{type: classifier}]\n"
)
# the real command (its stall shortened from a minute to 2 s, run.resources.pool_stall_s: the test's wait); once it is
# done, and before its exit handlers shut Ray down, it says the states of the cluster's placement groups
CLI = '''import sys
from repeval.cli import entrypoint
sys.argv[0] = "repeval"
try:
    entrypoint()
finally:
    from ray.util import placement_group_table
    print("GROUPS", *sorted({g["state"] for g in placement_group_table().values()}), file=sys.stderr, flush=True)
'''


def stored():
    return sum(pq.read_metadata(f).num_rows for f in glob.glob(f"{root}/store/**/part-*.parquet", recursive=True))


def pool_nodes():
    return {n for g in placement_group_table().values() if g["state"] == "CREATED" for n in g["bundles_to_node_id"].values()}


def embed(until_rows, kill, then=lambda proc: None):
    # `repeval embed` on the cluster; once its pool's placement group is placed and `until_rows` rows are stored,
    # kill the node `kill` picks (the one the group is on, or not), call `then` and give the command until
    # `deadline` seconds to end
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "embed", str(root / "exp.yaml")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_end = time.monotonic() + deadline
    while proc.poll() is None and (stored() < until_rows or not pool_nodes()) and time.monotonic() < t_end:
        time.sleep(0.2)
    if len(pool_nodes()) != 1:  # ended, or out of time, before its pool was placed on one node: say why
        proc.kill()
        raise RuntimeError(f"placement groups on {pool_nodes()}: " + proc.communicate()[1][-3000:])
    (at,) = pool_nodes()
    killed = [n for n in cluster.worker_nodes if kill(n.node_id == at)]
    cluster.remove_node(killed[0], allow_graceful=False)
    then(proc)
    try:
        stdout, stderr = proc.communicate(timeout=max(1.0, t_end - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    said = [ln for ln in (stdout + stderr).splitlines() if ln.startswith(("d/slow: ", "embedded ", "error: ", "GROUPS "))]
    return {"rc": proc.returncode, "said": said, "stderr": stderr[-2000:], "pinned": at, "kept": stored()}


cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
out = {}
try:
    cluster.add_node(num_cpus=4)
    cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    from ray.util import placement_group_table

    # the node the pool was asked for dies mid-stream: the other holds the pool, but with it no decode task
    out["stop"] = embed(4, lambda pinned: pinned)
    # a 4-CPU node joins, the command is run again, and the node the pool is not on (the decode tasks') dies as the
    # stream starts: the run waits for a node (another 4-CPU node joins 10 s later, 5 stalls later) instead of
    # stopping as if the pool's node had died
    cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()

    def join_later(proc):
        t_join = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < t_join:
            time.sleep(0.2)
        out["waited"] = proc.poll() is None
        cluster.add_node(num_cpus=4)

    out["rerun"] = embed(0, lambda pinned: not pinned, join_later)
finally:
    print("RESULT " + json.dumps(out), flush=True)
    try:
        ray.shutdown()
    finally:
        cluster.shutdown()
"""


def packed_pool_runs(
    environ: dict[str, str], driver: str = DRIVER, argv: tuple[str, ...] = ("150",)
) -> subprocess.CompletedProcess[str]:
    """The ``DRIVER`` of the packed-pool test: its cluster and its two ``repeval embed`` runs (~60 s, much of it spent
    waiting: a model of 0.3 s a track, the stalls, a node that joins 10 s later). Started as soon as the tests are
    collected (``ahead_fixture``): it runs while the tests before this module do — which start Rays too, so once more
    if its own did not start in time, in a temp folder of its own (``driver`` and ``argv``: another script, before
    the folder, for the test of that)."""
    return again_if_ray_timed_out(functools.partial(_packed_pool_run, environ, driver, argv))


def _packed_pool_run(environ: dict[str, str], driver: str, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    tmp = Path(tempfile.mkdtemp(prefix="rv-pack-", dir="/tmp"))  # Ray's temp dir (short unix socket paths)
    try:
        env = {k: v for k, v in environ.items() if not k.startswith("RAY_")}
        # RAY_ENABLE_AUTO_CONNECT=0: a Ray call left running past the deadline must not ray.init() again after the
        # shutdown — it connected to another Ray of this machine (and kept it from ending)
        env.update(
            {
                "TMPDIR": str(tmp),
                "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_AUTO_CONNECT": "0",
                # a killed node is found dead after 2 failed health checks 1 s apart (~2 s), not 5 checks 3 s apart
                # (~15 s); a live raylet still answers each within health_check_timeout_ms (10 s, unchanged)
                "RAY_health_check_period_ms": "1000",
                "RAY_health_check_failure_threshold": "2",
                "PYTHONPATH": str(REPO),
            }
        )
        args = [sys.executable, "-c", driver, *argv, str(tmp)]
        return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: a driver for the test of ``packed_pool_runs``' second start: each start notes its temp folder (its last argument)
#: in the file ``argv[1]`` and leaves a file in it; the first fails as ``ray.init`` does when its node is slow to start,
#: the second says what its folder held before
FIRST_START_TIMES_OUT = r"""
import sys
from pathlib import Path

from repeval.testing.processes import RAY_START_TIMED_OUT

starts, tmp = Path(sys.argv[1]), Path(sys.argv[-1])
held = sorted(p.name for p in tmp.iterdir())
(tmp / "ray.sock").write_text("a start's")
with starts.open("a") as f:
    f.write(f"{tmp}\n")
if len(starts.read_text().split()) == 1:
    sys.exit(f"Exception: {RAY_START_TIMED_OUT}.")
print(held)
"""


def test_the_packed_pool_run_starts_once_more_in_a_fresh_folder_when_its_ray_start_timed_out(tmp_path: Path) -> None:
    """``packed_pool_runs`` ran once: a Ray that did not start in time (other tests start Rays meanwhile) failed the
    packed-pool test. It runs once more, as the other background runs do, in a temp folder of its own (not the
    first start's, with what that left)."""
    import os

    starts = tmp_path / "starts.txt"
    r = packed_pool_runs(dict(os.environ), FIRST_START_TIMES_OUT, (str(starts),))
    assert r.returncode == 0 and r.stdout == "[]\n", (r.stdout, r.stderr[-2000:])
    first, second = starts.read_text().split()
    assert first != second and not Path(first).exists() and not Path(second).exists()


packed_pool = ahead_fixture("packed_pool", packed_pool_runs, scope="module")


def test_a_packed_pool_whose_node_dies_stops_the_run_naming_it_and_a_rerun_does_the_rest(
    packed_pool: subprocess.CompletedProcess[str],
) -> None:
    """Two 4-CPU nodes, two 2-CPU actors, decode tasks of 3 CPUs: Ray Data spread the actors one to a node and no
    decode task ever started (the stream hung); they are asked for on one node, as one STRICT_PACK placement group.

    A real ``repeval embed`` (``packed_pool``, run ahead; its stall shortened from a minute to 2 s): the node the pool
    was asked for dies mid-stream, and Ray places the pool again on the other node, which then keeps no decode task's
    CPUs (asked for with a soft node affinity, the actors came back there and the stream stood still for ever): the
    run stops, naming the dead node and the fix, keeping what was written. Run again on a cluster a node joined, it
    embeds only the rest — and when a node the pool is not on dies, it waits for another to join (the run stopped
    after the stall, saying the pool's live node had died)."""
    r = packed_pool
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-6000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    stop, rerun = out["stop"], out["rerun"]
    assert any("2 embedding actors × 2 CPU (2 threads each), all on one node;" in ln for ln in stop["said"]), out
    assert stop["rc"] == 1 and 4 <= stop["kept"] < 48, out  # before: no row after the kill, for ever
    (error,) = [ln for ln in stop["said"] if ln.startswith("error: ")]
    assert error.startswith("error: node ") and error.split(", ")[0].endswith(f" ({stop['pinned'][:12]})"), out
    assert ", where the 2 embedding actors of slow ran, died, and Ray placed the pool (4 CPUs) again on node " in error
    assert "which leaves no node a decode task's 3 CPUs (run.resources.decode_num_cpus): no batch for " in error
    assert error.endswith("run the command again to resume (it places the pool on the nodes up then)"), out
    assert out["waited"] and rerun["rc"] == 0, out  # before: stopped, the pool's live node said to have died
    rest = 48 - stop["kept"]
    assert any(
        f"embedded {rest} rows from {rest} tracks, {stop['kept']} rows already in store" in ln for ln in rerun["said"]
    ), out
    assert rerun["kept"] == 48, out
    assert stop["said"][-1] == rerun["said"][-1] == "GROUPS REMOVED", out  # the stream's group, failed or done


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
