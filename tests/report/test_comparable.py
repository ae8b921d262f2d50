"""Runs scored on different test sets are not ranked against each other (:mod:`repeval.report.comparable`).

Over several runs the summary cards named one best model of all, the terminal headline likewise, and the tables
starred one best value per column — though a smoke run's 10 test tracks, or another version of the data, give values
that do not compare with a full run's. Each run's test set is its saved split's test rows; where the sets differ,
each set of runs on one test set is ranked on its own, and the report and tables say why.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from comparable_cases import DATASET, TASK, _splits

from repeval.report.comparable import run_sets, run_split_digests, split_digests
from repeval.report.results import CLEAN, load_runs
from repeval.report.selection import combine_validation
from repeval.report.summary import summary_cards, summary_text
from repeval.report.tables import make_table, table_command
from repeval.run.split_digest import DIGEST_KEY, digest_test_rows, file_digest, stored_digest, with_digest
from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Runs ``r1`` and ``r2`` with the same results on the same test tracks, ``v2`` with the same results and as many
    test tracks, other ones (another version of the data)."""
    root = tmp_path_factory.mktemp("comparable")
    spec = dict(experiments=DEFAULT_EXPERIMENTS[:1], models=("A", "B"), model_quality={"A": 0.9, "B": 0.4},
                probes=("M1", "M2"), seeds=(0,), scenarios=(CLEAN, "D1"), n_test=30, n_resamples=5)  # fmt: skip
    dirs = {r: make_run_dir(root, FakeRunSpec(run_id=r, **spec)) for r in ("r1", "r2", "v2")}
    for r, tracks in (("r1", ["t1", "t2", "t3"]), ("r2", ["t3", "t1", "t2"]), ("v2", ["u1", "u2", "u3"])):
        _splits(dirs[r], tracks)
    return dirs


def test_runs_on_the_same_test_tracks_rank_together_and_others_apart(three_runs):
    runs = load_runs(list(three_runs.values()))
    digests = split_digests(runs)
    # the same tracks listed in another order are the same test set; other tracks of one size are not
    assert digests[("r1", TASK, DATASET)] == digests[("r2", TASK, DATASET)] != digests[("v2", TASK, DATASET)]
    df = pd.concat([r.results for r in runs], ignore_index=True)
    assert run_sets(df, digests) == [["r1", "r2"], ["v2"]]
    assert run_sets(df) == [["r1", "r2", "v2"]]  # without the splits: by size alone, which agree
    _splits(three_runs["r2"], ["t1", "t2", "t3"], label="voice")  # the same tracks relabelled: another test set
    try:
        assert run_sets(df, split_digests(runs)) == [["r1"], ["r2"], ["v2"]]
    finally:
        _splits(three_runs["r2"], ["t3", "t1", "t2"])

    lower = df.assign(value=df["value"] - 0.3 * df["run_id"].eq("v2"))  # v2 scored lower: no best of all of it
    t = make_table(lower, "all_deform_all_models", task=TASK, test_sets=digests)
    col = t.columns.index(("accuracy", CLEAN))
    best = {row[:2] for row, flag in zip(t.rows, t.best[:, col], strict=True) if flag}
    # the twins r1 and r2 tie for the best of their test set; v2 has its own best, the same model
    assert {r for r, _ in best} == {"r1", "r2", "v2"} and len({m for _, m in best}) == 1
    assert make_table(lower, "all_deform_all_models", task=TASK).best[:, col].sum() == 2  # ranked together: r1, r2
    assert (
        "the runs' test sets differ (r1 30 test tracks, r2 30, v2 30; other tracks or labels): values on different test "
        "sets are not comparable, the best per column is marked within each set of runs on one test set (r1 + r2; v2)"
    ) in t.caption
    same = make_table(df[df["run_id"] != "v2"], "all_deform_all_models", task=TASK, test_sets=digests)
    assert "test sets differ" not in same.caption
    assert same.best.sum(axis=0).tolist() == [2] * len(same.columns)  # the twins tie in every column
    # `repeval table` reads the runs' splits itself
    text = table_command(list(three_runs.values()), "model_comparison", "plain", task=TASK)
    assert "best per column is marked within each set of runs on one test set (r1 + r2; v2)" in " ".join(text.split())


def test_the_cards_and_the_headline_rank_each_test_set_apart(three_runs):
    runs = load_runs(list(three_runs.values()))
    digests = split_digests(runs)
    df = pd.concat([r.results for r in runs], ignore_index=True)
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    cards = summary_cards(keyed, TASK, DATASET, combine_validation(runs, prefix_models=True), digests)
    assert "<span>not ranked across runs</span><b>2 test sets</b>" in cards
    assert cards.index("not ranked across runs") < cards.index("best on clean")  # the reason before the rankings
    assert "best on clean accuracy in r1 + r2</span>" in cards and "best on clean accuracy in v2</span>" in cards
    probe = {p for m, p in zip(keyed["model"], keyed["probe"], strict=True) if m == "v2/A"}
    assert any(f"<b>r1/A · {p} = r2/A · {p} (tied)</b>" in cards for p in probe)  # twins tie, v2 is not among them
    assert "most robust: accuracy deformed − clean in v2" in cards
    # v2 without clean results has no ranking of its own: r1 and r2's is still named theirs, not that of every run
    no_clean = keyed[~(keyed["run_id"].eq("v2") & keyed["scenario"].eq(CLEAN))]
    cards = summary_cards(no_clean, TASK, DATASET, combine_validation(runs, prefix_models=True), digests)
    assert "<b>2 test sets</b>" in cards and "best on clean accuracy in r1 + r2</span>" in cards
    assert "in v2</span>" not in cards and "(r1 30 test tracks, r2 30, v2 30; other tracks or labels)" in cards
    lines = summary_text(runs).splitlines()
    assert lines[0].startswith(f"{TASK} — {DATASET}: not ranked across runs, the runs' test sets differ (")
    assert any(x.startswith(f"  {TASK} — {DATASET}, accuracy in v2: best on clean v2/A · ") for x in lines)
    # one test set for all: one ranking, as before
    assert "not ranked" not in summary_text(runs[:2]) and "(tied)" in summary_text(runs[:2])
    assert np.all([" in r1" not in x for x in summary_text(runs[:2]).splitlines()])


def test_runs_lists_each_runs_test_set(three_runs):
    from repeval.report.runs import list_runs, runs_text

    root = three_runs["r1"].parent
    sets = {i["run"]: i["test_set"] for i in list_runs(str(root))}
    assert sets["r1"] == sets["r2"] != sets["v2"] and len(sets["v2"]) == 8
    text = runs_text(str(root))
    assert re.search(r"models\s+test set\s+result rows", text)
    assert re.search(rf"^r1 .*  {sets['r1']}  ", text, re.M) and "test set: a digest of the run's saved test" in text
    (root / "r2" / "splits" / f"{TASK}__{DATASET}.parquet").rename(root / "r2" / "kept.parquet")
    try:
        assert {i["run"]: i["test_set"] for i in list_runs(str(root))}["r2"] is None  # no saved split: `-`
    finally:
        (root / "r2" / "kept.parquet").rename(root / "r2" / "splits" / f"{TASK}__{DATASET}.parquet")


def test_runs_says_a_split_file_it_could_not_read(tmp_path):
    """A saved split cut short (or another user's) was left out of `repeval runs`' test-set digest without a word —
    the run then showed another test set than its twin's — and a splits/ folder this user may not list stopped the
    command on pyarrow's PermissionError. Now the run's line names the file and the fix."""
    import os

    from repeval.report.runs import runs_text

    spec = FakeRunSpec(run_id="cut", experiments=DEFAULT_EXPERIMENTS[:1], models=("A",), probes=("M1",), seeds=(0,),
                       scenarios=(CLEAN,), n_test=10, n_resamples=5)  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    _splits(run, ["t1", "t2"])
    split = run / "splits" / f"{TASK}__{DATASET}.parquet"
    os.truncate(split, split.stat().st_size // 2)
    text = runs_text(str(tmp_path))
    assert (
        f"cut: splits/{split.name} is unreadable (cut short or corrupted): the run's test set is not known; the next "
        "`repeval run` on the run writes the splits anew" in text
    ), text


def test_a_split_files_stored_test_digest_is_the_one_computed_from_its_rows(tmp_path):
    """The run keeps each split file's test digest in its footer (``repeval runs`` reads no track ids); a file
    without it (an older run's, or one written by hand) has it computed, the same; a file rewritten with other rows
    but the old metadata is not believed; read through any pyarrow filesystem."""
    ids = ["train-a", "t2", "t1", "v1"]
    table = pa.table({"track_id": ids, "label": [["piano"], ["violin", "flute"], ["flute", "violin"], None],
                      "split": ["train", "test", "test", None]})  # fmt: skip
    run = tmp_path / "run"
    (run / "splits").mkdir(parents=True)
    stamped = with_digest(table)
    found, stored = stored_digest(pq.read_metadata(pq_write(stamped, run / "splits" / "a__d.parquet")))
    assert found and stored is not None and stored == digest_test_rows(table)
    # the same test tracks and labels in another order: one test set
    assert digest_test_rows(table.take([3, 2, 1, 0])) == stored
    pq_write(table, run / "splits" / "b__d.parquet")  # an older run's file: no digest kept, computed
    assert not stored_digest(pq.read_metadata(run / "splits" / "b__d.parquet"))[0]
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())  # another filesystem, paths relative to it
    assert run_split_digests(sub, "run") == {("a", "d"): stored, ("b", "d"): stored}
    # rewritten with another row, keeping the old metadata (read and written back): the stored digest is not used
    other = pa.concat_tables([stamped, pa.table({"track_id": ["t3"], "label": [["piano"]], "split": ["test"]})])
    assert other.schema.metadata[DIGEST_KEY] == stamped.schema.metadata[DIGEST_KEY]
    pq_write(other, run / "splits" / "b__d.parquet")
    assert file_digest(run / "splits" / "b__d.parquet") == digest_test_rows(other) != stored
    # no test rows: none, stored as none and computed as none
    none = with_digest(table.filter(pa.array([True, False, False, True])))
    assert stored_digest(pq.read_metadata(pq_write(none, run / "splits" / "c__d.parquet"))) == (True, None)
    assert digest_test_rows(none) is None and ("c", "d") not in run_split_digests(pafs.LocalFileSystem(), str(run))


def pq_write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path
