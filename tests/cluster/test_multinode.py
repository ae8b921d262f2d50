"""Real multi-node runs (issue 8): a head and a worker node on loopback, ``ray job submit``, a node crash.

The cluster is made of real ``ray start --block`` processes, each node in its own process
session with its own free ports, so a test can crash one node (SIGKILL of its raylet, agents
and workers) and start a replacement. The tests share one head node (a module fixture); the
worker nodes a test adds are its own and leave the cluster when it ends. Nodes listen on
distinct loopback addresses (127.0.0.2 for the head, 127.0.0.3, 127.0.0.4, ... for workers):
Ray rewrites "127.0.0.1"/"localhost" to the machine's network address, but keeps any other
loopback address as given, so no traffic leaves the loopback interface. Ray's temp dir, Tune's
lock files and every other temporary file live under one short directory (unix socket paths
are limited to 107 bytes), and token authentication is explicitly disabled on both sides
(``RAY_AUTH_MODE=disabled``), as the head would otherwise turn it on when a token file exists.

The worker node carries a custom resource ``embed`` and the run requests it for its embedding
actors (``run.resources.embed_resources: {embed: 1}``), so the actors can only run there; the
head has one CPU for the job driver, decode tasks and probe trials.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from local_cluster import BIN, POLL_S, TERMINAL, LocalCluster, LocalNode

from repeval.testing.ahead import ahead_fixture
from repeval.testing.configs import notes_dataset

REPO = Path(__file__).resolve().parents[2]
EMBED_ACTOR = "MapBatches(Embed)"
#: the embedding worker node of the crash test: the only node offering ``embed`` (see the module's docstring)
EMBED_WORKER: dict[str, Any] = {"num_cpus": 2, "resources": {"embed": 2}}


def head_cluster_nodes(environ: dict[str, str]) -> Iterator[LocalCluster]:
    """One head node for the module's tests (a head start, with its dashboard and jobs API, costs ~10-15 s: started as
    soon as the tests are collected, ``ahead_fixture``, it starts while the tests before this module run).

    Ray's temp dir and every node's live in a short directory (unix socket paths are limited to 107 bytes).
    The nodes start Ray as cluster/*.yaml do, with LD_PRELOAD from `python -m repeval.cpu preload` (the MKL
    shim, built from the packaged source and named by REPEVAL_MKL_SHIM, so the check holds on any CPU).
    """
    c = LocalCluster(Path(tempfile.mkdtemp(prefix="rv-", dir="/tmp")), environ)
    try:
        lib = c.root / "lib" / "librepeval-mkl-intel-cpu.so"
        cpu = [str(BIN / "python"), "-m", "repeval.cpu"]
        subprocess.run([*cpu, "build", "--output", str(lib)], env=c.env, cwd=REPO, check=True, capture_output=True)
        c.env["REPEVAL_MKL_SHIM"] = str(lib)
        preload = subprocess.run([*cpu, "preload"], env=c.env, cwd=REPO, check=True, capture_output=True, text=True)
        c.env["LD_PRELOAD"] = preload.stdout.strip()
        assert c.env["LD_PRELOAD"] == str(lib)
        c.start_head(num_cpus=1)
        HEADS.append(c)
        yield c
    finally:
        if c in HEADS:
            HEADS.remove(c)
        c.shutdown()
        left = c.leftovers()
        for p in left:  # never expected; killed anyway so a failing test does not leak a cluster
            p.kill()
        shutil.rmtree(c.root, ignore_errors=True)
        assert not left, f"processes left running: {left}"


head_cluster = ahead_fixture("head_cluster", head_cluster_nodes, scope="module")
#: the head started (``head_cluster``), for the worker node started ahead to join
HEADS: list[LocalCluster] = []


def embed_worker_node(environ: dict[str, str]) -> LocalNode:
    """The crash test's first embedding worker node (a worker start costs ~5-10 s): started ahead as soon as a test
    that takes it is collected (queued right after the head's), and only then: another test runs without it."""
    (c,) = HEADS
    return c.add_worker(**EMBED_WORKER)


#: a worker node of ``EMBED_WORKER``, the test's own (it leaves with the test's other worker nodes: ``cluster``)
embed_worker = ahead_fixture("embed_worker", embed_worker_node, uses=("head_cluster",))


@pytest.fixture
def cluster(head_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The shared head; the worker nodes a test adds (or takes: ``embed_worker``) are its own, stopped (and gone from
    the GCS) after it."""
    c = head_cluster
    if "embed_worker" in request.fixturenames:
        request.getfixturevalue("embed_worker")  # joined: one of the test's worker nodes
    mine = [n for n in c.nodes if n.name == "head"]
    try:
        yield c
    finally:
        workers = [n for n in c.nodes if n not in mine]
        c.nodes = [n for n in c.nodes if n not in workers]
        left = []
        for node in workers:
            c.remove_worker(node)
            left += c.leftovers(c.root / node.ip)
        for p in left:  # never expected; killed anyway so a failing test does not leak a node
            p.kill()
        assert not left, f"processes left running: {left}"


@pytest.fixture
def short_tmp(cluster: LocalCluster, request: pytest.FixtureRequest) -> Path:
    """The test's own directory (data, store, runs) under the cluster's short root."""
    path = cluster.root / request.node.name.removeprefix("test_")[:20]
    path.mkdir()
    return path


def job_runtime_env() -> dict[str, Any]:
    """cluster/runtime_env.yaml minus what needs the network (pip) — the nodes share this venv."""
    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    return {"excludes": env["excludes"], "env_vars": env.get("env_vars", {})}


def write_config(path: Path, manifest: Path, model: dict[str, Any], run_id: str, **run: Any) -> Path:
    cfg = {
        "run": {"run_id": run_id, "resources": {"embed_resources": {"embed": 1}}, **run},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification", "label": "instrument"},
                "datasets": [
                    notes_dataset(manifest)  # absolute: the job runs from the uploaded working dir
                ],
                "deformations": [[{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 10, "p": 1}}]],
                "embedding_models": [model],
                "downstream_models": [
                    {"name": "linear", "type": "classifier", "hidden_units": [], "learning_rate": 0.01, "epochs": 3}
                ],
                "metrics": ["accuracy"],
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def render(root: Path, instruments: int, notes: int) -> tuple[Path, Any]:
    import pyarrow.csv as pacsv

    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import RenderSpec

    names = RenderSpec().instruments[:instruments]
    manifest = render_dataset(root / "notes", RenderSpec(instruments=names, notes_per_instrument=notes, seed=3))
    return manifest, pacsv.read_csv(manifest)


def check_complete(root: Path, run_id: str, model: str, catalog: Any, max_tracks: int | None = None) -> None:
    """Both store partitions hold every wanted track, and the run's results cover clean and D1."""
    from repeval.store import EmbeddingStore

    splits = catalog.column("split").to_pylist()
    n = len(splits) if max_tracks is None else min(len(splits), max_tracks)
    store = EmbeddingStore(f"file://{root}/store")
    clean = store.partition("notes", model, "clean").manifest()
    deformed = store.partition("notes", model, "D1").manifest()
    assert clean is not None and deformed is not None, "a store partition has no manifest (incomplete)"
    assert clean["rows"] + clean["errors"] == n and clean["errors"] == 0
    assert deformed["rows"] >= 1 and deformed["errors"] == 0
    run_dir = root / "runs" / run_id
    results = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert {(r["scenario"], r["metric"]) for r in results} == {("clean", "accuracy"), ("D1", "accuracy")}
    assert all(r["model"] == model and r["n_test"] >= 1 for r in results)
    assert list((run_dir / "tune").glob(f"instrument__notes__{model}*/*/checkpoint_*")), "no Tune checkpoint"


def test_job_submit_runs_embedding_actors_on_the_worker_node_and_survives_its_crash(
    cluster: LocalCluster, embed_worker: LocalNode, short_tmp: Path
) -> None:
    """``ray job submit`` of ``jobs/run.py --smoke-test``: the embedding actors run only on the worker node (the one
    offering ``embed``), and every node preloads the MKL shim. SIGKILL that node while it embeds, then start a
    replacement node with the same resources: the job still completes. (One job for both: a job and a worker node
    cost ~25 s.) Then `repeval validate` as a job checks the models on that worker node, not the head."""
    from repeval.models.dummies import dummy_params

    manifest, catalog = render(short_tmp, instruments=4, notes=12)
    clmr = {"id": "clmr-v2", "params": dummy_params("clmr-v2", short_tmp), "batch_size": 2}
    config = write_config(short_tmp / "crash.yaml", manifest, clmr, run_id="crash", part_rows=4)
    lib = cluster.env["LD_PRELOAD"]  # every node of the cluster preloads the MKL shim (see head_cluster)
    first = embed_worker  # started ahead of the tests, right after the head
    first_id = cluster.node_id(first)
    entry = ["python", "jobs/run.py", str(config), "--smoke-test", "--store", f"file://{short_tmp}/store"]
    entry += ["--runs-dir", f"file://{short_tmp}/runs"]
    cluster.submit(entry, REPO, job_runtime_env(), "crash-1")

    clean = short_tmp / "store" / "notes" / "clmr-v2" / "clean"
    deadline = time.monotonic() + 900
    while not list(clean.glob("part-*.parquet")):  # embeddings computed on the worker reached the store
        status = cluster.job_status("crash-1")
        assert status not in TERMINAL, f"job ended ({status}) before any embedding:\n{cluster.logs('crash-1')[-4000:]}"
        assert time.monotonic() < deadline, "no embeddings after 15 min"
        time.sleep(0.2)
    first.kill()
    assert not (clean / "_manifest.json").exists(), "the embedding finished before the node was killed"
    replacement = cluster.add_worker(**EMBED_WORKER)
    replacement_id = cluster.node_id(replacement)

    status = cluster.wait_job("crash-1")
    logs = cluster.logs("crash-1")
    # Observed behaviour: Ray restarts the lost embedding actors (Ray Data pools use max_restarts=-1) on the
    # replacement node, which is the only one offering `embed`, and re-runs the lost tasks: the run completes.
    assert status == "SUCCEEDED", logs[-6000:]
    assert "trained 1 probe grid, 0 already done, 0 failed probe trainings" in logs, logs[-3000:]
    # the job's log reads as repeval's: its summary, not a line per trial checkpoint from the trial's worker (Ray
    # Train's "Checkpoint successfully created at: …") nor Ray's INFO lines (attaching; Tune's "Wrote the latest
    # version of all result files" after each grid)
    assert "Checkpoint successfully created" not in logs and "INFO worker.py" not in logs, logs[-3000:]
    assert "Wrote the latest version" not in logs and "Traceback" not in logs, logs[-3000:]
    assert cluster.exit_code("crash-1") == 0
    job = cluster.job_id("crash-1")
    actors = cluster.actors(EMBED_ACTOR, job)
    assert len(actors) == 2, actors  # the pool is capped at the cluster's embed=2 (a restarted actor keeps its id)
    assert all(a.required_resources.get("embed") == 1 for a in actors), [a.required_resources for a in actors]
    placed = {a.node_id for a in actors if a.node_id}  # an actor still pending when the stream ended has none
    assert placed <= {first_id, replacement_id}, f"embedding actors ran on {placed}, not only on the worker nodes"
    assert replacement_id in placed, "no embedding actor ran on the replacement node"
    check_complete(short_tmp, "crash-smoke", "clmr-v2", catalog, max_tracks=40)
    # the job's driver and the probe trials, wherever they ran, took MKL's Intel path through the nodes' preload
    (session,) = json.loads((short_tmp / "runs" / "crash-smoke" / "environment.json").read_text())
    assert session["mkl"].startswith("Intel code path") and lib in session["mkl"], session
    assert session["trials_mkl"] == [session["mkl"]], session

    # `repeval validate` as a job (its driver on the head, which offers no `embed`): the models are checked by a task
    # on the node their actors may use, the replacement worker; a model whose weights are missing there is named
    # with that node (the same check a run makes before it embeds), exit status 1
    missing = short_tmp / "nowhere" / "clmr.pt"
    cfg = yaml.safe_load(config.read_text())
    cfg["experiments"][0]["embedding_models"].append(
        {**clmr, "id": "clmr-missing", "type": "clmr-v2", "params": {**clmr["params"], "checkpoint": str(missing)}}
    )
    validate = short_tmp / "validate.yaml"
    validate.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cluster.submit(
        ["python", "-m", "repeval.cli", "validate", str(validate)], REPO, job_runtime_env(), "validate-1", cli=False
    )
    # the next job (below) submitted at once: the two drivers start and check side by side (one job's wait, not two)
    big = write_config(short_tmp / "big.yaml", manifest, {"id": "mfcc-stats"}, "big", resources={"embed_num_cpus": 3})
    cluster.submit(
        ["python", "-m", "repeval.cli", "validate", str(big)], REPO, job_runtime_env(), "validate-2", cli=False
    )
    status, logs = cluster.wait_job("validate-1"), cluster.logs("validate-1")
    assert status == "FAILED" and cluster.exit_code("validate-1") == 1, logs[-3000:]
    assert "Traceback" not in logs and "SystemExit" not in logs, logs[-3000:]  # repeval's error, its exit status
    errors = [ln for ln in logs.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, logs[-3000:]
    assert errors[0].startswith(
        f"error: embedding model 'clmr-missing' cannot run on node {replacement.ip}: weights file {missing} not found"
    ), logs[-3000:]

    # decode tasks sized from the cluster's 3 CPUs, which no node has on its own (the head 1, the worker 2): a run
    # waited for ever (Ray repeating "No available node types can fulfill resource request {'CPU': 3.0}"); the check
    # a run makes before it embeds, here `repeval validate`'s, names the setting and the fix
    status, logs = cluster.wait_job("validate-2"), cluster.logs("validate-2")
    assert status == "FAILED" and cluster.exit_code("validate-2") == 1, logs[-3000:]
    errors = [ln for ln in logs.splitlines() if ln.startswith("error: ")]
    assert errors == [
        "error: the decode tasks that run mfcc-stats each ask for 3 CPUs, but no node of this Ray cluster (2 nodes) has "
        "that much — the most one has: 2 CPUs — so they would wait for ever: set run.resources.embed_num_cpus to at "
        "most 2, or add a node with 3 CPUs (on an autoscaling cluster, raise its node type's min_workers so one is up "
        "when the run starts)"
    ], logs[-3000:]


def test_a_node_that_joins_later_is_checked_at_its_actors_start_and_a_stopped_job_ends_cleanly(
    cluster: LocalCluster, short_tmp: Path
) -> None:
    """The run checks its models on the nodes up when it starts; with ``use_gpu: always`` and no GPU node yet its
    actor waits for one (the autoscaler's), unchecked. ``ray job stop`` while it waits: the log ends with repeval's
    "terminated" line. Resubmitted, a GPU node joins whose model cannot run (its weights are missing there): the
    actor found it as it started and died, and the job's log got Ray's retry traceback, the worker's, Ray Data's
    "internal error … open an issue" with its stack, and the driver's own ``ActorDiedError`` traceback. Now the job
    fails with repeval's error naming the node, the reason and the fix, exit status 1."""
    from repeval.models.dummies import dummy_params

    manifest, _ = render(short_tmp, instruments=2, notes=6)
    missing = short_tmp / "nowhere" / "clmr.pt"
    clmr = {"id": "clmr-v2", "params": {**dummy_params("clmr-v2", short_tmp), "checkpoint": str(missing)}}
    resources = {"use_gpu": "always", "embed_actors": 1}
    config = write_config(short_tmp / "late.yaml", manifest, clmr, run_id="late", resources=resources)
    entry = ["python", "jobs/run.py", str(config), "--store", f"file://{short_tmp}/store"]
    entry += ["--runs-dir", f"file://{short_tmp}/runs"]

    def submit_until_embedding(submission_id: str) -> None:
        cluster.submit(entry, REPO, job_runtime_env(), submission_id, cli=False)
        while "tracks to embed" not in cluster.logs(submission_id):  # checked (no GPU node: none), the actor waits
            status = cluster.job_status(submission_id)
            assert status not in TERMINAL, f"job ended ({status}):\n{cluster.logs(submission_id)[-4000:]}"
            time.sleep(POLL_S)

    submit_until_embedding("late-1")
    cluster.jobs().stop_job("late-1")
    status, logs = cluster.wait_job("late-1"), cluster.logs("late-1")
    assert status == "STOPPED", logs[-3000:]
    last = logs.rstrip().splitlines()[-1]  # how to resume: resubmit the job (or `repeval run …` from the checkout)
    assert last.startswith("terminated (SIGTERM): everything finished so far is saved"), logs[-3000:]
    # its runtime env is cluster/runtime_env.yaml's without pip (and config): the resubmission names its own file
    submit = f"ray job submit --working-dir . --runtime-env YOUR_RUNTIME_ENV.yaml -- {shlex.join(entry)}"
    checkout = shlex.join(["repeval", "run", *entry[2:]])
    own = "YOUR_RUNTIME_ENV.yaml: the runtime env file the job was submitted with — its config, pip are not"
    hint = f"submit the job again to resume it: `{submit}` ({own} cluster/runtime_env.yaml's), or run `{checkout}` from"
    assert last.endswith(f"{hint} the checkout"), last
    assert "Traceback" not in logs and "SystemExit" not in logs, logs[-3000:]
    run_status = json.loads((short_tmp / "runs" / "late" / "status.json").read_text())
    assert run_status["state"] == "interrupted" and hint in run_status["reason"], run_status
    assert run_status["job"] == {"id": "late-1", "submit": submit, "runtime_env": "config, pip"}, run_status

    submit_until_embedding("late-2")
    node = cluster.add_worker(num_cpus=1, num_gpus=1)  # what the autoscaler adds for the pending actor
    status, logs = cluster.wait_job("late-2"), cluster.logs("late-2")
    assert status == "FAILED" and cluster.exit_code("late-2") == 1, logs[-4000:]
    errors = [ln for ln in logs.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, logs[-4000:]
    assert errors[0].startswith(
        f"error: embedding model 'clmr-v2' cannot run on node {node.ip}: weights file {missing} not found"
    ), errors
    assert "a node that joins later" in errors[0] and "docs/cluster.md" in errors[0], errors
    for noise in ("Traceback", "ActorDiedError", "Ray Core internal code", "abbreviated stack trace", "SystemExit"):
        assert noise not in logs, (noise, logs[-4000:])
