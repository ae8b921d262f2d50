"""The Parquet embedding store: schema, provenance, any pyarrow filesystem, resume bookkeeping, CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from repeval.pipeline.assemble import ErrorBlock, RowBlock, errors_table, rows_table
from repeval.store import EmbeddingStore, Partition, PartitionWriter, StoreConflict
from repeval.store.layout import ERROR_SCHEMA, DamagedPartFile, embedding_schema

DIM = 4
PROV = {
    "model": "m",
    "config_hash": "abc123",
    "repeval_version": "0.1.0",
    "created_at": np.datetime64(1_700_000_000_000, "ms"),
}


def _block(ids: list[str], keep_frames: bool = False) -> RowBlock:
    n = len(ids)
    frames = np.empty(n, dtype=object)
    frames[:] = [np.full((i + 1, DIM), i, np.float32) for i in range(n)]
    return RowBlock(
        track_id=np.array(ids),
        split=np.array(["train"] * n),
        scenario=np.array(["clean"] * n),
        embedding=np.arange(n * DIM, dtype=np.float32).reshape(n, DIM),
        n_frames=np.arange(1, n + 1, dtype=np.int32),
        n_chunks=np.ones(n, np.int32),
        audio_seconds=np.full(n, 1.5, np.float32),
        deformation_params=np.array(["", '[{"type": "Gain"}]'] * (n // 2) + [""] * (n % 2)),
        model_version=np.array(["1"] * n),
        frames=frames if keep_frames else None,
    )


def _write(store: EmbeddingStore, ids: list[str], keep_frames: bool = False, part_rows: int = 3):
    part = store.partition("ds", "m", "clean")
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    schema = embedding_schema(DIM, keep_frames)
    w = PartitionWriter(part, schema, part_rows)
    w.add_table(rows_table(_block(ids, keep_frames), schema, PROV))
    errs = ErrorBlock()
    errs.add("bad", "test", "clean", "decode", "cannot decode")
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    return part


def test_schema_and_provenance_readable_by_pyarrow_and_pandas(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c", "d"], keep_frames=True)
    m = part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    assert m["rows"] == 4 and m["errors"] == 1 and m["config_hash"] == "abc123" and m["model_version"] == "1"
    assert m["store_format"] == 2 and m["repeval_version"] and m["created_at"] <= m["completed_at"]
    t = pq.read_table(part.path)  # the partition folder; _errors/ and _*.json are skipped
    assert t.schema.equals(embedding_schema(DIM, keep_frames=True))
    assert t.num_rows == 4 and set(t.column("config_hash").to_pylist()) == {"abc123"}
    assert str(t.schema.field("created_at").type) == "timestamp[ms, tz=UTC]"
    df = t.to_pandas()
    assert df.loc[df.track_id == "c", "embedding"].iloc[0].tolist() == [8.0, 9.0, 10.0, 11.0]
    assert np.stack(df.loc[df.track_id == "b", "frames"].iloc[0]).shape == (2, DIM)
    assert df.deformation_params.isna().sum() == 2
    assert part.read_errors().column("reason").to_pylist() == ["cannot decode"]
    ids, _splits, mat = part.embeddings()
    assert sorted(ids) == ["a", "b", "c", "d"] and mat.shape == (4, DIM) and mat.dtype == np.float32


def test_duckdb_reads_the_store(tmp_path):
    import duckdb

    part = _write(EmbeddingStore(str(tmp_path / "s")), ["a", "b"])
    con = duckdb.connect()
    rows = con.execute(f"select track_id, len(embedding) from read_parquet('{part.path}/part-*.parquet') order by 1")
    assert rows.fetchall() == [("a", DIM), ("b", DIM)]


@pytest.mark.parametrize("kind", ["file_uri", "mock_uri", "subtree"])
def test_any_pyarrow_filesystem(tmp_path, kind):
    if kind == "file_uri":
        store = EmbeddingStore(f"file://{tmp_path}/s")
    elif kind == "mock_uri":
        store = EmbeddingStore("mock:///stores/s")
    else:
        (tmp_path / "sub").mkdir()
        store = EmbeddingStore("/s", filesystem=pafs.SubTreeFileSystem(str(tmp_path / "sub"), pafs.LocalFileSystem()))
    part = _write(store, ["a", "b", "c", "d", "e"], part_rows=2)
    part.finish({"dataset": "ds"})
    assert [p.name for p in store.partitions()] == ["ds/m/clean"]
    assert part.complete and part.counts() == (5, 1)
    assert sorted(part.done_ids().to_pylist()) == ["a", "b", "bad", "c", "d", "e"]
    if kind == "subtree":
        assert (tmp_path / "sub" / "s" / "ds" / "m" / "clean" / "_manifest.json").exists()


def test_dedupe_keeps_one_row_per_track(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b", "c"])
    part = _write(store, ["b", "c", "d"])
    assert part.dedupe() == 2
    t = part.read()
    assert sorted(t.column("track_id").to_pylist()) == ["a", "b", "c", "d"]
    assert part.dedupe() == 0
    assert part.finish({})["rows"] == 4


def test_conflicting_fingerprint_refused(tmp_path):
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    part.stamp({"model": "a"})
    part.check_compatible({"model": "a"})
    with pytest.raises(StoreConflict, match="different configuration") as err:
        part.check_compatible({"model": "b"})
    assert f"`repeval store rm {tmp_path / 's'} ds/m/clean --yes`" in str(err.value)  # the command that clears it
    assert 'model: stored "a", now "b"' in str(err.value)  # what differs, not two whole fingerprints


def test_conflict_names_the_differing_keys_and_the_keep_frames_setting(tmp_path):
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    stored = {"model": {"id": "mfcc", "params": {"hop_s": 0.5}}, "keep_frames": False, "chunk_s": 10}
    part.stamp(stored)
    now = {"model": {"id": "mfcc", "params": {"hop_s": 0.25}}, "keep_frames": True, "chunk_s": 10}
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now)
    msg = str(err.value)
    assert "keep_frames: stored false, now true; model.params.hop_s: stored 0.5, now 0.25 (" in msg
    assert "chunk_s" not in msg  # equal keys are not listed
    assert "its rows have no frame-level embeddings, which this run keeps" in msg


def test_conflict_names_the_changed_parameter_inside_a_hash_and_falls_back_to_hashes(tmp_path):
    """A stamp keeps what the fingerprint's hashes stand for (``described``): the conflict names the parameter; a
    partition stamped before that (no ``described``) still gets the hashes."""
    store = EmbeddingStore(str(tmp_path / "s"))
    fp = {"model": {"family": "mfcc-stats", "params": "aaa"}, "chunk_s": 10}
    now = {"model": {"family": "mfcc-stats", "params": "bbb"}, "chunk_s": 10}
    described = {"model.params": {"n_mfcc": 20, "n_mels": 64}}
    new = store.partition("ds", "m", "clean")
    new.stamp(fp, described=described)
    new.check_compatible(fp, described)
    with pytest.raises(StoreConflict) as err:
        new.check_compatible(now, {"model.params": {"n_mfcc": 30, "n_mels": 64}})
    assert "— model.params.n_mfcc: stored 20, now 30; give" in str(err.value)  # n_mels is alike: not listed
    old = store.partition("ds", "m", "D1")
    old.stamp(fp)  # as before described was kept
    with pytest.raises(StoreConflict) as err:
        old.check_compatible(now, {"model.params": {"n_mfcc": 30, "n_mels": 64}})
    assert '— model.params: stored "aaa", now "bbb"; give' in str(err.value)
    # a deformed partition of another run.seed: the seed's part in it is said, with the setting meant for more seeds
    noisy = store.partition("ds", "m", "noise")
    noisy.stamp({**fp, "scenario": "s", "seed": 0})
    with pytest.raises(StoreConflict) as err:
        noisy.check_compatible({**fp, "scenario": "s", "seed": 1})
    assert "— seed: stored 0, now 1 (run.seed also draws each track's deformation" in str(err.value)
    assert "keep run.seed: 0 and raise run.seeds); give the model or scenario a new id" in str(err.value)


def test_conflict_says_a_parameter_the_partition_was_embedded_without_was_not_set(tmp_path):
    """A parameter added to a model whose partition was embedded without it (``patchHopSize: 31`` on an Essentia
    graph that ran at essentia's default) was said to be "stored null", as if null had been configured; it is now
    said to have been not set (the model's default), as is one stamped null (a constructor's None default: the model
    chooses) — and one taken out, to be not set now. A null outside the model's params is still said to be null."""
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    fp = {"model": {"family": "vggish-audioset", "params": "aaa"}}
    part.stamp(fp, described={"model.params": {"graph_path": "/g.pb", "x": None}})
    now = {"model": {"family": "vggish-audioset", "params": "bbb"}}
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now, {"model.params": {"patchHopSize": 31, "x": 1, "y": None}})
    said = str(err.value)
    assert "model.params.y" not in said  # a parameter null now and absent then: alike
    assert 'model.params.graph_path: stored "/g.pb", now not set (the model\'s default); ' in said
    assert "model.params.patchHopSize: not set when it was embedded (the model's default), now 31; " in said
    assert "model.params.x: not set when it was embedded (the model's default), now 1" in said
    nulls = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "D1")
    nulls.stamp({"model": "m", "seed": None})
    with pytest.raises(StoreConflict, match="seed: stored null, now 1"):
        nulls.check_compatible({"model": "m", "seed": 1})


def test_a_model_conflict_names_the_new_id_and_the_command_that_clears_every_scenario(tmp_path):
    """A model's parameters changed: ``repeval run`` stopped at its first partition, saying "give the model or
    scenario a new id … (`repeval store rm … ds/m/clean --yes`)"; a user who ran that met the next scenario's
    conflict, run after run. Every scenario of the model differs alike, so the error now names the id to write
    and the one command that deletes them all; a conflict of one scenario alone keeps the single command."""
    store = EmbeddingStore(str(tmp_path / "s"))
    fp = {"model": {"family": "mfcc-stats", "params": "aaa"}, "chunk_s": 10}
    clean = store.partition("ds", "m", "clean")
    clean.stamp(fp)
    with pytest.raises(StoreConflict) as err:
        clean.check_compatible({**fp, "model": {"family": "mfcc-stats", "params": "bbb"}})
    msg = str(err.value)
    assert "give the model a new id (in embedding_models, `id: m-2` with `type: mfcc-stats`)" in msg, msg
    assert f"`repeval store rm {tmp_path / 's'} ds/m/clean --yes`" in msg
    assert f"every scenario of this model differs alike: `repeval store rm {tmp_path / 's'} 'ds/m/*' --yes`" in msg
    noisy = store.partition("ds", "m", "noise")
    noisy.stamp({**fp, "scenario": "s1"})
    with pytest.raises(StoreConflict) as err:
        noisy.check_compatible({**fp, "scenario": "s2"})
    assert "give the model or scenario a new id" in str(err.value) and "'ds/m/*'" not in str(err.value)


def test_a_model_whose_embeddings_changed_is_refused_the_partitions_embedded_before(tmp_path):
    """A family raises ``embedding_version`` when the same params come to give other embeddings (msd-musicnn's 2:
    mir_ref's layer and musicnn's patch hop): the version joins the model's fingerprint, so a partition embedded
    before is refused, not completed with rows that differ; families still at 1 keep the fingerprints their
    partitions were stamped with."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.config.loader import config_hash
    from repeval.models import build_model
    from repeval.pipeline.partitions import model_fingerprint

    before = {"family": "msd-musicnn", "params": config_hash({})}  # as fingerprints were written before versions
    now = model_fingerprint(EmbeddingModelConfig(id="msd-musicnn"))
    assert now == {**before, "version": "2"}
    assert model_fingerprint(EmbeddingModelConfig(id="mfcc-stats")) == {
        "family": "mfcc-stats",
        "params": config_hash({}),
    }
    assert build_model(EmbeddingModelConfig(id="mfcc-stats")).version == "1"  # the rows' model_version column
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "msd-musicnn", "clean")
    part.stamp({"model": before, "chunk_s": 30})
    with pytest.raises(StoreConflict, match=re.escape('the model\'s embedding_version: stored "1", now "2"')):
        part.check_compatible({"model": now, "chunk_s": 30})


def test_a_partition_with_frames_serves_a_run_without_them(tmp_path):
    """Stored with frames, asked without: compatible (``True``: rows may not be added); any other difference is not."""
    store = EmbeddingStore(str(tmp_path / "s"))
    part = store.partition("ds", "m", "clean")
    part.stamp({"model": "a", "keep_frames": True})
    assert part.check_compatible({"model": "a", "keep_frames": False}) is True
    assert part.check_compatible({"model": "a", "keep_frames": True}) is False
    with pytest.raises(StoreConflict, match='model: stored "a", now "b"'):
        part.check_compatible({"model": "b", "keep_frames": False})
    other = store.partition("ds", "m", "D1")
    other.stamp({"model": "a", "keep_frames": False})
    with pytest.raises(StoreConflict, match="keep_frames: stored false, now true"):
        other.check_compatible({"model": "a", "keep_frames": True})  # rows without frames cannot serve it


def test_unsafe_components_rejected(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    assert store.partition("../x", "m/y", "c").path.startswith(store.root + "/")
    with pytest.raises(ValueError):
        store.partition("..", "m", "c")


def test_store_cli(tmp_path):
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    other = store.partition("ds", "m", "D1")
    w = PartitionWriter(other, embedding_schema(DIM, keep_frames=True), 10)
    w.add_table(rows_table(_block(["x"], keep_frames=True), embedding_schema(DIM, keep_frames=True), PROV))
    w.flush()
    runner = CliRunner()
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "ds/m/clean" in res.output and "complete" in res.output and "incomplete" in res.output
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s"), "--json"])
    rows = json.loads(res.output)
    assert {r["partition"]: r["rows"] for r in rows} == {"ds/m/D1": 1, "ds/m/clean": 3}
    assert {r["partition"]: r["frames"] for r in rows} == {"ds/m/D1": True, "ds/m/clean": False}
    res = runner.invoke(app, ["store", "show", "ds/m/clean", "--store", f"file://{tmp_path}/s"])
    assert res.exit_code == 0, res.output
    for text in ("config_hash", "abc123", "embedding: fixed_size_list<element: float>[4]", "decode", "train"):
        assert text in res.output
    res = runner.invoke(app, ["store", "show", "nope", "--store", str(tmp_path / "s")])
    assert res.exit_code != 0 and "dataset/model/scenario" in res.output


def test_store_cli_takes_the_store_either_way_and_names_what_is_missing(tmp_path):
    """`store ls STORE` and `store show STORE PARTITION` (or `--store`); a typo is an error with the closest
    partition, and a store that does not exist is reported, not created."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    runner = CliRunner()
    root = str(tmp_path / "s")
    for args in (["store", "ls", "--store", root], ["store", "ls", root, "--store", root]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "ds/m/clean" in res.output, res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean"])
    assert res.exit_code == 0 and "2 rows in 1 part file;" in res.output, res.output
    res = runner.invoke(app, ["store", "ls", root, "--store", str(tmp_path / "other")])
    assert res.exit_code == 1 and "two store roots given" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/claen"])
    assert res.exit_code == 1 and "no partition ds/m/claen" in res.output and "did you mean ds/m/clean" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "extra"])
    assert res.exit_code == 1 and "[STORE] DATASET/MODEL/SCENARIO" in res.output
    missing = tmp_path / "typo"
    for args in (["store", "ls", str(missing)], ["store", "show", str(missing), "ds/m/clean"]):
        res = runner.invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code == 1 and "no embedding store at" in said, said
        assert f"embed into it with `repeval embed CONFIG --store {missing}`" in said, said  # not another store
    assert not missing.exists()  # the read-only tools create nothing
    # a file is not a store: said, with what to pass (for a file in a partition, its store)
    (tmp_path / "notes.csv").write_text("track_id\n")
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "notes.csv")])
    assert res.exit_code == 1 and "is a file, not an embedding store directory" in res.output, res.output
    assert "repeval embed" not in res.output and "run.store" in res.output
    part_file = next(p for p in (tmp_path / "s" / "ds" / "m" / "clean").rglob("*.parquet"))
    res = runner.invoke(app, ["store", "ls", str(part_file)])
    assert res.exit_code == 1 and f"not a store directory: pass the store {tmp_path / 's'}" in res.output, res.output


def test_store_show_given_only_the_store_says_to_name_a_partition(tmp_path, monkeypatch):
    """`repeval store show STORE` (the store, no partition) read STORE as the partition of the default store
    `store` and said "no embedding store at store": it now says STORE is a store and how to name a partition."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    monkeypatch.chdir(tmp_path)  # no ./store here
    root = str(tmp_path / "s")
    res = CliRunner().invoke(app, ["store", "show", root])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and f"{root} is a store, not a partition" in said, said
    assert f"`repeval store show {root} DATASET/MODEL/SCENARIO`); `repeval store ls {root}` lists them" in said
    # a store of no partitions yet (it was read as a partition of `store`: "no embedding store at store")
    EmbeddingStore(str(tmp_path / "empty"))
    res = CliRunner().invoke(app, ["store", "show", "empty"])
    assert res.exit_code == 1 and "empty is a store (no partitions in it yet), not a partition" in res.output, (
        res.output
    )
    # a folder of other things, three deep (no partition files in them), is no store: read as the partition
    (tmp_path / "notes" / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "notes" / "readme.txt").write_text("x")
    assert "is a store" not in CliRunner().invoke(app, ["store", "show", "notes"]).output
    # the default store's partition ds/m/clean, beside a store at ./ds/m/clean: the partition, as before
    for where in ("store", "ds/m/clean"):
        _write(EmbeddingStore(str(tmp_path / where)), ["a"]).finish(
            {"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"}
        )
    res = CliRunner().invoke(app, ["store", "show", "ds/m/clean", "--rows", "0"])
    assert res.exit_code == 0 and f"partition ds/m/clean at {tmp_path / 'store' / 'ds'}" in res.output, res.output


def test_store_show_rows_zero_prints_counts_only_and_negative_is_refused(tmp_path):
    """`store show --rows 0` (and `--rows -1`) printed "Empty DataFrame / Columns: [...] / Index: []" for the rows
    and again for the error records: 0 now prints the counts without rows, a negative number is an error naming
    --rows."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    runner = CliRunner()
    root = str(tmp_path / "s")
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "0"])
    assert res.exit_code == 0, res.output
    assert "2 rows in 1 part file;" in res.output and "1 error record: decode 1" in res.output
    assert "Empty DataFrame" not in res.output and "Index: []" not in res.output
    assert "cannot decode" not in res.output  # no error record printed
    assert not re.search(r"^\d+\s+[ab]\s+train", res.output, re.M)  # no row printed
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "1"])
    assert res.exit_code == 0 and re.search(r"^0\s+a\s+train", res.output, re.M) and "cannot decode" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "-1"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert "--rows must be 0 or more" in res.output and "Empty DataFrame" not in res.output


def test_strict_failure_names_each_partition_with_a_store_show_command_that_works(tmp_path, monkeypatch, capsys):
    """``--strict`` with error records in two partitions: the message quoted one record and told the user to run
    ``repeval store show PARTITION --store ...`` with a literal placeholder. It names each partition's command
    (store quoted, ``--errors``: all its records) and records from more than one partition; each command runs and
    lists that partition's records."""
    import shlex
    import types

    import typer

    from repeval import runner
    from repeval.cli import app
    from repeval.cli.common import _strict_check

    root = str(tmp_path / "my store")  # a space: the command must quote it
    store = EmbeddingStore(root)
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    noisy = store.partition("ds", "m", "D1")
    w = PartitionWriter(noisy, embedding_schema(DIM, False), 10)
    errs = ErrorBlock()
    for tid in ("t1", "t2"):
        errs.add(tid, "test", "D1", "deform", f"{tid} clipped")
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    noisy.finish({"dataset": "ds", "model": "m", "scenario": "D1", "model_version": "1"})
    ds = types.SimpleNamespace(name="ds")
    exp = types.SimpleNamespace(
        datasets=[ds], embedding_models=[types.SimpleNamespace(id="m")], scenarios_for=lambda _ds: ["D1"]
    )
    ctx = types.SimpleNamespace(cfg=types.SimpleNamespace(experiments=[exp]), store=store)
    monkeypatch.setattr(runner, "not_evaluated", lambda _ctx: [])
    with pytest.raises(typer.Exit):
        _strict_check(ctx)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "PARTITION" not in line and line.startswith(
        "error: --strict: 3 error records in ds/m/clean (1), ds/m/D1 (2)"
    )
    assert "bad in ds/m/clean (decode): cannot decode" in line and "t1 in ds/m/D1 (deform): t1 clipped" in line
    commands = re.findall(r"`(repeval store show [^`]*)`", line)
    assert commands == [f"repeval store show {shlex.quote(root)} ds/m/{sid} --errors" for sid in ("clean", "D1")]
    for command, reasons in zip(commands, (["cannot decode"], ["t1 clipped", "t2 clipped"]), strict=True):
        res = CliRunner().invoke(app, shlex.split(command)[1:])
        assert res.exit_code == 0 and all(r in res.output for r in reasons), res.output


def test_store_rm_lists_first_deletes_with_yes_and_never_under_a_running_run(tmp_path, monkeypatch):
    from repeval.cli import app
    from repeval.store.lock import StoreLock

    root = str(tmp_path / "s")
    store = EmbeddingStore(root)
    for model, scenario in (("m", "clean"), ("m", "D1"), ("other", "clean")):
        part = store.partition("ds", model, scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds", "model": model, "scenario": scenario})
    runner = CliRunner()
    res = runner.invoke(app, ["store", "rm", root, "ds/m/*"])
    assert res.exit_code == 0 and "2 partitions would be deleted" in res.output, res.output
    assert "ds/m/D1  (complete, 2 rows, 0 error records)" in res.output
    assert "ds/other/clean" not in res.output
    res = runner.invoke(app, ["store", "rm", root, "ds/m/D1"])
    assert "1 partition would be deleted" in res.output and "rerun with --yes to delete it\n" in res.output, res.output
    assert {p.name for p in store.partitions()} == {"ds/m/D1", "ds/m/clean", "ds/other/clean"}  # only listed
    with StoreLock(store, run_id="busy"):  # a run holds the store: rm refuses and deletes nothing
        res = runner.invoke(app, ["store", "rm", root, "ds/m/D1", "--yes"])
    assert res.exit_code == 1 and "in use by run 'busy'" in res.output, res.output
    assert store.partition("ds", "m", "D1").complete
    res = runner.invoke(app, ["store", "rm", "ds/m/D1", "--store", root, "--yes"])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert "; the next run computes it again\n" in res.output, res.output  # not "1 partition … them"
    assert [p.name for p in store.partitions()] == ["ds/m/clean", "ds/other/clean"]
    assert store.partition("ds", "m", "clean").complete
    res = runner.invoke(app, ["store", "rm", root, "ds/x/*"])
    assert res.exit_code == 1 and "no partition of" in res.output and "matches ds/x/*" in res.output, res.output
    monkeypatch.chdir(tmp_path)  # a store root with two slashes, like a partition: given ./-relative it is the root
    EmbeddingStore("q/r")
    res = runner.invoke(app, ["store", "rm", "./q/r", "ds/m/clean"])
    assert res.exit_code == 1 and "no partition ds/m/clean in ./q/r" in res.output, res.output  # the empty store
    res = runner.invoke(app, ["store", "rm", root, "ds/m/D2", "--yes"])
    assert res.exit_code == 1 and "no partition ds/m/D2" in res.output and "did you mean ds/m/clean" in res.output


def test_a_runs_directory_given_as_the_store_is_listed_as_such_and_never_deleted_from(tmp_path):
    """`repeval store ls runs` listed a runs directory's Tune experiments (``<run>/tune/<experiment>``, three deep) as
    incomplete partitions, and `repeval store rm runs '<run>/*/*' --yes` deleted them. Folders holding none of a
    partition's files are now "not a partition", and rm refuses them (and the partitions given with them)."""
    from repeval.cli import app

    runs = tmp_path / "runs"
    experiment = runs / "r1" / "tune" / "groups-2-abc"
    (experiment / "grid_trial_0").mkdir(parents=True)
    (experiment / "experiment_state-2026.json").write_text("{}")
    (experiment / ".validate_storage_marker").write_text("")
    (experiment / "grid_trial_0" / "params.json").write_text("{}")
    store = EmbeddingStore(str(runs))
    part = store.partition("ds", "m", "clean")  # a real partition beside it
    w = PartitionWriter(part, embedding_schema(DIM), 10)
    w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
    w.flush()
    (runs / "ds" / "m" / "empty").mkdir()  # an empty folder, or one with hidden files only, is not refused
    (runs / "ds" / "m" / "empty" / ".DS_Store").write_text("")
    assert [(p.name, p.foreign()) for p in store.partitions()] == [
        ("ds/m/clean", False), ("ds/m/empty", False), ("r1/tune/groups-2-abc", True)
    ]  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["store", "ls", str(runs)])
    assert res.exit_code == 0, res.output
    assert re.search(r"r1/tune/groups-2-abc\s+not a partition\s+-\s+-", res.output), res.output
    assert "holds no store partition" not in res.output  # it has one
    # the count is of partitions: the Tune experiment is a folder apart (it read "3 partition(s)")
    assert f"2 partitions, 0 complete, 2 rows, 0 error records, 1 folder not a partition — {runs}" in res.output
    for args in (["r1/*/*"], ["ds/m/clean", "r1/tune/groups-2-abc"]):
        res = runner.invoke(app, ["store", "rm", str(runs), *args, "--yes"])
        assert res.exit_code == 1, res.output
        assert "r1/tune/groups-2-abc in " in res.output and "not a store partition" in res.output, res.output
        assert "nothing was deleted" in res.output
    assert (experiment / "experiment_state-2026.json").exists() and part.part_files()
    assert not (runs / "_lock.json").exists()  # refused before taking the lock
    res = runner.invoke(app, ["store", "ls", str(runs / "r1")])
    assert "holds no store partition: its folders three deep hold no part-*.parquet" in res.output, res.output
    res = runner.invoke(app, ["store", "rm", str(runs), "ds/m/empty", "--yes"])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output


def test_store_rm_deletes_a_partition_whose_part_file_is_damaged(tmp_path):
    """A part file cut short stops the run with an error that says to delete it or the partition with the `repeval
    store rm` command it names; that command failed on the same unreadable file (it counted the rows first), and
    `repeval store ls` stopped at it, listing no partition."""
    import shlex

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds"})
    damaged = store.partition("ds", "m", "D1")
    f = damaged.part_files()[0]
    Path(f).write_bytes(Path(f).read_bytes()[:30])
    with pytest.raises(DamagedPartFile) as exc:
        damaged.counts()
    command = shlex.split(re.search(r"`(repeval store rm [^`]*)`", str(exc.value)).group(1))
    runner = CliRunner()
    # `store ls` lists every partition, the damaged one as such with the fix (it stopped the whole listing)
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output  # a damaged partition is a failure, said after the whole listing
    assert re.search(r"ds/m/D1\s+damaged\s+-\s+-", res.stdout) and re.search(r"ds/m/clean\s+complete\s+2", res.stdout)
    assert res.stderr.startswith("store partition ds/m/D1") and "repeval store rm" in res.stderr
    res = runner.invoke(app, [*command[1:-1]])  # without --yes: listed, not deleted
    assert res.exit_code == 0 and "ds/m/D1  (complete, a part file is not readable Parquet)" in res.output, res.output
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert [p.name for p in store.partitions()] == ["ds/m/clean"]


def _as_unprivileged(*commands: list[str]) -> list[dict[str, object]]:
    """Each ``repeval`` command (this checkout's, by Typer's test runner: one process) run where a folder of mode 0
    cannot be listed: as root (who lists any), in a process without the capabilities that read it (setpriv,
    util-linux); each one's exit code, stdout and stderr."""
    import os
    import shutil
    import subprocess
    import sys

    import repeval

    code = (
        "import json, sys; from typer.testing import CliRunner; from repeval.cli import app; "
        "said = [CliRunner().invoke(app, c) for c in json.loads(sys.argv[1])]; "
        "print(json.dumps([dict(code=r.exit_code, out=r.stdout, err=r.stderr) for r in said]))"
    )
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]
    assert os.geteuid() != 0 or shutil.which("setpriv"), "as root this check needs setpriv (util-linux) on PATH"
    env = {**os.environ, "PYTHONPATH": str(Path(repeval.__file__).parents[1])}
    command = [*(drop if os.geteuid() == 0 else []), sys.executable, "-c", code, json.dumps(commands)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)


def test_store_ls_lists_every_partition_it_can_read_and_says_each_it_cannot_with_a_read_fix(tmp_path):
    """`repeval store ls` stopped on a partition folder this user may not list with a raw "[Errno 13] Cannot list
    directory …", and on a partition whose _errors is a file with "[Errno 20]"; `repeval store show` ended a folder it
    may not read with "check that run.store and run.runs_dir are writable directories with free space", a write's fix.
    Now each partition it cannot read is listed as unreadable and said on stderr with its fix (its owner and
    permissions; the file moved aside), so is a folder above the partitions it may not list, the others listed, exit 1;
    and a read-only command's permission error gets a read fix."""
    from repeval.cli import app

    root = tmp_path / "s"
    store = EmbeddingStore(str(root))
    for scenario in ("clean", "D1", "D2"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
    (root / "ds" / "m" / "D2" / "_errors").write_text("not a folder")
    res = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert res.exit_code == 1, res.output
    assert re.search(r"ds/m/D1\s+incomplete\s+2", res.stdout) and re.search(r"ds/m/D2\s+unreadable", res.stdout)
    assert res.stderr == (
        f"store partition ds/m/D2 in {root}: {root}/ds/m/D2/_errors cannot be listed (not a directory): its error "
        "records are not read; it is a file, not a folder: move it aside\n"
    ), res.stderr
    (root / "ds" / "m" / "D2" / "_errors").unlink()

    (root / "other" / "m" / "clean").mkdir(parents=True)
    denied = [root / "ds" / "m" / "D1", root / "other", root / "ds" / "m" / "clean" / "_errors"]
    denied[2].mkdir()
    try:
        for folder in denied[:2]:
            folder.chmod(0)
        denied[2].chmod(0o300)  # its journal may be looked for, its files not listed
        ls, show, folder = _as_unprivileged(
            ["store", "ls", str(root)],
            ["store", "show", str(root), "ds/m/clean"],
            ["store", "show", str(root), "ds/m/D1"],
        )
        assert ls["code"] == 1, ls
        assert re.search(r"ds/m/D1\s+unreadable", ls["out"]) and re.search(r"ds/m/D2\s+incomplete\s+2", ls["out"])
        fix = "this user may not read it: check its owner and permissions (`ls -l`)"
        assert ls["err"].splitlines() == [
            f"store partition ds/m/D1 in {root}: {root}/ds/m/D1 cannot be listed (permission denied): its rows and error records "
            f"are not counted; {fix}",
            f"store partition ds/m/clean in {root}: {denied[2]} cannot be listed (permission denied): its rows and error "
            f"records are not counted; {fix}",
            f"{root}/other cannot be listed (permission denied): the store's partitions under it are not listed; {fix}",
        ], ls
        assert show["code"] == 1 and f"{denied[2]}: permission denied — {fix}" in show["err"], show
        assert "free space" not in show["err"], show
        # its folder named, not a track removal's journal that "cannot be read" with "delete the partition" as the fix
        assert folder["code"] == 1 and folder["err"] == f"error: {root}/ds/m/D1: permission denied — {fix}\n", folder
    finally:
        for folder in denied:
            folder.chmod(0o755)


def test_store_commands_name_a_folder_this_user_may_not_list_and_are_not_stopped_by_one_elsewhere(tmp_path):
    """Another user's folder anywhere in the store stopped `repeval store rm` and `store settle` of any partition with
    pyarrow's raw "[Errno 13] Cannot list directory …" and a write's fix ("writable directories with free space");
    `store show` of a partition in it said "Failed stat()ing path", `store show --errors` of one "Cannot list
    directory". Now a partition elsewhere is removed as usual, and a folder that may hold one named is said with a
    read's fix; nothing is deleted. `store settle` stopped at the first such folder, settling nothing: it now settles
    every partition it can read and says each folder it cannot, exit 1."""
    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    replaced = Path(part.path) / "part-0-replaced.parquet"  # a stopped track removal's, committed: to be deleted
    shutil.copy(part.part_files()[0], replaced)
    (Path(part.path) / "_rewrite.json").write_text(json.dumps({"old": [replaced.name], "new": [], "committed": True}))
    (root / "ds" / "m" / "D5").mkdir()
    (root / "other" / "m" / "clean").mkdir(parents=True)
    denied = [root / "ds" / "m" / "D5", root / "other"]
    try:
        for folder in denied:
            folder.chmod(0)
        rm, rm_other, show, errors, settle = _as_unprivileged(
            ["store", "rm", str(root), "ds/m/clean"],
            ["store", "rm", str(root), "*/m/clean", "--yes"],
            ["store", "show", str(root), "other/m/clean"],
            ["store", "show", str(root), "ds/m/D5", "--errors"],
            ["store", "settle", str(root)],
        )
    finally:
        for folder in denied:
            folder.chmod(0o755)
    fix = "this user may not read it: check its owner and permissions (`ls -l`)"
    assert rm["code"] == 0 and "1 partition would be deleted" in rm["out"], rm
    assert rm_other["code"] == 1 and rm_other["err"] == (
        f"error: {root}/other cannot be listed (permission denied): */m/clean is not looked for under it; {fix}\n"
    ), rm_other
    assert show["code"] == 1 and show["err"] == f"error: {root}/other/m/clean: permission denied — {fix}\n", show
    assert errors["code"] == 1 and errors["err"] == (
        f"error: store partition ds/m/D5 in {root}: {denied[0]}: permission denied — {fix}\n"
    ), errors
    assert settle["code"] == 1 and settle["err"] == (
        f"{root}/other cannot be listed (permission denied): its partitions are not looked at; {fix}\n"
        f"store partition ds/m/D5 in {root}: {root}/ds/m/D5: permission denied — {fix}\n"
    ), settle
    assert settle["out"] == (
        f"ds/m/clean: finished a stopped track removal: deleted 1 replaced file\nsettled 1 folder in 1 partition of "
        f"{root}\n"
    ), settle
    assert not replaced.exists() and not (Path(part.path) / "_rewrite.json").exists()
    assert (root / "ds" / "m" / "clean" / "_manifest.json").is_file()


def test_a_partition_whose_manifest_or_part_file_this_user_may_not_read_is_unreadable_not_incomplete(tmp_path):
    """A complete partition's _manifest.json this user may not read (another user's) was read as missing: `repeval
    store ls` listed the partition as incomplete and a run took it as one to complete. It is now listed as unreadable
    with the file named and its fix, `repeval store show` stops on it, and the manifest is left as it was. So is one
    whose part file this user may not read: it was listed as damaged (its fix its permissions, not deleting it)."""
    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    shutil.copytree(root / "ds" / "m" / "clean", root / "ds" / "m" / "noise")
    manifest = root / "ds" / "m" / "clean" / "_manifest.json"
    body = manifest.read_bytes()
    denied = [manifest, *(root / "ds" / "m" / "noise").glob("part-*.parquet")]
    try:
        for path in denied:
            path.chmod(0)
        ls, as_json, show, rm = _as_unprivileged(
            ["store", "ls", str(root)],
            ["store", "ls", str(root), "--json"],
            ["store", "show", str(root), "ds/m/clean"],
            ["store", "rm", str(root), "ds/m/*"],
        )
    finally:
        for path in denied:
            path.chmod(0o644)
    said = f"{manifest}: permission denied — this user may not read it: check its owner and permissions (`ls -l`)"
    assert ls["code"] == 1 and re.search(r"ds/m/clean\s+unreadable", ls["out"]) and said in ls["err"], ls
    assert f"{denied[1]}: permission denied — this user may not read it" in ls["err"], ls
    assert [i["state"] for i in json.loads(as_json["out"])] == ["unreadable", "unreadable"], as_json
    unread = "(unreadable: this user may not read all of its files)"
    assert rm["code"] == 0 and rm["out"].splitlines()[:2] == [f"ds/m/clean  {unread}", f"ds/m/noise  {unread}"], rm
    assert show["code"] == 1 and show["err"] == f"error: {said}\n", show
    assert manifest.read_bytes() == body


def test_store_ls_flags_a_complete_partition_whose_rows_differ_from_its_manifest(tmp_path):
    """A part file copied into a complete partition by hand (120 rows read, the manifest says 60) was listed by
    `repeval store ls` as complete with the files' count, unflagged; probes read each track once and warn. It is now
    listed as damaged, with a line on stderr naming both counts and the fix (delete the copy, or `repeval store rm`),
    and the exit status is 1; so is a partition that lost a part file."""
    import shutil

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1", "D2"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        w.add_table(rows_table(_block(["c"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds"})
    copied = store.partition("ds", "m", "D1").part_files()[0]
    shutil.copy(copied, copied.replace(".parquet", " (1).parquet"))  # a sync tool's copy
    Path(store.partition("ds", "m", "D2").part_files()[0]).unlink()
    res = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output
    assert re.search(r"ds/m/clean\s+complete\s+3", res.stdout), res.stdout
    assert re.search(r"ds/m/D1\s+damaged\s+5", res.stdout) and re.search(r"ds/m/D2\s+damaged\s+1", res.stdout)
    said = res.stderr.splitlines()
    assert said[0].startswith("store partition ds/m/D1: its part files hold 5 rows, its manifest 3 — 2 rows of "
                              "tracks it has already"), said  # fmt: skip
    assert (
        "delete the part files copied in" in said[0] and f"`{store.partition('ds', 'm', 'D1').rm_command()}`" in said[0]
    )
    assert said[1].startswith("store partition ds/m/D2: its part files hold 1 row, its manifest 3 — 2 rows missing")


def test_frames_reads_every_rows_frames_in_order_across_part_files(tmp_path):
    """``Partition.frames`` (what ``embedding_aggregation: prediction`` trains on): the rows' frames flattened in
    row order, with one count per row, across part files; a partition without frames names the fix."""
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    schema = embedding_schema(DIM, keep_frames=True)
    w = PartitionWriter(part, schema, 2)
    block = rows_table(_block(["a", "b", "c", "d", "e"], keep_frames=True), schema, PROV)
    for start in (0, 2, 4):  # three part files, the later ones Arrow slices with offsets into the frames
        w.add_table(block.slice(start, 2))
    w.flush()
    assert len(part.part_files()) == 3
    ids, splits, flat, counts = part.frames()
    assert sorted(ids) == ["a", "b", "c", "d", "e"] and splits == ["train"] * 5
    assert flat.dtype == np.float32 and flat.shape == (1 + 2 + 3 + 4 + 5, DIM)
    by_id = dict(zip(ids, np.split(flat, np.cumsum(counts)[:-1]), strict=True))
    for i, t in enumerate(["a", "b", "c", "d", "e"]):  # row i has i + 1 frames, each filled with i
        np.testing.assert_array_equal(by_id[t], np.full((i + 1, DIM), i, np.float32))
    plain = _write(EmbeddingStore(str(tmp_path / "p")), ["a", "b"])
    with pytest.raises(ValueError, match=r"no frame-level embeddings.*repeval store rm .* --yes.*keep_frames: true"):
        plain.frames()


def test_read_parquet_is_read_table(tmp_path):
    """The store's reader of one part file (the plain file reader, not a dataset per file) gives what
    ``pq.read_table`` gives: every column, or the ones asked for in their order, with the file's schema metadata; a
    file that is not Parquet raises what the partition names as damaged."""
    from repeval.store.layout import read_parquet

    part = _write(EmbeddingStore(str(tmp_path / "s")), ["a", "b", "c", "d"], keep_frames=True)
    fs = part.fs
    for f in part.part_files() + part.error_files():
        for columns in (None, ["split", "track_id"], ["frames"]):
            if columns == ["frames"] and "_errors" in f:
                continue
            got, want = read_parquet(fs, f, columns), pq.read_table(f, columns=columns, filesystem=fs)
            assert got.equals(want, check_metadata=True) and got.column_names == want.column_names
    bad = part.part_files()[0]
    Path(bad).write_bytes(b"not parquet")
    with pytest.raises(DamagedPartFile, match=re.escape(bad) + r" is not a readable Parquet file"):
        part.done_ids()


def test_show_and_finish_open_each_part_file_once_for_counts(tmp_path):
    """Finishing a partition opens each part file twice (its ids, its footer's counts: rows and whether it may hold an
    audio note), `store show` once but for the first (its schema too) — each a round trip on object
    storage, thousands for a catalog's partition — and both count what they counted before."""
    from repeval.store.inspect import show_text
    from repeval.testing.fs import Counting

    handler = Counting()
    store = EmbeddingStore(str(tmp_path / "s"), filesystem=pafs.PyFileSystem(handler))
    part = _write(store, ["a", "b"])
    schema = embedding_schema(DIM)
    writer = PartitionWriter(part, schema, 2)
    for ids in (["c", "d"], ["e", "f"], ["g"]):
        writer.add_table(rows_table(_block(ids), schema, PROV))
    writer.flush()
    files, errors = part.part_files(), part.error_files()
    assert len(files) == 4 and len(errors) == 1
    handler.clear()
    manifest = part.finish({"model": "m"})
    assert {f: handler.opened[f] for f in files} == dict.fromkeys(files, 2), handler.opened
    assert manifest["rows"] == 7 and manifest["errors"] == 1 and manifest["noted_rows"] == {"cut": 0, "ogg": 0}
    handler.clear()
    text = show_text(part, n_rows=0)  # (the first rows are read file by file until there are enough)
    assert {f: handler.opened[f] for f in files[1:]} == dict.fromkeys(files[1:], 1), handler.opened
    assert "7 rows in 4 part files;" in text and "1 error record:" in text and "rows per split: train 7" in text


def test_plan_reads_a_partitions_ids_once_for_its_state_and_error_records(tmp_path):
    """`repeval plan`'s state of a partition and its error records' tracks share one read of its ids (a partition with
    error records read its part files twice), and count what each counted alone."""
    from repeval.pipeline.partitions import PartitionSpec, StoredIds, error_tracks, partition_state
    from repeval.testing.fs import Counting

    handler = Counting()
    part = _write(EmbeddingStore(str(tmp_path / "s"), filesystem=pafs.PyFileSystem(handler)), ["a", "b", "c", "d"])
    spec = PartitionSpec("clean", part.stamped()["fingerprint"], {})
    ids = pa.array(["a", "b", "bad", "e"])
    wanted = np.array([True, True, True, False])
    alone = partition_state(part, spec, ids, wanted), error_tracks(part, ids, wanted)
    for retry in (False, True):
        handler.clear()
        stored = StoredIds(part)
        state, what, done = partition_state(part, spec, ids, wanted, retry, stored)
        tracks = error_tracks(part, ids, wanted, stored)
        assert tracks == alone[1] == (1, ["bad"])  # "bad": an error record, no row
        parquet = {f: n for f, n in handler.opened.items() if f.endswith(".parquet")}
        assert parquet == dict.fromkeys(part.part_files() + part.error_files(), 1), handler.opened
        assert done is not None and done.tolist() == [True, True, not retry, False]
        assert (state, what) == (("todo", "1 of 3 tracks to embed") if retry else alone[0][:2])


def test_store_show_reads_no_embeddings(tmp_path, monkeypatch):
    """`store show` prints counts, the schema and the first rows without reading the embeddings or frames (most of
    a partition's bytes: gigabytes at catalog scale); the first rows span part files when the first is short."""
    from repeval.store.inspect import show_text

    store = EmbeddingStore(str(tmp_path / "s"))
    schema = embedding_schema(DIM, keep_frames=True)
    part = _write(store, ["a"], keep_frames=True)
    writer = PartitionWriter(part, schema, 1)
    writer.add_table(rows_table(_block(["b", "c", "d"], keep_frames=True), schema, PROV))  # one file
    writer.add_table(rows_table(_block(["e"], keep_frames=True), schema, PROV))
    writer.flush()
    read = []
    from repeval.store import inspect, layout, partition, partition_files

    def recording(fs, source, columns=None):
        read.append((source, columns))
        return layout.read_parquet(fs, source, columns)

    for module in (inspect, partition, partition_files):  # every reader of part files there (store.layout's)
        monkeypatch.setattr(module, "read_parquet", recording)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail(f"pq.read_table{a}: not store.layout's reader"))
    text = show_text(part, n_rows=3)
    data_reads = [cols for source, cols in read if source in part.part_files()]
    assert data_reads and all(c is not None and not {"embedding", "frames"} & set(c) for c in data_reads), read
    assert "5 rows in 3 part files;" in text and "frames: list<element: fixed_size_list" in text  # schema from a footer
    assert "frames: 8 total" in text  # a: 1; b, c, d: 1 + 2 + 3; e: 1
    shown = [line.split()[1] for line in text.splitlines() if re.match(r"\d+\s+\w\s+train\s", line)]
    assert shown == ["a", "b", "c"]


def test_embeddings_are_read_file_by_file_into_one_matrix(tmp_path):
    """``Partition.embeddings()`` (the store's documented reader) returns every row in file order and never holds
    the partition's whole Arrow column: Arrow's peak allocation (a fresh process) stays near one file's."""
    import subprocess
    import sys

    store = EmbeddingStore(str(tmp_path / "s"))
    part = store.partition("ds", "m", "clean")
    schema = embedding_schema(64)
    w = PartitionWriter(part, schema, 20)
    rng = np.random.default_rng(0)
    block = RowBlock(
        track_id=np.array([f"t{i:04d}" for i in range(2000)]), split=np.array(["train"] * 2000),
        scenario=np.array(["clean"] * 2000), embedding=rng.standard_normal((2000, 64)).astype(np.float32),
        n_frames=np.ones(2000, np.int32), n_chunks=np.ones(2000, np.int32), audio_seconds=np.ones(2000, np.float32),
        deformation_params=np.array([""] * 2000), model_version=np.array(["1"] * 2000),
    )  # fmt: skip
    for a in range(0, 2000, 20):
        w.add_table(rows_table(block.take(np.arange(a, a + 20)), schema, PROV))
    w.flush()
    ids, splits, mat = part.embeddings()
    assert splits == ["train"] * 2000
    files = part.part_files()
    assert len(files) == 100 and ids == [i for f in files for i in pq.read_table(f).column("track_id").to_pylist()]
    want = {t: e for f in files for t, e in zip(pq.read_table(f).column("track_id").to_pylist(),
                                                 pq.read_table(f).column("embedding").to_pylist(), strict=True)}  # fmt: skip
    np.testing.assert_array_equal(mat, np.array([want[t] for t in ids], np.float32))
    script = (
        "import sys, pyarrow as pa\nfrom repeval.store import EmbeddingStore\n"
        "p = EmbeddingStore(sys.argv[1], create=False).partition('ds', 'm', 'clean')\n"
        "before = pa.default_memory_pool().max_memory()\np.embeddings()\n"
        "print(pa.default_memory_pool().max_memory() - before)"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")], capture_output=True, text=True, check=True)
    # one 20-row file read takes ~8x its 5 KiB of embeddings (Arrow's reader buffers): ~47 KB in all, 100+ KB on a
    # loaded machine; the whole column is 512 KB. (With 50-row files the read alone neared the limit: flaky.)
    assert int(r.stdout.split()[-1]) < mat.nbytes / 4, (r.stdout, mat.nbytes)


def _errors_only(store: EmbeddingStore, n: int):
    """A complete partition ``ds/m/noise`` with no rows and ``n`` error records (reasons on two lines)."""
    part = store.partition("ds", "m", "noise")
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    errs = ErrorBlock()
    for i in range(n):
        errs.add(f"t{i}", "test", "noise", "decode", f"DecodeError: bad file {i}\n  at byte {i}")
    w = PartitionWriter(part, embedding_schema(DIM), 4)  # several error files
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": "noise"})
    return part


def test_store_show_errors_lists_only_the_error_records_all_or_the_first_rows(tmp_path):
    """`store show --rows N` printed N rows and N error records, so listing every error record of a partition
    meant asking for as many rows: `--errors` prints only the records, one line each, all of them or the first
    --rows; the plain view says when it printed only the first few."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _errors_only(store, 7)
    root, runner = str(tmp_path / "s"), CliRunner()
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise", "--errors"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "partition ds/m/noise: 7 error records: decode 7" and lines[1].split() == [
        "track_id", "split", "stage", "reason"
    ]  # fmt: skip
    assert [ln.split()[0] for ln in lines[2:]] == [f"t{i}" for i in range(7)]
    assert lines[2].split(None, 3)[3] == "DecodeError: bad file 0 at byte 0"  # one line per record
    assert "config_hash" not in res.output and "schema" not in res.output  # no manifest, no rows
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise", "--errors", "--rows", "2"])
    assert res.exit_code == 0 and res.output.splitlines()[0].endswith("7 error records (the first 2 shown)")
    assert [ln.split()[0] for ln in res.output.splitlines()[2:]] == ["t0", "t1"], res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise"])
    assert res.exit_code == 0 and "(the first 5; `--errors` lists all 7)" in res.output, res.output
    assert "(no rows: every track has an error record)" in res.output  # complete: not "yet"
    _write(store, ["a"]).finish({"dataset": "ds"})
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--errors", "--rows", "0"])
    assert res.exit_code == 0 and res.output.strip() == "partition ds/m/clean: 1 error record", res.output


def test_the_embedding_summary_command_lists_every_error_record(tmp_path):
    """The embedding summary's `repeval store show` commands asked for `--rows N`, printing N rows besides the N
    error records; they now use `--errors` and list exactly the partition's records, as printed."""
    import shlex

    from repeval.cli import app
    from repeval.pipeline.summary import EmbedSummary

    store = EmbeddingStore(str(tmp_path / "my store"))
    _errors_only(store, 7)
    _write(store, ["a", "b"]).finish({"dataset": "ds"})
    summary = EmbedSummary(errors=8, store_uri=store.uri)
    summary.add_failures("ds/m/noise", [f"t{i}" for i in range(7)], ["decode"] * 7, ["bad"] * 7)
    summary.add_failures("ds/m/clean", ["bad"], ["decode"], ["cannot decode"])
    commands = [shlex.split(ln) for ln in summary.failure_lines() if ln.strip().startswith("repeval store show")]
    assert commands == [["repeval", "store", "show", store.uri, p, "--errors"] for p in ("ds/m/clean", "ds/m/noise")]
    res = CliRunner().invoke(app, commands[1][1:])
    assert res.exit_code == 0 and [ln.split()[0] for ln in res.output.splitlines()[2:]] == [f"t{i}" for i in range(7)]
    res = CliRunner().invoke(app, commands[0][1:])
    assert res.exit_code == 0 and [ln.split()[0] for ln in res.output.splitlines()[2:]] == ["bad"], res.output
    assert "train" not in res.output  # the partition's rows are not printed


def test_the_store_rm_command_an_error_names_deletes_a_partition_with_a_space_in_its_name(tmp_path):
    """A dataset named `my notes` is stored as `my_notes/...`; the `repeval store rm` command a conflict names was
    not quoted (the shell split it in two) and `store rm 'my notes/m/clean'` matched nothing, "deleting" 0
    partitions: the command is quoted and rm takes a partition (or pattern) as the configuration names it."""
    import shlex

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1"):
        part = store.partition("my notes", "m", scenario)
        part.stamp({"fp": 1})
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "my notes"})
    with pytest.raises(StoreConflict) as exc:
        store.partition("my notes", "m", "clean").check_compatible({"fp": 2})
    command = shlex.split(re.search(r"`(repeval store rm [^`]*)`", str(exc.value)).group(1))
    assert command == ["repeval", "store", "rm", store.uri, "my notes/m/clean", "--yes"]
    runner = CliRunner()
    res = runner.invoke(app, ["store", "rm", store.uri, "my notes/*/*"])
    assert res.exit_code == 0 and "2 partitions would be deleted" in res.output, res.output
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert [p.name for p in store.partitions()] == ["my_notes/m/D1"]


def test_help_texts_show_the_default_store(tmp_path):
    """Typer renders help as rich markup, which ate every "[default: ...]" written into a help text: `store ls|show|rm
    --help` never said the store defaults to `store` (nor `report --help` where --out goes)."""
    from repeval.cli import app

    for args, text in (
        (["store", "ls"], "default: store"),
        (["store", "show"], "default store: store"),
        (["store", "rm"], "default store: store"),
        (["report"], "default: report.html in the first run"),
    ):
        res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert text in " ".join(res.output.replace("│", " ").split()), (args, res.output)


def _stamped_with_windows(store: EmbeddingStore, fingerprint: dict, track: int, n_chunks: int) -> Partition:
    """Partition ``ds/m/D1`` stamped with ``fingerprint``, holding tracks x and y, the ``track``-th of ``n_chunks``
    windows."""
    part = store.partition("ds", "m", "D1")
    part.stamp(fingerprint)
    block = _block(["x", "y"])
    block.n_chunks[track] = n_chunks
    schema = embedding_schema(DIM)
    w = PartitionWriter(part, schema, 3)
    w.add_table(rows_table(block, schema, PROV))
    w.flush()
    return part


def test_a_partition_of_one_window_rows_deformed_before_whole_track_deformation_is_accepted_and_restamped(tmp_path):
    """A scenario with a track-level step gained ``deformed: whole track`` in its fingerprint. A partition stamped before
    it whose rows are all one window long holds what the new code computes (one window is deformed alike either way):
    accepted, and re-stamped when rows are added; one with a row of several windows is a conflict naming the entry."""
    store = EmbeddingStore(str(tmp_path / "s"))
    before = {"fp": 1}
    now = {"fp": 1, "deformed": "whole track"}
    part = _write(store, ["a", "b", "c"])  # stamped {"fp": 1}, rows of one window (n_chunks 1)
    part.finish({})
    assert part.check_compatible(now) is False  # compatible, rows may be added
    with pytest.raises(StoreConflict, match="fp: stored 1, now 2"):
        part.check_compatible({"fp": 2, "deformed": "whole track"})  # anything else still differs
    with pytest.raises(StoreConflict, match="deformed"):
        part.check_compatible({"fp": 1, "deformed": "something else"})
    part.reopen()
    part.stamp(now, {"config_hash": "def456"})
    stamp = json.loads((tmp_path / "s" / "ds" / "m" / "clean" / "_stamp.json").read_text())
    assert stamp["fingerprint"] == now and stamp["config_hash"] == "def456"
    with pytest.raises(StoreConflict, match="deformed: stored"):
        part.check_compatible(before)  # and the old code's fingerprint no longer matches it

    several = _stamped_with_windows(store, before, track=1, n_chunks=3)  # three windows, deformed window by window
    with pytest.raises(StoreConflict, match="deformed") as err:
        several.check_compatible(now)
    assert "deformed window by window" in str(err.value) and "store rm" in str(err.value)


def test_a_partition_embedded_window_by_window_alone_is_refused_for_tracks_of_several_windows(tmp_path):
    """A model with a frame geometry gained ``windows: overlapped`` in its partitions' fingerprint (each window reaches
    it with its neighbours' audio): a partition stamped before it is accepted while its rows are all one window long
    (their bits are the same), and refused, saying why, once it holds a track of several windows."""
    store = EmbeddingStore(str(tmp_path / "s"))
    before = {"fp": 1}
    now = {"fp": 1, "windows": "overlapped"}
    one = _write(store, ["a", "b"])
    one.finish({})
    assert one.check_compatible(now) is False and one.restamp(now, {"config_hash": "x"})
    assert json.loads((tmp_path / "s" / "ds" / "m" / "clean" / "_stamp.json").read_text())["fingerprint"] == now

    several = _stamped_with_windows(store, before, track=0, n_chunks=2)  # two windows, each embedded alone
    with pytest.raises(StoreConflict, match="windows: not set when it was embedded, now") as err:
        several.check_compatible(now)
    assert "embedded window by window alone" in str(err.value) and "store rm" in str(err.value)


def test_a_partition_records_where_its_audio_came_from_and_an_old_one_stays_unrecorded(tmp_path):
    store = EmbeddingStore(str(tmp_path / "store"))
    a, b = {"type": "catalog", "dir": "/data/a"}, {"type": "catalog", "dir": "/data/b"}
    part = store.partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[a])
    part.finish({"dataset": "ds"})
    assert part.sources() == [a]
    assert part.add_sources([a]) is False  # nothing new: nothing written
    assert part.add_sources([b]) is True
    assert part.sources() == [a, b] and json.loads(Path(part.path, "_stamp.json").read_text())["sources"] == [a, b]
    old = store.partition("ds", "m", "D1")
    old.stamp({"fp": 1})  # as before sources were recorded
    old.finish({"dataset": "ds"})
    assert old.add_sources([b]) is False and old.sources() is None  # its rows' source is not known: not guessed
    old.reopen()
    old.stamp({"fp": 1}, sources=[b])  # rows are added from b: recorded from here on
    assert old.finish({"dataset": "ds"})["sources"] == [b]


def test_a_reused_partition_is_of_other_audio_when_its_place_differs_or_its_files_are_newer(tmp_path):
    """A source's `audio` (files, bytes, newest time the loader found) tells audio written since into the same
    folder; another task that lists a subset of the same files (fewer, none newer) is the same audio."""
    from repeval.pipeline.partitions import changed_source

    def src(files: int, newest: str, folder: str = "/data/a") -> dict:
        return {"type": "custom", "dir": folder, "audio": {"files": files, "bytes": files * 10, "newest": newest}}

    part = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[src(20, "2026-01-02T00:00:00.000000+00:00")])
    part.finish({"dataset": "ds"})
    assert changed_source(part, [src(20, "2026-01-02T00:00:00.000000+00:00")]) is None
    assert changed_source(part, [src(8, "2026-01-01T00:00:00.000000+00:00")]) is None  # a subset of the files
    assert changed_source(part, [{"type": "custom", "dir": "/data/a"}]) is None  # files not checked: not known
    assert changed_source(part, [src(20, "2026-01-03T00:00:00.000000+00:00")]) == part.sources()  # written since
    assert changed_source(part, [src(20, "2026-01-02T00:00:00.000000+00:00", "/data/b")]) == part.sources()
    part.add_sources([src(20, "2026-01-03T00:00:00.000000+00:00")])  # recorded by the run that said so
    assert changed_source(part, [src(20, "2026-01-03T00:00:00.000000+00:00")]) is None


def test_a_reused_partition_is_of_other_audio_when_its_sampled_content_differs_at_the_same_size(tmp_path):
    """The files' content digest (``audio.content``) tells audio rewritten at the same size and no newer; it is
    compared only with a record of as many files of the same total size, and a record without one (an earlier
    repeval's) is compared as before."""
    from repeval.pipeline.partitions import changed_source

    def src(content: str | None, files: int = 20, newest: str = "2026-01-02T00:00:00.000000+00:00") -> dict:
        audio = {"files": files, "bytes": files * 10, "newest": newest, "content": content}
        return {"type": "custom", "dir": "/data/a", "audio": {k: v for k, v in audio.items() if v is not None}}

    part = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[src("c1")])
    part.finish({"dataset": "ds"})
    assert changed_source(part, [src("c1")]) is None
    assert changed_source(part, [src("c2")]) == part.sources()  # same files and bytes, other content
    assert changed_source(part, [src("c2", newest="2026-01-01T00:00:00.000000+00:00")]) == part.sources()
    assert changed_source(part, [src("c3", files=8)]) is None  # a subset: another sample, not compared
    assert changed_source(part, [src(None)]) is None  # no digest now (files not read): as before
    older = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "D1")
    older.stamp({"fp": 1}, sources=[src(None)])
    older.finish({"dataset": "ds"})
    assert changed_source(older, [src("c2")]) is None  # recorded without a digest: not compared


def test_a_manifest_cut_short_counts_as_incomplete_and_is_completed_from_the_part_files(tmp_path, caplog):
    """A partition's _manifest.json cut short (a copy, a bad disk) made `repeval store ls`, `plan`, `embed` and `run`
    stop on "error: Unterminated string starting at: line 2 column 2" — no file named, no way on but finding it. Now
    it is named once in a warning and the partition counts as incomplete: the next run completes it from its part
    files (listed as incomplete with their rows meanwhile), computing nothing they hold."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c"])
    part.finish({"dataset": "ds"})
    manifest = Path(part.path, "_manifest.json")
    manifest.write_text(manifest.read_text()[:10])
    caplog.set_level("WARNING", logger="repeval.store")
    assert part.manifest() is None and not part.complete and part.stamped()["fingerprint"] == {"fp": 1}
    res = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert re.search(r"ds/m/clean\s+incomplete\s+3\s+1\s", res.stdout), res.stdout
    said = [r.getMessage() for r in caplog.records if "_manifest.json is unreadable" in r.getMessage()]
    assert len(said) == 1, said  # once, however often it is read
    assert "the partition counts as incomplete — the next `repeval run` or `repeval embed` completes it" in said[0]
    assert part.done_track_ids() == {"a", "b", "bad", "c"}  # what the next run does not compute
    part.finish({"dataset": "ds"})
    assert part.complete and part.manifest()["rows"] == 3


def test_store_ls_and_show_warn_of_a_stray_file_at_any_depth(tmp_path):
    """A file that is none of the store's was said at no depth: `ds/m/stray.txt` beside the partitions, or one in a
    partition's folder — which a plain Parquet reader of the partition (pq.read_table, duckdb) stops on — or deeper.
    `repeval store ls` now names each with one rule at every depth, `store show` those of its partition; the store's
    own files (lock, manifest, journal, hidden and temporary names) are not named, and the exit status stays 0. A
    `part-0.parquet.crc` (a Hadoop or Spark tool's, beside a copy) was taken for a part file, the partition damaged:
    only `part-*.parquet` are part files, the checksum a stray file."""
    from repeval.cli import app

    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    strays = ["notes.txt", "ds/notes.txt", "ds/m/stray.txt", "ds/m/clean/stray.txt", "ds/m/clean/x/y/stray.txt"]
    strays.append("ds/m/clean/part-0.parquet.crc")
    own = ["_lock.json", "ds/m/clean/.DS_Store", "ds/m/clean/_errors/.tmp-part-1.parquet", "_old/a/b/c/d.txt"]
    for rel in strays + own:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    show = CliRunner().invoke(app, ["store", "show", str(root), "ds/m/clean", "--rows", "0"])
    assert ls.exit_code == 0 and re.search(r"ds/m/clean\s+complete\s+2", ls.stdout), ls.output
    said = ls.stderr.replace("\n", " ")
    assert said.startswith(
        f"warning: 6 files in {root} are none of the store's (repeval neither writes nor reads them): ds/m/clean/part-"
        "0.parquet.crc, ds/m/clean/stray.txt, ds/m/clean/x/y/stray.txt, … — a plain Parquet reader of a partition (pq.read_table, "
        "duckdb) stops on one in the partition's folder: move them out of the store"
    ), said
    assert show.exit_code == 0 and show.stderr == (
        f"warning: 3 files in ds/m/clean of {root} are none of the store's (repeval neither writes nor reads them): "
        "part-0.parquet.crc, stray.txt, x/y/stray.txt — a plain Parquet reader of a partition (pq.read_table, duckdb) stops on one in the "
        "partition's folder: move them out of the store\n"
    ), show.stderr


def test_a_store_under_a_folder_named_like_an_access_denied_error_is_read_as_usual(tmp_path):
    """A bucket's refusal is told by its words in the error (AccessDenied, HTTP status 403): a store under a folder
    named so — its name in every error about a file there — had every missing manifest read as refused, each
    incomplete partition `unreadable` (exit 1) and a run stopped; the error's quoted paths are not read now."""
    from repeval.cli import app
    from repeval.cloud_reach import refused

    root = tmp_path / "AccessDenied-audit" / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])  # stamped, no manifest: incomplete
    assert not part.complete
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert ls.exit_code == 0 and re.search(r"ds/m/clean\s+incomplete\s+2", ls.stdout), ls.output
    with pytest.raises(OSError) as raised:  # not FileNotFoundError: pyarrow's plain OSError, the path quoted
        part.fs.open_input_stream(part.path)
    assert not refused(raised.value), raised.value


def test_store_ls_of_a_folder_with_no_partition_tells_no_one_to_move_its_files(tmp_path):
    """`repeval store ls` of a folder that holds no partition (a run directory given as the store, a dataset's
    folder) said "no partitions" and warned that its files were none of the store's: "move them out of the store" —
    the user's run files or audio. A folder with no partition is no store: its files are not called stray. And a stray
    file outside the partitions' folders was said to stop a plain Parquet reader of a partition: it does not."""
    from repeval.cli import app

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    for name in ("config.yaml", "status.json"):
        (run / name).write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "runs")])
    assert ls.exit_code == 0 and ls.stdout == f"{tmp_path / 'runs'}: no partitions\n" and ls.stderr == "", ls.output
    # in a store, a stray file beside the partitions' folders is said without what a Parquet reader of a partition
    # does (it reads none of those)
    root = tmp_path / "s"
    _write(EmbeddingStore(str(root)), ["a"])
    (root / "ds" / "notes.txt").write_text("x")
    (root / "tune" / "exp" / "trial").mkdir(parents=True)  # listed as `not a partition`: its files not named again
    (root / "tune" / "exp" / "trial" / "result.json").write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert ls.exit_code == 0 and ls.stderr == (
        f"warning: 1 file in {root} is none of the store's (repeval neither writes nor reads it): ds/notes.txt: move "
        "it out of the store\n"
    ), ls.output


def test_store_show_of_a_partition_folder_names_the_store_and_the_partition(tmp_path, monkeypatch):
    """`repeval store show STORE/DATASET/MODEL/SCENARIO` (a partition's own folder, as `ls` or a file browser shows
    it) was told it "is not a partition: name the partition after it (`repeval store show STORE/ds/m/clean
    DATASET/MODEL/SCENARIO`)" — a command that cannot work; it is told the command that shows it. A folder holding no
    partition was told the same: it is told to give the store."""
    from repeval.cli import app

    root = tmp_path / "s"
    _write(EmbeddingStore(str(root)), ["a"]).finish({"dataset": "ds"})
    res = CliRunner().invoke(app, ["store", "show", f"{root}/ds/m/clean/"])
    assert res.exit_code == 1 and res.stderr == (
        f"error: {root}/ds/m/clean/ is the folder of the store partition ds/m/clean: give the store, then the "
        f"partition (`repeval store show {root} ds/m/clean`)\n"
    ), res.output
    shown = CliRunner().invoke(app, ["store", "show", str(root), "ds/m/clean", "--rows", "0"])
    assert shown.exit_code == 0, shown.output
    with monkeypatch.context() as m:  # relative to the current folder: ./ as an absolute path is read
        m.chdir(tmp_path)
        res = CliRunner().invoke(app, ["store", "show", "./s/ds/m/clean"])
    assert res.exit_code == 1 and res.stderr.endswith("(`repeval store show ./s ds/m/clean`)\n"), res.output
    # a folder that holds no partition (a run directory, a dataset's) is no store: not told to name one after it
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("x")
    res = CliRunner().invoke(app, ["store", "show", str(tmp_path / "run")])
    assert res.exit_code == 1 and " ".join(res.stderr.split()) == (
        f"error: {tmp_path / 'run'} holds no store partition (no DATASET/MODEL/SCENARIO folder with part-*.parquet, "
        "_stamp.json or _manifest.json): give the embedding store (a configuration's run.store, `store` by default), "
        "then the partition (`repeval store show STORE DATASET/MODEL/SCENARIO`)"
    ), res.output
