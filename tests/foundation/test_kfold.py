"""k-fold cross-validation (``split_type: all``) in one run, on rendered instrument notes with a real Ray.

Every fold is trained and tested (validation = fold i, test = fold i+1); every track is tested in
exactly one fold, so every track is deformed; results carry the fold, tables and the summary average
over folds, confusion matrices pool over folds, and folds resume one by one.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from repeval import runner
from repeval.config import parse_config
from repeval.plan import make_plan
from repeval.report.comparable import run_split_digests
from repeval.report.html import write_report
from repeval.report.results import load_run
from repeval.report.tables import make_table
from repeval.run.split_digest import DIGEST_KEY, digest_test_rows
from repeval.testing.configs import notes_dataset

K = 3


def config(root, run_id: str, dataset: dict, probe: dict, **experiment):
    """One instrument-classification experiment on ``dataset`` with mfcc-stats and one probe."""
    return parse_config(
        {
            "run": {"run_id": run_id, "store": str(root / "store"), "runs_dir": str(root / "runs")},
            "experiments": [
                {
                    "task": {"name": "instrument", "type": "multiclass_classification"},
                    "datasets": [dataset],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [probe],
                    **experiment,
                }
            ],
        }
    )


def tinysol_mini(shared_data, **keys) -> dict:
    """The 12-track TinySOL sample (real recordings, read by the mirdata loader), whose official fold 1 is empty."""
    home = shared_data / "tinysol_mini"
    index = str(home / "tinysol_index_mini.json")
    return {"name": "tinysol", "type": "mirdata", "dir": str(home), "index_path": index, **keys}


@pytest.fixture(scope="module")
def kfold(ray_session, rendered_notes, tmp_path_factory):
    root = tmp_path_factory.mktemp("kfold")
    # no split column: seeded stratified folds
    notes = notes_dataset(rendered_notes, split_column=None, split_type="all", n_folds=K, split_seed=3)
    probe = {"name": "linear", "hidden_units": [], "standardize": True, "batch_size": 16, "epochs": 30}
    cfg = config(
        root,
        "kf",
        notes,
        probe,
        deformations=[[{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -6, "p": 1}}]],
        metrics=["accuracy"],
    )
    ctx = runner.make_context(cfg)
    embedded = runner.stage_embed(ctx)
    trained = runner.stage_train(ctx)
    results = runner.stage_evaluate(ctx).to_pandas()
    return cfg, ctx, embedded, trained, results


def test_folds_rotate_and_every_track_is_tested_once(kfold):
    _, ctx, embedded, _, _ = kfold
    folds = ctx.folds[(0, "notes")]
    assert sorted(folds) == list(range(K))
    split_of = {f: dict(zip(r.column("track_id").to_pylist(), r.column("split").to_pylist(), strict=True))
                for f, r in folds.items()}  # fmt: skip
    ids = set(split_of[0])
    assert len(ids) == 48 and all(set(s) == ids for s in split_of.values())
    test = {f: {t for t, s in split_of[f].items() if s == "test"} for f in folds}
    val = {f: {t for t, s in split_of[f].items() if s == "validation"} for f in folds}
    assert set().union(*test.values()) == ids and sum(len(t) for t in test.values()) == len(ids)
    for f in folds:
        assert val[f] == test[(f - 1) % K], "validation of fold i is the test set of fold i-1 (test = fold i+1)"
        assert not val[f] & test[f]
    # the splits of every fold are saved with the run
    saved = sorted(p.name for p in (ctx.run_dir / "splits").glob("*.parquet"))
    assert saved == [f"instrument__notes__fold{f}.parquet" for f in range(K)]
    assert pq.read_table(ctx.run_dir / "splits" / "instrument__notes__fold1.parquet").column("split").to_pylist() == [
        split_of[1][t] for t in folds[1].column("track_id").to_pylist()
    ]
    # each fold's file keeps its test set's digest in its footer, the one computed from its rows: read without the
    # stored digests (a run written before they were kept), the run's test sets are the same
    splits = ctx.run_dir / "splits"
    stored = {p.name: pq.read_metadata(p).metadata[DIGEST_KEY] for p in sorted(splits.glob("*.parquet"))}
    digests = {n: json.loads(v)["digest"] for n, v in stored.items()}
    assert len(set(digests.values())) == K and all(
        d == digest_test_rows(pq.read_table(splits / n)) for n, d in digests.items()
    )
    old = ctx.run_dir.parent.parent / "unstamped"
    (old / "splits").mkdir(parents=True, exist_ok=True)
    for name in stored:
        table = pq.read_table(splits / name)
        pq.write_table(table.replace_schema_metadata({k: v for k, v in table.schema.metadata.items() if k != DIGEST_KEY}),
                       old / "splits" / name)  # fmt: skip
    local = pafs.LocalFileSystem()
    assert (
        run_split_digests(local, str(old))
        == run_split_digests(local, str(ctx.run_dir))
        == {("instrument", "notes"): ",".join(digests[f"instrument__notes__fold{f}.parquet"] for f in range(K))}
    )
    # every track is some fold's test track: all 48 are deformed (not only one fold's test split)
    assert embedded.computed == 48 + 48 and embedded.rows_by_scenario["D1"] == 48


def test_results_have_every_fold_and_test_sets_cover_the_data(kfold):
    _, ctx, _, trained, res = kfold
    assert trained["trained"] == K
    assert sorted(p.name for p in (ctx.run_dir / "groups").glob("*.parquet")) == [
        f"instrument__notes__mfcc-stats__fold{f}.parquet" for f in range(K)
    ]
    agg = res[res["label"].isna() & (res["metric"] == "accuracy")]
    assert sorted(agg["fold"].unique()) == list(range(K))
    clean = agg[agg["scenario"] == "clean"]
    assert len(clean) == K and clean["n_test"].sum() == 48
    assert set(agg["scenario"]) == {"clean", "D1"}
    assert (agg["fold_overlap"] == 0).all()  # the evaluation measured the folds' test sets: disjoint

    summary = pq.read_table(ctx.run_dir / "summary.parquet").to_pandas()
    row = summary[(summary["scenario"] == "clean") & (summary["metric"] == "accuracy") & summary["label"].isna()]
    assert row["n_folds"].tolist() == [K] and row["n_seeds"].tolist() == [1]
    assert row["mean"].iloc[0] == pytest.approx(clean["value"].mean())
    assert row["std"].iloc[0] == pytest.approx(clean["value"].std(ddof=1))


def test_tables_average_folds_and_confusion_pools_them(kfold):
    _, ctx, _, _, res = kfold
    run = load_run(ctx.run_dir)
    table = make_table(run.results, "all_deform_all_models")
    j = table.columns.index(("accuracy", "clean"))
    clean = res[res["label"].isna() & (res["metric"] == "accuracy") & (res["scenario"] == "clean")]
    assert table.mean[0, j] == pytest.approx(clean["value"].mean()) and table.n[0, j] == K
    assert (table.n_seeds[0, j], table.n_folds[0, j]) == (1, K)

    rob = make_table(run.results, "robustness")
    k = rob.columns.index(("accuracy", "Δ D1"))
    d1 = res[res["label"].isna() & (res["metric"] == "accuracy") & (res["scenario"] == "D1")]
    deltas = d1.sort_values("fold")["value"].to_numpy() - clean.sort_values("fold")["value"].to_numpy()
    assert rob.mean[0, k] == pytest.approx(deltas.mean())  # paired fold by fold
    # every fold's D1 holds its clean test tracks: each fold's Δ is over all of them
    assert d1.sort_values("fold")["delta"].to_numpy() == pytest.approx(deltas) and d1["n_delta"].sum() == 48
    assert "paired by seed and fold" in rob.caption

    # one confusion record per fold on disk, pooled into one matrix over all 48 test tracks
    assert len(list((ctx.run_dir / "confusion").glob("*__clean__fold*.json"))) == K
    pooled = [m for key, (_, m) in run.confusion.items() if key.scenario == "clean"]
    assert len(pooled) == 1 and int(np.sum(pooled[0])) == 48

    # the report says what its spread is over
    html = write_report([ctx.run_dir], ctx.run_dir / "report.html").read_text()
    assert f"over {K} seeds × folds" in html and f"1 seed, {K} folds, clean + 1 deformation scenario<" in html


def test_plan_counts_folds_and_a_lost_fold_is_the_only_one_retrained(kfold):
    cfg, ctx, _, _, _ = kfold
    plan = make_plan(cfg, store=ctx.store, run_dir=ctx.run_dir)
    assert (plan.trainings, plan.trainings_done, plan.test_cells) == (K, K, 2 * K)
    # done, as every other line of the plan says it (it said "test cells: 10 (training × …)")
    assert f"test cells:         {2 * K} ({2 * K} done; training × clean" in plan.text(), plan.text()
    (ctx.run_dir / "groups" / "instrument__notes__mfcc-stats__fold1.parquet").unlink()
    assert make_plan(cfg, store=ctx.store, run_dir=ctx.run_dir).test_cells_done == 2 * (K - 1)
    again = runner.stage_train(ctx)
    assert (again["trained"], again["skipped"]) == (1, K - 1)
    res = runner.stage_evaluate(ctx).to_pandas()
    assert sorted(res["fold"].unique()) == list(range(K))


#: what an official fold without tracks says: the groups it stops and the fix, which n_folds is not (TinySOL's sample)
OFFICIAL_FIX = (
    "so fold 1 validates and fold 0 tests on no track — the data set's official folds are read as they are, whatever "
    "n_folds: check dataset.dir holds the whole data set, or run one official fold whose splits all hold tracks "
    "(split_type: single, dataset.fold; `repeval datasets tinysol` says which it has)"
)


def test_official_folds_of_real_tinysol_and_an_empty_test_fold_names_the_fold(ray_session, shared_data, tmp_path):
    """TinySOL's official folds (real recordings, mirdata loader): the 12-track sample has no track in fold 1,
    so fold 0 has no test split — the error names the fold and the fix, before any probe trains."""
    tinysol = tinysol_mini(shared_data, split_type="all")
    cfg = config(tmp_path, "tiny", tinysol, {"name": "linear", "hidden_units": [], "epochs": 5})
    ctx = runner.make_context(cfg)
    assert runner.stage_embed(ctx).computed == 12  # no deformations: every track once, clean
    folds = ctx.folds[(0, "tinysol")]
    tests = {
        f: set(r.filter(pc.equal(r.column("split"), "test")).column("track_id").to_pylist()) for f, r in folds.items()
    }
    assert sum(len(t) for t in tests.values()) == 12 and tests[0] == set()  # official fold 1 is empty here
    with pytest.raises(ValueError) as err:
        runner.stage_train(ctx)
    # every grid that cannot train is named at once (fold 1 is fold 0's test and its own validation)
    msg = str(err.value)
    # the task is named (two tasks may read one dataset with other splits), and the fold holds no track at all:
    # said once, not as fold 0's empty test split and again as fold 1's empty validation split
    assert (
        msg == f"instrument on tinysol: fold 1 of 5 holds none of its 12 tracks, {OFFICIAL_FIX} — nothing was trained"
    ), msg
    assert "split_ratios" not in msg  # split_type all refuses them: not a fix of a fold
    # `repeval plan` says so before anything is embedded or trained
    from repeval.plan import make_plan

    notes = make_plan(cfg, store=ctx.store).notes
    assert any(
        n.startswith("`repeval run` would stop before embedding: instrument on tinysol: fold 1 of 5 holds none")
        for n in notes
    )
    assert sum("instrument on tinysol" in n for n in notes) == 1, notes
    assert not list((ctx.run_dir / "groups").glob("*.parquet"))


def test_official_folds_rotate_over_all_of_them_and_an_empty_one_is_named_whatever_n_folds(shared_data, tmp_path):
    """TinySOL's 12-track sample has no track in official fold 1. With n_folds: 3 the groups still rotate over the 5
    official folds (group 2 tests on fold 3 and trains on folds 0, 1 and 4), but the plan said "fold 2 trains on no
    track" from a rotation over 3; on one split (fold 0: test = the empty fold 1) it said the loader gave every track
    an official train/validation/test split, and named no fold."""
    from repeval.plan_progress import load_notes
    from repeval.run.split_check import fold_hint
    from repeval.runner import RunContext, load_rows

    tinysol = tinysol_mini(shared_data)
    probe = {"name": "linear", "hidden_units": [], "epochs": 1}

    def said(**keys):
        cfg = config(tmp_path, "tiny", {**tinysol, **keys}, probe)
        return [n for n in load_notes(cfg) if "instrument on tinysol" in n]  # what `repeval plan` says, no store

    (note,) = said(split_type="all", n_folds=K)  # the fix said was fewer n_folds, which leaves fold 1 empty
    assert note.endswith(f"instrument on tinysol: fold 1 of 3 holds none of its 12 tracks, {OFFICIAL_FIX}"), note
    (note,) = said(fold=0)
    assert note.endswith(
        "instrument on tinysol: the test split holds none of its tracks — the dataset's 12 tracks are split train 6, "
        "validation 6, test 0: its official folds give every track its split (validation = fold 0 (dataset.fold), test "
        "= fold 1, train = the rest), and the official fold 1 holds none of these tracks, so split_ratios drew none — "
        "set dataset.fold to another of its official folds (`repeval datasets tinysol` says which it has), or check "
        "dataset.dir holds the whole data set"
    ), note
    (note,) = said(fold=1)
    assert "the validation split holds none" in note and "the official fold 1 holds none of these tracks" in note
    assert said(fold=2) == []  # validation = fold 2, test = fold 3, train = folds 0 and 4
    # what a probe's error adds: group 2 of 3 tests on official fold 3, not on fold 0
    ctx = RunContext(
        config(tmp_path, "tiny", {**tinysol, "split_type": "all", "n_folds": K}, probe), "p", tmp_path, None
    )
    load_rows(ctx, save=False)
    assert fold_hint(ctx, 0, "tinysol", 2, fix=False) == " (fold 2 of 3: validation = fold 2, test = fold 3)"
    # a probe's error on a fold too small: its fix is not fewer n_folds, which leaves the official folds as they are
    assert fold_hint(ctx, 0, "tinysol", 2) == fold_hint(ctx, 0, "tinysol", 2, fix=False)


def test_the_grids_dead_folds_stop_and_the_count_of_further_problems():
    """With 3 folds a fold without tracks (or whose tracks all failed) is also the only training fold of a third grid,
    which said it again as its own empty train split; and the stage's error counted distinct problems as "probe
    grid(s)"."""
    from repeval.run.split_check import fold_stops, untrainable

    # each group by the splits it has no track in (group g validates on fold g, tests on fold g+1, trains on the rest)
    assert fold_stops({0: {"validation"}, 1: {"train"}, 2: {"test"}}) == {"validates": [0], "tests": [2], "trains": [1]}
    assert fold_stops({0: {"test"}, 1: {"validation"}, 2: (), 3: ()}) == {"validates": [1], "tests": [0], "trains": []}
    # every split of every group: nothing to model (2 official folds, or n_folds below the official count)
    assert fold_stops({0: {"train"}, 1: {"train", "test"}}) == {"validates": [], "tests": [1], "trains": [0, 1]}
    assert untrainable(["a", "b", "a"]) == "a (and 1 more problem: b) — nothing was trained"
    assert untrainable(["a", "b", "c", "d", "e"]) == "a (and 4 more problems: b; c; d; …) — nothing was trained"
    assert untrainable(["a", "a"]) == "a — nothing was trained"


def test_a_grid_that_cannot_train_stops_the_stage_before_any_batch_trains(
    ray_session, rendered_notes, shared_data, tmp_path
):
    """Groups train in batches (here one per group); a later group whose split is empty (TinySOL's official
    fold 1 is empty in the 12-track sample) is found before the first batch trains, not after hours of work."""
    datasets = [
        {"name": "notes", "type": "catalog", "manifest": str(rendered_notes), "label_column": "instrument",
         "split_type": "all", "n_folds": K, "split_seed": 3},
        tinysol_mini(shared_data, split_type="all"),
    ]  # fmt: skip
    cfg = parse_config(
        {
            "run": {"run_id": "late", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs"),
                    "train_batch_mb": 0},
            "experiments": [
                {
                    "task": {"name": "instrument", "type": "multiclass_classification"},
                    "datasets": datasets,
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"name": "linear", "hidden_units": [], "epochs": 3}],
                }
            ],
        }
    )  # fmt: skip
    ctx = runner.make_context(cfg)
    runner.stage_embed(ctx)
    with pytest.raises(ValueError, match=r"^instrument on tinysol: fold 1 of 5 holds none of its"):
        runner.stage_train(ctx)
    assert not list((ctx.run_dir / "groups").glob("*.parquet"))  # the notes folds before it did not train either
    assert not (ctx.run_dir / "tune").exists() or not any((ctx.run_dir / "tune").iterdir())


def test_folds_train_as_one_batch_and_equal_one_experiment_per_fold(kfold):
    cfg, ctx, _, _, res = kfold
    batches = sorted(p.name for p in (ctx.run_dir / "tune").glob("groups-*") if p.is_dir())
    assert len(batches) == 1 and batches[0].startswith(f"groups-{K}-")  # the K fold grids share one experiment
    # run.train_batch_mb: 0 — one experiment per fold, on the same embeddings: the same results
    run = cfg.run.model_copy(update={"run_id": "kf-apart", "train_batch_mb": 0})
    apart = runner.make_context(cfg.model_copy(update={"run": run}))
    assert runner.stage_train(apart)["trained"] == K
    assert sorted(p.name for p in (apart.run_dir / "tune").iterdir() if p.is_dir()) == [
        f"instrument__notes__mfcc-stats__fold{f}" for f in range(K)
    ]
    other = runner.stage_evaluate(apart).to_pandas()
    cols = ["fold", "probe", "seed", "scenario", "metric", "label", "value", "n_test"]
    key = ["fold", "scenario", "metric", "label"]
    a = res[cols].sort_values(key, na_position="first").reset_index(drop=True)
    b = other[cols].sort_values(key, na_position="first").reset_index(drop=True)
    assert len(a) > 0
    assert a.equals(b)


def test_augmenting_a_fold_adds_that_folds_training_tracks_deformed(kfold):
    """``augment`` on k folds: each fold's probes get the deformed copies of that fold's own training tracks."""
    from repeval.tuning.data import probe_data

    _, ctx, _, _, _ = kfold
    ids, _, deformed = ctx.store.partition("notes", "mfcc-stats", "D1").embeddings()
    by_id = dict(zip(ids, deformed, strict=True))
    for f, rows in ctx.folds[(0, "notes")].items():
        plain = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", ["D1"])
        aug = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", ["D1"], augment=["D1"])
        train = sorted(t for t, s in zip(rows["track_id"].to_pylist(), rows["split"].to_pylist(), strict=True)
                       if s == "train")  # fmt: skip
        n = len(plain.x_train)
        assert n == len(train) and len(aug.x_train) == 2 * n, f"fold {f}"
        np.testing.assert_array_equal(aug.x_train[n:], np.stack([by_id[t] for t in train]))
        np.testing.assert_array_equal(aug.y_train, np.concatenate([plain.y_train, plain.y_train]))


def test_folds_that_cannot_rotate_are_refused_and_partly_fixed_splits_warned(rendered_notes, tmp_path, caplog):
    """``split_type: all`` on a manifest whose split column gives every track its split: the k "folds" would be one
    split trained and tested k times (reported as k-fold cross-validation) — refused, naming the fix. A split column
    that fixes some tracks only: those tracks are tested in every fold or in none — a warning says so."""
    import csv

    from repeval.config.data import DatasetConfig, TaskConfig
    from repeval.datasets import load_folds

    task = TaskConfig(name="instrument", type="multiclass_classification")
    fixed = DatasetConfig(**notes_dataset(rendered_notes, split_type="all", n_folds=K))
    with pytest.raises(ValueError, match=r"all 3 folds have the same splits .*split column 'split'.*drop split_column"):
        load_folds(fixed, task)

    with open(rendered_notes, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):  # two tracks keep their manifest split (test), the others rotate
        r["split"] = "test" if i < 2 else ""
        r["audio_path"] = str(rendered_notes.parent / r["audio_path"])
    manifest = tmp_path / "partly.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    partly = DatasetConfig(**notes_dataset(manifest, split_type="all", n_folds=K))
    folds = load_folds(partly, task)
    assert sorted(folds) == list(range(K))
    assert re.search(r"of 48 tracks, \d+ are tested in no fold and 2 in several of the 3 folds", caplog.text)


def test_the_interval_of_a_mean_over_folds_combines_the_folds_disjoint_test_sets():
    """Each fold's bootstrap interval is over its own test tracks (a k-th of the data); the folds' mean is over every
    track, so its interval is narrower: half-width sqrt(Σ h²)/k, not one fold's h. Seeds of one split share their
    test set: their intervals are averaged, as before."""
    from repeval.report.results import normalise_results
    from repeval.tuning.results import results_table, seed_summary

    def rows(folds, seeds):
        return [
            {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": "m", "probe": "p",
             "seed": s, "fold": f, "scenario": "clean", "metric": "accuracy", "label": None, "value": v,
             "ci_low": v - h, "ci_high": v + 2 * h, "n_test": 30}
            for s in seeds
            for f, v, h in folds
        ]  # fmt: skip

    kfold = results_table("r", rows([(0, 0.5, 0.1), (1, 0.6, 0.1), (2, 0.7, 0.2), (3, 0.6, 0.2)], seeds=(0, 1)))
    half = np.sqrt(0.1**2 + 0.1**2 + 0.2**2 + 0.2**2) / 4  # ≈ 0.079, where one fold's is 0.1–0.2
    (summary,) = seed_summary(kfold).to_pylist()
    assert summary["mean"] == pytest.approx(0.6) and (summary["n_seeds"], summary["n_folds"]) == (2, 4)
    assert summary["ci_low"] == pytest.approx(0.6 - half) and summary["ci_high"] == pytest.approx(0.6 + 2 * half)
    table = make_table(normalise_results(kfold.to_pandas()), "all_deform_all_models")
    assert (table.ci_low[0, 0], table.ci_high[0, 0]) == pytest.approx((0.6 - half, 0.6 + 2 * half))

    one_split = results_table("r", rows([(None, 0.5, 0.1)], seeds=(0,)) + rows([(None, 0.7, 0.2)], seeds=(1,)))
    (summary,) = seed_summary(one_split).to_pylist()
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((0.45, 0.9))  # the seeds' bounds, averaged


def test_tables_say_what_the_spread_is_over_and_mark_a_cell_missing_a_fold():
    """A table's ± is the sample std over seeds × folds, and its caption says so in every format; a cell that lost a
    replicate (a failed training: its mean is over other test tracks) is marked with its n, not passed off as
    comparable to the others."""
    from repeval.report.render import render
    from repeval.report.results import normalise_results
    from repeval.tuning.results import results_table

    rows = [
        {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": m, "probe": "p", "seed": s,
         "fold": f, "scenario": "clean", "metric": "accuracy", "label": None, "value": 0.5 + 0.1 * f, "n_test": 30}
        for m in ("a", "b") for s in (0, 1) for f in range(K)
        if not (m == "b" and s == 1 and f == 0)  # b's training on fold 0 failed for seed 1
    ]  # fmt: skip
    table = make_table(normalise_results(results_table("r", rows).to_pandas()), "all_deform_all_models")
    assert table.n[:, 0].tolist() == [2 * K, 2 * K - 1]  # replicates: seeds × folds
    assert table.n_seeds[:, 0].tolist() == [2, 2] and table.n_folds[:, 0].tolist() == [K, K]
    for fmt in ("plain", "markdown", "latex", "html"):
        text = " ".join(render(table, fmt).replace("│", " ").split())  # the terminal wraps its caption
        assert "mean ± sample std over 2 seeds × 3 folds" in text.replace(r"$\pm$", "±").replace(r"$\times$", "×"), fmt
        assert text.count("(n=5)") == 1 and text.count("(n=") == 2, fmt  # b's cell, and the caption saying why


def test_the_probe_capacity_figure_shows_the_spread_the_tables_show():
    """The figure's error bars were the std over seeds of each seed's mean over folds: none with one seed, where the
    tables show the spread over the folds. Now both are over seeds × folds."""
    from repeval.report import plots
    from repeval.report.results import normalise_results
    from repeval.tuning.results import results_table

    rows = [
        {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": "m", "probe": p, "seed": 0,
         "fold": f, "scenario": "clean", "metric": "accuracy", "label": None, "value": v + 0.1 * f, "n_test": 30}
        for p, v in (("M1", 0.4), ("M2", 0.6)) for f in range(K)
    ]  # fmt: skip
    results = normalise_results(results_table("r", rows).to_pandas())
    table = make_table(results, "all_deform_all_models")
    fig = plots.probe_capacity_curves(results, "t", "d", "accuracy")
    (bars,) = fig.axes[0].containers[0].lines[2]  # the error bars of the one model's line
    half = [abs(seg[1][1] - seg[0][1]) / 2 for seg in bars.get_segments()]
    assert half == pytest.approx(table.std[:, 0].tolist()) and min(half) == pytest.approx(0.1)


def test_a_sampled_search_space_tries_the_same_configurations_in_every_fold(kfold, rendered_notes, tmp_path):
    """``select: all`` over a search ``space``: each fold's experiment sampled its own configurations, named by its
    trial ids, so no configuration had results over the folds — the table held one row per (fold, sample), each a
    single fold's score, and its best was the best of those. Now every fold samples the same configurations, named
    by their index, so each averages over the folds."""
    from repeval.tuning.data import probe_data
    from repeval.tuning.grid import GroupInput, run_groups

    cfg, ctx, _, _, _ = kfold
    probe = {"name": "rs", "hidden_units": [], "standardize": True, "batch_size": 16, "epochs": 3,
             "search": {"space": {"learning_rate": {"loguniform": [1e-3, 1e-1]}}, "num_samples": 2, "select": "all"}}  # fmt: skip
    space = config(tmp_path, "space", notes_dataset(rendered_notes), probe)
    exp = cfg.experiments[0].model_copy(update={"downstream_models": space.experiments[0].downstream_models})
    resources = cfg.run.resources.model_copy(update={"max_concurrent_trials": 1})  # one trial actor, reused
    run = cfg.run.model_copy(update={"resources": resources})
    folds = ctx.folds[(0, "notes")]
    inputs = [
        GroupInput(exp, "notes", "mfcc-stats", probe_data(exp.task.effective_type, folds[f], ctx.store, "notes",
                   "mfcc-stats", ["D1"]), f"instrument__notes__mfcc-stats__fold{f}", fold=f)
        for f in (0, 1)
    ]  # fmt: skip
    out = run_groups(cfg.model_copy(update={"run": run}), inputs, str(tmp_path / "tune"))
    tried = [{p["probe"]: p["params"] for p in g.probes} for g in out]
    assert sorted(tried[0]) == ["rs-00000", "rs-00001"] and tried[0] == tried[1]  # the same configurations
    assert len(set(tried[0].values())) == 2
    tested = [{(r["probe"], r["scenario"]) for r in g.rows} for g in out]
    assert tested[0] == tested[1] == {(p, s) for p in tried[0] for s in ("clean", "D1")}
