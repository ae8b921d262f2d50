"""Frame-level embeddings are kept per store partition: a (dataset, model) keeps them when a task that reads it
aggregates frames (``prediction``, ``attention``) or ``run.keep_frames: true`` says so; a dataset used only by mean
tasks stores none, whatever the run's other datasets need. A partition an earlier run kept with frames still serves
mean tasks and is completed with frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from repeval import runner
from repeval.config import load_config, parse_config
from repeval.plan import make_plan
from repeval.testing.configs import notes_dataset

MODELS = ["mfcc-stats", "logmel-stats"]
FRAMES = {"window_s": 0.5, "hop_s": 0.25}  # ~5 frames per 1.5-s note


def _experiment(task: str, aggregation: str, datasets: list[dict]) -> dict:
    return {
        "task": {"name": task, "type": "multiclass_classification", "embedding_aggregation": aggregation},
        "datasets": datasets,
        "embedding_models": [{"id": m, "params": FRAMES} for m in MODELS],
        "downstream_models": [{"name": "linear", "hidden_units": []}],
        "metrics": ["accuracy"],
    }


def _write(tmp: Path, name: str, experiments: list[dict], **settings) -> Path:
    run = {"run_id": name, "store": str(tmp / "store"), "runs_dir": str(tmp / "runs"), "part_rows": 16, **settings}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"run": run, "experiments": experiments}, sort_keys=False))
    return path


def _frames(store: Path, dataset: str, model: str) -> tuple[bool, list[int], list[int]]:
    """(the partition's manifest says it keeps frames, its rows' frame counts, their n_frames) — no frames column:
    no counts."""
    t = pq.read_table(store / dataset / model / "clean")
    lengths = [len(f) for f in t.column("frames").to_pylist()] if "frames" in t.column_names else []
    manifest = yaml.safe_load((store / dataset / model / "clean" / "_manifest.json").read_text())
    assert manifest["keep_frames"] is manifest["fingerprint"]["keep_frames"]
    return manifest["keep_frames"], lengths, t.column("n_frames").to_pylist()


def test_only_the_datasets_a_frame_task_reads_keep_frames(ray_session, rendered_notes, tmp_path):
    """One run, two datasets (the same notes under two names), two models in one stream each: ``notes`` is read by
    a prediction task and keeps frames; ``more_notes``, read only by a mean task, keeps none — before, one
    prediction task made every partition of the run keep frames. The run's config.yaml reads back as the same
    configuration (no ``keep_frames: true`` written into it, which would now mean every partition)."""
    notes, more = notes_dataset(rendered_notes), notes_dataset(rendered_notes, name="more_notes")
    path = _write(tmp_path, "mixed", [_experiment("pred", "prediction", [notes]), _experiment("mean", "mean", [more])])
    cfg = load_config(path)
    assert [cfg.keeps_frames(d, m) for d in ("notes", "more_notes") for m in MODELS] == [True, True, False, False]
    assert "keep_frames" not in runner.config_yaml(cfg)
    assert parse_config(yaml.safe_load(runner.config_yaml(cfg))) == cfg

    summary = runner.stage_embed(runner.make_context(cfg), progress=False)
    assert summary.errors == 0 and summary.computed == 48 * 2 * 2
    store = tmp_path / "store"
    for model in MODELS:
        kept, lengths, n_frames = _frames(store, "notes", model)
        assert kept and lengths == n_frames and min(n_frames) >= 2
        kept, lengths, n_frames = _frames(store, "more_notes", model)
        assert not kept and lengths == [] and min(n_frames) >= 2  # counted, not stored
        # the same audio: the same mean embeddings, with or without frames beside them
        a, b = (pq.read_table(store / d / model / "clean").sort_by("track_id") for d in ("notes", "more_notes"))
        np.testing.assert_array_equal(np.stack(a.column("embedding").to_numpy(zero_copy_only=False)),
                                      np.stack(b.column("embedding").to_numpy(zero_copy_only=False)))  # fmt: skip
    assert make_plan(cfg, runner.make_context(cfg).store).partitions_done == 4
    _frame_memory_is_the_training_frames_size(cfg, store)


def _frame_memory_is_the_training_frames_size(cfg, store: Path) -> None:
    """`repeval plan` says the memory a frame-level task's trial holds, the training split's frames whole: equal to
    their real size in the store once embedded (the mean task's dataset: nothing), the model's rate per minute of
    audio before, and a warning naming the fixes when it exceeds the memory a node has (here Ray's, 1 KiB)."""
    from repeval.plan_memory import frame_memory

    before = make_plan(cfg).memory
    assert len(before) == 2 and all("per minute of training audio" in line for line in before), before
    plan = make_plan(cfg, runner.make_context(cfg).store, cluster={"CPU": 2.0, "memory": 2.0**40})
    assert len(plan.memory) == 2 and not plan.memory_warnings, plan.memory
    for model, line in zip(MODELS, plan.memory, strict=True):
        t = pq.read_table(store / "notes" / model / "clean", columns=["split", "frames"])
        train = [
            f
            for f, s in zip(t.column("frames").to_pylist(), t.column("split").to_pylist(), strict=True)
            if s == "train"
        ]
        real = np.asarray([v for f in train for v in f], dtype=np.float32)
        n, dim = real.shape
        assert f"notes/{model} (prediction)" in line and f"training split's {n:,} frames × {dim} × 4 B" in line, line
        assert n * dim * 4 == real.nbytes
    _, warned = frame_memory(cfg, runner.make_context(cfg).store, {"CPU": 2.0, "memory": 1024.0})
    assert len(warned) == 2 and all("embedding_aggregation: mean" in w and "node with more memory" in w for w in warned)


def test_a_partition_kept_with_frames_is_completed_with_frames(ray_session, rendered_notes, tmp_path):
    """A partition an earlier run stored with frames (``run.keep_frames: true`` run-wide, as every partition of a
    run with a prediction task was before) serves a run of mean tasks as it is, and, incomplete, is completed with
    frames — not refused (its rows cannot mix with rows without frames), nor left without them."""
    notes = notes_dataset(rendered_notes)
    framed = load_config(_write(tmp_path, "framed", [_experiment("mean", "mean", [notes])], keep_frames=True))
    assert runner.stage_embed(runner.make_context(framed), progress=False).computed == 48 * 2

    cfg = load_config(_write(tmp_path, "mean", [_experiment("mean", "mean", [notes])]))
    mean = runner.make_context(cfg)
    assert not cfg.keeps_frames("notes", "mfcc-stats")
    again = runner.stage_embed(mean, progress=False)
    assert again.computed == 0 and again.skipped == 48 * 2  # complete: it serves the mean task as it is
    part = mean.store.partition("notes", "mfcc-stats", "clean")
    part.reopen()
    lost = pq.read_metadata(part.part_files()[0]).num_rows
    Path(part.part_files()[0]).unlink()  # a local store: part files are plain paths
    plan = make_plan(cfg, mean.store)
    assert not plan.conflicts and plan.partitions_done == 1, plan.text()
    assert runner.stage_embed(runner.make_context(cfg), progress=False).computed == lost
    kept, lengths, n_frames = _frames(tmp_path / "store", "notes", "mfcc-stats")
    assert kept and len(lengths) == 48 and lengths == n_frames
