"""The interval of a mean over k folds whose test sets overlap (a split column fixing some tracks, MTG-Jamendo's
official split-k run as folds): the folds' estimates are correlated, so their bounds are not combined as disjoint
ones. The overlap is measured on the folds' saved splits (``fold_overlap``) and recorded with the results."""

from __future__ import annotations

import csv
import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from repeval.tuning.results import mean_intervals, results_table, seed_summary

FOLDS = [(0, 0.5, 0.1), (1, 0.6, 0.1), (2, 0.7, 0.2), (3, 0.6, 0.2)]  # (fold, value, half-width below)


def _rows(overlap: float | None, dataset: str = "d") -> list[dict]:
    return [
        {"task": "t", "task_type": "multiclass_classification", "dataset": dataset, "model": "m", "probe": "p",
         "seed": s, "fold": f, "scenario": "clean", "metric": "accuracy", "label": None, "value": v,
         "ci_low": v - h, "ci_high": v + 2 * h, "n_test": 30, "fold_overlap": overlap}
        for s in (0, 1)
        for f, v, h in FOLDS
    ]  # fmt: skip


def _bounds(df: pd.DataFrame) -> tuple[float, float]:
    (row,) = mean_intervals(df, ["dataset"]).itertuples(index=False)
    return row.ci_low, row.ci_high


def test_mean_intervals_combine_disjoint_folds_and_widen_for_overlapping_ones():
    """Disjoint folds (``fold_overlap`` 0, or null: a run before it was recorded): half-width sqrt(Σ h²)/k. Folds that
    all test the same tracks (ρ = 1): the folds' bounds averaged, as seeds' are — the mean of k estimates on one test
    set is known no better than one of them. In between: Var = ((1 − ρ) Σ h² + ρ (Σ h)²) / k²."""
    hs = np.array([h for _, _, h in FOLDS])
    disjoint = np.sqrt((hs**2).sum()) / 4
    for overlap in (0.0, None):
        lo, hi = _bounds(results_table("r", _rows(overlap)).to_pandas())
        assert (lo, hi) == pytest.approx((0.6 - disjoint, 0.6 + 2 * disjoint))

    lo, hi = _bounds(results_table("r", _rows(1.0)).to_pandas())
    averaged = hs.mean()  # = the folds' own bounds, averaged
    assert (lo, hi) == pytest.approx((np.mean([v - h for _, v, h in FOLDS]), 0.6 + 2 * averaged))
    assert lo == pytest.approx(0.6 - averaged) and hi - lo > 2.5 * disjoint

    rho = 0.25
    lo, hi = _bounds(results_table("r", _rows(rho)).to_pandas())
    between = np.sqrt((1 - rho) * (hs**2).sum() + rho * hs.sum() ** 2) / 4
    assert (lo, hi) == pytest.approx((0.6 - between, 0.6 + 2 * between))
    assert disjoint < between < averaged

    # the summary a run writes says the same, per dataset: an overlapping one beside a disjoint one
    both = results_table("r", _rows(1.0, "overlapping") + _rows(0.0, "disjoint"))
    by_dataset = {r["dataset"]: (r["ci_low"], r["ci_high"]) for r in seed_summary(both).to_pylist()}
    assert by_dataset["overlapping"] == pytest.approx((0.6 - averaged, 0.6 + 2 * averaged))
    assert by_dataset["disjoint"] == pytest.approx((0.6 - disjoint, 0.6 + 2 * disjoint))


def _partly_fixed(rendered_notes, tmp_path, fixed: int):
    """The rendered notes' 3 folds with ``fixed`` tracks kept in the test split by the manifest's split column (tested
    in every fold), the others rotating."""
    from repeval.config.data import DatasetConfig, TaskConfig
    from repeval.datasets import load_folds
    from repeval.testing.configs import notes_dataset, notes_manifest

    with open(rendered_notes, newline="") as f:
        rows = [{**r, "split": "test" if i < fixed else ""} for i, r in enumerate(csv.DictReader(f))]
    manifest = notes_manifest(rendered_notes, tmp_path / f"fixed{fixed}.csv", rows)
    ds = DatasetConfig(**notes_dataset(manifest, split_type="all", n_folds=3, split_column="split" if fixed else None))
    return load_folds(ds, TaskConfig(name="instrument", type="multiclass_classification"))


def test_fold_overlap_is_measured_on_the_folds_test_sets(rendered_notes, tmp_path):
    from repeval.datasets.load import fold_test_overlap

    assert fold_test_overlap(list(_partly_fixed(rendered_notes, tmp_path, 0).values())) == 0.0  # k-fold: disjoint
    folds = _partly_fixed(rendered_notes, tmp_path, 6)
    tests = [set(t.filter(pc.equal(t.column("split"), "test")).column("track_id").to_pylist())
             for t in folds.values()]  # fmt: skip
    assert all(len(tests[0] & t) == 6 for t in tests[1:])  # the fixed tracks, in every fold's test set
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([6 / np.sqrt(len(tests[a]) * len(tests[b])) for a, b in pairs])
    assert fold_test_overlap(list(folds.values())) == pytest.approx(expected) and 0 < expected < 1
    assert fold_test_overlap([folds[0], folds[0]]) == pytest.approx(1.0)
    assert fold_test_overlap([folds[0]]) is None
    # folds that each hold their own rows (MTG-Jamendo's split-k): matched by track id
    a = pa.table({"track_id": list("abcdxy"), "split": ["test"] * 4 + ["train"] * 2})
    b = pa.table({"track_id": list("cdefz"), "split": ["test"] * 4 + [None]})
    assert fold_test_overlap([a, b]) == pytest.approx(2 / 4)


def test_the_evaluation_records_the_overlap_and_the_report_says_so(rendered_notes, tmp_path):
    """A run's evaluation measures the overlap on the splits it saved and records it in every row of the dataset's
    folds; the summary's and the report's interval allow for it, and the table's caption says which interval it is.
    Results evaluated before it was recorded get it from the splits when the report reads them."""
    from repeval.report.render import render
    from repeval.report.results import load_run
    from repeval.report.tables import make_table
    from repeval.run.evaluate import stage_evaluate
    from repeval.run.fold_overlap import fold_overlaps

    folds = _partly_fixed(rendered_notes, tmp_path, 6)
    run_dir = tmp_path / "run"
    (run_dir / "splits").mkdir(parents=True)
    (run_dir / "groups").mkdir()
    for f, rows in folds.items():
        pq.write_table(rows, run_dir / "splits" / f"t__d__fold{f}.parquet")
    rows = [r for r in _rows(None) if r["fold"] < 3]
    pq.write_table(results_table("r", rows), run_dir / "groups" / "t__d__m.parquet")
    table = stage_evaluate(types.SimpleNamespace(run_dir=run_dir)).to_pandas()
    rho = fold_overlaps(run_dir, [("t", "d", f) for f in range(3)])[("t", "d")]
    assert 0 < rho < 1 and table["fold_overlap"].tolist() == pytest.approx([rho] * len(rows))

    hs = np.array([h for _, _, h in FOLDS[:3]])
    half = np.sqrt((1 - rho) * (hs**2).sum() + rho * hs.sum() ** 2) / 3
    (summary,) = pq.read_table(run_dir / "summary.parquet").to_pylist()
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((0.6 - half, 0.6 + 2 * half))
    assert half > np.sqrt((hs**2).sum()) / 3  # wider than the disjoint folds' interval

    t = make_table(load_run(run_dir).results, "all_deform_all_models")
    assert (t.ci_low[0, 0], t.ci_high[0, 0]) == pytest.approx((0.6 - half, 0.6 + 2 * half))
    for fmt in ("plain", "html"):
        text = " ".join(render(t, fmt).split())
        assert f"CI: the folds share test tracks (ρ = {rho:.2f}" in text, fmt
    assert "folds combined as sharing test tracks" in render(t, "html")
    assert rf"the folds share test tracks ($\rho$ = {rho:.2f})" in " ".join(render(t, "latex").split())

    # results evaluated before the overlap was recorded: the report measures it on the saved splits
    old = pq.read_table(run_dir / "results.parquet").drop_columns(["fold_overlap"])
    pq.write_table(old, run_dir / "results.parquet")
    t = make_table(load_run(run_dir).results, "all_deform_all_models")
    assert (t.ci_low[0, 0], t.ci_high[0, 0]) == pytest.approx((0.6 - half, 0.6 + 2 * half))


def test_a_small_overlap_is_said_as_it_is():
    """One track fixed in a large data set's test split overlaps the folds by a little: the caption said "the folds
    share test tracks (ρ = 0.00)"; it gives two decimals from 0.005 up, below that the overlap's first two significant
    digits (not "9e-05")."""
    from repeval.report.cells import overlap_note

    rows = pd.DataFrame(_rows(0.004)[:4])
    assert "(ρ = 0.004)" in overlap_note(rows)
    # one track shared among a large data set's 11,000 test tracks: not in scientific notation ("9e-05")
    assert "(ρ = 0.000091)" in overlap_note(rows.assign(fold_overlap=1 / 11_000))
    assert "(ρ = 0.17)" in overlap_note(rows.assign(fold_overlap=1 / 6))
    assert overlap_note(rows.assign(fold_overlap=0.0)) == ""


def test_a_missing_splits_file_is_said_missing_and_a_corrupt_one_unreadable(tmp_path, caplog):
    """A run without its folds' splits files was warned of as "unreadable": it says they are missing (which), and
    that the folds are then taken as disjoint; a file cut short is still unreadable."""
    from repeval.run.fold_overlap import fold_overlaps

    splits = tmp_path / "splits"
    splits.mkdir()
    pq.write_table(pa.table({"track_id": ["a", "b"], "split": ["test", "train"]}), splits / "t__d__fold0.parquet")
    with caplog.at_level("WARNING", logger="repeval.runner"):
        assert fold_overlaps(tmp_path, [("t", "d", 0), ("t", "d", 1), ("t", "d", 2)]) == {}
    said = " ".join(caplog.text.split())
    assert (
        f"t / d: 2 splits files of its folds missing from {splits} (t__d__fold1.parquet, t__d__fold2.parquet)" in said
    )
    assert "takes their test tracks as disjoint" in said and "unreadable" not in said, said
    caplog.clear()
    for k in (1, 2):
        (splits / f"t__d__fold{k}.parquet").write_bytes(b"PAR1 cut short")
    with caplog.at_level("WARNING", logger="repeval.runner"):
        assert fold_overlaps(tmp_path, [("t", "d", k) for k in range(3)]) == {}
    assert "t / d: its folds' splits are unreadable (" in caplog.text and "of its folds missing" not in caplog.text, (
        caplog.text
    )
