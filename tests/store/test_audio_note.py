"""The ``audio_note`` row column (a row decoded from part of its file; null: whole): partitions written before it lack
it and read as before — every reader, also completed with part files that have it —, and ``run.truncated_audio``'s
default leaves every partition's fingerprint as it was."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from repeval.pipeline.assemble import RowBlock, rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.inspect import audio_notes, show_text
from repeval.store.layout import AUDIO_NOTE, MANIFEST, embedding_schema, write_table_atomic

DIM = 3
PROV = {"model": "m", "config_hash": "h", "repeval_version": "0", "created_at": np.datetime64(0, "ms")}


def _block(ids: list[str], notes: list[str] | None = None) -> RowBlock:
    n = len(ids)
    return RowBlock(
        track_id=np.array(ids),
        split=np.array(["train"] * n),
        scenario=np.array(["clean"] * n),
        embedding=np.ones((n, DIM), np.float32),
        n_frames=np.ones(n, np.int32),
        n_chunks=np.ones(n, np.int32),
        audio_seconds=np.full(n, 2.0, np.float32),
        deformation_params=np.array([""] * n),
        model_version=np.array(["1"] * n),
        audio_note=None if notes is None else np.array(notes, dtype=object),
    )


def test_a_partition_written_before_the_column_reads_as_before_and_completed_with_it(tmp_path, monkeypatch):
    """A part file in the row schema of before (no audio_note), then one written now with a noted row: the
    partition's readers — its rows, embeddings, dedupe, ``store show`` / ``ls``, and pyarrow, pandas and duckdb as
    docs/store.md reads them — work on it, old rows null; ``store show`` counts the noted rows."""
    store = EmbeddingStore(str(tmp_path / "s"))
    part = store.partition("ds", "m", "clean")
    part.stamp({"fp": 1}, {"config_hash": "h"})
    old_schema = pa.schema([f for f in embedding_schema(DIM) if f.name != AUDIO_NOTE])
    write_table_atomic(part.fs, part.path, rows_table(_block(["a", "b"]), old_schema, PROV))
    assert audio_notes(part).num_rows == 0 and "audio_note" not in show_text(part)
    # finished by that repeval: its manifest has no count of noted rows, and none is noted — without reading its part
    # files (a store in a bucket is not listed again by every run)
    part.finish({})
    assert "noted_rows" in part.manifest()
    manifest = {k: v for k, v in part.manifest().items() if k != "noted_rows"}
    (Path(part.path) / MANIFEST).write_text(json.dumps(manifest))
    listed: list[int] = []
    part_files = type(part).part_files
    monkeypatch.setattr(type(part), "part_files", lambda self: listed.append(1) or part_files(self))
    assert part.noted_rows() == {"cut": 0, "ogg": 0} and listed == []
    monkeypatch.undo()
    part.reopen()
    writer = PartitionWriter(part, embedding_schema(DIM), 10)
    writer.add_table(rows_table(_block(["c", "d"], ["cut WAV: declares 9.0 s, holds 5.6 s", ""]), writer.schema, PROV))
    writer.flush()
    assert sorted(AUDIO_NOTE in pq.read_schema(f).names for f in part.part_files()) == [False, True]
    assert part.cut_ids().to_pylist() == ["c"]  # the ids of the cut rows, from the one file that holds a note
    t = part.read()
    assert dict(zip(t["track_id"].to_pylist(), t[AUDIO_NOTE].to_pylist(), strict=True)) == {
        "a": None,
        "b": None,
        "c": "cut WAV: declares 9.0 s, holds 5.6 s",
        "d": None,
    }
    ids, _, mat = part.embeddings()
    assert ids == ["a", "b", "c", "d"] and mat.shape == (4, DIM)
    assert audio_notes(part).to_pylist() == [{"track_id": "c", AUDIO_NOTE: "cut WAV: declares 9.0 s, holds 5.6 s"}]
    shown = show_text(part)
    assert "1 row with an audio_note (decoded from part of their file): c: cut WAV: declares 9.0 s" in shown
    # the first rows: a null audio_note (rows a, b from before the column, d not noted) is "-", as `store ls` and
    # `runs` print a null — not pandas' NaN — and the int and float columns keep their values
    lines = shown.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["track_id"])
    at = header.index(AUDIO_NOTE)
    rows = {line.split()[1]: line for line in lines if re.match(r"\d+\s+[abcd]\s", line)}
    assert {t: line[at:].split("  ")[0] for t, line in rows.items()} == {
        "a": "-",
        "b": "-",
        "c": "cut WAV: declares 9.0 s, holds 5.6 s",
        "d": "-",
    }, shown
    assert "NaN" not in shown and "None" not in shown, shown
    n_frames, seconds = header.index("n_frames"), header.index("audio_seconds")
    assert {line[n_frames:].split()[0] for line in rows.values()} == {"1"}
    assert {line[seconds:].split()[0] for line in rows.values()} == {"2"}
    # docs/store.md: duckdb reads every part file by name (union_by_name: the column with nulls for older files)
    import duckdb

    rows = duckdb.sql(
        f"SELECT track_id, audio_note FROM read_parquet('{part.path}/part-*.parquet', union_by_name = true) "
        "ORDER BY track_id"
    ).fetchall()
    assert rows == [("a", None), ("b", None), ("c", "cut WAV: declares 9.0 s, holds 5.6 s"), ("d", None)]
    import pandas as pd

    df = pd.read_parquet(part.path, schema=embedding_schema(DIM))  # docs/store.md: the schema names every column
    assert df.set_index("track_id")[AUDIO_NOTE].isna().tolist() == [True, True, False, True]
    from repeval.cli import app

    res = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 0 and "ds/m/clean" in res.output, res.output
    # a duplicate across the old and the new file: deduplicated into one file that has the column
    writer.add_table(rows_table(_block(["a"]), writer.schema, PROV))
    writer.flush()
    assert part.dedupe() == 1
    assert part.read().num_rows == 4 and part.finish({})["rows"] == 4
    assert sorted(audio_notes(part)["track_id"].to_pylist()) == ["c"]


#: the fingerprint hashes of the partitions of :func:`_config` as repeval computed them before
#: ``run.truncated_audio`` existed (commit 0e98fd2): ``config_hash(spec.partition(...).fingerprint)``
BEFORE = {"clean": "e1ef87c0f0cec321", "D1": "a4561a692ba72419"}


def _config(tmp_path, **run):
    from repeval.config import load_config
    from repeval.testing.configs import notes_dataset

    cfg = {
        "run": {"store": "store", "seed": 3, **run},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset("manifest.csv")],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6, "p": 1}}]],
                "embedding_models": [{"id": "mfcc-stats", "params": {"chunk_s": 10.0}}],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    path = tmp_path / f"config-{len(os.listdir(tmp_path))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_the_setting_leaves_every_partitions_fingerprint_as_it_was(tmp_path):
    """``run.truncated_audio`` — unset, its default ``error`` or ``decode`` — gives each partition the fingerprint
    (and hash) repeval gave it before the setting existed, so existing stores are completed, not refused: the
    setting decides whether a cut file gets a row or an error record, never what a row holds (every row decoded from
    part of its file says so in its audio_note)."""
    from repeval.config.loader import config_hash
    from repeval.pipeline.partitions import ModelSpec

    for run in ({}, {"truncated_audio": "error"}, {"truncated_audio": "decode"}):
        cfg = _config(tmp_path, **run)
        exp = cfg.experiments[0]
        spec = ModelSpec.of(cfg, exp.embedding_models[0])
        prints = {sid: spec.partition(cfg, exp, exp.datasets[0], sid).fingerprint for sid in BEFORE}
        assert {sid: config_hash(fp) for sid, fp in prints.items()} == BEFORE, (run, json.dumps(prints))
        assert cfg.run.truncated_audio == run.get("truncated_audio", "error")
