"""Probe grids on a real (session) Ray: selection, seeds, intervals, failures, ASHA, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repeval.config import parse_config
from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group
from repeval.tuning.group import left_out
from repeval.warn import reset_warned

REPO = Path(__file__).resolve().parents[2]


def config(
    probes: list[dict],
    seeds: int = 1,
    metrics: tuple[str, ...] = ("accuracy", "f1_macro"),
    task_type: str = "multiclass_classification",
    **run: object,
):
    return parse_config(
        {
            "run": {"seeds": seeds, "bootstrap_resamples": 100, **run},
            "experiments": [
                {
                    "task": {"name": "inst", "type": task_type},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": probes,
                    "metrics": list(metrics),
                }
            ],
        }
    )


def boom_wrapper(fn):
    """Make every trial that trains a probe named 'boom' raise (a failing trial)."""

    def wrapped(config, data=None, units=None):
        if any(m.name == "boom" for m in units[config["unit"]].members):
            raise RuntimeError("boom: injected failure")
        return fn(config, data=data, units=units)

    return wrapped


@pytest.fixture(scope="module", autouse=True)
def pickle_this_module_by_value():
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_grid_selection_seeds_intervals_failures(ray_session, tmp_path, caplog):
    data = gaussian_probe_data(n=120, d=10, c=3)
    cfg = config(
        [
            {"name": "lin", "epochs": 6, "batch_size": 32, "standardize": True},
            {"name": "pick", "epochs": 6, "batch_size": 32, "search": {"grid": {"learning_rate": [1e-4, 3e-3]}}},
            {"name": "nan", "hidden_units": [3], "optimizer": "sgd", "learning_rate": 1e30, "epochs": 3},
            {"name": "boom", "hidden_units": [5], "epochs": 3},
        ],
        seeds=2,
        pack_trials=False,  # one trial per stack: the injected exception must not take 'lin' with it
    )
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"), wrap_trainable=boom_wrapper)
    assert "pick selected pick-" in caplog.text and "the mean over 2 seeds) among 2 configurations" in caplog.text
    # the value is named by its criterion: a val_loss (lower is better) beside an R² read as a score otherwise
    # …and what the name stands for, its learning rate (the grid point's name alone left it to probes.parquet)
    assert re.search(
        r"pick selected pick-(0 \(learning_rate=0\.0001|1 \(learning_rate=0\.003); val_accuracy \d\.\d{4}, the mean over 2 "
        r"seeds\)",
        caplog.text,
    )
    failed = {(f["probe"], f["seed"]): f["reason"] for f in g.failed}
    assert set(failed) == {("nan", 0), ("nan", 1), ("boom", 0), ("boom", 1)}
    assert "non-finite loss" in failed[("nan", 0)] and "injected failure" in failed[("boom", 0)]
    # a trial that raised is in the probes table too: every configuration tried, failed ones with their status
    assert {(p["probe"], p["status"]) for p in g.probes if p["spec"] in ("nan", "boom")} == {
        ("nan", "failed"), ("boom", "failed")
    }  # fmt: skip
    rows = g.rows
    assert {r["probe"] for r in rows} == {"lin", "pick"}  # the rest continued; a best-selected spec is one probe
    agg = [r for r in rows if r["label"] is None]
    assert {(r["probe"], r["seed"], r["scenario"]) for r in agg} == {
        (p, s, sc) for p in ("lin", "pick") for s in (0, 1) for sc in ("clean", "D1")
    }
    assert all(r["ci_low"] is not None and r["ci_low"] <= r["value"] + 1e-9 <= r["ci_high"] + 2e-9 for r in agg)
    per_label = {r["label"] for r in rows if r["metric"] == "f1_macro" and r["label"] is not None}
    assert per_label == {"c0", "c1", "c2"}
    # one configuration of 'pick' is selected (by mean validation criterion), both seeds tested
    picked = [p for p in g.probes if p["spec"] == "pick"]
    assert len(picked) == 4 and sum(p["selected"] for p in picked) == 2
    assert {p["criterion"] for p in g.probes} == {"val_accuracy"}  # what best_criterion is a value of
    assert len({p["probe"] for p in picked if p["selected"]}) == 1
    assert {k[0] for k in g.confusion} == {"lin", "pick"} and len(g.confusion[("lin", 0, "clean")]) == 3
    assert {h["probe"] for h in g.history} >= {"lin", "pick", "pick-0", "pick-1"}
    # TensorBoard-readable: Tune's scalars and our per-member curves
    exp = Path(g.experiments[0])
    from test_events import read_events, scalars

    # Tune's TensorBoard logger: one file per trial, each readable; a finished trial's holds its reported scalars
    tune_tags = [{tag for tag, _, _ in scalars(read_events(f))} for f in exp.glob("*/events.out.tfevents*")]
    assert any(tag.startswith("ray/tune/") for tags in tune_tags for tag in tags)
    (events,) = exp.glob("*/members/lin__seed0/events.out.tfevents*")

    curve = [(step, value) for tag, value, step in scalars(read_events(events)) if tag == "train_loss"]
    hist = [h for h in g.history if h["probe"] == "lin" and h["seed"] == 0 and "train_loss" in h]
    assert len(curve) == len(hist) > 0
    assert curve == [(int(h["epoch"]), pytest.approx(h["train_loss"], rel=1e-6)) for h in hist]


def test_mule_preset_trains_its_grid_to_the_schedules_end_and_selects_on_pr_auc(ray_session, tmp_path, caplog):
    """``preset: mule`` on a tagging task, its grid cut to the learning-rate axis and its budget to 30 steps (a
    10-step warm-up, then the cosine): every configuration trains to its last step (8 epochs of 4 batches), none
    stops early, and the best by validation PR-AUC macro is tested once under the preset's name."""
    data = gaussian_probe_data("multilabel_classification", n=120, d=10, c=3)
    probe = {"preset": "mule", "hidden_units": [8], "weight_decay": 0.0, "batch_size": 32, "max_steps": 30,
             "warmup_steps": 10}  # fmt: skip
    cfg = parse_config(
        {
            "run": {"seeds": 1, "bootstrap_resamples": 20},
            "experiments": [
                {
                    "task": {"name": "tags", "type": "multilabel_classification"},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [probe],
                    "metrics": ["pr_auc_macro"],
                }
            ],
        }
    )
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert "mule selected mule-" in caplog.text and "among 5 configurations" in caplog.text
    assert not g.failed and len(g.probes) == 5
    assert {(p["spec"], p["criterion"], p["epochs"]) for p in g.probes} == {("mule", "val_pr_auc_macro", 8)}
    lrs = sorted(json.loads(p["params"])["learning_rate"] for p in g.probes)
    assert lrs == [2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4] and sum(p["selected"] for p in g.probes) == 1
    assert {r["probe"] for r in g.rows} == {"mule"} and {r["metric"] for r in g.rows} == {"pr_auc_macro"}


def test_non_finite_test_scores_fail_only_their_test_set(ray_session, tmp_path):
    """A probe whose validation was finite but whose scores on one test set are not (a scenario whose embeddings
    saturate at float32's largest value: a layer-normalised probe's statistics overflow to NaN) made the metrics
    raise: inside a trial, failing every configuration packed in it; for ``select: best``, in the driver, stopping
    the whole train stage. It is now a failure of that (probe, seed, scenario) cell, recorded with its reason; the
    probe's other test sets and every other probe are tested."""
    import numpy as np
    import pandas as pd

    from repeval.report.html import _failed_block
    from repeval.report.results import Run
    from repeval.tuning.results import FAILED_SCHEMA, typed_table

    data = gaussian_probe_data(n=120, d=10, c=3)
    x, y, ids = data.tests["clean"]
    data.tests = {"clean": (x, y, ids), "D1": (np.full_like(x, 3e38), y, ids), "D2": (x * 0.5, y, ids)}
    ln = {"hidden_units": [16], "hidden_norm": "layernorm", "epochs": 3, "batch_size": 32}
    cfg = config(
        [
            {"name": "lin", "epochs": 3, "batch_size": 32},  # finite on D1: tested everywhere
            {"name": "ln", **ln},  # select: all, tested in its trial (packed with lin)
            {"name": "pick", **ln, "search": {"grid": {"learning_rate": [1e-3, 3e-3]}}},  # select: best, in the driver
        ],
        bootstrap_resamples=0,
    )
    g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    failed = {(f["probe"], f["seed"], f["scenario"]): f["reason"] for f in g.failed}
    assert set(failed) == {("ln", 0, "D1"), ("pick", 0, "D1")}, g.failed
    assert all(r.startswith("test set 'D1': 40 of 40 tracks got non-finite scores") for r in failed.values())
    assert "largest embedding magnitude there is 3e+38" in failed[("pick", 0, "D1")]
    agg = {(r["probe"], r["seed"], r["scenario"]) for r in g.rows if r["label"] is None}
    assert agg == {("lin", 0, sc) for sc in ("clean", "D1", "D2")} | {
        (p, 0, sc) for p in ("ln", "pick") for sc in ("clean", "D2")
    }
    assert all(r["delta"] is not None for r in g.rows if r["scenario"] == "D2" and r["label"] is None)
    assert {p["status"] for p in g.probes if p["spec"] == "ln"} == {"ok"}  # it trained; one test set failed
    # failed.parquet takes the rows; the report's table names the test set
    failed_df = typed_table([{**f, "fold": None} for f in g.failed], FAILED_SCHEMA).to_pandas()
    run = Run("r", tmp_path, pd.DataFrame(), failed=failed_df)
    block = _failed_block([run], "inst", "notes")
    assert "Failed test cells (2)" in block and "<th>test set</th>" in block
    assert block.count("<td>D1</td>") == 2


def env_recorder(seen: Path):
    """Write the runtime environment of each trial's actor to ``seen``, with its garbage collector's state."""

    def record_env(fn):
        def wrapped(config, data=None, units=None):
            import gc

            import ray

            gc_state = {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}
            seen.write_text(json.dumps({"env": ray.get_runtime_context().runtime_env, "gc": gc_state}))
            return fn(config, data=data, units=units)

        return wrapped

    return record_env


@pytest.fixture(scope="module")
def asha_search_run(ray_session, tmp_path_factory):
    """One run of a search space under ASHA that two tests read (a Tune experiment costs seconds to start): the
    group, what ``repeval.tuning.grid`` logged, the runtime environment of its trial actors and Tune's default
    actor environment variables before and after it."""
    from types import SimpleNamespace

    from ray.tune.execution import class_cache

    tmp_path = tmp_path_factory.mktemp("asha_search")
    seen = tmp_path / "runtime_env.json"
    data = gaussian_probe_data(n=120, d=10, c=3)
    cfg = config(
        [
            {
                "name": "tuned",
                "epochs": 8,
                "batch_size": 40,
                "search": {
                    "space": {"dropout": {"uniform": [0.0, 0.5]}, "learning_rate": {"loguniform": [1e-4, 1e-2]}},
                    "num_samples": 4,
                    "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
                },
            }
        ]
    )
    before = dict(class_cache.DEFAULT_ENV_VARS)
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("repeval.tuning.grid")
    level = log.level
    log.setLevel("INFO")
    log.addHandler(handler)
    try:
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"),
                      wrap_trainable=env_recorder(seen))  # fmt: skip
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    actor = json.loads(seen.read_text())
    return SimpleNamespace(g=g, log="\n".join(said), env=actor["env"], gc=actor["gc"], before=before,
                           after=dict(class_cache.DEFAULT_ENV_VARS))  # fmt: skip


def test_search_space_with_asha(asha_search_run):
    g = asha_search_run.g
    assert g.trials == 4 and not g.failed
    # four sampled configurations of one point, one seed each (the log said "over 4 seed(s) among 1 configurations")
    assert "the mean over 1 seed) among 4 configurations" in asha_search_run.log, asha_search_run.log
    assert {r["probe"] for r in g.rows} == {"tuned"}
    assert {r["scenario"] for r in g.rows} == {"clean", "D1"}
    tuned = [p for p in g.probes if p["spec"] == "tuned"]
    assert len(tuned) == 4 and sum(p["selected"] for p in tuned) == 1
    assert all(set(json.loads(p["params"])) == {"dropout", "learning_rate"} for p in tuned)
    # the samples share the name 'tuned': history holds the selected one's curve only, once per epoch (it held every
    # sample's, and the selected one's twice, as one probe's)
    (chosen,) = [p for p in tuned if p["selected"]]
    epochs = [h["epoch"] for h in g.history if h["probe"] == "tuned"]
    assert len(epochs) == len(set(epochs)) == chosen["epochs"]


def test_asha_on_a_search_space_counts_epochs_and_never_stops_a_trial_at_its_last_validation(
    ray_session, tmp_path, caplog
):
    """Tune's ASHA judges trials at grace_period · reduction_factor^k *epochs*, as the grid's halving does: with
    val_every 2 the rung of grace_period 4 is epoch 4 (it was the 4th report: epoch 8, the last validation, where a
    trial that had trained its whole budget was stopped and lost its checkpoint). What a trial ASHA stopped had
    warned (here every trial: a GPU granted that torch cannot use) was lost with its checkpoint — the driver said
    "2 of 2 probes/seeds", the trials that finished; it is kept beside the trial before each report, and said."""
    data = gaussian_probe_data(n=120, d=8, c=3, scenarios=False)
    probe = {
        "name": "tuned", "hidden_units": [4], "epochs": 8, "val_every": 2, "patience": 100, "batch_size": 30,
        "search": {
            "space": {"learning_rate": {"loguniform": [1e-4, 3e-2]}},
            "num_samples": 4,
            "scheduler": {"type": "asha", "grace_period": 4, "reduction_factor": 2},
        },
    }  # fmt: skip
    cfg = config([probe], resources={"max_concurrent_trials": 1})
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"), wrap_trainable=gpu_granted)
    assert gpu_said(caplog) == ["inst__notes__m, 4 of 4 probes/seeds (tuned (seed 0 ×4))"]  # stopped ones too
    (exp,) = [d for d in (tmp_path / "tune").iterdir() if d.is_dir()]
    epochs = []
    for f in exp.glob("*/result.json"):
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        epochs.append([r["epoch"] for r in recs if "epoch" in r])
    status = sorted(p["status"] for p in g.probes)
    # a trial Tune's ASHA stopped says where, with the epochs it trained, as the grid's halving says it (it said
    # "stopped by scheduler", with no epochs)
    assert len(epochs) == 4 and "stopped by ASHA at epoch 4" in status and not g.failed
    assert sorted(epochs) == sorted([2, 4] if s.startswith("stopped") else [2, 4, 6, 8] for s in status)
    assert sorted(p["epochs"] for p in g.probes) == sorted(len(e) * 2 for e in epochs)


def test_run_max_epochs_that_leaves_asha_nothing_to_stop_makes_no_scheduler(ray_session, tmp_path, caplog):
    """run.max_epochs (5) ends training before the first validation past grace_period (4, validated every 3: epochs
    3 and 5): ASHA would judge a trial only at its last validation. The run made the scheduler all the same (grace 4 <
    5), which could stop a trial there, losing its checkpoint; it applies validate's and the plan's rule now (validate
    refuses such a file: the cap is set here after it is read, as a configuration made in Python may have it)."""
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)
    probe = {
        "name": "capped", "hidden_units": [4], "epochs": 8, "val_every": 3, "batch_size": 30,
        "search": {"space": {"learning_rate": {"loguniform": [1e-4, 3e-2]}}, "num_samples": 2,
                   "scheduler": {"type": "asha", "grace_period": 4, "reduction_factor": 2}},
    }  # fmt: skip
    cfg = config([probe], resources={"max_concurrent_trials": 1})
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"max_epochs": 5})})
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert (
        "capped's ASHA scheduler stops none, so none is made: scheduler.grace_period (4): with val_every 3 no "
        "validation falls from epoch 4 to before the end of training (epoch 5, run.max_epochs)"
    ) in caplog.text
    assert [(p["status"], p["epochs"]) for p in g.probes] == [("ok", 5), ("ok", 5)] and not g.failed


def test_a_failed_sample_of_a_search_space_is_recorded_with_its_values(ray_session, tmp_path, caplog):
    """The samples of a search space share their probe's name: failed.parquet's ``params`` says which one failed. A
    sample that makes no probe at all (values validation could not try together — it tries a bounded number of
    combinations) fails its trial, which is recorded like any other: recording it stopped the train stage, losing
    the other probes' results."""
    data = gaussian_probe_data(n=90, d=8, c=3, scenarios=False)
    probe = {
        "name": "sgd", "hidden_units": [3], "optimizer": "sgd", "epochs": 3, "batch_size": 30,
        "search": {"grid": {"learning_rate": [1e30, 0.05]}, "space": {"dropout": {"uniform": [0.0, 0.3]}}},
    }  # fmt: skip
    cfg = config([probe, {"name": "warm", "epochs": 3, "search": {"space": {"max_steps": {"choice": [5]}}}}])
    exp = cfg.experiments[0]
    sgd, warm = exp.downstream_models
    space = {**warm.search["space"], "warmup_steps": {"type": "choice", "args": [10]}}  # more than max_steps
    warm = warm.model_copy(update={"search": {**warm.search, "space": space}})
    exp = exp.model_copy(update={"downstream_models": [sgd, warm]})
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        g = run_group(cfg, exp, "notes", "m", data, str(tmp_path / "tune"))
    failed = {f["probe"].split("-")[0]: (f["reason"], json.loads(f["params"])) for f in g.failed}
    failure, params = failed["sgd"]
    assert "non-finite loss" in failure and params["learning_rate"] == 1e30 and 0 <= params["dropout"] <= 0.3
    status = {p["params"]: p["status"] for p in g.probes if p["spec"] == "sgd"}
    assert status[json.dumps(params)] == "failed" and sorted(status.values()) == ["failed", "ok"]
    assert {r["probe"] for r in g.rows} == {"sgd"}  # the other sample was selected and tested
    assert failed["warm"][1] == {"max_steps": 5, "warmup_steps": 10}
    assert "warmup_steps (10) must be fewer than max_steps (5)" in failed["warm"][0]
    assert [(p["status"], p["criterion"]) for p in g.probes if p["spec"] == "warm"] == [("failed", "val_accuracy")]
    # select: best leaves out a configuration with a failed seed, and says so; with none left it says that
    assert re.search(
        r"sgd selected sgd-1 \(learning_rate=0\.05, dropout=0\.\d+; val_accuracy ", caplog.text
    )  # drawn too
    assert "among 2 configurations; left out: 1 configuration with a failed seed (failed.parquet says why)" in (
        caplog.text
    )
    assert "warm has no configuration to select and test: its one configuration failed in at least one seed" in (
        caplog.text
    )


def test_select_best_says_why_no_configuration_was_left():
    """With no configuration left to select, the warning said "0 of its 2 configurations failed in at least one seed
    … and the scheduler stopped the other 2" of configurations no scheduler stopped. Now it counts those that failed
    and those a scheduler stopped apart (a probe whose validation value is never finite fails: no other is left)."""
    rows = [
        {"spec": "s", "params": '{"learning_rate": 0.2}', "status": "stopped by ASHA at epoch 3"},
        {"spec": "s", "params": '{"learning_rate": 0.3}', "status": "failed"},
        {"spec": "s", "params": '{"learning_rate": 0.3}', "status": "ok"},
        {"spec": "other", "params": "{}", "status": "failed"},
    ]
    assert left_out(rows, "s", every=True) == (
        "1 configuration failed in at least one seed (failed.parquet says why); the scheduler stopped 1 configuration "
        "(probes/ lists each)"
    )
    assert left_out(rows, "s") == "; left out: 1 configuration with a failed seed (failed.parquet says why)"
    assert (
        left_out(rows, "other", every=True)
        == "its one configuration failed in at least one seed (failed.parquet says why)"
    )


RESUME_SCRIPT = """
import os, sys, time
from pathlib import Path
import ray
from ray import cloudpickle
sys.path.insert(0, {tests!r})
import test_grid as tg
cloudpickle.register_pickle_by_value(tg)
ray.init(address={address!r}, log_to_driver=False)  # a second driver on the session's Ray
# Tune snapshots its experiment state as it starts, every 10 s and at the end: snapshot often, so the state the test
# waits for (trials recorded as finished) is on disk as soon as it holds, not up to 10 s later
os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0.2"
data = tg.resume_data()
cfg = tg.resume_config(hidden={hidden!r})
wrap = tg.marker_wrapper({marks!r}, hang_before={{"p2"}}, hang_after={{"p3"}})
tg.run_group(cfg, cfg.experiments[0], "notes", "m", data, {storage!r}, wrap_trainable=wrap)
"""


def resume_data():
    return gaussian_probe_data(n=90, d=8, c=3, scenarios=False)


def resume_config(epochs: int = 3, hidden: tuple[int, ...] = (2, 3, 4, 5)):
    """Probes ``p2`` … ``p5`` (``p<h>``: ``h`` hidden units), one trial each, two at a time."""
    probes = [{"name": f"p{h}", "hidden_units": [h], "epochs": epochs, "batch_size": 30} for h in hidden]
    return config(probes, run_id="resume", resources={"max_concurrent_trials": 2}, pack_trials=False)


def marker_wrapper(marks: str, hang_before: set[str] = frozenset(), hang_after: set[str] = frozenset()):
    """Record which probes trained; a unit with a probe in ``hang_before`` blocks before training, one in
    ``hang_after`` after its trial reported its checkpoint (so a test can kill the run at those points)."""

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            names = sorted(m.name for m in units[config["unit"]].members)
            Path(marks, f"ran-{'-'.join(names)}-{os.getpid()}-{time.time_ns()}").touch()
            if hang_before & set(names):
                time.sleep(600)
            out = fn(config, data=data, units=units)
            if hang_after & set(names):
                Path(marks, f"reported-{'-'.join(names)}").touch()
                time.sleep(600)
            return out

        return wrapped

    return wrap


def finished_in_snapshot(storage: Path) -> int:
    """Trials recorded as finished in the newest experiment-state snapshot Tune wrote."""
    files = sorted(storage.glob("*/experiment_state-*.json"))
    if not files:
        return 0
    try:
        state = json.loads(files[-1].read_text())
    except (json.JSONDecodeError, OSError):  # being written
        return 0
    return sum('"status": "TERMINATED"' in entry[0] for entry in state["trial_data"])


def test_asha_on_a_grid_stops_weak_configurations_inside_the_vectorised_trial(ray_session, tmp_path):
    data = gaussian_probe_data(n=160, d=10, c=3)
    probe = {
        "name": "halved",
        "hidden_units": [8],
        "epochs": 6,
        "patience": 100,
        "batch_size": 32,
        "search": {
            "grid": {"learning_rate": [1e-4, 1e-3, 1e-2, 3e-2]},
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        },
    }
    # one slot: the stack is not split to fill a second one (configurations are ranked within their trial)
    cfg = config([probe], seeds=2, resources={"max_concurrent_trials": 1})
    g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert g.trials == 1 and not g.failed  # one stack, one trial: not one trial per configuration
    status = {p["probe"]: p["status"] for p in g.probes}
    assert sorted(status.values()).count("ok") == 1 and len(status) == 4
    assert sorted(s for s in status.values() if s != "ok") == [
        "stopped by ASHA at epoch 1",
        "stopped by ASHA at epoch 1",
        "stopped by ASHA at epoch 2",
    ]
    epochs = {(p["probe"], p["seed"]): p["epochs"] for p in g.probes}
    assert sorted(epochs.values()) == [1, 1, 1, 1, 2, 2, 6, 6]
    (selected,) = {p["probe"] for p in g.probes if p["selected"]}
    assert {r["probe"] for r in g.rows} == {"halved"} and {r["seed"] for r in g.rows} == {0, 1}
    assert selected in status


def test_interrupted_experiment_resumes(ray_session, tmp_path):
    """Kill a run with two trials recorded as finished, one that reported its checkpoint but had not returned
    (so Tune's state still says running) and one mid-training: the rerun restores the experiment, reuses the
    reported checkpoint and trains only the unit that never finished."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = tmp_path / "tune"
    script = tmp_path / "run.py"
    address = ray_session.get_runtime_context().gcs_address
    script.write_text(
        RESUME_SCRIPT.format(tests=str(Path(__file__).parent), storage=str(storage), marks=str(marks), address=address,
                             hidden=(2, 3, 4, 5))
    )  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True, cwd=tmp_path)

    def ran() -> list[str]:
        return sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))

    try:
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and proc.poll() is None
            and not (len(ran()) == 4 and (marks / "reported-p3").exists() and finished_in_snapshot(storage) == 2)
        ):
            time.sleep(0.1)  # Tune snapshots its experiment state after checkpoints and every 0.2 s (RESUME_SCRIPT)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert ran() == ["p2", "p3", "p4", "p5"] and (marks / "reported-p3").exists()
        assert finished_in_snapshot(storage) == 2  # p4 and p5; p3 reported but is still running
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # our own subprocess; Ray ends the dead driver's trial actors
        proc.wait()
    for p in marks.iterdir():
        p.unlink()
    cfg = resume_config()
    g = run_group(
        cfg,
        cfg.experiments[0],
        "notes",
        "m",
        resume_data(),
        str(storage),
        wrap_trainable=marker_wrapper(str(marks)),
    )
    assert ran() == ["p2"]  # only the unit that never finished trained again
    # p4 and p5 restored as Tune recorded them, p3's persisted checkpoint reported instead: none trained again
    assert g.reused_trials == 3
    # p3 restored from the checkpoint Tune recorded reports its results, not that checkpoint again (a second copy)
    assert sorted(p.name for p in storage.glob("*/*/checkpoint_*")) == ["checkpoint_000000"] * 4
    assert {r["probe"] for r in g.rows} == {"p2", "p3", "p4", "p5"} and not g.failed
    assert {p["probe"]: p["status"] for p in g.probes} == {"p2": "ok", "p3": "ok", "p4": "ok", "p5": "ok"}
    # p3's actor restored it from its checkpoint without Tune's "Restored on <node> from checkpoint: Checkpoint(…)",
    # which a job's log showed once per restored trial (the driver's "resuming Tune experiment" says it once)
    logs = Path(ray_session._private.worker._global_node.get_session_dir_path()) / "logs"
    said = [
        line
        for f in logs.glob("worker-*")
        for line in f.read_text(errors="replace").splitlines()
        if "Restored on" in line and str(storage) in line
    ]
    assert not said, said
    from repeval.tuning.tune_setup import RestoredLines

    kept = logging.LogRecord("ray.tune.trainable.trainable", logging.WARNING, "", 0, "Restored on x: failed", (), None)
    assert RestoredLines().filter(kept)  # the logger's warnings and errors pass


def test_ctrl_c_during_training_raises_and_the_rerun_resumes(ray_session, tmp_path):
    """Ctrl-C (SIGINT) while trials run: Tune stopped them and returned normally — the grid was collected with the
    units that happened to finish and committed as done. Now Tune's handler is off: KeyboardInterrupt reaches the
    caller (nothing returned), and the rerun restores the experiment and trains what did not finish. Two probes are
    enough: p2 hangs before training, p4 finishes."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = tmp_path / "tune"
    script = tmp_path / "run.py"
    address = ray_session.get_runtime_context().gcs_address
    text = RESUME_SCRIPT.format(tests=str(Path(__file__).parent), storage=str(storage), marks=str(marks),
                                address=address, hidden=(2, 4))  # fmt: skip
    script.write_text(text + 'print("RETURNED", flush=True)\n')
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and proc.poll() is None
            and not (any(marks.glob("ran-p2-*")) and finished_in_snapshot(storage) >= 1)
        ):
            time.sleep(0.1)  # p2 hangs before training; another unit has finished
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C in the driver's terminal
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "RETURNED" not in out and proc.returncode != 0, (out, err[-2000:])
    assert "KeyboardInterrupt" in err and "Stop signal received" not in err, err[-2000:]
    for p in marks.iterdir():
        p.unlink()
    cfg = resume_config(hidden=(2, 4))
    g = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage),
                  wrap_trainable=marker_wrapper(str(marks)))  # fmt: skip
    assert {r["probe"] for r in g.rows} == {"p2", "p4"} and not g.failed
    assert "p2" in {p.name.split("-")[1] for p in marks.glob("ran-*")}  # the unit stopped mid-way trained now


def kill_once_wrapper(marks: str):
    """The first trial that trains 'p2' writes its process id and waits; the test kills that process."""

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            if "p2" in {m.name for m in units[config["unit"]].members} and not Path(marks, "killed").exists():
                Path(marks, f"pid-{os.getpid()}").touch()
                time.sleep(600)
            return fn(config, data=data, units=units)

        return wrapped

    return wrap


def test_a_trial_whose_worker_died_is_trained_again(ray_session, tmp_path):
    """A trial actor killed mid-trial (kill -9, the OOM killer): Tune starts the trial again and the group has every
    probe — before, the probe was recorded as failed ("The actor is dead") and its group committed without it."""
    import threading

    marks = tmp_path / "marks"
    marks.mkdir()

    def killer() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not any(marks.glob("pid-*")):
            time.sleep(0.2)
        for f in marks.glob("pid-*"):
            (marks / "killed").touch()
            os.kill(int(f.name.split("-")[1]), signal.SIGKILL)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    cfg = resume_config(hidden=(2, 3))  # p2's worker is killed, p3 trains beside it
    g = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(tmp_path / "tune"),
                  wrap_trainable=kill_once_wrapper(str(marks)))  # fmt: skip
    t.join(timeout=5)
    assert (marks / "killed").exists()
    assert not g.failed, g.failed
    assert {r["probe"] for r in g.rows} == {"p2", "p3"}


def gpu_granted(fn):
    """Hand every trial a GPU grant (``use_gpu``) that torch here cannot use: each warns that its probes train on the
    CPU (a warning every trial of a batch gives alike)."""

    def wrapped(config, data=None, units=None):
        return fn({**config, "use_gpu": True}, data=data, units=units)

    return wrapped


def gpu_said(caplog) -> list[str]:
    """What the driver's lines of :func:`gpu_granted`'s warning say before its text: which trials gave it."""
    said = [
        r.getMessage().split(": a probe trial on ") for r in caplog.records if "was granted a GPU" in r.getMessage()
    ]
    assert all(len(parts) == 2 for parts in said), said  # said on the driver, never of a trial of its own
    return [parts[0] for parts in said]


def test_what_a_trial_warned_before_it_raised_is_said_on_the_driver(ray_session, tmp_path, caplog):
    """A trial that raises leaves no checkpoint, and what it had warned — what a user debugging the failed probe
    needs most — was lost with it (only the finished trials' warnings were said). It is kept beside the trial's
    results as it raises, and said with the others: here a GPU granted that torch cannot use, then a sampled PCA
    wider than the embeddings, which fails the trial (Tune's retry re-raises at once and keeps the first attempt's)."""
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)
    wide = {"name": "wide", "epochs": 2, "search": {"space": {"pca_dim": {"choice": [50]}}, "num_samples": 1}}
    cfg = config([{"name": "lin", "epochs": 2}, wide])
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"), wrap_trainable=gpu_granted)
    from repeval.probes.inputs import pca_too_wide

    assert [(f["probe"], f["reason"]) for f in g.failed] == [
        ("wide", f"ValueError: {pca_too_wide(50, *data.x_train.shape)}")
    ]
    assert gpu_said(caplog) == ["inst__notes__m, 2 of 2 probes/seeds (lin (seed 0); wide (seed 0))"]


def gpu_granted_then_killed(fn):
    """:func:`gpu_granted`, and every attempt's worker killed (kill -9, as the OOM killer does) once its probes have
    trained, before it saves its checkpoint."""

    def wrapped(config, data=None, units=None):
        import repeval.tuning.trial

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        repeval.tuning.trial.write_tensorboard = killed  # (this worker dies: nothing else runs in it)
        return fn({**config, "use_gpu": True}, data=data, units=units)

    return wrapped


def test_what_a_trial_whose_worker_died_warned_is_said_on_the_driver(ray_session, tmp_path, caplog, monkeypatch):
    """A grid trial kept its warnings beside its results only as it raised: one whose worker died (not an exception)
    wrote none, and what it warned was lost however often Tune started it again. It writes them as they change (after
    each validation, once trained): the driver says them with the failed probe. (Not started again here: a retry is
    the same trial in a new worker, and costs ~10 s.)"""
    import repeval.tuning.tuner

    monkeypatch.setattr(repeval.tuning.tuner, "TRIAL_RETRIES", 0)
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)
    cfg = config([{"name": "lin", "epochs": 2}])
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"),
                      wrap_trainable=gpu_granted_then_killed)  # fmt: skip
    assert [f["probe"] for f in g.failed] == ["lin"] and not g.rows, g.failed
    assert gpu_said(caplog) == ["inst__notes__m, probe lin (seed 0)"]


def raise_counting_wrapper(marks: str):
    """Every trial that trains 'p2' records its attempt in ``marks`` and raises (a deterministic bug); its cleanup
    then fails too, while handling that failure."""

    def cleanup():
        raise RuntimeError("cleanup failed too")

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            if "p2" in {m.name for m in units[config["unit"]].members}:
                Path(marks, f"attempt-{os.getpid()}-{time.time_ns()}").touch()
                try:
                    raise ValueError("p2 cannot train: injected bug")
                finally:
                    cleanup()
            return fn(config, data=data, units=units)

        return wrapped

    return wrap


def test_a_trial_that_raises_is_trained_once_and_recorded_as_failed(ray_session, tmp_path):
    """Tune's retry is for a worker that died: a trial whose code raises runs once (before: twice, the same
    exception) and is recorded as failed with the exception as its reason while the other units finish; Tune still
    sees it errored, so a rerun of the experiment keeps it failed without running it again. Its cleanup failed too
    while handling the failure: the reason was the second exception only (the last line of the traceback), the
    first, its cause, lost from failed.parquet and the report — both are kept, the first first."""
    marks = tmp_path / "marks"
    marks.mkdir()
    cfg = resume_config(hidden=(2, 3))  # p2 raises, p3 finishes beside it

    def run():
        return run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(tmp_path / "tune"),
                         wrap_trainable=raise_counting_wrapper(str(marks)))  # fmt: skip

    for attempt in range(2):  # the run, then its rerun (restored)
        g = run()
        assert len(list(marks.glob("attempt-*"))) == 1, attempt
        assert [(f["probe"], f["reason"]) for f in g.failed] == [
            (
                "p2",
                "ValueError: p2 cannot train: injected bug; then, while handling it: RuntimeError: cleanup failed too",
            )
        ], attempt
        assert {r["probe"] for r in g.rows} == {"p3"}
    (exp,) = [d for d in (tmp_path / "tune").iterdir() if d.is_dir()]
    (err,) = exp.glob("*/error.txt")
    assert "Failure # 2" in err.read_text() and "RaisedBefore" in err.read_text()  # Tune's retry, raised at once


def test_a_trials_reason_keeps_the_exception_it_was_raised_from(tmp_path):
    """A trial's failure reason (failed.parquet, the report) kept an exception raised while handling another, not one
    it was raised from (``raise … from exc``): the last line alone, the cause lost. It keeps it, first — unless the
    last line already says it — also from the traceback text that Tune's retry re-raises (``RaisedBefore``)."""
    import traceback

    from repeval.tuning.group import _reason, exception_reason
    from repeval.tuning.notes import RaisedBefore

    labels = tmp_path / "labels.json"

    def read(say_it: bool) -> None:
        try:
            labels.read_text()
        except FileNotFoundError as exc:
            raise ValueError(f"cannot read the label map{f': {exc}' if say_it else ''}") from exc

    with pytest.raises(ValueError) as err:
        read(say_it=False)
    reason = f"FileNotFoundError: [Errno 2] No such file or directory: '{labels}'; which caused: ValueError: cannot " \
             "read the label map"  # fmt: skip
    assert exception_reason(err.value) == reason
    assert _reason(RaisedBefore("".join(traceback.format_exception(err.value)))) == reason
    with pytest.raises(ValueError) as said:
        read(say_it=True)
    assert exception_reason(said.value) == f"ValueError: cannot read the label map: {said.value.__cause__}"


@pytest.mark.filterwarnings("ignore:`get_storage` is meant to only be called")
def test_memory_io_and_rays_own_errors_are_retried_like_a_dying_worker():
    """What a retry may get past (memory, the storage for a moment, a lost node's objects) is not noted, so Tune runs
    the trial again; the unit's own errors are. Outside a Tune trial nothing is noted and errors pass through."""
    from ray.exceptions import RaySystemError

    from repeval.tuning.notes import _retried, raised_once

    assert _retried(MemoryError()) and _retried(ConnectionResetError()) and _retried(RaySystemError("node lost"))
    assert not any(_retried(e) for e in (ValueError("bad"), RuntimeError("nan"), KeyError("x"), AssertionError()))
    with pytest.raises(ValueError, match="bad"), raised_once():
        raise ValueError("bad")


def marked_run(cfg, marks: Path, storage: Path):
    """``run_group`` of ``cfg`` on the resume data into Tune ``storage``, each trial that trains marked in ``marks``:
    the group and the probes trained (not reused)."""
    for p in marks.iterdir():
        p.unlink()
    g = run_group(
        cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage), wrap_trainable=marker_wrapper(str(marks))
    )
    return g, sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))


@pytest.fixture(scope="module")
def resume_run_done(ray_session, tmp_path_factory):
    """One finished ``resume_config()`` run (probes p2 … p5, a trial each) that the tests of a rerun over the same
    experiment start from, each on a copy of its Tune storage (``finished_resume_run``): the group, the probes it
    trained and that storage."""
    root = tmp_path_factory.mktemp("resume_run_done")
    (root / "marks").mkdir()
    g, trained = marked_run(resume_config(), root / "marks", root / "tune")
    return g, trained, root / "tune"


def finished_resume_run(done, tmp_path: Path):
    """A copy of ``resume_run_done``'s Tune storage as ``tmp_path``/tune, as if this test had run it there: the
    group, the probes it trained, the storage and an empty ``tmp_path``/marks."""
    import shutil

    g, trained, template = done
    storage = tmp_path / "tune"
    shutil.copytree(template, storage)
    (tmp_path / "marks").mkdir()
    return g, trained, storage, tmp_path / "marks"


def test_finished_trials_are_reused_when_the_experiment_state_was_lost(resume_run_done, tmp_path, monkeypatch):
    """A driver killed before Tune first wrote its experiment state leaves trial checkpoints but nothing to
    restore: the rerun moves the experiment aside and reuses every whole checkpoint of the same plan (results
    identical to the first run's), also when reruns are killed in turn; a checkpoint cut short is trained
    again, and another plan's never reused. The copies moved aside are kept while they hold a finished trial, and
    deleted once the experiment holds them all."""
    import repeval.tuning.tuner

    first, trained, storage, marks = finished_resume_run(resume_run_done, tmp_path)
    cfg = resume_config()

    def run(c=cfg):
        return marked_run(c, marks, storage)

    assert trained == ["p2", "p3", "p4", "p5"] and first.reused_trials == 0
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    states = list(exp.glob("experiment_state-*.json"))
    assert states
    for f in states:
        f.unlink()
    probes = sorted(exp.glob("*/checkpoint_*/probes.pt"))
    assert len(probes) == 4
    cut = probes[0]
    cut.write_bytes(cut.read_bytes()[:-1])  # one checkpoint cut short by the kill

    def copies() -> list[Path]:
        return [d for d in storage.glob(f"{exp.name}.incomplete-*") if d.is_dir()]

    def killed_as_tune_starts(tuner, path):
        raise KeyboardInterrupt

    # reruns killed twice as Tune starts (the experiment moved aside, no trial run yet): the second finds the first's
    # new experiment (nothing in it) and moves it aside too; the copy that holds the finished trials stays
    for _ in range(2):
        with monkeypatch.context() as m:
            m.setattr(repeval.tuning.tuner, "_fit_grid", killed_as_tune_starts)
            with pytest.raises(KeyboardInterrupt):
                run()
    assert len(copies()) == 2 and not list(marks.iterdir())

    second, trained = run()
    assert len(trained) == 1 and second.reused_trials == 3

    def values(g):
        return sorted((r["probe"], r["scenario"], r["metric"], r["label"] or "", r["value"]) for r in g.rows)

    assert values(second) == values(first)  # reused or retrained, the same results
    assert sorted(map(repr, second.history)) == sorted(map(repr, first.history))
    assert not copies()  # the experiment holds every finished trial now: no rerun needs them

    # another plan (more epochs; two of the probes): a new fingerprint, so nothing of the old experiment is reused
    _, trained = run(resume_config(epochs=4, hidden=(2, 3)))
    assert trained == ["p2", "p3"]


def test_an_experiment_whose_trial_file_a_full_disk_cut_is_run_again_reusing_its_trials(
    resume_run_done, tmp_path, monkeypatch, caplog
):
    """A disk that filled during training left a trial's error.pkl empty; Ray Tune's ResultGrid unpickles it in
    ``fit()`` and raised EOFError, which the CLI printed as a bare "Aborted." — and every rerun restored the same
    experiment and stopped on it again, after space was freed. Now the error names the file's experiment and the fix,
    and a rerun moves the experiment aside and runs it again, reusing every finished trial."""
    from ray import tune

    from repeval.tuning.tuner import TrialFilesCut

    first, trained, storage, marks = finished_resume_run(resume_run_done, tmp_path)
    cfg = resume_config()

    def run():
        return marked_run(cfg, marks, storage)

    assert len(trained) == 4

    def cut_error_file(self):
        raise EOFError("Ran out of input")  # pickle's words for an empty error.pkl

    caplog.set_level("WARNING", logger="repeval.tuning.grid")
    with monkeypatch.context() as m:
        m.setattr(tune.Tuner, "fit", cut_error_file)
        with pytest.raises(
            TrialFilesCut, match=r"a file cut short — when the disk of run.runs_dir is full .*free space"
        ):
            run()  # the restore stops on it (moved aside), then the fresh experiment too: said with the fix
    assert "holds a trial file cut short (EOFError: Ran out of input); running it again" in caplog.text
    second, trained = run()  # space freed
    assert trained == [] and second.reused_trials == 4
    assert sorted(map(repr, second.rows)) == sorted(map(repr, first.rows))


def trial_marker(marks: str, label):
    """Record each trial that trains, as ``label(config, data)`` (a file name part)."""

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            Path(marks, f"{label(config, data)}-{time.time_ns()}").touch()
            return fn(config, data=data, units=units)

        return wrapped

    return wrap


def sampled_marker(marks: str):
    """Record each tune-mode trial that trains (by its sampled values)."""
    return trial_marker(marks, lambda config, _: f"ran-{json.dumps(config['sampled'], sort_keys=True)}")


def asha_search_config(seed: int = 0, num_samples: int = 5):
    probe = {
        "name": "tuned",
        "hidden_units": [4],
        "epochs": 6,
        "patience": 100,
        "batch_size": 30,
        "search": {
            "space": {"learning_rate": {"loguniform": [1e-4, 3e-2]}},
            "num_samples": num_samples,
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        },
    }
    # one trial at a time: ASHA's decisions then depend on nothing but the reported values
    return config([probe], seed=seed, resources={"max_concurrent_trials": 1})


def reported_curves(exp: Path) -> dict[str, list[float]]:
    """Sampled values → the best_criterion of every result a trial reported to Tune (its result.json)."""
    out = {}
    for f in exp.glob("*/result.json"):
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if recs:
            out[json.dumps(recs[0]["config"]["sampled"], sort_keys=True)] = [r["best_criterion"] for r in recs]
    return out


def test_a_sampled_search_under_asha_is_seeded_and_replays_finished_trials_on_resume(ray_session, tmp_path):
    """A search space samples the same configurations on every run of a configuration (run.seed, the
    experiment's name), other ones with another seed. When the experiment state is lost, the rerun reuses every
    trial that finished, replaying what it reported so ASHA judges each report at its own iteration (the same
    trials stop at the same rungs; the finished ones are not trained again); a checkpoint that does not record
    its reports (older repeval) is trained again rather than judged on its final result at iteration 1."""
    marks = tmp_path / "marks"
    marks.mkdir()
    data = gaussian_probe_data(n=120, d=8, c=3, scenarios=False)

    def run(storage, seed=0, num_samples=5):
        for p in marks.iterdir():
            p.unlink()
        c = asha_search_config(seed, num_samples)
        g = run_group(c, c.experiments[0], "notes", "m", data, str(storage), wrap_trainable=sampled_marker(str(marks)))
        trained = sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))  # sampled values, as JSON
        return g, trained

    def outcome(g):
        probes = sorted((p["params"], p["status"], p["best_criterion"], p["selected"]) for p in g.probes)
        rows = sorted((r["probe"], r["scenario"], r["metric"], r["label"] or "", r["value"]) for r in g.rows)
        return probes, rows

    storage = tmp_path / "tune"
    first, first_trained = run(storage)
    assert len(first_trained) == 5 and first.reused_trials == 0 and not first.failed
    stopped = [p for p in first.probes if p["status"].startswith("stopped by ASHA at epoch")]
    assert 0 < len(stopped) < 5  # ASHA stopped some, others ran their budget
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    curves = reported_curves(exp)
    assert len(curves) == 5 and {len(c) for c in curves.values()} != {1}

    # (a fresh experiment of the same seed samples the same values: the resumed run below is one, in the same folder;
    # the draws are seeded by run.seed and the experiment's name alone, so another seed's first two show it)
    _, trained_other = run(tmp_path / "tune-other", seed=1, num_samples=2)
    assert len(trained_other) == 2 and not set(trained_other) & set(first_trained)

    for f in exp.glob("experiment_state-*.json"):  # the driver died before Tune wrote its state
        f.unlink()
    summaries = sorted(exp.glob("*/checkpoint_*/summary.json"))
    assert len(summaries) == 5 - len(stopped)
    old = json.loads(summaries[0].read_text())
    old_sampled = json.dumps(json.loads(old["key"])["sampled"], sort_keys=True)
    del old["reported"]  # a checkpoint written before trials kept their reports
    summaries[0].write_text(json.dumps(old))

    resumed, trained = run(storage)
    # a new experiment (nothing to restore), which samples the first run's values: the trials ASHA stopped (no
    # checkpoint) and the one whose reports were not kept train again, the others' checkpoints are reused
    assert len(trained) == len(stopped) + 1 and old_sampled in trained and set(trained) <= set(first_trained)
    assert resumed.reused_trials == 5 - len(stopped) - 1
    assert outcome(resumed) == outcome(first)
    (new_exp,) = [d for d in storage.iterdir() if d.is_dir() and ".incomplete-" not in d.name]
    assert reported_curves(new_exp) == curves  # every trial reported the same values at the same iterations


def unit_trainable(config):
    from ray import tune

    if config["unit"] == 1:
        raise RuntimeError("fails before its first report")
    tune.report({"score": float(config["unit"])})


def reporting_trainable(config):
    """:func:`unit_trainable` without its failing unit (a failed trial's retry starts a trial actor of its own)."""
    from ray import tune

    tune.report({"score": float(config["unit"])})


def test_fit_maps_every_trial_to_its_unit_and_reruns_an_incomplete_restore(ray_session, tmp_path):
    """Every trial, even one that failed before reporting anything (so ``Result.config`` is empty), is mapped
    to its unit; a restorable experiment that does not account for every unit (what a driver killed mid-write
    can leave) is moved aside and run afresh instead of yielding trials without a unit."""
    from ray import tune

    from repeval.tuning.tuner import _fit

    storage = str(tmp_path / "tune")

    def fit(n: int):
        space = {"unit": tune.grid_search(list(range(n)))}
        return _fit("exp", lambda _finished: unit_trainable, space, tune.TuneConfig(), storage, "same-fingerprint", n)

    pairs, restored = fit(2)
    assert not restored
    assert sorted(c["unit"] for c, _ in pairs) == [0, 1]
    failed = next(r for c, r in pairs if c["unit"] == 1)
    assert failed.error is not None and "score" not in (failed.metrics or {})  # it never reported
    pairs, restored = fit(2)  # complete: restored as is
    assert restored and sorted(c["unit"] for c, _ in pairs) == [0, 1]
    pairs, restored = fit(3)  # same marker, but unit 2 missing from the stored experiment
    assert not restored
    assert sorted(c["unit"] for c, _ in pairs) == [0, 1, 2]
    assert [r.metrics["score"] for c, r in pairs if c["unit"] == 2] == [2.0]
    # moved aside, and deleted once the new experiment ran: it held no whole trial checkpoint to reuse
    assert not list((tmp_path / "tune").glob("exp.incomplete-*"))


def test_only_the_newest_stale_copy_of_an_experiment_is_kept(tmp_path, caplog):
    """Each retrain of a grid under another plan moved its old Tune experiment aside as ``<grid>.stale-<time>``, and
    the copies piled up in ``tune/`` for good. A stale copy is never reused (only ``incomplete`` ones of the same plan
    are): moving one aside now deletes the older stale copies of that grid, and the warning says so; the grid's
    ``incomplete`` copies and other grids' stale copies are left alone."""
    from repeval.rundir import TuneStorage
    from repeval.tuning.tuner import _move_aside

    tune_dir = tmp_path / "tune"
    st = TuneStorage(str(tune_dir))
    for name in ("exp.incomplete-20260101-000000", "other.stale-20260101-000000"):
        (tune_dir / name).mkdir(parents=True)
    kept = []
    with caplog.at_level("WARNING", logger="repeval.tuning.tuner"):
        for plan in ("a", "b", "c"):
            (tune_dir / "exp").mkdir()
            (tune_dir / "exp" / "experiment_state.json").write_text(plan)
            kept.append(_move_aside(st, "exp", "stale", "was planned for another configuration"))
    left = sorted(p.name for p in tune_dir.iterdir())
    assert left == sorted(["exp.incomplete-20260101-000000", "other.stale-20260101-000000", kept[-1]]), left
    assert (tune_dir / kept[-1] / "experiment_state.json").read_text() == "c"
    said = [r.getMessage() for r in caplog.records]
    assert said[0].endswith("(the last stale copy only)") and f"deleted {kept[1]})" in said[2], said


def test_restoring_does_not_warn_about_trials_whose_result_files_are_missing(ray_session, tmp_path):
    """A driver killed before Tune copied a trial's result.json to storage left a trial with a result in the
    experiment state and no result files; restoring it (repeval reads checkpoints, never those files) must
    not print Tune's "Failed to fetch metrics" warning at the user."""
    from ray import tune

    from repeval.tuning.tuner import _fit

    storage = tmp_path / "tune"

    def fit():
        space = {"unit": tune.grid_search([0])}
        return _fit("exp", lambda _finished: unit_trainable, space, tune.TuneConfig(), str(storage), "fp", 1)

    fit()
    removed = [f for name in ("result.json", "progress.csv") for f in storage.glob(f"exp/*/{name}")]
    assert removed
    for f in removed:
        f.unlink()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    tune_analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    tune_analysis.addHandler(handler)
    try:
        pairs, restored = fit()
    finally:
        tune_analysis.removeHandler(handler)
    assert restored and [c["unit"] for c, _ in pairs] == [0]
    assert not [r.getMessage() for r in records if "Failed to fetch metrics" in r.getMessage()]


def test_fit_reruns_an_experiment_whose_marker_or_state_a_kill_cut_short(ray_session, tmp_path):
    """A driver killed while writing the repeval marker (an empty file) or Tune's experiment state (cut short)
    left CI's rerun failing with "Expecting value: line 1 column 1": such an experiment is moved aside and run
    afresh, and the marker itself is written whole (temporary name, then rename)."""

    from ray import tune

    from repeval.tuning.tuner import _fit

    tune_dir = tmp_path / "tune"

    def fit():
        space = {"unit": tune.grid_search([0, 1])}
        return _fit("exp", lambda _finished: reporting_trainable, space, tune.TuneConfig(), str(tune_dir), "fp", 2)

    fit()
    assert json.loads((tune_dir / "exp.repeval.json").read_text()) == {"fingerprint": "fp"}
    assert not list(tune_dir.glob(".*.tmp"))  # the marker's temporary file was renamed
    assert fit()[1]  # sanity: restorable as written

    (tune_dir / "exp.repeval.json").write_text("")  # killed between open and write
    pairs, restored = fit()
    assert not restored and sorted(c["unit"] for c, _ in pairs) == [0, 1]
    (unmarked,) = [d for d in tune_dir.glob("exp.incomplete-*") if d.is_dir()]

    states = sorted((tune_dir / "exp").glob("experiment_state*.json"))
    assert states, "Tune's experiment state file moved: update this test"
    for f in states:
        f.write_text(f.read_text()[:7])  # killed mid-write: half a JSON document
    pairs, restored = fit()  # (moved aside within the same second as the first: a name of its own)
    assert not restored and sorted(c["unit"] for c, _ in pairs) == [0, 1]
    # its copy held no whole trial checkpoint (deleted once the experiment ran); the one without a marker is kept
    assert [d for d in tune_dir.glob("exp.incomplete-*") if d.is_dir()] == [unmarked]
    assert fit()[1]


def test_groups_batched_in_one_experiment_reuse_trial_actors_and_match_separate_runs(ray_session, tmp_path, caplog):
    """A batch of groups trains in one experiment, on reused actors, to each group's results alone. A warning every
    trial gave (here: a GPU granted that torch cannot use) was said once per group — for 30 groups, 30 lines of one
    warning; it is said once for the batch, naming its groups."""
    from repeval.tuning.grid import GroupInput, batch_name, run_groups

    cfg = config(
        [{"name": "lin", "epochs": 4, "batch_size": 32}, {"name": "mlp", "hidden_units": [6], "epochs": 4}],
        pack_trials=False,  # two trials per group
    )
    exp = cfg.experiments[0]
    datas = {"a": gaussian_probe_data(n=120, d=10, c=3, seed=1), "b": gaussian_probe_data(n=150, d=14, c=4, seed=2)}
    marks = tmp_path / "marks"
    marks.mkdir()
    inputs = [GroupInput(exp, name, "m", d) for name, d in datas.items()]
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        together = run_groups(cfg, inputs, str(tmp_path / "tune"),
                              wrap_trainable=lambda fn: marker_wrapper(str(marks))(gpu_granted(fn)))  # fmt: skip
    assert gpu_said(caplog) == ["4 of 4 probes/seeds in 2 of 2 groups (every probe/seed of inst__a__m, inst__b__m)"]
    name = batch_name(["inst__a__m", "inst__b__m"])
    assert sorted(p.name for p in (tmp_path / "tune").iterdir() if p.is_dir()) == [name]
    assert all(g.experiments == [str(tmp_path / "tune" / name)] for g in together)
    # in TensorBoard each probe's curves name their group: the experiment's name does not
    batch = tmp_path / "tune" / name
    curves = sorted("/".join(e.relative_to(batch).parts[1:-1]) for e in batch.glob("*/members/**/events.*"))
    assert curves == sorted(f"members/inst__{ds}__m/{p}__seed0" for ds in datas for p in ("lin", "mlp")), curves
    ran = sorted(p.name for p in marks.iterdir())
    assert len(ran) == 4  # every group's two trials ran once …
    pids = {n.split("-")[-2] for n in ran}
    assert len(pids) < len(ran), ran  # … on trial actors reused across trials (and groups): fewer than four starts
    # each group's results are those of training it alone
    for g, (ds, d) in zip(together, datas.items(), strict=True):
        alone = run_group(cfg, exp, ds, "m", d, str(tmp_path / f"alone-{ds}"))
        assert g.labels == alone.labels and g.trials == alone.trials == 2 and not g.failed
        key = lambda r: (r["probe"], r["seed"], r["scenario"], r["metric"], r["label"])  # noqa: E731
        assert len(g.rows) == len(alone.rows) > 0
        assert {key(r): r["value"] for r in g.rows} == {key(r): r["value"] for r in alone.rows}
        assert {r["dataset"] for r in g.rows} == {ds}


def test_trial_actors_have_no_runtime_env_so_they_can_take_prestarted_workers(asha_search_run):
    """Tune declares its trial actors with ``env_vars: {"PL_DISABLE_FORK": "1"}``, which keeps them out of
    Ray's prestarted (runtime-env-less) workers; repeval's grids leave the variable out while they run and
    put Tune's default back afterwards."""
    g, env, before = asha_search_run.g, asha_search_run.env, asha_search_run.before
    assert not g.failed and {r["probe"] for r in g.rows} == {"tuned"}
    assert "PL_DISABLE_FORK" not in (env.get("env_vars") or {}), env
    assert asha_search_run.after == before and "PL_DISABLE_FORK" in before


def test_trial_actors_import_torch_without_the_collectors_rescans(asha_search_run):
    """A trial actor's first import of repeval.probes (torch with it: ~340,000 objects that live as long as the
    process) runs with the cyclic garbage collector off and moves what it built into the collector's permanent
    generation, which no collection scans again; the collector is back on for the trial. In this process, not a
    Ray worker, the same block changes nothing."""
    import gc

    assert not asha_search_run.g.failed
    assert asha_search_run.gc["frozen"] > 100_000, asha_search_run.gc
    assert asha_search_run.gc["enabled"] is True
    from repeval.cpu import imports_frozen_in_workers

    frozen = gc.get_freeze_count()
    with imports_frozen_in_workers():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen and gc.isenabled()


def test_train_summary_line_counts_reused_trials():
    """The line counted failed (configuration, seed) trainings as "failed trial(s)" — a Tune trial may train many
    of them: it now says what it counts, and counts apart the test sets a trained probe could not be scored on."""
    from repeval.cli.experiment import _train_line

    t = {"trained": 2, "skipped": 1, "failed": [{"scenario": None}], "reused_trials": 0}
    assert _train_line(t) == "trained 2 probe grids, 1 already done, 1 failed probe training (failed.parquet says why)"
    assert _train_line({**t, "reused_trials": 3}).endswith(
        "; 3 trials finished by an interrupted run reused, not trained again"
    )
    # as the multi-node and driver-fault tests expect it
    assert _train_line({**t, "trained": 1, "skipped": 0, "failed": []}) == (
        "trained 1 probe grid, 0 already done, 0 failed probe trainings"
    )
    # a rerun with every grid done says so, as the embedding stage's "nothing to embed" does
    assert _train_line({**t, "trained": 0, "skipped": 1, "failed": []}) == "nothing to train: 1 probe grid already done"
    assert _train_line({**t, "trained": 0, "skipped": 2}).startswith("trained 0 probe grids, 2 already done, 1 failed")
    two = {**t, "failed": [{"scenario": None}, {"scenario": "D1"}, {"scenario": "D2"}]}
    assert _train_line(two) == (
        "trained 2 probe grids, 1 already done, 1 failed probe training, 2 failed test cells (non-finite "
        "scores) (failed.parquet says why)"
    )


def ref_marker(marks: str):
    """Record the object-store reference each trial reads its group's embeddings from."""
    return trial_marker(marks, lambda _, data: f"{type(data).__name__}-{data.refs[0].hex()}")


def test_a_groups_embeddings_are_held_once_in_the_object_store(ray_session, tmp_path):
    """``share`` puts a group's embeddings into the object store and hands back read-only views of that copy (the
    caller drops its own arrays); grid-mode and tune-mode trials all read the very reference the caller put, so
    nothing is put again per experiment."""
    import numpy as np
    import ray

    from repeval.tuning.grid import GroupInput, run_groups, share

    data = gaussian_probe_data(n=120, d=8, c=3, scenarios=False)
    ref, view = share(data)
    assert not view.x_train.flags.writeable
    assert np.shares_memory(view.x_train, ray.get(ref).x_train)  # views of the one stored copy
    np.testing.assert_array_equal(view.x_train, data.x_train)
    search = {"space": {"learning_rate": {"loguniform": [1e-4, 3e-2]}}, "num_samples": 2}
    cfg = config([{"name": "lin", "type": "linear", "epochs": 3}, {"name": "tuned", "epochs": 3, "search": search}])
    marks = tmp_path / "marks"
    marks.mkdir()
    (g,) = run_groups(cfg, [GroupInput(cfg.experiments[0], "notes", "m", view, "g", ref)], str(tmp_path / "tune"),
                      wrap_trainable=ref_marker(str(marks)))  # fmt: skip
    seen = sorted(p.name.rsplit("-", 1)[0] for p in marks.iterdir())
    assert seen == [f"BatchData-{ref.hex()}"] * 3  # one grid trial, two sampled trials
    assert not g.failed and {r["probe"] for r in g.rows} == {"lin", "tuned"}


def test_a_pca_to_more_dimensions_than_the_embeddings_have_stops_training(tmp_path):
    """A PCA target above the embedding width (or the training rows) was silently capped to it, the probe trained on
    another input than the one written; it is an error, as in scikit-learn (mir_ref's PCA), before any trial starts
    — a grid point's too."""
    data = gaussian_probe_data(n=60, d=10, c=3)
    cfg = config([{"name": "lin", "epochs": 2}, {"name": "pca", "emb_dim_reduction": "PCA", "emb_shape": 16}])
    with pytest.raises(ValueError, match=r"downstream_models\[1\] on model 'm' and dataset 'notes': PCA to 16 dim.*"
                       r"10-dimensional embeddings\): set it to at most 10"):  # fmt: skip
        run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    grid = config([{"name": "pca", "search": {"grid": {"pca_dim": [4, 12]}}}])
    with pytest.raises(
        ValueError, match=r"downstream_models\[0\] \(grid point 'pca-1': \{\"pca_dim\": 12\}\) .* at most 10"
    ):
        run_group(grid, grid.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert not (tmp_path / "tune").exists()


def test_an_emb_shape_other_than_the_embedding_width_stops_training(tmp_path):
    """mir_ref's ``emb_shape`` (without PCA) is the probe's input width: one that the embeddings do not have was
    silently ignored (the probe trained on the real width); it names the widths before any trial starts."""
    data = gaussian_probe_data(n=60, d=10, c=3)
    cfg = config([{"name": "lin", "epochs": 2}, {"name": "wide", "emb_shape": 64, "epochs": 2}])
    with pytest.raises(ValueError, match=r"downstream_models\[1\]\.emb_shape is 64, but model 'm' gives 10-dim"):
        run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert not (tmp_path / "tune").exists()


def test_a_granted_gpu_that_torch_cannot_use_warns_once_and_trains_on_the_cpu(caplog):
    """Tune hands a trial its GPU grant as ``use_gpu`` in its configuration (``run_groups``' param space); a worker
    whose torch has no CUDA (here: the CPU build) silently trained on the CPU while the GPU stayed reserved. It still
    trains on the CPU, and says so once per process, naming the fix."""
    import torch

    from repeval.tuning import trial

    assert not torch.cuda.is_available()  # this machine: a granted GPU torch cannot use
    reset_warned()  # this process may have warned already
    with caplog.at_level("WARNING", logger="repeval.tuning.trial"):
        assert trial._device({"unit": 0, "use_gpu": False}) == "cpu"
        assert not caplog.records  # no GPU asked for: nothing to say
        assert [trial._device({"unit": u, "use_gpu": True}) for u in (0, 1)] == ["cpu", "cpu"]
    (record,) = caplog.records  # once per process, not once per trial
    msg = record.getMessage()
    assert "was granted a GPU" in msg and "CPU-only build" in msg and "train on the CPU" in msg
    assert "install a CUDA build of torch on the GPU nodes" in msg and "run.resources.trial_num_gpus: 0" in msg


def test_a_note_of_a_raised_trial_written_part_way_is_not_left_for_the_retry(tmp_path, monkeypatch, caplog):
    """A trial that raised notes its traceback (raised.txt) so that Tune's retry re-raises it instead of training
    again. A write that failed part-way (a full disk; here a file-size limit, a real partial write) left the
    truncated note in place, although the warning said Tune would run the trial again: the retry re-raised the
    truncated text, so the trial failed with a garbled reason in place of its own. The note is written under a
    temporary name and moved into place: a failed write leaves none, the error raised is the trial's, and the retry
    trains."""
    import resource

    import pyarrow.fs as pafs

    from repeval.tuning import notes

    note = tmp_path / "trial" / "raised.txt"
    # where the note goes: the trial's directory in the experiment's storage, as Ray's Tune context would say
    monkeypatch.setattr(notes, "_raised_note", lambda: (pafs.LocalFileSystem(), str(note)))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with pytest.raises(ValueError, match="p2 cannot train"), notes.raised_once():
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # the note's write stops after 64 bytes
            raise ValueError("p2 cannot train: injected bug")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "could not note that the trial raised" in caplog.text
    assert not [p.name for p in note.parent.iterdir()]  # no note, whole or partial
    ran = []
    with notes.raised_once():  # Tune's retry: it trains
        ran.append(True)
    assert ran


def test_a_trials_warnings_are_said_on_the_driver_once_with_how_many_probes_had_them(ray_session, tmp_path, caplog):
    """What repeval warns in a probe trial's process reached only that process's log, which the user does not see
    (Ray's worker output is off unless REPEVAL_WORKER_LOGS=1). Here label c5 has no positive test track (a
    ``MetricWarning`` about a degenerate test set) and four labels one each, so roc_auc_macro's bootstrap interval
    rests on the ~15% of resamples that drew all four (a warning logged once per process). Both seeds of probe lin
    train and test in one trial, on an actor that may have said either before; the driver says each once — logged,
    or warned in its category — naming the group and how many probes/seeds had it. Probe pick (``select: best``) is
    tested in the driver, which says its warnings as it goes, and not again. Each names the test sets it is about:
    clean and the deformed D1, which hold the same labels, give them word for word — said once for both."""
    import warnings

    import numpy as np

    from repeval.metrics import MetricWarning

    data = gaussian_probe_data("multilabel_classification", n=90, d=6, c=6)
    _, y, ids = data.tests["clean"]
    y = np.zeros_like(y)
    y[:4, :4] = np.eye(4)
    y[::2, 4] = 1  # c5: no positive
    data.tests = {sid: (xs, y, ids) for sid, (xs, _, _) in data.tests.items()}
    pick = {"name": "pick", "epochs": 2, "search": {"grid": {"learning_rate": [1e-3, 3e-3]}}}  # select: best
    cfg = config([{"name": "lin", "epochs": 2}, pick], seeds=2, metrics=("roc_auc_macro",),
                 task_type="multilabel_classification")  # fmt: skip
    reset_warned()  # this process may have warned already
    with caplog.at_level("WARNING", logger="repeval"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a user's: a warning's text once per line of code
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert {(r["probe"], r["seed"]) for r in g.rows} == {(p, s) for p in ("lin", "pick") for s in (0, 1)}
    lin = "inst__notes__m, 2 of 6 probes/seeds (lin (seeds 0, 1)): "  # tested in the trial; pick's 4 trained there
    both = "test sets clean, D1: "  # the same labels: the same warnings, said once for both
    said = [r for r in caplog.records if "resamples" in r.getMessage()]
    assert len(said) == 2, [r.getMessage() for r in said]
    for r, prefix in zip(said, (lin, ""), strict=True):  # the trial's, said again; then the driver's, of pick
        assert r.getMessage().startswith(f"{prefix}{both}roc_auc_macro: its bootstrap interval rests on ")
    assert {(r.name, r.levelname) for r in said} == {("repeval.metrics.compute", "WARNING")}
    none = [w for w in caught if "no positive test example" in str(w.message)]
    assert len(none) == 2, [str(w.message) for w in none]
    for w, prefix in zip(none, (lin, ""), strict=True):
        assert str(w.message).startswith(f"{prefix}{both}1 of 6 labels have no positive test example (c5): ")
    assert {w.category for w in none} == {MetricWarning}


def test_select_best_breaks_ties_by_grid_order_not_by_the_order_trials_finished():
    """Equal validation means (frequent on small validation sets) pick the first grid point whatever order the
    trials finished in: a run interrupted and resumed, or run with concurrent trials, selects what a run through does."""
    from repeval.tuning.group import best_candidate

    def cand(crit: float, point: int, sampled: dict | None = None) -> tuple:
        return (crit, point, {0: {}}, [], sampled or {}, {})

    finished = [cand(0.8, 106), cand(0.6, 3), cand(0.8, 99), cand(0.8, 100)]  # as a resumed run collected them
    for order in (finished, finished[::-1]):
        assert best_candidate(order, "max")[1] == 99
    assert best_candidate([cand(0.2, 5), cand(0.1, 7), cand(0.1, 2)], "min")[1] == 2  # a loss: the lowest
    # samples of one search space share their point: the first by their values, whatever order they came in
    samples = [cand(0.5, 0, {"learning_rate": 3e-3}), cand(0.5, 0, {"learning_rate": 1e-3})]
    assert best_candidate(samples, "max")[4] == best_candidate(samples[::-1], "max")[4] == {"learning_rate": 1e-3}


def test_train_summary_names_the_failed_probes_and_why():
    """A probe that failed in every seed has no row in the table: the summary line names it, its seeds and the reason,
    one line per configuration and test set, so a diverged probe is not simply missing from what the run prints."""
    from repeval.cli.experiment import _train_line

    where = {"task": "inst", "dataset": "notes", "model": "mfcc-stats"}
    nan = "non-finite loss at epoch 1: the training diverged — lower learning_rate"
    failed = [
        {**where, "probe": "nan", "seed": s, "params": "{}", "scenario": None, "reason": nan, "fold": None}
        for s in (0, 1)
    ] + [
        {**where, "probe": "grid-1", "seed": 0, "params": '{"learning_rate": 1e+30}', "scenario": None,
         "reason": nan, "fold": None},
        {**where, "probe": "lin", "seed": 1, "params": "{}", "scenario": "D1", "reason": "test set 'D1': non-finite "
         "scores", "fold": 2},
    ]  # fmt: skip
    lines = _train_line({"trained": 1, "skipped": 0, "failed": failed}).splitlines()
    assert lines[0].endswith(
        "3 failed probe trainings, 1 failed test cell (non-finite scores) (failed.parquet says why)"
    )
    assert lines[1:] == [
        f"  failed: inst / notes / mfcc-stats, probe nan (seeds 0, 1): {nan}",
        f'  failed: inst / notes / mfcc-stats, probe grid-1 {{"learning_rate": 1e+30}} (seed 0): {nan}',
        "  failed: inst / notes / mfcc-stats, probe lin (seed 1 in fold 2), test set D1: test set 'D1': non-finite scores",
    ]
    many = [{**failed[0], "probe": f"p{i}"} for i in range(7)]
    assert _train_line({"trained": 1, "skipped": 0, "failed": many}).splitlines()[-1] == (
        "  … and 2 more (failed.parquet lists every one)"
    )
