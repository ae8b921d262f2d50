"""``repeval store rm PARTITION --track ID``: given tracks' rows and error records deleted from the part files that hold
them (rewritten under a journal), the partition marked incomplete; a dry run, unknown ids, a rewrite stopped midway."""

from __future__ import annotations

import logging
import re
import shlex

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from store_helpers import DIM, PROV, _block
from typer.testing import CliRunner

from repeval.cli import app
from repeval.cli.store_tracks import remove_tracks, settle_partitions
from repeval.pipeline.assemble import ErrorBlock, errors_table, rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store import rewrite as rewrite_mod
from repeval.store.layout import ERROR_SCHEMA, DamagedPartFile, embedding_schema
from repeval.testing.fs import faulty_fs


def _partition(store: EmbeddingStore, scenario: str, files: list[list[str]], errors: list[str]):
    """A complete partition ``ds/m/<scenario>``: a row part file per list of ``files``, one error file of ``errors``."""
    part = store.partition("ds", "m", scenario)
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    schema = embedding_schema(DIM)
    w = PartitionWriter(part, schema, 10_000)
    for ids in files:
        w.add_table(rows_table(_block(ids), schema, PROV))
        w.flush()
    errs = ErrorBlock()
    for t in errors:
        errs.add(t, "test", scenario, "decode", "cannot decode")
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": scenario})
    return part


def _ids(ids: list[str]) -> pa.Array:
    return pa.array(ids, pa.string())


def _state(part) -> tuple[list[str], list[str], list[str]]:
    """(row ids, error ids, every file name in the partition): what a reader sees, and what lies there."""
    rows = sorted(part.read(["track_id"]).column(0).to_pylist())
    listing = part.fs.get_file_info(pafs.FileSelector(part.path, recursive=True))
    files = sorted(i.path[len(part.path) + 1 :] for i in listing)
    return rows, sorted(part.error_ids().to_pylist()), files


@pytest.fixture()
def store(tmp_path) -> EmbeddingStore:
    store = EmbeddingStore(str(tmp_path / "s"))
    _partition(store, "clean", [["a", "b"], ["c", "d"], ["e"]], ["x", "y"])
    _partition(store, "D1", [["a", "c"]], ["x"])
    return store


def test_dry_run_lists_per_partition_and_changes_nothing_then_yes_removes_only_those_tracks(store, tmp_path):
    clean, d1 = store.partition("ds", "m", "clean"), store.partition("ds", "m", "D1")
    before = {p.name: (_state(p), p.manifest()) for p in (clean, d1)}
    root = store.uri
    (tmp_path / "ids.txt").write_text("# fixed paths\nc\n\nx\n")
    res = CliRunner().invoke(app, ["store", "rm", root, "ds/m/*", "--tracks-from", str(tmp_path / "ids.txt")])
    assert res.exit_code == 0, res.output
    assert "ds/m/clean  (complete, 5 rows, 2 error records): 2 of 2 tracks — 1 row, 1 error record\n" in res.output
    assert "ds/m/D1  (complete, 2 rows, 1 error records): 2 of 2 tracks — 1 row, 1 error record\n" in res.output
    assert "2 rows and 2 error records of 2 tracks would be deleted from 2 partitions of" in res.output
    assert {p.name: (_state(p), p.manifest()) for p in (clean, d1)} == before  # nothing touched, not even the manifest

    newest_ns = clean.newest_write_ns()
    res = CliRunner().invoke(app, ["store", "rm", root, "ds/m/*", "--track", "c", "--track", "x", "--yes"])
    assert res.exit_code == 0 and "deleted 2 rows and 2 error records of 2 tracks from 2 partitions" in res.output
    rows, errors, files = _state(clean)
    assert (rows, errors) == (["a", "b", "d", "e"], ["y"])
    assert not clean.complete and not d1.complete  # incomplete: the next run computes c and x again
    assert _state(d1)[:2] == (["a"], [])
    # only the file that held c was rewritten (a new name, a later write time); the others kept their names
    old_files = before["ds/m/clean"][0][2]
    assert len(set(files) & set(old_files)) == len(old_files) - 3  # [c, d]'s file, the error file, the manifest
    assert clean.newest_write_ns() > newest_ns
    assert not [f for f in files if "_rewrite" in f or ".tmp" in f]


def test_ids_found_nowhere_are_refused_and_those_missing_from_some_partitions_are_named(store):
    before = _state(store.partition("ds", "m", "clean"))
    res = CliRunner().invoke(app, ["store", "rm", store.uri, "ds/m/*", "--track", "b", "--track", "zz", "--yes"])
    assert res.exit_code == 1, res.output
    assert "ds/m/D1  (complete, 2 rows, 1 error records): none of 2 tracks" in res.output
    assert (
        "ds/m/clean  (complete, 5 rows, 2 error records): 1 of 2 tracks — 1 row, 0 error records; not in it: zz"
        in res.output
    )
    assert "track id in none of the 2 partitions given" in res.output and ": zz — nothing was deleted" in res.output
    assert _state(store.partition("ds", "m", "clean")) == before and store.partition("ds", "m", "clean").complete
    res = CliRunner().invoke(app, ["store", "rm", store.uri, "ds/m/*", "--track", "b"])  # in one partition only: fine
    assert res.exit_code == 0 and "1 row and 0 error records of 1 track would be deleted from 1 partition" in res.output


@pytest.mark.parametrize("stop_at", ["before_commit", "after_commit"])
def test_a_removal_stopped_midway_shows_the_old_rows_or_the_new_never_both_and_is_finished_after(
    store, monkeypatch, caplog, stop_at
):
    clean = store.partition("ds", "m", "clean")
    write = rewrite_mod.write_table_atomic
    calls = []

    def stop_after_first(*args, **kwargs):  # the second new file is never written: the rewrite is not committed
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(write(*args, **kwargs))

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    if stop_at == "before_commit":
        monkeypatch.setattr(rewrite_mod, "write_table_atomic", stop_after_first)
    else:
        monkeypatch.setattr(rewrite_mod, "_delete_replaced", stop)
    with pytest.raises(KeyboardInterrupt):
        clean.remove_tracks(_ids(["b", "d", "y"]))  # two row files: [a, b] and [c, d]
    monkeypatch.undo()
    rows, errors, files = _state(clean)
    assert "_rewrite.json" in files and not clean.complete  # the journal of the rows' folder
    if stop_at == "before_commit":  # the new file written is not shown: the old rows, each once
        assert (rows, errors) == (["a", "b", "c", "d", "e"], ["x", "y"])
        assert len(calls) == 1 and calls[0][len(clean.path) + 1 :] in files
    else:  # committed: the new files, without the old ones still lying there (stopped before the error records)
        assert (rows, errors) == (["a", "c", "e"], ["x", "y"])
    assert sorted(clean.done_ids().to_pylist()) == sorted(set(rows) | set(errors))  # what a run would not compute
    with caplog.at_level(logging.INFO, logger="repeval.store.rewrite"):
        if stop_at == "after_commit":
            clean.reopen()  # what the next run does before writing to it: the stopped removal is finished
        else:  # or, without a run, `repeval store settle`
            res = CliRunner().invoke(app, ["store", "settle", "--store", store.uri, "ds/m/clean"])
            assert res.exit_code == 0, res.output
            assert (
                "ds/m/clean: a track removal stopped before it took effect: deleted the 1 new file it had written"
                in res.output
            )
            assert "settled 1 folder in 1 partition of" in res.output
    if stop_at == "after_commit":  # a run's reopen logs what it finished
        assert "finished a track removal (`repeval store rm --track`) that was stopped" in caplog.text, caplog.text
    else:  # `store settle` said it in its output: once, not in a log line too
        assert "took effect" not in caplog.text, caplog.text
    rows_after, errors_after, files = _state(clean)
    assert (rows_after, errors_after) == (rows, errors) and not [f for f in files if "_rewrite" in f]
    assert sorted(pc.unique(clean._ids(clean.part_files())).to_pylist()) == rows  # each row in one file only
    assert len(clean.part_files()) == 3
    # removed again, it ends where an uninterrupted removal does
    clean.remove_tracks(_ids(["b", "d", "y"]))
    assert _state(clean)[:2] == (["a", "c", "e"], ["x"])


@pytest.mark.parametrize("uri", ["mock:///stores/s", "subtree"])
def test_removal_on_any_pyarrow_filesystem(tmp_path, uri):
    if uri == "subtree":
        (tmp_path / "sub").mkdir()
        store = EmbeddingStore("/s", filesystem=pafs.SubTreeFileSystem(str(tmp_path / "sub"), pafs.LocalFileSystem()))
    else:
        store = EmbeddingStore(uri)
    part = _partition(store, "clean", [["a", "b"], ["c"]], ["x"])
    done = part.remove_tracks(_ids(["c", "b", "x"]))
    assert (done.rows, done.errors, done.stuck) == (2, 1, {})
    assert _state(part)[:2] == (["a"], [])
    assert part.track_hits(_ids(["a"]))[2] == {"a"}


def test_a_journal_that_cannot_be_read_is_an_error_naming_the_fix_never_rows_twice(store, monkeypatch):
    clean = store.partition("ds", "m", "clean")
    monkeypatch.setattr(rewrite_mod, "_delete_replaced", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        clean.remove_tracks(_ids(["b"]))  # committed: [a, b]'s file replaced by [a]'s, both lying there
    monkeypatch.undo()
    with clean.fs.open_output_stream(f"{clean.path}/{rewrite_mod.REWRITE}") as fh:
        fh.write(b'{"old": ["part-')  # damaged (cut short): which files hold the rows is unknown
    rm = re.escape(f"(`repeval store rm {store.uri} ds/m/clean --yes`)")  # the store's own, not STORE PARTITION
    with pytest.raises(
        DamagedPartFile, match=rf"_rewrite\.json, the journal of a track removal .* cannot be read.*{rm}"
    ):
        clean.part_files()  # read as no journal, it listed both files: a, b, c, d, e and a again
    res = CliRunner().invoke(app, ["store", "rm", store.uri, "ds/m/clean", "--yes"])  # the fix the error names
    assert res.exit_code == 0, res.output
    assert not clean.fs.get_file_info(clean.path).type == pafs.FileType.Directory


def test_a_journal_not_found_in_a_filesystems_own_words_is_none_one_unreadable_is_an_error():
    """A filesystem whose not-found error is an OSError of its own (not FileNotFoundError) has no journal there: every
    run reopening a partition reads it; one that is there but cannot be read raises."""

    class Worded:  # what the journal's reader calls of a pyarrow filesystem
        def __init__(self, there: bool) -> None:
            self.there = there

        def open_input_stream(self, path):
            raise OSError(f"When reading information for key '{path}': NO_SUCH_KEY" if not self.there else "timed out")

        def get_file_info(self, path):
            return pafs.FileInfo(path, pafs.FileType.File if self.there else pafs.FileType.NotFound)

    assert rewrite_mod._journal(Worded(there=False), "s/ds/m/clean") is None
    with pytest.raises(DamagedPartFile, match=r"s/ds/m/clean/_rewrite\.json, the journal .* \(timed out\)"):
        rewrite_mod._journal(Worded(there=True), "s/ds/m/clean")


def test_a_replaced_file_that_cannot_be_deleted_is_a_warning_ls_flags_it_and_store_settle_finishes_it(
    store, capsys, caplog
):
    clean = store.partition("ds", "m", "clean")
    held = clean.track_hits(_ids(["c"]))[0]
    replaced = next(iter(held)).rsplit("/", 1)[-1]  # [c, d]'s file: rewritten into [d]'s, then deleted — refused
    fs = faulty_fs(refused={replaced})
    locked = EmbeddingStore(store.root, filesystem=fs, create=False)
    with caplog.at_level(logging.WARNING):
        remove_tracks(locked, [locked.partition("ds", "m", "clean")], ["c", "x"], yes=True)  # no exception: done
    out = capsys.readouterr()
    assert "deleted 1 row and 1 error record of 2 tracks from 1 partition" in out.out
    # said once, with the reason: a log warning said why and the command's warning after it said it again without
    assert "warning: could not delete 1 file a track removal (`repeval store rm … --track`) left over: " in out.err
    assert re.search(rf"ds/m/clean/{replaced} \(.*Permission denied.*\) — ", out.err), out.err
    assert f"`repeval store settle {store.uri} ds/m/clean`" in out.err
    assert replaced not in caplog.text, caplog.text
    assert _state(clean)[:2] == (["a", "b", "d", "e"], ["y"])  # repeval reads the removal as done
    assert sorted(pq.read_table(clean.path).column("track_id").to_pylist()) == ["a", "b", "c", "d", "d", "e"]

    # a plain reader's view is flagged, with the command that settles it
    res = CliRunner().invoke(app, ["store", "ls", store.uri])
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines() if line.startswith("ds/m/")]
    states = {r[0]: r[1] for r in rows if not r[0].endswith(":")}  # the table's rows, not the note after it
    assert states == {"ds/m/D1": "complete", "ds/m/clean": "unsettled"}, res.output
    assert (
        "ds/m/clean: a track removal (`repeval store rm … --track`) was stopped or could not finish, leaving 1 file "
        f"it replaced or was writing ({replaced})" in res.output
    )
    assert f"`repeval store settle {store.uri} ds/m/clean`" in res.output
    res = CliRunner().invoke(app, ["store", "show", store.uri, "ds/m/clean", "--rows", "0"])
    assert res.exit_code == 0 and "`repeval store settle" in res.output, res.output

    # while the file cannot be deleted: settling fails naming it, a new removal is refused (its journal would show
    # the stuck file again), and nothing changes
    settle = re.escape(f"`repeval store settle {store.uri} ds/m/clean`")  # the store's own, not STORE
    caplog.clear()
    with (
        caplog.at_level(logging.INFO, logger="repeval.store.rewrite"),
        pytest.raises(
            RuntimeError,
            match=rf"could not delete 1 file .*ds/m/clean/{replaced} \(.*Permission denied.*{settle}",
        ),
    ):
        settle_partitions(locked, locked.partitions())
    assert replaced not in caplog.text, caplog.text  # said once: in the command's error, not in a warning too
    with pytest.raises(RuntimeError, match=f"ds/m/clean: nothing was removed — could not delete .*{settle}"):
        locked.partition("ds", "m", "clean").remove_tracks(_ids(["a"]))
    # across partitions, refused before any is changed: ds/m/D1 (first, holding "a" too) is left as it was
    d1 = store.partition("ds", "m", "D1")
    d1_before = (_state(d1), d1.manifest())
    with pytest.raises(
        RuntimeError,
        match=rf"nothing was removed — a stopped track removal cannot finish in 1 partition given \(ds/m/clean\): "
        rf"could not delete 1 file .*: ds/m/clean/{replaced} .*{settle}",
    ):
        remove_tracks(locked, locked.partitions(), ["a"], yes=True)
    assert (_state(d1), d1.manifest()) == d1_before
    with (
        caplog.at_level(logging.INFO, logger="repeval.store.rewrite"),
        pytest.raises(RuntimeError, match=rf"ds/m/clean: not marked complete .* could not delete .*{settle}"),
    ):
        locked.partition("ds", "m", "clean").finish({})  # a run done with it: complete, a plain reader trusts it
    assert replaced not in caplog.text, caplog.text  # the refusals named it, no log line besides
    with caplog.at_level(logging.WARNING, logger="repeval.store.rewrite"):
        locked.partition("ds", "m", "clean").reopen()  # a run writing to it goes on: its warning is what says so
    assert f"{replaced} (" in caplog.text and f"`repeval store settle {store.uri} ds/m/clean`" in caplog.text
    assert _state(clean)[:2] == (["a", "b", "d", "e"], ["y"]) and not clean.complete

    fs.handler.refused.clear()  # deletable again (the permission fixed, the bucket reachable)
    res = CliRunner().invoke(app, ["store", "settle", store.uri])
    assert res.exit_code == 0, res.output
    assert "ds/m/clean: finished a stopped track removal: deleted 1 replaced file" in res.output
    assert "settled 1 folder in 2 partitions of" in res.output
    assert sorted(pq.read_table(clean.path).column("track_id").to_pylist()) == ["a", "b", "d", "e"]
    assert _state(clean)[:2] == (["a", "b", "d", "e"], ["y"]) and clean.unsettled() is None
    res = CliRunner().invoke(app, ["store", "ls", store.uri])
    assert "unsettled" not in res.output and "ds/m/clean  incomplete" in res.output, res.output
    res = CliRunner().invoke(app, ["store", "settle", store.uri, "ds/m/*"])
    assert res.exit_code == 0 and "nothing to settle: no stopped track removal in 2 partitions" in res.output


def test_store_commands_refused_for_a_store_in_use_say_to_run_themselves_again_quoted(tmp_path):
    """`store rm` and `store settle` refused while a run holds the store say to run that same command again (its
    arguments quoted for a shell), not to give "this run another run.store"."""
    from repeval.store.lock import StoreLock

    store = EmbeddingStore(str(tmp_path / "my store"))
    _partition(store, "clean", [["a b"]], [])
    commands = {
        "rm": ["store", "rm", store.uri, "ds/m/clean", "--track", "a b", "--yes"],
        "settle": ["store", "settle", store.uri],
    }
    with StoreLock(store, "a run"):
        for args in commands.values():
            res = CliRunner().invoke(app, args)
            said = " ".join(res.output.split())
            assert res.exit_code == 1 and "is in use by run 'a run'" in said, res.output
            again = shlex.join(["repeval", *args])
            assert f"wait for it to finish, then run `{again}` again" in said and "run.store" not in said, said
    assert f"{store.uri}'" in again and "'a b'" in shlex.join(["repeval", *commands["rm"]])  # quoted, as run


def test_removed_error_records_are_known_as_retried_until_the_partition_is_complete_again(store):
    """The tracks whose error records `repeval store rm … --track` removed are computed again by the next run, as
    `--retry-errors` computes them: their failing again there is no sign of a model failing on every track, which
    stopped it (and left it out of every later run, its embedded tracks unused). The partition records their ids
    (``_retried.parquet``, a track's removed rows not among them) — never read as rows — until it is complete again."""
    from repeval.pipeline.todo import Stream, stream_key

    part = store.partition("ds", "m", "clean")
    assert part.remove_tracks(_ids(["a", "x"])).errors == 1
    assert part.retried_ids().to_pylist() == ["x"] and not part.complete
    assert pq.read_table(part.path).num_rows == 4  # a plain reader of the folder reads the rows alone
    key = stream_key("ds", "clean")
    st = Stream(None, 16000, None, parts={key: part})
    st.clear_retried()  # as the stream of the run that computes them again starts
    assert st.retrying == {(key, "x")}
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean"})
    assert not len(part.retried_ids()) and "_retried.parquet" not in _state(part)[2]


def test_a_retried_record_left_in_a_complete_partition_goes_as_it_is_opened_again(store):
    """A run killed after it marked a retried partition complete, before it deleted ``_retried.parquet`` (or whose
    delete the storage refused), left the record in the complete partition: a later run that opened it again (more
    tracks, `store rm --track`) took its tracks as retried, and the model failing on them — a track it had embedded
    after the retry, its rows removed since — counted toward no stop. Opening a complete partition deletes it first."""
    from repeval.pipeline.todo import Stream, stream_key
    from repeval.store.partition_stamp import NewStamp

    part = store.partition("ds", "m", "clean")
    part.remove_tracks(_ids(["x"]))  # x's error record removed: computed again by the next run
    record = f"{part.path}/_retried.parquet"
    left = part.fs.open_input_stream(record).readall()
    w = PartitionWriter(part, embedding_schema(DIM), 10_000)
    w.add_table(rows_table(_block(["x"]), embedding_schema(DIM), PROV))  # the retry embedded it
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean"})
    with part.fs.open_output_stream(record) as out:  # killed before the record's delete: it is left
        out.write(left)
    assert part.complete and part.retried_ids().to_pylist() == ["x"]
    part.remove_tracks(_ids(["x"]))  # its rows removed: the next run computes it again, not as a retried track
    key = stream_key("ds", "clean")
    st = Stream(None, 16000, None, parts={key: part}, opening={key: (part, NewStamp({"fp": 1}))})
    st.open_parts()
    st.clear_retried()
    assert st.retrying == set() and not len(part.retried_ids())
    assert "_retried.parquet" not in _state(part)[2]


def test_store_show_says_what_became_of_the_retried_tracks_of_an_incomplete_partition(store):
    """`repeval store show` of a partition whose retry was stopped midway said only "incomplete … rerun to finish it":
    not that tracks of it were retried, nor how many were embedded since, failed again or are still to compute."""
    part = _partition(store, "D1", [["a"]], ["x", "y", "z"])
    part.remove_tracks(_ids(["x", "y", "z"]))  # as --retry-errors deletes them (noted alike)
    w = PartitionWriter(part, embedding_schema(DIM), 10_000)
    w.add_table(rows_table(_block(["x"]), embedding_schema(DIM), PROV))  # embedded this time
    errs = ErrorBlock()
    errs.add("y", "test", "D1", "decode", "cannot decode")  # failed again
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()  # stopped here: z not computed yet
    res = CliRunner().invoke(app, ["store", "show", store.uri, "ds/m/D1"])
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "(incomplete: no manifest yet; rerun to finish it)" in said, res.output
    assert (
        "3 tracks of it retried (their error records deleted by --retry-errors, --retry-model or `repeval store rm … "
        "--track` to compute them again): 1 embedded since, 1 failed again, 1 still to compute"
    ) in said
    part.finish({"dataset": "ds", "model": "m", "scenario": "D1"})
    assert "retried" not in CliRunner().invoke(app, ["store", "show", store.uri, "ds/m/D1"]).output


def test_store_show_says_one_retried_track_in_the_singular(store):
    """One retried track read "1 track of it retried (their error records deleted … to compute them again): 0 embedded
    since, 1 failed again, 0 still to compute"; it says what became of it, in the singular."""
    part = _partition(store, "D1", [["a"]], ["x"])
    part.remove_tracks(_ids(["x"]))
    said = " ".join(CliRunner().invoke(app, ["store", "show", store.uri, "ds/m/D1"]).output.split())
    assert (
        "1 track of it retried (its error record deleted by --retry-errors, --retry-model or `repeval store rm … "
        "--track` to compute it again): still to compute"
    ) in said, said
