"""GPU requests on a Ray node that *declares* ``num_gpus=1`` (issue 8): no GPU is present here. Ray schedules by
declared resources; torch still sees no CUDA device, so the model runs on the CPU. The node is started once, in a
subprocess of its own — it cannot share the session's embedded Ray — for the two tests below, which check the requests
Ray recorded for the embedding actors and the probe trials, and what two actors planned at 0.5 GPU each were given.
(Moved from test_jobs_resources.py, which keeps the resource tests that need no node of their own.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from repeval.testing.ahead import ahead_fixture
from repeval.testing.configs import notes_dataset
from repeval.testing.processes import again_if_ray_timed_out

REPO = Path(__file__).resolve().parents[2]
#: the instruments of the session's ``rendered_notes`` (tests/conftest.py)
NOTES = ("piano", "violin", "trumpet", "flute")


# The driver of the fake-GPU run: a node with num_gpus=1 and embed=1, the embed and train stages of a
# smoke-test run with a GPU model (CLMR, random weights), then what Ray recorded for the actors; then, on the same
# node, a GPU model's actor pool planned at 0.5 GPU per actor and what its actors were given.
DRIVER = r"""
import json, os, sys
import numpy as np, pyarrow as pa, ray, ray.data
from ray.util.state import list_actors

cfg_path, runs, store, port = sys.argv[1:5]
ray.init(address="local", num_cpus=2, num_gpus=1, resources={"embed": 1}, include_dashboard=True, dashboard_host="127.0.0.1",
         dashboard_port=int(port), object_store_memory=200 * 2**20, logging_level="WARNING", log_to_driver=False)
from repeval.config import load_config
from repeval.plan import make_plan
from repeval.runner import make_context, smoke_test_config, stage_embed, stage_train

cfg = smoke_test_config(load_config(cfg_path))
ctx = make_context(cfg, "gpu", store)
summary = stage_embed(ctx)
trained = stage_train(ctx)
plan = make_plan(cfg, cluster=ray.cluster_resources()).text()
actors = [
    {"class_name": a.class_name, "required_resources": a.required_resources}
    for a in list_actors(address=f"http://127.0.0.1:{port}", detail=True, limit=10000, raise_on_missing_output=False)
]

# what the workers said of the GPU they were granted (log_to_driver=False: their stderr is in the session's logs)
logs = os.path.join(ray._private.worker._global_node.get_session_dir_path(), "logs")
granted = sorted({ln.strip() for name in os.listdir(logs) if name.startswith("worker-") and name.endswith(".err")
                  for ln in open(os.path.join(logs, name), errors="replace") if "was granted a GPU" in ln})

from repeval.config.run import ResourcesConfig
from repeval.pipeline.resources import plan_resources

class Model:
    uses_gpu = True
    process_group = "default"

class Probe:
    def __call__(self, batch):
        n = len(batch["id"])
        return {"gpus": np.array([json.dumps(ray.get_gpu_ids())] * n),
                "cvd": np.array([os.environ.get("CUDA_VISIBLE_DEVICES", "")] * n)}

res = plan_resources(Model, ResourcesConfig(embed_num_gpus=0.5), ray.cluster_resources()["CPU"],
                     ray.cluster_resources()["GPU"])
ds = ray.data.from_arrow([pa.table({"id": list(range(i, i + 4))}) for i in range(0, 16, 4)])
rows = ds.map_batches(Probe, **res.actor_kwargs(4)).take_all()
fraction = {"n_actors": res.n_actors, "num_gpus": res.num_gpus, "gpus": sorted({r["gpus"] for r in rows}),
            "cvd": sorted({r["cvd"] for r in rows})}
print("RESULT " + json.dumps({"embed": summary.resources, "trained": trained["trained"],
                              "failed": len(trained["failed"]), "plan": plan, "actors": actors,
                              "fraction": fraction, "granted": granted}))
# the monitor first, as a `repeval` command's exit does (repeval.ray_utils.stop_monitor_first_at_exit): Ray's
# shutdown SIGTERMs it after the GCS and waits a second for it (1.45 s from here to exit, 0.7 s so)
from repeval.ray_utils import _kill_monitor
_kill_monitor()
ray.shutdown()
"""


def run_fake_gpu(environ: dict[str, str]) -> dict[str, Any]:
    """The fake-GPU driver's RESULT (one Ray start for the tests of a node that declares a GPU). Started as soon as
    the tests are collected (``ahead_fixture``): its Ray starts and its run embeds and trains while the tests before
    this module run. On the rendered notes of ``rendered_notes`` (the same spec, rendered here: a fixture cannot be)."""
    import socket

    import yaml

    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import RenderSpec
    from repeval.models.dummies import dummy_params

    tmp = Path(tempfile.mkdtemp(prefix="rv-gpu-", dir="/tmp"))  # short: Ray's unix sockets live under it
    try:
        manifest = render_dataset(tmp / "notes", RenderSpec(instruments=NOTES, notes_per_instrument=12, seed=1))
        clmr = {"id": "clmr-v2", "params": dummy_params("clmr-v2", tmp), "batch_size": 4}
        cfg = {
            "run": {
                "run_id": "gpu",
                "runs_dir": str(tmp / "runs"),
                "resources": {"embed_resources": {"embed": 1}, "trial_num_gpus": 0.5},
            },
            "experiments": [
                {
                    "task": {"name": "instrument", "type": "multiclass_classification", "label": "instrument"},
                    "datasets": [notes_dataset(manifest, max_tracks=12)],
                    "embedding_models": [clmr],
                    "downstream_models": [{"name": "linear", "type": "classifier", "hidden_units": [], "epochs": 2}],
                    "metrics": ["accuracy"],
                }
            ],
        }
        (tmp / "gpu.yaml").write_text(yaml.safe_dump(cfg))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in environ.items() if not k.startswith("RAY_")}
        env.update({"TMPDIR": str(tmp), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
        args = [sys.executable, "-c", DRIVER, str(tmp / "gpu.yaml"), str(tmp / "runs"), str(tmp / "store"), str(port)]
        r = again_if_ray_timed_out(  # the tests running meanwhile start Rays too: once more if its own timed out
            lambda: subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False)
        )
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-6000:]
        out = json.loads(lines[-1][len("RESULT ") :])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


fake_gpu_run = ahead_fixture("fake_gpu_run", run_fake_gpu, scope="module")


def test_fake_gpu_node_activates_gpu_requests(fake_gpu_run: dict[str, Any]) -> None:
    out = fake_gpu_run
    assert out["trained"] == 1 and out["failed"] == 0
    assert out["embed"]["clmr-v2"].startswith("1 embedding actor × 1 CPU, 1 GPU, embed=1"), out["embed"]
    embed = [a for a in out["actors"] if "MapBatches(Embed)" in a["class_name"]]
    assert embed and all(a["required_resources"] == {"CPU": 1.0, "GPU": 1.0, "embed": 1.0} for a in embed), embed
    # probe trials run in Tune placement groups: their requests read GPU_group_<i>_<pg id> (or GPU)
    # Tune's function-trainable actor: "ImplicitFunc" or, qualified, "wrap_function.<locals>.ImplicitFunc"
    trials = [a for a in out["actors"] if a["class_name"].split(".")[-1] == "ImplicitFunc"]
    gpu = [v for a in trials for k, v in a["required_resources"].items() if k == "GPU" or k.startswith("GPU_group")]
    assert trials and gpu and all(v == 0.5 for v in gpu), [(a["class_name"], a["required_resources"]) for a in trials]
    assert "embed clmr-v2:    1 embedding actor × 1 CPU, 1 GPU, embed=1" in out["plan"], out["plan"]
    assert "probe trial:      1 CPU + 0.5 GPU" in out["plan"], out["plan"]
    # torch here is a CPU build: the embedding actor says that the GPU it holds goes unused and what to do (it
    # embedded on the CPU without a word; the probe trial's warning reaches the driver: tests/tuning/test_grid.py)
    import torch

    why = f"was granted a GPU, but torch {torch.__version__} is a CPU-only build"
    (actor,) = [ln for ln in out["granted"] if ln.startswith("the embedding actor of clmr-v2 on node ")]
    assert why in actor and "set run.resources.use_gpu: never to embed on CPUs alone" in actor, actor


def test_gpu_fraction_requested_when_ray_reports_gpus(fake_gpu_run: dict[str, Any]) -> None:
    """A local Ray declaring one (fake) GPU: two actors share it at 0.5 each."""
    res = fake_gpu_run["fraction"]
    assert res["n_actors"] == 2 and res["num_gpus"] == 0.5
    assert res["gpus"] == ["[0]"] and res["cvd"] == ["0"]
