"""A full run on rendered instrument notes with a real embedded Ray: embed → probes → results."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.store import EmbeddingStore


@pytest.fixture(scope="module")
def run_config(rendered_notes, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    # one corrupt file among real ones: it must become an error record, not a crash
    manifest = root / "manifest.csv"
    rows = list(csv.DictReader(rendered_notes.open()))
    bad = root / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "audio_path": str(rendered_notes.parent / r["audio_path"])})
        w.writerow({**rows[0], "track_id": "corrupt", "audio_path": str(bad), "split": "test"})
    cfg = {
        "run": {"run_id": "e2e", "store": str(root / "store"), "runs_dir": str(root / "runs"), "part_rows": 16},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [
                    {
                        "name": "notes",
                        "type": "catalog",
                        "manifest": str(manifest),
                        "label_column": "instrument",
                        "split_column": "split",
                    }
                ],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -12, "p": 1}}]],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [
                    {
                        "name": "linear",
                        "hidden_units": [],
                        "standardize": True,
                        "learning_rate": 0.01,
                        "batch_size": 16,
                        "epochs": 60,
                    },
                    {"name": "mlp", "hidden_units": ["infer"], "standardize": True, "batch_size": 16, "epochs": 60},
                ],
                "metrics": ["f1_macro", "accuracy"],
            }
        ],
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_full_run(ray_session, run_config):
    cfg = load_config(run_config)
    ctx = runner.make_context(cfg)
    summary = runner.stage_embed(ctx)
    n_tracks = 48
    n_test = 8  # 4 instruments × round(0.15 × 12) test notes
    assert summary.errors == 2  # the corrupt file, in clean and in the deformed test partition
    assert summary.computed == n_tracks + n_test

    store = EmbeddingStore(cfg.run.store)
    clean = store.partition("notes", "mfcc-stats", "clean")
    d1 = store.partition("notes", "mfcc-stats", "D1")
    assert clean.complete and d1.complete
    m = clean.manifest()
    assert m["rows"] == n_tracks and m["errors"] == 1
    t = pq.read_table(clean.path)  # readable by plain pyarrow
    assert t.num_rows == n_tracks and len(set(t.column("track_id").to_pylist())) == n_tracks
    assert t.schema.field("embedding").type.list_size == 40
    errs = clean.read_errors().to_pylist()
    assert errs[0]["track_id"] == "corrupt" and errs[0]["stage"] == "decode"
    # only the test split is deformed, and the sampled parameters are stored with the embedding
    d1_rows = d1.read().to_pylist()
    assert {r["split"] for r in d1_rows} == {"test"}
    assert json.loads(d1_rows[0]["deformation_params"])[0]["type"] == "Gain"

    # rerunning embeds nothing new
    again = runner.stage_embed(ctx)
    assert again.computed == 0

    t_summary = runner.stage_train(ctx)
    assert t_summary["trained"] == 1 and not t_summary["failed"]
    results = runner.stage_evaluate(ctx).to_pandas()
    agg = results[results["label"].isna()]
    assert set(agg["probe"]) == {"linear", "mlp"}
    assert set(agg["scenario"]) == {"clean", "D1"}
    assert set(agg["metric"]) == {"f1_macro", "accuracy"}
    assert len(agg) == 2 * 2 * 2
    f1 = agg[(agg["metric"] == "f1_macro") & (agg["scenario"] == "clean")]["value"]
    assert f1.max() > 0.5  # chance is 0.25 for 4 balanced classes
    per_label = results[results["label"].notna() & (results["metric"] == "f1_macro")]
    assert set(per_label["label"]) == {"piano", "violin", "trumpet", "flute"}
    assert (ctx.run_dir / "results.parquet").exists()
    assert (ctx.run_dir / "splits" / "instrument__notes.parquet").exists()
    hist = pq.read_table(ctx.run_dir / "history" / "instrument__notes__mfcc-stats.parquet").to_pandas()
    assert hist["epoch"].max() >= 1

    # rerunning train is a no-op: the group's results are kept
    assert runner.stage_train(ctx)["skipped"] == 1
    # each training session says which MKL code path produced the probes (they differ in rounding)
    env = json.loads((ctx.run_dir / "environment.json").read_text())
    assert [e["stage"] for e in env] == ["train", "train"]
    assert all("code path" in e["mkl"] or "own dispatch" in e["mkl"] for e in env), env
    # …and which path the trials themselves ran (here the session's Ray workers: the same as this process)
    from repeval.cpu import mkl_status

    assert env[0]["trials_mkl"] == [mkl_status()] and "trials_mkl" not in env[1], env  # the rerun trained nothing
    (ctx.run_dir / "environment.json").write_text("{not json")  # a damaged record does not stop a run
    assert runner.stage_train(ctx)["skipped"] == 1
    assert len(json.loads((ctx.run_dir / "environment.json").read_text())) == 1
