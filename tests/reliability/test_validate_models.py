"""``repeval validate`` checks that the configuration's embedding models can run: here without ``RAY_ADDRESS``
(no Ray started), else on every live node of that cluster — before a run learns it at its embedding stage.

A model that cannot run, deterministically and with no network: ``clmr-v2`` with ``params.checkpoint`` naming a
file that does not exist (its availability is that file's presence; torch is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from reliability_helpers import FAST_MODEL, REPO, SLOW_MODEL, cli_env, experiment, write_config
from typer.testing import CliRunner

from repeval.cli import app
from repeval.pipeline.preflight import REINSTALL_FIX


def _clmr(model_id: str, checkpoint: Path) -> dict:
    return {"id": model_id, "type": "clmr-v2", "params": {"checkpoint": str(checkpoint)}}


def _missing_config(tmp_path: Path, catalog: Path) -> Path:
    models = [FAST_MODEL, _clmr("clmr-a", tmp_path / "a.pt"), _clmr("clmr-b", tmp_path / "b.pt")]
    return write_config(tmp_path / "missing.yaml", tmp_path, [experiment(catalog, models)])


def _fix(path: Path) -> str:
    return f"weights file {path} not found: obtain a CLMR SampleCNN checkpoint (CLMR releases), then set `params.checkpoint`"


def test_validate_names_each_model_that_cannot_run_here(fault_catalog, tmp_path):
    """It said the file was valid and the run failed at its embedding stage; now each model that cannot run is an
    error line with the reason and the fix, exit status 1 — and no Ray is started. The first line says the file is
    valid and how many models cannot run (it said "valid" alone, then the errors)."""
    cfg = _missing_config(tmp_path, fault_catalog)
    tmp = Path(tempfile.mkdtemp(prefix="rvval-"))
    try:
        res = subprocess.run(
            [sys.executable, "-m", "repeval.cli", "validate", str(cfg)],
            cwd=REPO, env=cli_env(tmp), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert "ray" not in os.listdir(tmp)  # Ray would have made $TMPDIR/ray/session_*
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    assert res.returncode == 1, (res.stdout, res.stderr[-3000:])
    assert res.stdout == f"{cfg}: valid (1 experiment), but 2 of its 3 embedding models cannot run on this machine:\n"
    errors = res.stderr.strip().splitlines()
    assert [e.split(": weights")[0] for e in errors] == [
        "error: embedding model 'clmr-a' cannot run here",
        "error: embedding model 'clmr-b' cannot run here",
    ], res.stderr
    assert _fix(tmp_path / "a.pt") in errors[0] and _fix(tmp_path / "b.pt") in errors[1], res.stderr


def test_validate_checks_each_model_once_and_says_where(fault_catalog, tmp_path, monkeypatch):
    """Every model of every experiment, a model two experiments share counted once; a weights file that is there
    (the check looks, it loads nothing) passes."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "here.pt").write_bytes(b"")
    first = experiment(fault_catalog, [FAST_MODEL, SLOW_MODEL, _clmr("clmr-here", tmp_path / "here.pt")])
    second = experiment(fault_catalog, [FAST_MODEL])
    second["task"]["name"] = "pitch2"
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [first, second])
    res = CliRunner().invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"{cfg}: valid (2 experiments)\nmodels: 3 checked on this machine\n"


def test_skip_model_check_validates_a_config_for_another_machine(fault_catalog, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = _missing_config(tmp_path, fault_catalog)
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", str(cfg)])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"{cfg}: valid (1 experiment)\n" and res.stderr == ""


def test_validate_with_ray_address_checks_the_models_on_the_nodes(ray_session, fault_catalog, tmp_path, monkeypatch):
    """With RAY_ADDRESS (a cluster, `ray job submit`) the models are checked on each live node, as a run checks
    them before it embeds; the error names the node."""
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)
    node = next(n["NodeManagerAddress"] for n in ray_session.nodes() if n["Alive"])
    ok = write_config(tmp_path / "ok.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL, SLOW_MODEL])])
    res = CliRunner().invoke(app, ["validate", str(ok)])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"{ok}: valid (1 experiment)\nmodels: 2 checked on 1 node\n"
    # a GPU model on a cluster with no GPU node yet cannot be checked: said, not counted (its actors check later)
    models = [FAST_MODEL, _clmr("clmr-gpu", tmp_path / "a.pt")]
    gpu = write_config(
        tmp_path / "gpu.yaml", tmp_path, [experiment(fault_catalog, models)], resources={"use_gpu": "always"}
    )
    res = CliRunner().invoke(app, ["validate", str(gpu)])
    assert res.exit_code == 0, res.output
    said = res.stdout.splitlines()[-1]
    assert said.startswith("models: 1 checked on 1 node; not clmr-gpu: no live node has the resources"), said
    # the id in two streams (another dataset, other params): said once (it was `not clmr-gpu, clmr-gpu`)
    other = experiment(fault_catalog, [_clmr("clmr-gpu", tmp_path / "b.pt")], name="tones2")
    other["task"]["name"] = "pitch2"
    write_config(gpu, tmp_path, [experiment(fault_catalog, models), other], resources={"use_gpu": "always"})
    res = CliRunner().invoke(app, ["validate", str(gpu)])
    assert res.exit_code == 0, res.output
    said = res.stdout.splitlines()[-1]
    assert said.startswith("models: 1 checked on 1 node; not clmr-gpu: no live node has the resources"), said

    # a `repeval validate` of its own, as `ray job submit` starts it: attached to the running Ray (init_ray)
    env = {**cli_env(tmp_path), "RAY_ADDRESS": os.environ["RAY_ADDRESS"], "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    cfg = _missing_config(tmp_path, fault_catalog)
    res = subprocess.run(
        [sys.executable, "-m", "repeval.cli", "validate", str(cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 1, (res.stdout, res.stderr[-3000:])
    errors = [e for e in res.stderr.strip().splitlines() if e.startswith("error: ")]
    assert [e.split(": weights")[0] for e in errors] == [
        f"error: embedding model 'clmr-a' cannot run on node {node}",
        f"error: embedding model 'clmr-b' cannot run on node {node}",
    ], res.stderr
    assert _fix(tmp_path / "b.pt") in errors[1], res.stderr


def test_a_model_check_that_crashes_is_a_reason_naming_the_fix(fault_catalog, tmp_path, monkeypatch):
    """A model whose check raises (a package that imports but is broken) was a traceback out of `validate` (and the
    run's pre-flight); now it is that model's error line, naming the exception and the fix, exit status 1."""
    from repeval.models.clmr import CLMR

    def broken(cls, params):
        raise OSError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(CLMR, "availability", classmethod(broken))
    cfg = write_config(
        tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL, _clmr("clmr-x", tmp_path / "x.pt")])]
    )
    res = CliRunner().invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip() == (
        "error: embedding model 'clmr-x' cannot run here: checking it failed with OSError: libtorch_cpu.so: cannot "
        f"open shared object file — {REINSTALL_FIX}"
    ), res.stderr


def test_a_node_whose_check_task_fails_names_each_model_there(ray_session):
    """The check task on a node where repeval (or a package it imports) is missing fails as a whole: each model
    wanted there gets that failure as its reason (it was re-raised, a traceback). A real task on the test session's
    Ray."""
    from repeval.pipeline.preflight import node_answer

    @ray_session.remote(num_cpus=0, max_retries=0)
    def no_repeval() -> dict:
        raise ModuleNotFoundError("No module named 'repeval'")

    found = node_answer(no_repeval.remote(), ["clmr-a", "msd-musicnn"], "10.0.1.7")
    reason = f"checking its models failed there with ModuleNotFoundError: No module named 'repeval' — {REINSTALL_FIX}"
    assert found == {"clmr-a": reason, "msd-musicnn": reason}

    @ray_session.remote(num_cpus=0)
    def answers() -> dict:
        return {"clmr-a": "weights file missing"}

    assert node_answer(answers.remote(), ["clmr-a"], "10.0.1.7") == {"clmr-a": "weights file missing"}
