"""Faults inside one process's Ray (the session fixture): a bad-audio corpus, kill -9 of an embedding
actor mid-run, probe trials that raise or diverge to NaN."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from reliability_helpers import (
    CLASSES,
    FAST_MODEL,
    SLOW_MODEL,
    embeddings_of,
    experiment,
    make_catalog,
    store_rows,
    write_config,
)
from typer.testing import CliRunner

from repeval import runner
from repeval.cli import app
from repeval.config import load_config
from repeval.report.html import write_report
from repeval.store import EmbeddingStore
from repeval.testing.badaudio import KINDS, make_corpus

#: 4 kHz analysis keeps the 3-hour file cheap (43 M samples, a second or two of FFTs)
LOW_RATE_MODEL = {
    "id": "mfcc-4k",
    "type": "mfcc-stats",
    "params": {"sample_rate_hz": 4000, "n_fft": 512, "hop_length": 256, "n_mels": 24, "n_mfcc": 12},
}

# ------------------------------------------------------------------------------- bad audio corpus


@pytest.fixture(scope="module")
def bad_audio_run(ray_session, tmp_path_factory):
    """``repeval embed`` over 10 good tracks plus every bad-audio kind (all in the test split, so each is
    also deformed: a bad file must fail in every scenario), then the same command with ``--strict``."""
    root = tmp_path_factory.mktemp("badaudio")
    corpus = make_corpus(root / "bad")
    extra = [{"track_id": f"bad-{b.kind}", "audio_path": str(b.path), "label": "low", "split": "test"} for b in corpus]
    manifest = make_catalog(root, per_class=5, seconds=1.0, extra=extra)
    # check_files off: the missing/unreadable paths must reach the decoder (with it on, the loader drops them)
    cfg = write_config(root / "c.yaml", root, [experiment(manifest, [LOW_RATE_MODEL], check_files=False)])
    cli = CliRunner()
    first = cli.invoke(app, ["embed", str(cfg)])
    strict = cli.invoke(app, ["embed", str(cfg), "--strict"])
    return root, corpus, first, strict


def test_bad_audio_corpus_has_every_kind_the_issue_lists():
    assert len(KINDS) >= 10
    for kind in ("empty_file", "truncated_header", "truncated_data_flac", "not_audio_wav", "not_audio_flac",
                 "zero_length_audio", "all_silent", "nan_samples", "inf_samples", "channels_8", "rate_1khz",
                 "rate_192khz", "three_hours", "dangling_path", "fifo", "symlink_loop"):  # fmt: skip
        assert kind in KINDS


def windows_of(n_samples: int, model: dict) -> int:
    """How many windows of 30 s a track of ``n_samples`` is cut into for ``model``: on its frame grid, each at least
    twice what a frame reads (``window_grid``), the last taking a remainder of at least half a window."""
    from repeval.audio.decode import window_sizes
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.models import resolve_model
    from repeval.pipeline.partitions import model_geometry
    from repeval.pipeline.stages import window_grid

    g = model_geometry(*resolve_model(EmbeddingModelConfig(**model)))
    size, hold = window_sizes(model["params"]["sample_rate_hz"], 30.0, *window_grid(g))
    count = 0
    while n_samples >= hold:
        count, n_samples = count + 1, n_samples - size
    return count + (n_samples > 0)


def test_every_good_track_is_embedded_and_every_bad_one_is_an_error_with_its_reason(bad_audio_run):
    root, corpus, first, _ = bad_audio_run
    assert first.exit_code == 0, first.output
    store = EmbeddingStore(str(root / "store"))
    good = {f"{label}-{i:03d}" for label in CLASSES for i in range(5)}
    valid = {f"bad-{b.kind}" for b in corpus if b.valid}
    invalid = {f"bad-{b.kind}": b for b in corpus if not b.valid}
    for sid in ("clean", "D1"):
        part = store.partition("tones", LOW_RATE_MODEL["id"], sid)
        m = part.manifest()
        assert m is not None, f"{sid} is not complete"
        rows = part.read().to_pylist()
        ids = {r["track_id"] for r in rows}
        wanted_good = good if sid == "clean" else {t for t in good if t.endswith("-004")}  # the test split
        assert ids == wanted_good | valid, (
            f"{sid}: missing {(wanted_good | valid) - ids}, extra {ids - wanted_good - valid}"
        )
        for r in rows:
            assert np.isfinite(r["embedding"]).all(), r["track_id"]
        errors = {e["track_id"]: e for e in part.read_errors().to_pylist()}
        assert set(errors) == set(invalid), sid
        for tid, b in invalid.items():
            assert errors[tid]["stage"] == "decode"
            assert b.reason in errors[tid]["reason"].lower(), (b.kind, errors[tid]["reason"])
            assert str(b.path) in errors[tid]["reason"]  # the reason names the file
        assert (m["rows"], m["errors"]) == (len(ids), len(invalid))
        seconds = {r["track_id"]: (r["audio_seconds"], r["n_chunks"]) for r in rows}
        for b in corpus:
            if b.valid:
                got_s = seconds[f"bad-{b.kind}"][0]
                assert got_s == pytest.approx(b.seconds, rel=1e-3, abs=0.01), b.kind
        # streamed in windows of 30 s on the model's frame grid (rounded down to whole frame hops), never whole in memory
        assert seconds["bad-three_hours"][1] == windows_of(3 * 3600 * 4000, LOW_RATE_MODEL) > 3 * 3600 // 30 - 1
    n_err = 2 * len(invalid)
    assert f"{n_err} errors (decode {n_err})" in first.stdout


def test_strict_makes_error_records_fatal(bad_audio_run):
    root, corpus, _, strict = bad_audio_run
    n_invalid = sum(not b.valid for b in corpus)
    assert strict.exit_code == 3, strict.output
    err = strict.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --strict: {2 * n_invalid} error records in ")
    assert "already in store" in strict.stdout  # nothing recomputed: errors are kept, not retried
    # the rows it reuses, as `repeval store ls` counts them: the error records are said apart, not as rows
    rows = sum(t.num_rows for t in store_rows(root / "store").values())
    assert f"({rows} rows already in store)" in strict.stdout, strict.stdout
    assert f"{2 * n_invalid} error records of earlier runs kept" in strict.stdout, strict.stdout


def test_loader_with_file_checks_reports_unreadable_paths_before_decoding(tmp_path):
    from repeval.datasets import load_dataset

    corpus = make_corpus(tmp_path / "bad", ["dangling_path", "fifo", "directory", "symlink_loop", "all_silent"])
    extra = [{"track_id": b.kind, "audio_path": str(b.path), "label": "low", "split": "test"} for b in corpus]
    manifest = make_catalog(tmp_path, per_class=5, seconds=0.5, extra=extra)
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])]))
    exp = cfg.experiments[0]
    rows, report = load_dataset(exp.datasets[0], exp.task)
    ids = set(rows.column("track_id").to_pylist())
    assert "all_silent" in ids and not ids & {"dangling_path", "fifo", "directory", "symlink_loop"}
    assert report.totals["missing_audio"] == 4 and "missing audio" in " ".join(report.lines())


# ----------------------------------------------------------------- kill -9 of an embedding actor


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _descends_from(pid: int, ancestor: int) -> bool:
    try:
        while pid > 1:
            pid = _ppid(pid)
            if pid == ancestor:
                return True
    except (OSError, ValueError, IndexError):
        return False
    return False


def embed_actors(stage: str = "MapBatches(Embed)") -> dict[int, str]:
    """The worker processes running ``stage`` (the embedding actors, or the tasks a light model runs in) started by
    *this* test process's Ray (never anyone else's)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            title = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if title.startswith("ray::") and stage in title and _descends_from(int(d), os.getpid()):
            out[int(d)] = title
    return out


@pytest.mark.parametrize("placement", ["never", "auto"])
def test_kill9_of_an_embedding_worker_mid_run(ray_session, fault_catalog, reference_run, tmp_path, placement):
    """A process embedding audio is killed with -9 while it computes, and the run completes with every row once,
    equal bit for bit to the uninterrupted reference run. ``never``: an actor of the model's pool, which Ray Data
    restarts (``max_restarts=-1``, ``max_task_retries=-1`` are its defaults for actor pools); ``auto``: the
    worker of a decode task the light model runs in (``embed_in_decode``), whose task Ray retries."""
    stage = "MapBatches(Embed)" if placement == "never" else "MapBatches(DecodeEmbed)"
    exp = experiment(fault_catalog, [SLOW_MODEL])
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [exp], resources={"embed_in_decode": placement}))
    ctx = runner.make_context(cfg)
    store = EmbeddingStore(str(tmp_path / "store"))
    names = [f"tones/{SLOW_MODEL['id']}/{s}" for s in ("clean", "D1")]
    killed: dict[str, object] = {}
    finished = threading.Event()

    def killer() -> None:
        first_ticks: dict[int, int] = {}
        while not finished.is_set():
            for pid, title in embed_actors(stage).items():
                if "__init__" in title:
                    continue
                try:
                    ticks = _cpu_ticks(pid)
                except OSError:
                    continue
                first_ticks.setdefault(pid, ticks)
                busy = ticks - first_ticks[pid] >= 10  # computing (0.1 s of CPU since it was first seen)
                incomplete = not any(p.complete for p in store.partitions())
                if busy and incomplete:
                    os.kill(pid, signal.SIGKILL)
                    killed.update(
                        pid=pid, title=title, rows_before=sum(len(p.part_files()) for p in store.partitions())
                    )
                    return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        summary = runner.stage_embed(ctx)
    finally:
        finished.set()
        t.join(timeout=30)
    assert killed, f"no {stage} worker was killed: the run ended before the fault point"
    assert any(op.endswith(stage) for op in summary.operators), summary.operators
    assert not Path(f"/proc/{killed['pid']}").exists()
    total = 24 + 4
    assert (summary.computed, summary.skipped, summary.errors) == (total, 0, 0)
    ours, ref = store_rows(tmp_path / "store"), store_rows(reference_run.store)
    assert sorted(ours) == sorted(names)
    for name in names:
        ia, ea = embeddings_of(ours[name])
        ib, eb = embeddings_of(ref[name])
        assert ia == ib and len(set(ia)) == len(ia), name  # no row lost, none duplicated
        assert ea.tobytes() == eb.tobytes(), f"{name}: embeddings differ from the uninterrupted run"


# ------------------------------------------------------------------- probe trials that fail


def test_trials_that_raise_or_diverge_are_recorded_as_failed_while_the_grid_completes(
    ray_session, fault_catalog, reference_run, tmp_path
):
    probes = [
        {
            "name": "linear",
            "hidden_units": [],
            "standardize": True,
            "learning_rate": 0.01,
            "batch_size": 8,
            "epochs": 10,
        },
        # learning rate 1e30 through a hidden layer: the loss overflows to inf/NaN in the first epoch
        {"name": "diverges", "hidden_units": [8], "learning_rate": 1e30, "batch_size": 8, "epochs": 10},
        # a 2**50-unit layer: the trial raises (the allocation is refused; nothing is touched)
        {"name": "raises", "hidden_units": [2**50], "batch_size": 8, "epochs": 10},
    ]
    # a second task on the same embeddings whose grid has a diverging probe too: two grids, two sets of failures
    other = {
        **experiment(fault_catalog, [FAST_MODEL], probes=probes[:2]),
        "task": {"name": "pitch_b", "type": "multiclass_classification"},
    }
    cfg = load_config(
        write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL], probes=probes), other])
    )
    # the reference run's store holds these partitions (the same catalog, model and deformation): its copy spares
    # embedding them again
    shutil.copytree(reference_run.store, tmp_path / "store")
    ctx = runner.make_context(cfg)
    assert runner.stage_embed(ctx).computed == 0
    summary = runner.stage_train(ctx)
    assert summary["trained"] == 2
    failed = {(f["task"], f["probe"]): f["reason"] for f in summary["failed"]}
    wanted = {("pitch", "diverges"), ("pitch", "raises"), ("pitch_b", "diverges")}
    assert set(failed) == wanted, summary["failed"]
    assert "non-finite loss" in failed["pitch", "diverges"]
    assert "allocate" in failed["pitch", "raises"] or "RuntimeError" in failed["pitch", "raises"], failed

    def recorded() -> set[tuple[str, str]]:
        rows = pq.read_table(ctx.run_dir / "failed.parquet").to_pylist()
        assert all(r["reason"] for r in rows)
        return {(r["task"], r["probe"]) for r in rows}

    assert recorded() == wanted
    results = runner.stage_evaluate(ctx).to_pandas()
    assert set(results["probe"]) == {"linear"}
    assert set(results["scenario"]) == {"clean", "D1"}
    # a rerun that trains one grid again — the other was committed before an interruption (or its embeddings did
    # not change): failed.parquet keeps the other grid's failures (it held only the retrained grid's)
    (ctx.run_dir / "groups" / f"pitch_b__tones__{FAST_MODEL['id']}.parquet").unlink()
    again = runner.stage_train(runner.make_context(cfg))
    assert (again["trained"], again["skipped"]) == (1, 1)
    assert {f["task"] for f in again["failed"]} == {"pitch_b"}
    assert recorded() == wanted
    # the report names them, per task and dataset, with their reasons (they are in none of its tables)
    runner.stage_evaluate(ctx)
    text = write_report([ctx.run_dir], tmp_path / "report.html").read_text()
    assert "Failed probe trainings (2)" in text and "Failed probe trainings (1)" in text
    assert text.count("non-finite loss at epoch") == 2 and "<td>raises</td>" in text
