"""A mirdata data set's splits checked before anything runs, from its index, split files and track metadata — never
its audio: the mistakes a load would otherwise stop on once ``repeval run`` reaches it.

- GTZAN (``gtzan_genre``) with its fault-filtered split files in ``dataset.dir``: every listed track's split is fixed,
  so ``split_type: all`` cannot rotate folds, and files that list none of the index's tracks leave no rows.
- The generic loader (a mirdata data set without a wired spec): the task's label and ``group_column`` are track
  attributes (a track without them is dropped: a missing one leaves no rows), and the split comes from a track's
  ``split`` or ``subset`` attribute — train/validation/test on every track cannot rotate under ``split_type: all``,
  and official fold numbers bound ``fold`` (and ``n_folds``).

:func:`split_problems` is what :func:`repeval.config.loader.check_data_paths` adds (``repeval validate``, ``plan`` and
the run's start) when the data is on this machine. Also of the data paths, up front: :func:`default_data_problem`,
a dataset without ``dir`` whose data is not in mirdata's default folder, and :func:`default_index_problem`, one
without ``index_path`` whose mirdata index is not on this machine — what the load would stop on.
"""

from __future__ import annotations

import os
from typing import Any

from repeval.datasets.gtzan_split import GTZAN_SPLIT_FILES, gtzan_split_paths, read_gtzan_split
from repeval.datasets.labels import task_label_name
from repeval.datasets.load import loader_name
from repeval.datasets.mirdata_loader import SPECS, _track_split, open_mirdata

_ROTATE_FIX = "use split_type: single (the official split)"


def reads_through_mirdata(ds: Any) -> bool:
    """Whether ``ds`` is read through mirdata: ``type: mirdata``, or ``type: custom`` naming a loader that reads its
    data set through mirdata (``gtzan_genre``, ``medley_solos_db``, …), whose ``dir`` and index are mirdata's."""
    kind = getattr(ds, "type", None)
    if kind == "mirdata":
        return True
    from repeval.datasets.cli_support import mirdata_kind_loaders

    return kind == "custom" and ds.name in mirdata_kind_loaders()


def _which(ds: Any, task: Any) -> str | None:
    """``gtzan`` (its fault-filtered split, read when its files are there), ``generic`` (track attributes), or None:
    no check of the data applies."""
    if not reads_through_mirdata(ds):
        return None
    name = loader_name(ds)
    if name == "mirdata":
        return "generic"
    spec = SPECS.get(name)
    if spec is None or name != "gtzan_genre":
        return None
    try:
        official = spec.label(task_label_name(task, spec.info())).official_split
    except ValueError:
        return None  # a label the loader lacks: the configuration's check, or the load, names it
    return "gtzan" if official else None


def _data_home(ds: Any) -> str:
    """Where mirdata reads ``ds`` from: ``dataset.dir``, else mirdata's default folder — ``$HOME/mir_datasets/<name>``
    (``/tmp`` without ``HOME``), as ``mirdata.core.Dataset.default_path`` makes it, without importing the loader."""
    return str(ds.dir) if ds.dir else os.path.join(os.getenv("HOME", "/tmp"), "mir_datasets", str(ds.name))


def _index_path(ds: Any) -> str:
    if ds.index_path:
        return str(ds.index_path)
    import mirdata

    return str(mirdata.initialize(ds.name, data_home=_data_home(ds)).index_path)


def default_data_problem(ds: Any) -> str | None:
    """``dir: …`` when ``ds`` (a mirdata dataset) gives no ``dir`` and mirdata's default data folder of it does not
    exist — the load would stop there — naming the folder and the fixes (and mirdata's index, when it is not here
    either: the download fetches it too); None otherwise. Reads no network."""
    if ds.dir or not reads_through_mirdata(ds):
        return None
    home = _data_home(ds)
    if os.path.isdir(home):
        return None
    try:
        index = None if ds.index_path else _index_path(ds)
    except ValueError:  # a name mirdata does not know: the configuration's own check names it
        return None
    also = ""
    if index is not None and not os.path.isfile(index):
        also = (
            f"; mirdata's own index of it is not on this machine either ({index}): the download fetches it too (with "
            f"dataset.dir set instead: `repeval data download {ds.name} --index-only`, or set dataset.index_path)"
        )
    return (
        f"dir: not set, and mirdata's default data folder of {ds.name} does not exist: {home} — set dataset.dir to "
        f"the folder that holds the data, or fetch it where the network is reachable: `repeval data download "
        f"{ds.name} --data-home DIR` and set dataset.dir to DIR (without --data-home, into {home}){also}"
    )


def default_index_problem(ds: Any) -> str | None:
    """``index_path: …`` when ``ds`` (a dataset read through mirdata) gives no ``index_path`` and mirdata's own index
    of it is not on this machine — mirdata 1.0 ships none: ``Dataset.download`` fetches it, and a run's load does
    not — naming the fix; None otherwise, and when ``dir`` is not set and mirdata's default data folder is missing:
    :func:`default_data_problem` says the index with it. A ``dir`` given that does not exist is said too (by the
    check of the paths), and this as well: whoever points ``dir`` at the data then needs the index. Reads no
    network."""
    if ds.index_path or not reads_through_mirdata(ds):
        return None
    home = _data_home(ds)
    if not ds.dir and not os.path.isdir(home):
        return None  # mirdata's default data folder missing: default_data_problem says the index with it
    try:
        index = _index_path(ds)
    except ValueError:  # a name mirdata does not know: the configuration's own check names it
        return None
    if os.path.isfile(index):
        return None
    return (
        f"index_path: not set, and mirdata's own index of {ds.name} is not on this machine ({index}): mirdata "
        "1.0 ships no index files and a run does not download one — set dataset.index_path to a local index "
        f"JSON, or fetch mirdata's where the network is reachable: `repeval data download {ds.name} --index-only` "
        "(without --index-only, the data too)"
    )


def split_problems(ds: Any, task: Any) -> list[str]:
    """``key: message`` for each split mistake of ``ds`` that its load would stop on, read from the data's index and
    metadata; empty when none, none applies, or the data or its index is not here (an error of the data paths)."""
    which = _which(ds, task)
    if which is None:
        return []
    home = _data_home(ds)
    if not os.path.isdir(home) or not os.path.isfile(_index_path(ds)):
        return []  # a missing data folder or index: an error of the data paths
    try:
        return _gtzan(ds, home) if which == "gtzan" else _generic(ds, task)
    except (OSError, ValueError) as exc:  # an unreadable index or split file: the load would stop on it too
        return [f"index_path: mirdata could not read {ds.name}'s index or split files ({type(exc).__name__}: {exc})"]


def _gtzan(ds: Any, home: str) -> list[str]:
    import json

    paths = gtzan_split_paths(home)
    if paths is None:
        return []
    folder = os.path.dirname(paths["train"])
    with open(_index_path(ds), encoding="utf-8") as fh:
        ids = set((json.load(fh).get("tracks") or {}).keys())
    listed = read_gtzan_split(paths)
    out = []
    if ids and not ids & set(listed):
        out.append(
            f"dir: none of the {len(ids)} tracks of mirdata's index is in the fault-filtered split files in {folder} "
            f"({', '.join(GTZAN_SPLIT_FILES.values())}: {len(listed)} lines), so the load would keep no track — "
            "their lines must name the index's tracks (e.g. blues/blues.00029.wav): fix the files, or move them away "
            "for a stratified split"
        )
    elif ds.split_type == "all":
        out.append(
            f"split_type: all, but the fault-filtered split files in {folder} give every track they list its split, so "
            f"the {ds.n_folds} folds cannot rotate (each would train and test the same tracks): {_ROTATE_FIX}, or "
            "move the files away to rotate stratified folds (which GTZAN's repeated artists and excerpts inflate)"
        )
    return out


def _generic(ds: Any, task: Any) -> list[str]:
    """The generic loader's track attributes: the label and group on the first track (every track has the same
    attributes), the split of every track when ``split_type: all`` or ``fold`` depends on it."""
    dataset = open_mirdata(ds)
    ids = list(dataset.track_ids)
    if not ids:
        return []
    label = task_label_name(task)
    first = dataset.track(ids[0])
    out = []
    for key, attr in (("task.label", label), ("group_column", ds.group_column)):
        if attr and not _has(first, attr):
            where = "task.label" if key == "task.label" else "group_column"
            out.append(
                f"{where}: mirdata dataset '{ds.name}' tracks have no attribute {attr!r}, so the load would keep no "
                f"track — set {where} to a track attribute (see the mirdata docs for this dataset)"
            )
    if out or not (ds.split_type == "all" or "fold" in ds.keys_given()):
        return out
    splits = [_track_split(dataset.track(tid)) for tid in ids]
    folds = [s for s in splits if isinstance(s, int)]
    if folds:
        n = max(folds) + 1
        if n >= 3 and ds.split_type == "single" and ds.fold >= n:
            out.append(
                f"fold: {ds.fold}, but the tracks' split attribute gives {n} official folds (0..{n - 1}), and fold "
                f"picks one of them: set fold to 0..{n - 1}"
            )
        elif n >= 3 and ds.split_type == "all" and ds.n_folds > n:
            out.append(
                f"n_folds: {ds.n_folds}, but the tracks' split attribute gives {n} official folds, and split_type: all "
                f"rotates over them, so fold {n} has none: set n_folds to {n} (or fewer)"
            )
    elif ds.split_type == "all" and all(s is not None for s in splits):
        out.append(
            f"split_type: all, but every track's split (or subset) attribute gives it an official train/validation/"
            f"test split, so the {ds.n_folds} folds cannot rotate (each would train and test the same tracks): "
            f"{_ROTATE_FIX}"
        )
    return out


def _has(track: Any, attr: str) -> bool:
    try:
        getattr(track, attr)
    except AttributeError:
        return False
    except Exception:  # an attribute read from a bad file: the load reports that track
        return True
    return True
