"""Probe grids: inputs checked before training, how select: best chooses, and the train stage's summary line."""

from __future__ import annotations

import pytest
from grid_cases import config

from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group
from repeval.tuning.group import left_out


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
