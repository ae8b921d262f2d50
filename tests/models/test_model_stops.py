"""A model stopped for failing on each of its first tracks, without a run: the watch on a stream's batches
(:class:`~repeval.pipeline.failing.FailingModel`) and its message, the stop recorded in the partitions the model failed
in, and a stop record edited by hand. The runs that stop models: ``test_failing_models.py``."""

from __future__ import annotations

import logging

import pytest


def test_the_watch_stops_one_fault_whatever_its_numbers_and_never_a_model_failing_some_tracks():
    """:class:`~repeval.pipeline.failing.FailingModel` on the batches a stream's driver gets: the same error with other
    numbers (a track's length) is one fault, stopped at the limit, with a message that leaves what the run's other
    models do to its caller (a run of one model stops with it: "the run's other models go on" was said there too);
    different errors, one embedded track, or files that did not decode are never the model's fault."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.assemble import ErrorBlock
    from repeval.pipeline.failing import FailingModel, ModelFailing

    def errors(*reasons: str, stage: str = "embed", first: int = 0) -> ErrorBlock:
        out = ErrorBlock()
        for i, why in enumerate(reasons, first):
            out.add(f"t{i}", "train", "clean", stage, why)
        return out

    mcfg = EmbeddingModelConfig(id="net", type="mfcc-stats")
    watch = FailingModel(mcfg, limit=3)
    watch.see(None, errors("decode: no such file", "decode: no such file", "decode: no such file", stage="decode"))
    watch.see(None, errors("RuntimeError: no accelerator for 16000 samples", first=3))
    with pytest.raises(ModelFailing) as stopped:
        watch.see(None, errors(*(f"RuntimeError: no accelerator for {n} samples" for n in (800, 24000)), first=4))
    said = str(stopped.value)
    assert said.startswith("embedding model 'net' failed on each of the first 3 tracks it was given, with the same")
    assert "RuntimeError: no accelerator for 16000 samples — stopped early (its 6 error records so far" in said, said
    assert "other models" not in said and "`repeval validate-model mfcc-stats" in said
    assert said.endswith(
        "a model that fails only on some kind of track (the longest: out of memory, a length limit) that the dataset "
        "lists first is not broken: raise run.stop_model_after_failed_tracks (now 3), or set it to null never to stop "
        "a model"
    ), said
    assert "and embedded none (not counted: 3 tracks whose audio failed to decode or deform): RuntimeError" in said
    # retried tracks failing again are not counted either: the message said "the first 2 tracks it was given" of a
    # model given 4, whose 4 error records it kept
    retried = FailingModel(mcfg, limit=2, retried={("clean", "t0"), ("clean", "t1")})
    retried.see(None, errors(*[f"RuntimeError: no accelerator for {n} samples" for n in (1, 2)]))
    with pytest.raises(ModelFailing) as stopped:
        retried.see(None, errors(*[f"RuntimeError: no accelerator for {n} samples" for n in (3, 4)], first=2))
    said = str(stopped.value)
    assert said.startswith(
        "embedding model 'net' failed on each of the first 2 tracks it was given, with the same error, and embedded "
        "none (not counted: 2 retried tracks failing again as before): RuntimeError: no accelerator for 3 samples — "
        "stopped early (its 4 error records so far are kept)"
    ), said
    one = FailingModel(mcfg, limit=1, retried={("clean", "t0")})
    one.see(None, errors("decode: no such file", stage="decode", first=5))
    with pytest.raises(ModelFailing, match=r"\(not counted: 1 retried track failing again as before and 1 track whose"):
        one.see(None, errors("RuntimeError: x", "RuntimeError: x"))
    # counted as tracks, as the stopping count is: a file that failed to decode has a record in each scenario (it
    # said "3 tracks whose audio failed to decode" of one file under 3 scenarios), a retried track too
    scenarios = FailingModel(mcfg, limit=1, retried={(sid, "t0") for sid in ("clean", "D1", "D2")})
    bad = ErrorBlock()
    for sid in ("clean", "D1", "D2"):
        bad.add("t0", "train", sid, "embed", "RuntimeError: x")
        bad.add("t1", "train", sid, "decode", "decode: no such file")
    scenarios.see(None, bad)
    with pytest.raises(ModelFailing, match=r"\(not counted: 1 retried track failing again as before and 1 track whose"):
        scenarios.see(None, errors("RuntimeError: x", first=2))
    with pytest.raises(ModelFailing, match=r"^embedding model 'net' failed on the first track it was given, with the"):
        FailingModel(mcfg, limit=1).see(None, errors("RuntimeError: x"))  # not "each of the first 1 track"
    with pytest.raises(ModelFailing, match=r"stopped early \(its 1 error record so far is kept\)"):  # not "are"
        FailingModel(mcfg, limit=1).see(None, errors("RuntimeError: x"))
    never = FailingModel(mcfg, limit=None)  # run.stop_model_after_failed_tracks: null
    never.see(None, errors(*(f"RuntimeError: no accelerator for {n} samples" for n in range(40))))
    assert not never.watching and not never.failed

    one = "RuntimeError: no accelerator for 1 sample"
    for block, other in ((None, errors("ValueError: a clip it cannot take", first=1)), ([0.5], errors())):
        watch = FailingModel(mcfg, limit=2)  # then a different error, or an embedded track: no more watched
        watch.see(None, errors(one))
        watch.see(block, other)
        watch.see(None, errors(*[one] * 4, first=2))
        assert not watch.watching


def test_a_stop_is_recorded_where_the_model_failed_and_a_run_on_another_dataset_runs_it(tmp_path):
    """A stream of two datasets stopped on the first one's tracks recorded the stop in the second's partition too,
    never given a track: a later run of the model on that dataset alone left it out "again", naming a partition that
    holds no error record (a model failing only on long recordings, stopped on them, never ran on short clips). Now
    the stop is recorded in the partitions the model failed in: a run on the other dataset runs it; one that includes
    the failing one leaves it out again, naming that one (`repeval store show` says so: it said "rerun to finish it") —
    until `repeval store rm PARTITION --track ID` removes error records of it ("the next run computes them again": it
    left the model out again, not run)."""
    import numpy as np
    import pyarrow as pa

    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.assemble import ErrorBlock, errors_table
    from repeval.pipeline.failing import FailingModel, ModelFailing, left_out_again, mark_stopped
    from repeval.pipeline.todo import stream_key
    from repeval.store import EmbeddingStore, PartitionWriter
    from repeval.store.inspect import show_text
    from repeval.store.layout import ERROR_SCHEMA, embedding_schema

    mcfg = EmbeddingModelConfig(id="net", type="mfcc-stats")
    store = EmbeddingStore(str(tmp_path / "store"))
    parts = {name: store.partition(name, "net", "clean") for name in ("long", "short")}
    for part in parts.values():  # the stream's partitions, as a run stamps them before it starts
        part.stamp({"fp": 1}, {"config_hash": "abc"})
    failed = ErrorBlock()
    for i in range(3):
        failed.add(f"t{i}", "train", stream_key("long", "clean"), "embed", "RuntimeError: out of memory")
    with pytest.raises(ModelFailing) as stopped:
        FailingModel(mcfg, limit=3).see(None, failed)
    code = {"plugin": "p.py", "sha256": "0"}
    mark_stopped(parts.values(), stopped.value, code)
    assert left_out_again(mcfg, [parts["short"]], code, False, 3) is None  # never given a track: run it
    why = left_out_again(mcfg, [parts["short"], parts["long"]], code, False, 3)
    assert why is not None and "(store partition long/net/clean) when it failed on each of the first 3 tracks" in why
    said = show_text(parts["long"])  # `repeval store show`: it said "rerun to finish it", which left the model out
    assert "(incomplete: a run stopped its model when it failed on each of the first 3 tracks it was given" in said
    assert "runs leave the model out, not run, until it is fixed — then rerun with --retry-model net)" in said, said
    # `repeval store ls` listed it "incomplete" as any partition a rerun finishes: now "stopped", why on stderr
    from typer.testing import CliRunner

    from repeval.cli import app

    listed = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "store")])
    assert listed.exit_code == 0, listed.output
    states = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:3]}
    assert states == {"long/net/clean": "stopped", "short/net/clean": "incomplete"}, listed.stdout
    assert listed.stderr.strip() == (
        "long/net/clean: a run stopped its model when it failed on each of the first 3 tracks it was given, with the "
        "same error: RuntimeError: out of memory; runs leave the model out, not run, until it is fixed — then rerun "
        "with --retry-model net"
    ), listed.stderr
    records = ErrorBlock()
    records.add("t0", "train", "clean", "embed", "RuntimeError: out of memory")
    writer = PartitionWriter(parts["long"], embedding_schema(2), 10)
    writer.add_errors(
        errors_table(
            records,
            ERROR_SCHEMA,
            {"model": "net", "config_hash": "abc", "repeval_version": "0", "created_at": np.datetime64(0, "ms")},
        )
    )
    writer.flush()
    assert parts["long"].remove_tracks(pa.array(["t0"])).errors == 1  # `repeval store rm long/net/clean --track t0`
    assert left_out_again(mcfg, [parts["long"]], code, False, 3) is None


def test_a_stop_edited_into_other_types_is_said_unreadable_as_a_damaged_stamp_is(tmp_path, caplog):
    """A ``stopped_failing`` record edited by hand (a count as words, a time as a date) stopped `repeval run`, `plan`
    and `store show` with a raw ``ValueError: invalid literal for int()``. Now it is unreadable as a damaged stamp
    is: said once in a warning naming the file and the fix, and taken as no stop (the next run tries the model)."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.failing import left_out_again
    from repeval.store import EmbeddingStore
    from repeval.store.inspect import show_text

    mcfg = EmbeddingModelConfig(id="net", type="mfcc-stats")
    part = EmbeddingStore(str(tmp_path / "store")).partition("notes", "net", "clean")
    part.stamp({"fp": 1}, {"config_hash": "abc"})
    stop = {"error": "RuntimeError: out of memory", "tracks": "thirty-two", "at": 1.7e9, "model_code": None}
    part.record("stopped_failing", stop)
    with caplog.at_level(logging.WARNING, logger="repeval.store"):
        assert left_out_again(mcfg, [part], None, False, 3) is None  # the model runs
        assert "(incomplete: no manifest yet; rerun to finish it)" in show_text(part)
    said = [r.getMessage() for r in caplog.records if "stopped_failing" in r.getMessage()]
    assert said == [
        f"store partition notes/net/clean: the stopped_failing record of {part.path}/_stamp.json is unreadable "
        '(tracks is "thirty-two", not a whole number, 1 or more): the model is taken as not stopped — the next run '
        "tries it again; delete the stopped_failing key from the file (a run that stops the model records it anew), "
        "or restore it as a run wrote it"
    ], said  # once per file
