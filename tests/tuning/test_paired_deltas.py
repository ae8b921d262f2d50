"""Robustness Δ compares clean and deformed results on the same test tracks, when a scenario lost a track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_probe_data import write_partition

from repeval.metrics import compute_metrics
from repeval.report.results import normalise_results
from repeval.report.tables import make_table
from repeval.store import EmbeddingStore
from repeval.tuning import trial
from repeval.tuning.data import probe_data
from repeval.tuning.results import results_table, seed_summary


def test_delta_is_over_the_tracks_clean_and_the_scenario_share(tmp_path: Path) -> None:
    """A test track that failed under one scenario only (no row in that partition: its error record) made that
    scenario's test set smaller, and Δ — the deformed metric minus the clean one — compared different tracks. Here
    ``noise`` lost t0 (which clean got wrong) and ``gain`` has t5, whose clean embedding failed: each deformed row's
    ``delta`` is now both metrics on the shared tracks (``n_delta``), while ``value`` / ``n_test`` keep each whole test
    set; the summary, the robustness table and its caption follow."""
    ids = [f"t{i}" for i in range(6)] + [f"r{i}" for i in range(8)]
    splits = ["test"] * 6 + ["train"] * 6 + ["validation"] * 2
    labels = [["a"], ["b"], ["a"], ["b"], ["a"], ["b"], *[[c] for c in "abababab"]]
    rows = pa.table({"track_id": ids, "split": splits, "label": labels})
    store = EmbeddingStore(str(tmp_path / "store"))
    have = {"clean": [i for i in ids if i != "t5"], "noise": ids[1:6], "gain": ids[:6]}
    for seed, (sid, kept) in enumerate(have.items()):
        write_partition(store, sid, kept, [splits[ids.index(t)] for t in kept], seed, part_rows=4)
    data = probe_data("multiclass_classification", rows, store, "ds", "m", ["noise", "gain"])
    assert [data.tests[s][2] for s in have] == [ids[:5], ids[1:6], ids[:6]]
    wrong = {"clean": {"t0", "t5"}, "noise": {"t1", "t5"}, "gain": {"t0", "t5"}}  # gain changes no prediction
    scores = {
        sid: np.array([np.eye(2)[1 - y if t in wrong[sid] else y] for t, y in zip(tids, yt, strict=True)])
        for sid, (_, yt, tids) in data.tests.items()
    }
    ev = trial.EvalSettings(["accuracy", "f1_macro"], bootstrap_resamples=0, ci_alpha=0.05, seed=0, max_epochs=None)
    out, _ = trial.test_rows(data, scores, ev)
    acc = {r["scenario"]: r for r in out if r["metric"] == "accuracy"}
    assert [(acc[s]["value"], acc[s]["n_test"]) for s in have] == [(0.8, 5), (0.6, 5), (pytest.approx(4 / 6), 6)]
    assert acc["clean"]["delta"] is None and acc["clean"]["n_delta"] is None
    # noise on t1..t4 (t1 now wrong) against clean on t1..t4; gain on t0..t4: the same predictions, no change
    assert (acc["noise"]["delta"], acc["noise"]["n_delta"]) == (pytest.approx(0.75 - 1.0), 4)
    assert (acc["gain"]["delta"], acc["gain"]["n_delta"]) == (pytest.approx(0.0, abs=1e-12), 5)
    per_label = [r for r in out if r["scenario"] == "noise" and r["metric"] == "f1_macro"]
    pos = [ids.index(t) - 1 for t in ("t1", "t2", "t3", "t4")]
    y = data.tests["noise"][1][pos]
    want = {
        r.label: r.value for r in compute_metrics(["f1_macro"], data.task_type, y, scores["noise"][pos], data.classes)
    }
    got_clean = {r.label: r.value for r in compute_metrics(["f1_macro"], data.task_type, y, np.eye(2)[y], data.classes)}
    assert len(per_label) == 3 and {r["label"]: r["delta"] for r in per_label} == pytest.approx(
        {k: want[k] - got_clean[k] for k in want}
    )

    table = results_table("r", [{**r, "task": "inst", "task_type": data.task_type, "dataset": "ds", "model": "m",
                                 "probe": "p", "seed": 0} for r in out])  # fmt: skip
    summary = {(r["scenario"], r["metric"]): r for r in seed_summary(table).to_pylist() if r["label"] is None}
    assert summary[("noise", "accuracy")]["delta_mean"] == pytest.approx(-0.25)
    assert summary[("clean", "accuracy")]["delta_mean"] is None
    t = make_table(normalise_results(table.to_pandas()), "robustness", metrics=["accuracy"])
    # the scenarios in the order the run gave them (noise, gain), not by name
    assert t.columns == [("accuracy", "clean"), ("accuracy", "Δ noise"), ("accuracy", "Δ gain")]
    assert t.mean[0].tolist() == pytest.approx([0.8, -0.25, 0.0])
    assert t.caption == (
        "Δ = deformed minus clean on the same test tracks, paired by seed; test tracks left out of Δ (scored clean or "
        "deformed only): noise 2 for m (Δ over 4); gain 1 for m (Δ over 5)"
    )


def test_a_grid_finished_before_delta_existed_still_joins_the_results(tmp_path: Path) -> None:
    """A run resumed after the upgrade keeps the grids it had finished: their ``groups/*.parquet`` lack ``delta`` and
    ``n_delta``, and collecting them with a new grid's file must not fail (they read as nulls)."""
    from types import SimpleNamespace

    import pyarrow.parquet as pq

    from repeval import runner

    cell = dict(task="t", task_type="regression", dataset="d", probe="p", seed=0, fold=None, metric="r2", label=None)
    new = results_table("r", [{**cell, "model": "new", "scenario": "clean", "value": 0.5, "n_test": 9},
                              {**cell, "model": "new", "scenario": "D1", "value": 0.4, "n_test": 8, "delta": -0.2,
                               "n_delta": 8}])  # fmt: skip
    old = results_table("r", [{**cell, "model": "old", "scenario": "D1", "value": 0.3, "n_test": 9}])
    (tmp_path / "groups").mkdir()
    pq.write_table(old.drop_columns(["delta", "n_delta"]), tmp_path / "groups" / "a.parquet")
    pq.write_table(new, tmp_path / "groups" / "b.parquet")
    table = runner.stage_evaluate(SimpleNamespace(run_dir=tmp_path))
    assert table.schema == new.schema
    assert table.select(["model", "delta", "n_delta"]).to_pylist()[::2] == [
        {"model": "old", "delta": None, "n_delta": None},
        {"model": "new", "delta": -0.2, "n_delta": 8},
    ]
    summary = pq.read_table(tmp_path / "summary.parquet").to_pylist()
    assert [(r["model"], r["scenario"], r["delta_mean"]) for r in summary] == [
        ("new", "D1", -0.2),
        ("new", "clean", None),
        ("old", "D1", None),
    ]


def test_a_scenario_that_lost_every_test_track_is_left_out_and_the_rest_is_tested(tmp_path: Path, caplog) -> None:
    """A deformation that failed on every test track (its partition only error records — no part file — or, with
    train tracks deformed too, rows of other splits only) stopped the whole group's training with "has no data: run
    `repeval embed` first" after a run had just embedded it. Now that scenario is left out with a warning naming its
    error records, clean and the other scenarios are tested, and the report still lists its error records."""
    import logging

    import pandas as pd
    import yaml

    from repeval.report.left_out import run_partitions
    from repeval.report.results import Run

    ids = [f"t{i}" for i in range(4)] + [f"r{i}" for i in range(6)]
    splits = ["test"] * 4 + ["train"] * 4 + ["validation"] * 2
    rows = pa.table({"track_id": ids, "split": splits, "label": [[c] for c in "abababab" + "ab"]})
    store = EmbeddingStore(str(tmp_path / "store"))
    write_partition(store, "clean", ids, splits, 0)
    write_partition(store, "gain", ids[:4], splits[:4], 1)
    write_partition(store, "trainonly", ids[4:8], splits[4:8], 2)  # "loud": no partition file at all
    with caplog.at_level(logging.WARNING, logger="repeval.tuning.data"):
        data = probe_data("multiclass_classification", rows, store, "ds", "m", ["loud", "gain", "trainonly"])
    assert list(data.tests) == ["clean", "gain"] and data.tests["gain"][2] == ids[:4]
    for sid in ("loud", "trainonly"):
        (msg,) = [r.getMessage() for r in caplog.records if f"scenario {sid!r}" in r.getMessage()]
        assert "not evaluated" in msg and f"repeval store show {tmp_path / 'store'} ds/m/{sid} --errors" in msg

    config = {
        "experiments": [
            {
                "task": {"name": "inst", "type": "multiclass_classification"},
                "datasets": [{"name": "ds", "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                "deformations": [
                    {"name": n, "steps": [{"type": "Gain", "params": {"p": 1}}]} for n in ("gain", "loud")
                ],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"name": "linear", "type": "classifier", "hidden_units": []}],
            }
        ]
    }
    results = pd.DataFrame({"dataset": ["ds", "ds"], "model": ["mfcc-stats"] * 2, "scenario": ["clean", "gain"]})
    run = Run("r", tmp_path, results, config_text=yaml.safe_dump(config))
    assert run_partitions(run) == [("ds", "mfcc-stats", s) for s in ("clean", "gain", "loud")]
    # a config that no longer validates: the partitions with results
    assert run_partitions(Run("r", tmp_path, results, config_text="experiments: 3")) == [
        ("ds", "mfcc-stats", s) for s in ("clean", "gain")
    ]


def test_what_the_metrics_warn_about_the_tracks_a_delta_is_over_names_them():
    """Δ scores clean and a scenario again on the tracks both hold; what the metrics warned about those tracks said
    no test set. It names them ``clean ∩ <scenario>``, said once with the test sets that warned it word for word."""
    import warnings

    from repeval.metrics import MetricWarning
    from repeval.probes import ProbeData

    x = np.zeros((3, 2), np.float32)
    y = np.array([0, 1, 0])
    tests = {"clean": (x, y, ["t0", "t1", "t2"]), "noise": (x[[0, 2]], y[[0, 2]], ["t0", "t2"])}  # lost t1 (b)
    data = ProbeData("multiclass_classification", ["a", "b"], x, y, x, y, tests)
    scores = {sid: np.eye(2)[yt] for sid, (_, yt, _) in tests.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trial.test_rows(data, scores, trial.EvalSettings(["accuracy"], 0, 0.05, 0, None))
    said = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    assert len(said) == 1 and said[0].startswith("test sets noise, clean ∩ noise: only one class (a) is present"), said


#: what a probe trial's process does: train a unit and test it on a clean and a deformed test set (select: all)
TRIAL_SCRIPT = """
import sys
from repeval.probes.synthetic import gaussian_probe_data
from repeval.config.probe import ProbeConfig
from repeval.tuning.trial import EvalSettings, Member, Unit, run_unit
data = gaussian_probe_data(n=60, d=4, c=2, scenarios=True)
ev = EvalSettings(["accuracy"], bootstrap_resamples=10, ci_alpha=0.05, seed=0, max_epochs=None)
_, reports, _ = run_unit(Unit([Member(0, 0, "p", 0, ProbeConfig(name="p", epochs=2))], evaluate=True), data, ev)
assert {r["scenario"] for r in reports[0]["rows"]} == set(data.tests) and len(data.tests) > 1
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {"scipy", "soundfile", "soxr"}
                      or m.startswith(("repeval.pipeline", "repeval.audio", "repeval.models")))))
"""


def test_testing_a_probe_in_a_trial_imports_no_audio_stack() -> None:
    """Each trial actor's first trial that tests its probes imported the audio stack — scipy, soundfile, soxr,
    repeval's pipeline and models, ~0.3 CPU-s on the thesis benchmark's critical path — because the paired Δ code
    took the clean scenario's id from the pipeline's stages. A trial's process, training and testing a unit on a
    clean and a deformed test set, now imports none of it."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", TRIAL_SCRIPT], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == []
