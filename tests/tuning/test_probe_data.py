"""Probe data read from the embedding store: the same arrays as the partition's whole matrix gives, read file by
file (the whole matrix never held), for mean embeddings and frames, with rows arriving shuffled, stored twice, or
absent from the dataset's rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import embedding_schema
from repeval.tuning.data import probe_data
from repeval.warn import reset_warned

DIM = 16


def write_partition(store: EmbeddingStore, scenario: str, ids: list[str], splits: list[str], seed: int,
                    n_frames: list[int] | None = None, dim: int = DIM, part_rows: int = 37) -> None:  # fmt: skip
    """Rows of one partition in the store's schema, ``part_rows`` per file; frames when ``n_frames`` is given."""
    rng = np.random.default_rng(seed)
    schema = embedding_schema(dim, keep_frames=n_frames is not None)
    writer = PartitionWriter(store.partition("ds", "m", scenario), schema, part_rows)
    for a in range(0, len(ids), part_rows):
        sel = range(a, min(len(ids), a + part_rows))
        cols: dict[str, pa.Array] = {
            "track_id": pa.array([ids[i] for i in sel]),
            "split": pa.array([splits[i] for i in sel]),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(len(sel) * dim, np.float32)), dim),
        }  # fmt: skip
        if n_frames is not None:
            nf = np.array([n_frames[i] for i in sel], np.int32)
            values = pa.array(rng.standard_normal(int(nf.sum()) * dim, np.float32))
            offsets = pa.array(np.concatenate([[0], np.cumsum(nf)]).astype(np.int32))
            cols["n_frames"] = pa.array(nf)
            cols["frames"] = pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(values, dim))
        n = len(sel)
        writer.add_table(pa.table([cols.get(f.name, pa.nulls(n, f.type)) for f in schema], schema=schema))
    writer.flush()


def catalog(tmp_path: Path, frames: bool, n: int = 300, dim: int = DIM) -> tuple[EmbeddingStore, pa.Table]:
    """``n`` tracks (80/10/10), stored in a shuffled order over several files, five of them twice; scenario
    ``noise`` holds the test and training tracks, ``gain`` the test tracks."""
    rng = np.random.default_rng(0)
    ids = [f"track-{i:04d}" for i in range(n)]
    pattern = ("train",) * 8 + ("validation", "test")
    splits = [pattern[i % 10] for i in range(n)]
    rows = pa.table({"track_id": ids, "split": splits, "label": [[f"c{i % 4}", f"c{i % 3 + 4}"] for i in range(n)]})
    store = EmbeddingStore(str(tmp_path / "store"))
    n_frames = rng.integers(1, 6, n).tolist()
    for seed, (scenario, keep) in enumerate([("clean", None), ("noise", ("train", "test")), ("gain", ("test",))]):
        order = [int(i) for i in rng.permutation(n) if keep is None or splits[i] in keep]
        if scenario == "clean":
            order += order[10:15]  # stored twice (a retried task delivered twice before dedupe)
        write_partition(store, scenario, [ids[i] for i in order], [splits[i] for i in order], seed,
                        n_frames=[n_frames[i] for i in order] if frames else None, dim=dim)  # fmt: skip
    return store, rows


def reference(store: EmbeddingStore, rows: pa.Table, scenario: str, split: str, frames: bool):
    """A split's embeddings (or frames and per-track counts), labels' tracks and ids from the whole partition."""
    part = store.partition("ds", "m", scenario)
    split_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True))
    if frames:
        ids, _, flat, counts = part.frames()
        starts = np.cumsum(counts) - counts
        x = [flat[s : s + c] for s, c in zip(starts, counts, strict=True)]
    else:
        ids, _, mat = part.embeddings()
        x, counts = list(mat), np.ones(len(ids), np.int64)
    first = {t: i for i, t in reversed(list(enumerate(ids)))}  # a track stored twice: its first row
    m = sorted((i for i, t in enumerate(ids) if split_of.get(t) == split and first[t] == i), key=ids.__getitem__)
    xs = np.concatenate([x[i] for i in m]) if frames else np.stack([x[i] for i in m])
    return xs, counts[m], [ids[i] for i in m]


@pytest.mark.parametrize("aggregation", ["mean", "prediction", "attention"])
def test_probe_data_matches_the_whole_partition(tmp_path: Path, aggregation: str) -> None:
    frames = aggregation != "mean"
    store, rows = catalog(tmp_path, frames)
    rows = rows.take(np.random.default_rng(1).permutation(rows.num_rows)[:250])  # 50 stored tracks not in the rows
    data = probe_data("multilabel_classification", rows, store, "ds", "m", ["noise", "gain"], aggregation,
                      augment=["noise"])  # fmt: skip
    x_train, c_train, train_ids = reference(store, rows, "clean", "train", frames)
    x_aug, c_aug, aug_ids = reference(store, rows, "noise", "train", frames)
    np.testing.assert_array_equal(data.x_train, np.concatenate([x_train, x_aug]))
    labels = dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True))
    y = np.array([[c in labels[t] for c in data.classes] for t in train_ids + aug_ids], np.float32)
    counts = np.concatenate([c_train, c_aug])
    np.testing.assert_array_equal(data.y_train, np.repeat(y, counts, axis=0) if aggregation == "prediction" else y)
    x_val, c_val, _ = reference(store, rows, "clean", "validation", frames)
    np.testing.assert_array_equal(data.x_val, x_val)
    for scenario in ("clean", "noise", "gain"):
        x, c, ids = reference(store, rows, scenario, "test", frames)
        np.testing.assert_array_equal(data.tests[scenario][0], x)
        assert data.tests[scenario][2] == ids
        if aggregation == "attention":
            np.testing.assert_array_equal(data.test_counts[scenario], c)
        if aggregation == "prediction":
            np.testing.assert_array_equal(data.test_groups[scenario], np.repeat(np.arange(len(c)), c))
    if aggregation == "attention":
        np.testing.assert_array_equal(data.train_counts, counts)
        np.testing.assert_array_equal(data.val_counts, c_val)
    if aggregation == "prediction":  # tracks of 1–5 frames: training weighs each track alike by these
        np.testing.assert_array_equal(data.train_frame_counts, counts)
    else:
        assert data.train_frame_counts is None
    assert len(train_ids) == len(set(train_ids))  # a track stored twice is read once, its first row
    assert data.tests["clean"][2] == sorted(set(data.tests["clean"][2]))


def test_augmenting_with_a_partition_of_test_tracks_only_is_a_step_out_of_order(tmp_path: Path) -> None:
    """``augment`` naming a scenario whose partition holds only test tracks (embedded before ``augment`` listed it)
    raised a ValueError saying "run `repeval embed` first" — which, typed, embeds another run's configuration or
    store. It is the stage-order error, whose commands the CLI names as the run's own command lines."""
    from repeval.rundir import EarlierStageUnfinished

    store, rows = catalog(tmp_path, frames=False, n=40)
    with pytest.raises(EarlierStageUnfinished) as err:
        probe_data("multilabel_classification", rows, store, "ds", "m", ["gain"], augment=["gain"])
    said = str(err.value.naming(lambda stage: f"repeval {stage} c.yaml --store s"))
    assert "ds/m: augment lists 'gain', but its store partition holds no deformed training tracks" in said
    assert "run `repeval embed c.yaml --store s` (or `repeval run c.yaml --store s`) with this" in said, said


def test_the_train_stage_tells_unembedded_augmenting_tracks_from_failed_ones(tmp_path: Path) -> None:
    """What ``repeval train`` checks before anything trains (``_not_augmented``): an augmenting scenario's partition
    with none of the training tracks is a step out of order while the embedding stage has yet to deform them; once
    each is an error record, embedding again computes nothing, and the fix is the errors' (--retry-errors)."""
    from types import SimpleNamespace

    from repeval.run.train import _not_augmented

    store, rows = catalog(tmp_path, frames=False, n=40)
    exp = SimpleNamespace(datasets=[SimpleNamespace(name="ds")], augment_for=lambda ds: ["noise", "gain"])
    item = SimpleNamespace(exp=exp, ei=0, rows=rows, dataset="ds", model="m", fold=None)
    ctx = SimpleNamespace(store=store)
    why, unembedded = _not_augmented(ctx, item, {})  # "noise" holds the training tracks; "gain" the test tracks
    assert unembedded and "augment lists 'gain', but store partition ds/m/gain in" in why
    assert "run `repeval embed CONFIG` (or `repeval run CONFIG`) with this configuration and store first" in why
    train = [t for t, sp in zip(rows["track_id"].to_pylist(), rows["split"].to_pylist(), strict=True) if sp == "train"]
    writer = PartitionWriter(store.partition("ds", "m", "gain"), embedding_schema(DIM), 100)
    for t in train:
        writer.add_error({"track_id": t, "split": "train", "stage": "deform", "reason": "x", "model": "m",
                          "scenario": "gain"})  # fmt: skip
    writer.flush()
    why, unembedded = _not_augmented(ctx, item, {})
    assert not unembedded and "each is an error record (`repeval store show" in why and "--retry-errors" in why, why
    write_partition(store, "gain", train[:3], ["train"] * 3, seed=9)
    assert _not_augmented(ctx, item, {}) is None


def test_a_part_file_copied_into_a_partition_is_not_read_twice(tmp_path: Path, caplog) -> None:
    """A part file copied inside a complete partition (by hand, or a sync tool's ``part-… (1).parquet``) holds the
    same tracks again: each is trained and tested once, and the warning names the copy and the fix."""
    store, rows = catalog(tmp_path, frames=False, n=100)
    part = store.partition("ds", "m", "clean")
    first = Path(part.part_files()[0])
    (first.parent / "part-copy (1).parquet").write_bytes(first.read_bytes())
    with caplog.at_level("WARNING", logger="repeval.tuning.data"):
        data = probe_data("multilabel_classification", rows, store, "ds", "m", [], "mean")
    tested = data.tests["clean"][2]
    assert len(tested) == len(set(tested)) == 10  # 100 tracks, 10 % test
    assert len(data.x_train) == 80 and len(data.x_val) == 10
    assert "holds 42 rows of tracks it has already" in caplog.text  # 37 copied + the fixture's 5 stored twice
    assert "part-copy (1).parquet holds nothing else — delete it" in caplog.text
    assert "repeval store rm" in caplog.text


def test_probe_data_never_holds_a_whole_partition(tmp_path: Path) -> None:
    """Arrow's peak allocation while loading stays at about one file's rows, far below the partition's matrix; so
    does ``Partition.frames()``'s (the store's documented reader of frames)."""
    store, rows = catalog(tmp_path, frames=True, n=3000, dim=64)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, pyarrow as pa, pyarrow.parquet as pq
        from repeval.store import EmbeddingStore
        from repeval.tuning.data import probe_data
        rows = pq.read_table(sys.argv[1])
        store = EmbeddingStore({str(tmp_path / "store")!r}, create=False)
        before = pa.default_memory_pool().max_memory()
        if sys.argv[2] == "frames":  # a fresh process each: Arrow's high-water mark does not go down
            out = store.partition("ds", "m", "clean").frames()[2].nbytes
        else:
            data = probe_data("multilabel_classification", rows, store, "ds", "m", ["noise", "gain"], "attention")
            out = data.x_train.nbytes + data.x_val.nbytes
        print(json.dumps({{"peak": pa.default_memory_pool().max_memory() - before, "out": int(out)}}))
        """
    )
    pq_rows = tmp_path / "rows.parquet"
    import pyarrow.parquet as pq

    pq.write_table(rows, pq_rows)
    whole = store.partition("ds", "m", "clean").read(["frames"]).nbytes
    procs = {  # both at once: each is mostly its Python start
        what: subprocess.Popen([sys.executable, "-c", script, str(pq_rows), what], stdout=subprocess.PIPE, text=True)
        for what in ("probe_data", "frames")
    }
    for what, share in (("probe_data", 0.8), ("frames", 0.9)):
        out, _ = procs[what].communicate(timeout=300)
        assert procs[what].returncode == 0, (what, out)
        got = json.loads(out.strip().splitlines()[-1])
        # probe_data: the training and validation frames are most of the partition; frames(): all of it
        assert got["out"] > share * whole, (what, got, whole)
        assert got["peak"] < whole / 4, (what, got, whole)  # one file's column at a time (37 rows of 3,000)


def test_frame_counts_that_disagree_with_the_frames_name_the_fix(tmp_path: Path) -> None:
    store, rows = catalog(tmp_path, frames=True)
    part = store.partition("ds", "m", "gain")
    path = part.part_files()[0]
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    wrong = pa.array(np.asarray(t.column("n_frames")) + 1, pa.int32())
    pq.write_table(t.set_column(t.schema.get_field_index("n_frames"), "n_frames", wrong), path)
    with pytest.raises(
        ValueError, match=r"part-.*parquet has rows whose n_frames differs.*`repeval store rm .* ds/m/gain --yes`"
    ):
        probe_data("multiclass_classification", rows, store, "ds", "m", ["gain"], "prediction")
    with pytest.raises(ValueError, match=r"part-.*parquet has rows whose n_frames differs.*ds/m/gain --yes"):
        part.frames()
    data = probe_data("multiclass_classification", rows, store, "ds", "m", [], "prediction")  # other partitions load
    assert len(data.tests["clean"][2]) == 30


def test_named_regression_targets_are_read_by_name(tmp_path: Path) -> None:
    """The catalog accepts ``name=value`` regression cells (``pitch=60|loudness=0.2``, in any order per row): the
    probe data's dimensions are the names, each row's values under its own names (reading them as plain numbers
    failed the group: "could not convert string to float: 'pitch=60'")."""
    store, rows = catalog(tmp_path, frames=False, n=60)
    cells = [[f"pitch={40 + i}", f"loudness={i / 100}"][:: 1 - 2 * (i % 2)] for i in range(rows.num_rows)]
    rows = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array(cells))
    data = probe_data("regression", rows, store, "ds", "m", [])
    assert data.classes == ["pitch", "loudness"]
    _, _, ids = reference(store, rows, "clean", "test", frames=False)
    i = np.array([int(t.removeprefix("track-")) for t in ids])
    np.testing.assert_allclose(data.tests["clean"][1], np.stack([40 + i, i / 100], 1).astype(np.float32))


def test_unnamed_regression_targets_take_the_name_of_what_the_task_predicts(tmp_path: Path) -> None:
    """A regression catalog of plain numbers (one column, ``0.31``) showed its target as ``dim0`` in the per-label
    results; it takes the column's name (:func:`~repeval.run.groups.target_name`), ``va[0]``, ``va[1]`` for several
    values per cell. Named cells keep their own names; without a name to give, ``dim0`` as before."""
    from repeval.config.data import DatasetConfig, TaskConfig
    from repeval.config.experiment import ExperimentConfig
    from repeval.run.groups import target_name

    store, rows = catalog(tmp_path, frames=False, n=60)
    one = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array([[f"{i / 10}"] for i in range(60)]))
    assert probe_data("regression", one, store, "ds", "m", [], target="valence").classes == ["valence"]
    assert probe_data("regression", one, store, "ds", "m", []).classes == ["dim0"]
    two = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array([[f"{i}", "-1"] for i in range(60)]))
    data = probe_data("regression", two, store, "ds", "m", [], target="va")
    assert data.classes == ["va[0]", "va[1]"] and data.y_train.shape[1] == 2
    named = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array([[f"v={i}"] for i in range(60)]))
    assert probe_data("regression", named, store, "ds", "m", [], target="valence").classes == ["v"]
    # the name: a catalog's label column, else the task's label, else its name
    m = str(tmp_path / "m.csv")
    exp = ExperimentConfig(
        task=TaskConfig(name="emotion", type="regression"),
        datasets=[
            DatasetConfig(name="a", type="catalog", manifest=m, label_column="valence"),
            DatasetConfig(name="b", type="catalog", manifest=m),
        ],
        embedding_models=["mfcc-stats"],
        downstream_models=[{"name": "linear", "hidden_units": []}],
        metrics=["r2"],
    )
    assert [target_name(exp, "a"), target_name(exp, "b")] == ["valence", "emotion"]
    labelled = exp.model_copy(update={"task": TaskConfig(name="emotion", type="regression", label="arousal")})
    assert target_name(labelled, "b") == "arousal"


def test_labels_without_a_training_example_are_named_and_left_out_of_a_tagging_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tag only on validation or test tracks has an output no probe learnt (only pushed down): it was scored in
    the per-label and macro metrics and entered early stopping. It leaves the vocabulary, with a warning; a
    single-label task keeps such a class (its tracks are errors) and warns too."""
    reset_warned()
    store, rows = catalog(tmp_path, frames=False, n=60)
    splits = rows.column("split").to_pylist()
    first_test = splits.index("test")
    labels = rows.column("label").to_pylist()
    cells = [lab + (["harp"] if s != "train" else []) for lab, s in zip(labels, splits, strict=True)]
    rows = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array(cells))
    with caplog.at_level("WARNING", logger="repeval.tuning.data"):
        data = probe_data("multilabel_classification", rows, store, "ds", "m", ["gain"])
    assert data.classes == [f"c{i}" for i in range(7)]  # no 'harp'
    assert data.y_train.shape[1] == data.y_val.shape[1] == data.tests["gain"][1].shape[1] == 7
    assert (
        "ds/m: 1 label has no training example, so no probe can learn it" in caplog.text and "'harp' (" in caplog.text
    )
    single = [["c9"] if i == first_test else lab[:1] for i, lab in enumerate(labels)]
    rows = rows.set_column(rows.schema.get_field_index("label"), "label", pa.array(single))
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval.tuning.data"):
        data = probe_data("multiclass_classification", rows, store, "ds", "m", [])
    assert data.classes == ["c0", "c1", "c2", "c3", "c9"] and "'c9' (0 validation, 1 test tracks)" in caplog.text
    assert "or split_ratios) or leave them out" in caplog.text
    # a fold of k folds (split_type all): split_ratios, which k folds refuse, is not the fix — the folds are
    reset_warned()
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval.tuning.data"):
        probe_data("multiclass_classification", rows, store, "ds", "m", [], folds=True)
    assert "'c9' (0 validation, 1 test tracks)" in caplog.text and "split_ratios" not in caplog.text, caplog.text
    assert "check the folds (a label needs tracks in three folds or more" in caplog.text, caplog.text


def test_labels_without_a_training_example_are_warned_about_once_for_the_tasks_that_share_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The tasks that read one dataset with one model (configs/aggregation.yaml: mean, prediction and attention) each
    repeated the same "label(s) have no training example" warning, word for word and naming no task: now it is said
    once per dataset, model and set of such labels; another set of labels is said again."""
    reset_warned()
    store, rows = catalog(tmp_path, frames=False, n=60)
    labels, splits = rows.column("label").to_pylist(), rows.column("split").to_pylist()
    index = rows.schema.get_field_index("label")

    first_test = splits.index("test")

    def untrained(name: str) -> pa.Table:  # ``name`` on the first test track only
        return rows.set_column(
            index, "label", pa.array([[name] if i == first_test else lab[:1] for i, lab in enumerate(labels)])
        )

    with caplog.at_level("WARNING", logger="repeval.tuning.data"):
        for name in ("c9", "c9", "c9", "c8"):
            probe_data("multiclass_classification", untrained(name), store, "ds", "m", [])
    said = [r.getMessage() for r in caplog.records if "1 label has no training example" in r.getMessage()]
    assert len(said) == 2 and "'c9' (0 validation, 1 test tracks)" in said[0] and "'c8' (" in said[1], said
