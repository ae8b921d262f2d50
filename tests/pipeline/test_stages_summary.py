"""What the embedding stage says: its summary line, a model that cannot run, Ray Data's failure lines, the tracks in
flight when the stream stops."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from stages_cases import _decode_rows, _embed

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import build_model
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.embedder import Embed


def test_the_summary_line_says_what_it_counts_and_when_there_was_nothing_to_embed():
    """The stage's summary said "embedded 480 tracks" for 120 tracks embedded by 2 models in 2 scenarios (tracks ×
    models), and "embedded 0 tracks → 0 rows … 0.0 rows/s" when the store held everything. It now counts rows, says
    what its track count is, and says plainly when there was nothing to do. Its scenarios follow the configuration's
    order (clean first, as tables and the report have them), not their names' ("[D1 240, clean 240]"), nor the order
    their rows came in; so do the partitions its other lines list."""
    from collections import Counter

    from repeval.pipeline.summary import EmbedSummary

    two = EmbedSummary(tracks=240, computed=480, streams=2, wall_s=10.0, rows_by_scenario=Counter(D1=240, clean=240))
    line = two.line()
    assert line.startswith("embedded 480 rows [clean 240, D1 240] from 240 tracks×models (2 models), 0 rows already "
                           "in store, 0 errors, in 10.0s"), line  # fmt: skip
    assert "48.0 rows/s" in line
    order = dict.fromkeys(f"d/{m}/{s}" for m in ("m2", "m1") for s in ("clean", "noise_10db", "mp3_32kbps"))
    three = EmbedSummary(tracks=80, computed=640, wall_s=1.0, partition_order=order, store_uri="s",
                         rows_by_scenario=Counter(mp3_32kbps=80, clean=480, noise_10db=80))  # fmt: skip
    assert three.line().startswith("embedded 640 rows [clean 480, noise_10db 80, mp3_32kbps 80] from 80 tracks")
    three.cut_reused.update({"d/m1/clean": 1, "d/m2/mp3_32kbps": 2, "d/m2/clean": 3})
    assert "reuses — d/m2/clean: 3; d/m2/mp3_32kbps: 2; d/m1/clean: 1. " in (three.cut_reused_warning() or "")
    three.add_failures("d/m1/noise_10db", ["a"], ["decode"], ["bad"])
    three.add_failures("d/m2/mp3_32kbps", ["b"], ["decode"], ["bad"])
    three.earlier_errors.update({"x/m/clean": 1, "d/m1/clean": 1})  # one not planned (in no test): after, by name
    shown = [line.split()[-2] for line in three.failure_lines() if line.startswith("  repeval store show")]
    assert shown == ["d/m2/mp3_32kbps", "d/m1/noise_10db", "d/m1/clean", "x/m/clean"], three.failure_lines()
    one = EmbedSummary(tracks=120, computed=120, streams=1, skipped=3, wall_s=1.0)
    assert one.line().startswith("embedded 120 rows from 120 tracks, 3 rows already in store"), one.line()
    idle = EmbedSummary(skipped=96, partitions_already_complete={"d/m/clean", "d/m/D1"})
    assert idle.line() == "nothing to embed: 2 partitions already complete (96 rows already in store)"
    # one of each, said in the singular ("embedded 1 rows from 1 tracks"); counts said in the plural otherwise
    single = EmbedSummary(tracks=1, computed=1, skipped=1, errors=1, retried=1, streams=1, wall_s=1.0)
    assert single.line().startswith(
        "embedded 1 row from 1 track, 1 row already in store, 1 error (retried 1 earlier error record), in 1.0s"
    ), single.line()
    assert EmbedSummary(skipped=1, partitions_already_complete={"d/m/clean"}).line() == (
        "nothing to embed: 1 partition already complete (1 row already in store)"
    )
    single.earlier_errors.update({"d/m/clean": 1})
    assert single.failure_lines()[0] == (  # --retry-model, which retries that model's records alone, was not named
        "1 error record of earlier runs kept for this run's tracks, in 1 partition (not computed again, not evaluated; "
        "`--retry-errors` computes them again, or `--retry-model m` those of that model alone):"
    )
    assert "or `--retry-model m`, `--retry-model m1` those of one model alone):" in three.failure_lines()[-3]
    idle.partitions_completed.append("/s/d/m2/clean")  # held every track, not yet marked complete
    assert idle.line().endswith("; 1 marked complete") and "rows/s" not in idle.line()


def test_the_summary_line_gives_its_figures_a_size_at_any_scale():
    """A run of a few short clips printed "0 s of audio per second" (and "0.0 rows/s", "0.0s start-up"): its figures,
    rounded to fixed decimals, said nothing. Below 1 they now keep two significant digits; above, as before."""
    from repeval.pipeline.summary import EmbedSummary

    tiny = EmbedSummary(tracks=1, computed=1, audio_seconds=0.25, wall_s=40.0, startup_s=0.04)
    assert tiny.line().endswith(
        "in 40.0s (0.04s start-up) — 0.025 rows/s, 0.0063 s of audio per second after start-up"
    ), tiny.line()
    big = EmbedSummary(tracks=9, computed=900, audio_seconds=27_000.0, wall_s=12.5, startup_s=3.0)
    assert big.line().endswith("in 12.5s (3.0s start-up) — 94.7 rows/s, 2842 s of audio per second after start-up")


def test_a_model_that_cannot_run_is_said_at_the_first_batch_and_named_by_the_driver(files, tmp_path):
    """An embedding actor whose model cannot run where it starts (a node that joined after the run checked the
    models) raised as it started: the actor died in Ray Data's pool, and the job's log got Ray's tracebacks and no
    repeval error. The actor now starts and says it at its first batch, which reaches the driver as Ray's error
    with the worker's traceback as text; the driver makes repeval's error of it, with the fix for a cluster."""
    from repeval.models import ModelUnavailable
    from repeval.pipeline.embedder import this_node
    from repeval.pipeline.preflight import unavailable_in_stream

    missing = tmp_path / "nowhere.pt"
    cfg = EmbeddingModelConfig(id="clmr-x", type="clmr-v2", params={"checkpoint": str(missing)})
    emb = Embed(cfg, threads=1)  # without Ray "here"; with Ray (the suite's) "on node <address>"
    rows = _decode_rows(files, ["short"], [["clean"]])
    said_where = re.escape(f"'clmr-x' cannot run {this_node()}: weights file {missing} not found")
    with pytest.raises(ModelUnavailable, match=said_where) as e:
        emb(rows)
    said = str(e.value)
    carried = RuntimeError(  # what a RayTaskError(UserCodeException) says: the worker's traceback
        'ray::MapWorker(MapBatches(Embed)).submit() (pid=1, ip=10.0.1.7)\n  File "embedder.py", line 1, in '
        f"__call__\n    raise self.unavailable\nrepeval.models.base.ModelUnavailable: {said}\n\nThe above exception "
        "was the direct cause of the following exception:\n\nray.exceptions.UserCodeException: UDF failed"
    )
    for exc in (carried, e.value):
        found = unavailable_in_stream(exc)
        assert isinstance(found, ModelUnavailable) and str(found).startswith(said + " — "), found
        assert "a node that joins later" in str(found) and "docs/cluster.md" in str(found)
    assert unavailable_in_stream(RuntimeError("UDF failed: ValueError: something else")) is None


def test_a_cuda_device_torch_cannot_use_is_a_model_that_cannot_run_there(files, tmp_path):
    """``params.device: cuda`` where torch sees no GPU (this machine's CPU build of torch): torch's "Torch not compiled
    with CUDA enabled" killed the embedding actor as it started, Ray's tracebacks in the job's log. Now the run's
    model check on each node and the actor both say it as a model that cannot run there, naming the fix."""
    import torch

    from repeval.models import ModelUnavailable
    from repeval.models.dummies import dummy_params
    from repeval.pipeline.embedder import this_node
    from repeval.pipeline.preflight import unavailable_here

    params = {**dummy_params("clmr-v2", tmp_path), "device": "cuda"}
    cfg = EmbeddingModelConfig(id="clmr-gpu", type="clmr-v2", params=params)
    if torch.cuda.is_available():  # torch here has a GPU: the model is built on it
        assert unavailable_here([cfg]) == {} and str(build_model(cfg).device) == "cuda"
        return
    why = f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
    fix = "set params.device: auto (the GPU where torch sees one, else the CPU), or install a CUDA build of torch"
    said = unavailable_here([cfg]).get("clmr-gpu", "")  # the run's check on each node, before anything is embedded
    assert why in said and said.startswith("params.device is 'cuda', but torch") and fix in said, said
    emb = Embed(cfg, threads=1)  # an actor on a node that joined later: said at its first batch
    with pytest.raises(ModelUnavailable, match=re.escape(f"'clmr-gpu' cannot run {this_node()}: params.device")) as e:
        emb(_decode_rows(files, ["short"], [["clean"]]))
    assert why in str(e.value) and fix in str(e.value), e.value
    auto = EmbeddingModelConfig(id="clmr-auto", type="clmr-v2", params={**params, "device": "auto"})
    assert unavailable_here([auto]) == {} and str(build_model(auto).device) == "cpu"


def test_ray_datas_failure_lines_are_held_back_and_said_unless_repeval_says_the_error():
    """Ray Data announces a failing UDF in two ERROR lines ("… with the abbreviated stack trace below" — for a model
    that cannot run on a node, repeval's own one-line error followed, no trace): held while the stream runs, said
    when the failure is another, dropped when repeval says it. Other lines pass."""
    import logging

    from repeval.pipeline.stream import HeldFailureLines

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in HeldFailureLines.LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        for drop in (False, True):
            seen.clear()
            held = HeldFailureLines()
            loggers[0].error('An exception was raised from a task of operator "MapBatches(Embed)". Dataset …')
            loggers[1].error("Exception occurred in user code, with the abbreviated stack trace below. …")
            loggers[1].error("Exception occurred in Ray Data or Ray Core internal code. …")
            assert seen == ["Exception occurred in Ray Data or Ray Core internal code. …"]
            held.release(drop=drop)
            held.release()  # the stream's `finally`: nothing more
            assert len(seen) == (1 if drop else 3), seen
            loggers[0].error("An exception was raised from a task of operator after the stream")
            assert seen[-1] == "An exception was raised from a task of operator after the stream"
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def test_tracks_in_flight_when_the_stream_stops_are_said_one_or_several(files, caplog):
    """A stream that stops with a track's chunks half arrived drops it, logged: "1 track in flight …: they are
    recomputed" read wrong for one."""
    _, _, out = _embed(files, ["long"], [["clean", "D1"]], keep_frames=False)
    first = np.flatnonzero(np.asarray(out["chunk"]) == 0)  # the first of each scenario's 5 chunks
    caplog.set_level(logging.INFO, logger="repeval.pipeline.assemble")
    for n, said in (
        (1, "1 track in flight when the stream stopped: it is"),
        (2, "2 tracks in flight when the stream stopped: they are"),
    ):
        asm = TrackAssembler(keep_frames=False)
        asm.add({k: v[first[:n]] for k, v in out.items()})
        caplog.clear()
        assert asm.abandon() == n
        assert caplog.messages == [f"{said} recomputed on the next run"]
