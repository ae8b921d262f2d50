"""Probe grids' Tune experiments: seeded samples replayed, incomplete or stale experiments, batched groups."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from grid_cases import (
    config,
    gpu_granted,
    gpu_said,
    marker_wrapper,
    pickle_this_module_by_value,  # noqa: F401 (autouse)
    reporting_trainable,
)

from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group
from repeval.warn import reset_warned


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
