"""Probe grids on a real (session) Ray: selection, seeds, intervals, failures, search spaces and ASHA."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from grid_cases import (
    config,
    gpu_granted,
    gpu_said,
    pickle_this_module_by_value,  # noqa: F401 (autouse)
)

from repeval.config import parse_config
from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group
from repeval.warn import reset_warned


def boom_wrapper(fn):
    """Make every trial that trains a probe named 'boom' raise (a failing trial)."""

    def wrapped(config, data=None, units=None):
        if any(m.name == "boom" for m in units[config["unit"]].members):
            raise RuntimeError("boom: injected failure")
        return fn(config, data=data, units=units)

    return wrapped


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
