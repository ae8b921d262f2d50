"""Assemble probe training data from the embedding store (loaded once per dataset × model)."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.datasets.base import OBSERVED, SPLITS
from repeval.datasets.encoding import encode_labels
from repeval.pipeline.stages import CLEAN
from repeval.probes import ProbeData
from repeval.rundir import EarlierStageUnfinished
from repeval.store import EmbeddingStore
from repeval.store.layout import read_parquet
from repeval.warn import warn_once
from repeval.words import counted

log = logging.getLogger(__name__)


def encode(
    task_type: str,
    labels: list[list[str]],
    classes: list[str] | None = None,
    observed: list[list[str] | None] | None = None,
    target: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Targets of ``labels`` (one list per row): class indices, or a multilabel task's 0/1 matrix. ``observed`` (a
    multilabel data set that annotates only some labels per track): each row's annotated labels (``None``: all), the
    matrix holding NaN where a row leaves a label unannotated — neither present nor absent. ``target``: what a
    regression task predicts (:func:`~repeval.run.groups.target_name`), the name of targets given without one — a
    single one's, ``target[0]``, ``target[1]``, … for several (else ``dim0``, ``dim1``, …)."""
    if task_type == "regression":
        # plain values (``0.31``) or named ones (``valence=0.31``, in any order per row), as the catalog reads them
        y, names = encode_labels("regression", labels, classes)
        if classes is None and names == [f"y{i}" for i in range(len(names))]:
            names = _unnamed_targets(len(names), target)
        return y, names
    if task_type == "multilabel_classification":  # a label outside ``classes`` (none in training) is dropped
        return encode_labels(task_type, labels, classes, on_unknown="ignore", observed=observed)
    if classes is None:
        classes = sorted({x for lab in labels for x in lab})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(lab[0], -1) if lab else -1 for lab in labels], np.int64), classes


def _unnamed_targets(n: int, target: str | None) -> list[str]:
    """The names of ``n`` regression targets given without names: ``target`` for one, ``target[i]`` for several; with
    no ``target``, ``dim0``, ``dim1``, … (as results named every such target before they took the column's name)."""
    if not target:
        return [f"dim{i}" for i in range(n)]
    return [target] if n == 1 else [f"{target}[{i}]" for i in range(n)]


def training_vocabulary(
    task_type: str,
    classes: list[str],
    y_train: np.ndarray,
    y_val: np.ndarray,
    tests: dict[str, tuple[np.ndarray, np.ndarray, list[str]]],
    where: str,
    folds: bool = False,
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray, list[str]]]]:
    """Labels without a training example, which no probe can learn, with a warning naming them and the fix (for a
    fold of k folds, ``folds``: not split_ratios, which k folds refuse). A multilabel task
    leaves them out of its vocabulary, as a label binarizer fitted on the training split does: every split's tag
    matrix loses their columns, so an untrained output is neither scored in the per-label and macro metrics nor
    chosen by on validation. A single-label task keeps them: their tracks are errors, which the metrics count."""
    multilabel = task_type == "multilabel_classification"
    if multilabel:  # a positive (not a NaN: an unannotated pair)
        present = (y_train == 1).any(0)
    else:
        present = np.bincount(y_train[y_train >= 0], minlength=len(classes)) > 0
    if present.all():
        return classes, y_train, y_val, tests
    absent = np.flatnonzero(~present)

    def n_tracks(y: np.ndarray, j: int) -> int:
        return int((y[:, j] == 1).sum()) if multilabel else int((y == j).sum())

    y_test = tests[CLEAN][1]
    shown = ", ".join(
        f"{classes[j]!r} ({n_tracks(y_val, j)} validation, {n_tracks(y_test, j)} test tracks)" for j in absent[:5]
    )
    more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
    what = (
        "left out of the task's labels (and of every metric)"
        if multilabel
        else "kept as classes: their validation and test tracks count as errors"
    )
    # said once per process: the tasks that read one dataset with one model (mean, prediction, attention) share it
    warn_once(
        log, ("no training example", where, multilabel, tuple(classes[j] for j in absent)),
        "%s: %s no training example, so no probe can learn %s: %s%s — %s; %s",
        where, f"{counted(len(absent), 'label')} {'has' if len(absent) == 1 else 'have'}",
        "it" if len(absent) == 1 else "them", shown, more, what, absent_label_fix(folds),
    )  # fmt: skip
    if not multilabel:
        return classes, y_train, y_val, tests
    if not present.any():
        raise ValueError(f"{where}: no label has a training example — check the dataset's labels and splits")
    keep = np.flatnonzero(present)
    out = {sid: (x, y[:, keep], ids) for sid, (x, y, ids) in tests.items()}
    return [classes[j] for j in keep], y_train[:, keep], y_val[:, keep], out


def absent_label_fix(folds: bool) -> str:
    """The fix for labels with no training track: the splits (one split), or the folds (``folds``: stratified folds
    deal a label's tracks to consecutive folds, and each fold's group trains on all but two — a label with tracks in
    fewer than three folds has none to train on in some group, whatever n_folds)."""
    if folds:
        return (
            "check the folds (a label needs tracks in three folds or more, as each group validates and tests on two: "
            "add tracks of it, or check the split_column or official folds that place them) or leave them out with "
            "dataset.classes"
        )
    return "check the splits (a split_column, or split_ratios) or leave them out with dataset.classes"


def empty_split_message(
    dataset: str, model: str, split: str, why: str = " — check the dataset's splits and errors"
) -> str:
    """That ``split`` has no embedded track, and ``why`` (what to check, unless the caller knows the cause)."""
    return f"{dataset}/{model}: the {split} split has no embedded tracks{why}"


def split_fix(counts: dict[str, int], split: str, ratios: tuple[float, ...] | None) -> str:
    """How a dataset's tracks are split (``counts``: tracks per split) and — ``ratios``, its ``split_ratios``, for a
    dataset of one split — the fix for a ``split`` left without tracks."""
    n = sum(counts.values())
    said = f"the dataset's {n:,} tracks are split " + ", ".join(f"{s} {counts.get(s, 0):,}" for s in SPLITS)
    if ratios is None:
        return said
    return (
        f"{said}: add tracks, give them their splits (a catalog's split_column), or raise the {split} split's share "
        f"of split_ratios (now {'/'.join(f'{r:g}' for r in ratios)})"
    )


#: ``embedding_aggregation`` values whose probes read frame-level embeddings
FRAME_AGGREGATIONS = ("prediction", "attention")


class _Rows:
    """One store partition's rows, read in two passes so that loading costs about the output's memory: first the
    track ids (and each row's number of frames), then the embeddings (or frames) file by file, each row copied
    straight into the array of the split it is taken for. The partition's whole embedding matrix is never held."""

    def __init__(
        self,
        store: EmbeddingStore,
        dataset: str,
        model: str,
        scenario: str,
        aggregation: str,
        files: list[str] | None = None,
    ) -> None:
        """``files``: the partition's part files when the caller has just listed them (else listed here)."""
        self.part = part = store.partition(dataset, model, scenario)
        self.files = files or part.data_files()
        self.frames = aggregation in FRAME_AGGREGATIONS
        schema = pq.read_schema(self.files[0], filesystem=part.fs)
        if self.frames:
            part.require_frames(schema)
        self.column = "frames" if self.frames else "embedding"
        field_type = schema.field(self.column).type
        self.dim = int((field_type.value_type if self.frames else field_type).list_size)
        cols = ["track_id", "n_frames"] if self.frames else ["track_id"]
        tables = [read_parquet(part.fs, f, cols) for f in self.files]
        self.bounds = np.cumsum([0, *(t.num_rows for t in tables)])
        t = pa.concat_tables(tables)
        self.ids = t.column("track_id").combine_chunks()
        self.first = self._first_rows()
        self.counts: np.ndarray | None = None
        if self.frames:
            self.counts = pc.fill_null(t.column("n_frames"), 0).to_numpy().astype(np.int64)
            empty = np.flatnonzero(self.counts <= 0)
            if len(empty):
                raise ValueError(
                    f"store partition {part.path}: {counted(len(empty), 'track')} {'has' if len(empty) == 1 else 'have'} no frames (e.g. "
                    f"{self.ids[int(empty[0])]}); embedding_aggregation: {aggregation} needs at least one frame per "
                    "track"
                )

    def _first_rows(self) -> np.ndarray | None:
        """Which rows are their track's first (in file order), or ``None`` when every track has one row. A track
        stored twice — a part file copied inside the partition, or written by two runs sharing a store on object
        storage — would otherwise count twice in training and in its test set; it is read once, with a warning
        naming the files that hold nothing but such repeats."""
        codes = np.asarray(pc.dictionary_encode(self.ids).indices)
        first_at = np.unique(codes, return_index=True)[1]
        if len(first_at) == len(codes):
            return None
        first = np.zeros(len(codes), bool)
        first[first_at] = True
        repeats = [
            f.rsplit("/", 1)[-1]
            for f, a, b in zip(self.files, self.bounds[:-1], self.bounds[1:], strict=True)
            if b > a and not first[a:b].any()
        ]
        copies = (
            f"; {', '.join(repeats)} {'holds' if len(repeats) == 1 else 'hold'} nothing else — delete {'it' if len(repeats) == 1 else 'them'}"
            if repeats
            else ""
        )
        log.warning(
            "store partition %s holds %s of tracks it has already (a part file copied in, or two runs "
            "writing to one store); each track's first row is used%s, or delete the partition (`%s`) to embed it "
            "again",
            self.part.path, counted(len(codes) - len(first_at), "row"), copies, self.part.rm_command(),
        )  # fmt: skip
        return first

    def positions(self, row_of: pa.Array, splits: pa.Array, split: str) -> np.ndarray:
        """Positions of the rows whose track is in ``split``, in track-id order, each track's first row only (see
        :meth:`_first_rows`). ``row_of`` gives each row's index into the dataset's rows, ``splits`` their split
        column."""
        in_split = pc.fill_null(pc.equal(splits.take(row_of), split), False).to_numpy(zero_copy_only=False)
        if self.first is not None:
            in_split &= self.first
        pos = np.flatnonzero(in_split)
        return pos[pc.sort_indices(self.ids.take(pa.array(pos))).to_numpy()]

    def gather(self, wanted: list[np.ndarray]) -> list[np.ndarray]:
        """The embeddings (or, concatenated, the frames) of the rows at each of ``wanted``'s positions, in order."""
        if self.counts is None:
            outs = [np.empty((len(w), self.dim), np.float32) for w in wanted]
            starts = [np.zeros(0, np.int64) for _ in wanted]
        else:
            cs = [self.counts[w] for w in wanted]
            outs = [np.empty((int(c.sum()), self.dim), np.float32) for c in cs]
            starts = [np.cumsum(c) - c for c in cs]
        by_pos = [np.argsort(w, kind="stable") for w in wanted]
        in_order = [w[o] for w, o in zip(wanted, by_pos, strict=True)]  # each list's positions, ascending
        for f, path in enumerate(self.files):
            a, b = int(self.bounds[f]), int(self.bounds[f + 1])
            spans = [(np.searchsorted(s, a), np.searchsorted(s, b)) for s in in_order]
            if all(lo == hi for lo, hi in spans):
                continue
            col = read_parquet(self.part.fs, path, [self.column]).column(0).combine_chunks()
            if self.counts is None:
                mat = pc.list_flatten(col).to_numpy(zero_copy_only=False).reshape(-1, self.dim)
            else:
                lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
                if not np.array_equal(lengths, self.counts[a:b]):
                    raise self.part.frame_count_error(path)
                mat = pc.list_flatten(pc.list_flatten(col)).to_numpy(zero_copy_only=False).reshape(-1, self.dim)
                file_starts = np.cumsum(lengths) - lengths
            for out, w, o, st, (lo, hi) in zip(outs, wanted, by_pos, starts, spans, strict=True):
                dest = o[lo:hi]  # output rows whose source row is in this file
                src = w[dest] - a
                if self.counts is None:
                    out[dest] = mat[src]
                    continue
                c = self.counts[w[dest]]
                within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                out[np.repeat(st[dest], c) + within] = mat[np.repeat(file_starts[src], c) + within]
        return outs


def probe_data(
    task_type: str,
    rows: pa.Table,
    store: EmbeddingStore,
    dataset: str,
    model: str,
    scenarios: list[str],
    aggregation: str = "mean",
    augment: list[str] | tuple[str, ...] = (),
    target: str | None = None,
    folds: bool = False,
) -> ProbeData:
    """Train/validation/test arrays of one (dataset, model) for a task. With ``aggregation`` ``prediction`` the
    rows are frames: training frames carry their track's label; validation and test keep one label per track
    and a track index per frame (``ProbeData.val_groups`` / ``test_groups``) to average predictions over.
    With ``attention`` the rows are frames too, each track's consecutive, and every split keeps one label per
    track and each track's number of frames (``ProbeData.train_counts`` / ``val_counts`` / ``test_counts``).
    ``augment``: scenarios whose deformed training tracks are added to the training rows (after the clean ones,
    scenario by scenario, each in track-id order); :class:`~repeval.rundir.EarlierStageUnfinished` when one's
    partition holds none (the embedding stage deforms them once ``augment`` lists the scenario). ``target``: the name
    of regression targets given without one (:func:`encode`). ``folds``: ``rows`` are one fold of k folds (the fix for
    a label without training tracks names the folds, :func:`training_vocabulary`)."""
    if aggregation not in ("mean", *FRAME_AGGREGATIONS):
        raise ValueError(f"unknown aggregation {aggregation!r}; valid: mean, {', '.join(FRAME_AGGREGATIONS)}")
    row_ids = rows.column("track_id").combine_chunks()
    splits = rows.column("split").combine_chunks()
    labels = rows.column("label").combine_chunks()
    # which labels each track annotates (OpenMIC-2018 with unannotated: mask): NaN targets where it does not
    observed = (
        rows.column(OBSERVED).combine_chunks()
        if OBSERVED in rows.column_names and task_type == "multilabel_classification"
        else None
    )
    # classes come from the whole labelled set so every split shares one encoding
    _, classes = encode(task_type, labels.to_pylist(), target=target)

    def load(
        sid: str, wanted: list[str], files: list[str] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray, list[str], np.ndarray]]:
        """Per split of ``wanted``: the embeddings (or frames) of scenario ``sid``'s rows whose track is in that split,
        in track-id order (reproducible training: store row order is arrival order), their labels, track ids and
        each track's number of frames (for mean embeddings: one)."""
        part = _Rows(store, dataset, model, sid, aggregation, files)
        row_of = pc.index_in(part.ids, value_set=row_ids)
        pos = [part.positions(row_of, splits, split) for split in wanted]
        out = {}
        for split, p, x in zip(wanted, pos, part.gather(pos), strict=True):
            take = pa.array(p, pa.int64())
            at = row_of.take(take)
            obs = None if observed is None else observed.take(at).to_pylist()
            y, _ = encode(task_type, labels.take(at).to_pylist(), classes, obs)
            c = np.ones(len(p), np.int64) if part.counts is None else part.counts[p]
            out[split] = (x, y, part.ids.take(take).to_pylist(), c)
        return out

    def frame_labels(y: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``prediction``: every training frame carries its track's label."""
        return y[np.repeat(np.arange(len(c)), c)] if aggregation == "prediction" else y

    tests_of = {sid: ["test"] for sid in scenarios}
    clean = load(CLEAN, ["train", "validation", "test"])
    xtr, ytr, _, ctr = clean["train"]
    train_counts = [ctr]
    ytr = frame_labels(ytr, ctr)
    loaded = {}
    for sid in augment:
        loaded[sid] = load(sid, ["train", *tests_of.pop(sid, [])])  # its test rows are taken below too
        axs, ay, atids, ac = loaded[sid]["train"]
        if not atids:  # the train stage checks it before anything trains (repeval.run.train._not_augmented)
            raise EarlierStageUnfinished(
                f"{dataset}/{model}: augment lists {sid!r}, but its store partition holds no deformed training "
                "tracks — run `repeval embed CONFIG` (or `repeval run CONFIG`) with this configuration and store first "
                "(it deforms the training tracks of the scenarios augment lists)"
            )
        xtr = np.concatenate([xtr, axs])
        train_counts.append(ac)
        ytr = np.concatenate([ytr, frame_labels(ay, ac)])
    xva, yva, _, cva = clean["validation"]
    xte, yte, tte, cte = clean["test"]
    for name, arr in (("train", xtr), ("validation", xva), ("test", xte)):
        if len(arr) == 0:
            raise ValueError(empty_split_message(dataset, model, name))
    tests = {CLEAN: (xte, yte, tte)}
    counts = {CLEAN: cte}
    for sid in scenarios:
        part = store.partition(dataset, model, sid)
        files = [] if sid in loaded else part.part_files()
        if sid not in loaded and not files:  # every track of the partition is an error record
            no_ids: list[str] = []
            xs, sy, tids, c = xte[:0], yte[:0], no_ids, cte[:0]
        else:
            xs, sy, tids, c = (loaded[sid] if sid in loaded else load(sid, tests_of[sid], files))["test"]
        if not tids:
            # a deformation that failed on every test track: the other scenarios are still tested (and the error
            # records are in the store, the embedding summary and the report), not the whole group lost
            log.warning(
                "%s/%s: scenario %r has no embedded test track (each one failed: `%s`) — it is not evaluated; "
                "clean and the other scenarios are",
                dataset, model, sid, part.show_errors_command(),
            )  # fmt: skip
            continue
        tests[sid] = (xs, sy, tids)
        counts[sid] = c
    if task_type != "regression":
        classes, ytr, yva, tests = training_vocabulary(task_type, classes, ytr, yva, tests, f"{dataset}/{model}", folds)
    if aggregation == "attention":
        return ProbeData(
            task_type, classes, xtr, ytr, xva, yva, tests,
            train_counts=np.concatenate(train_counts), val_counts=cva, test_counts=counts,
        )  # fmt: skip
    if aggregation == "prediction":  # each frame's track (its position among the split's tracks)
        groups = {sid: np.repeat(np.arange(len(c)), c) for sid, c in counts.items()}
        ctr = np.concatenate(train_counts)  # unequal lengths: each training track weighs alike (training_weights)
        return ProbeData(
            task_type, classes, xtr, ytr, xva, yva, tests, val_groups=np.repeat(np.arange(len(cva)), cva),
            test_groups=groups, train_frame_counts=ctr if len(np.unique(ctr)) > 1 else None,
        )  # fmt: skip
    return ProbeData(task_type, classes, xtr, ytr, xva, yva, tests)
