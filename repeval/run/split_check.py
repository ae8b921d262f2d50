"""The checks the training stage makes of a run's splits before any probe trains, which ``repeval run`` (before
embedding) and ``repeval plan`` make as well: a split (or k-fold fold) that holds none of its tracks, or whose tracks
are all error records — each said once, in the same words whichever probe grid finds it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from repeval.run.context import RunContext
from repeval.run.rows import fold_rows
from repeval.words import counted


def fold_hint(ctx: RunContext, ei: int, dataset: str, fold: int | None, fix: bool = True) -> str:
    """Which folds a k-fold group validates and tests on, and (``fix``) the fix for a fold too small (nothing
    without folds). The folds rotate over the data set's official folds when its loader has them (TinySOL's 5,
    whatever ``n_folds``), and a loader that runs fold i on its official split i (MTG-Jamendo's split-i) says so."""
    if fold is None:
        return ""
    n = len(ctx.folds[(ei, dataset)])
    official = _official_rotation(ctx, ei, dataset)
    # (official folds are the data set's, whatever n_folds: fewer would not make them larger)
    advice = "; with few tracks per class use fewer n_folds" if fix and official is None else ""
    if official is not None and official[1]:
        return f" (fold {fold} of {n}: the data set's official split {fold})"  # fewer n_folds would not change it
    ring = official[0] if official is not None else n
    return f" (fold {fold} of {n}: validation = fold {fold}, test = fold {(fold + 1) % ring}{advice})"


def _official_rotation(ctx: RunContext, ei: int, dataset: str) -> tuple[int, bool] | None:
    """``(official folds, whether fold i is official split i)`` when ``dataset``'s loader declares how many official
    folds the task's label has (:func:`~repeval.config.experiment._official_fold_count`): the folds then rotate over
    that many, not over ``n_folds``; None otherwise."""
    from repeval.config.experiment import _OWN_SPLIT, _official_fold_count

    exp = ctx.cfg.experiments[ei]
    ds = next((d for d in exp.datasets if d.name == dataset), None)
    found = _official_fold_count(ds, exp.task) if ds is not None else None
    return None if found is None else (found[0], found[1] == _OWN_SPLIT)


def untrainable(problems: list[str]) -> str:
    """The training stage's error for the probe grids that cannot train: the first problem, and how many more
    (each said once, however many grids it stops: an empty split stops every model's, an empty fold several folds')."""
    whys = list(dict.fromkeys(problems))
    n = len(whys) - 1
    more = f" (and {counted(n, 'more problem')}: {'; '.join(whys[1:4])}{'; …' * (n > 3)})" if n else ""
    return f"{whys[0]}{more} — nothing was trained"


def check_splits_assigned(ctx: RunContext) -> None:
    """Stop, in the words the training stage would stop in, when a split of a task and dataset (or fold) holds none
    of its tracks (:func:`unassigned_splits`) — for ``repeval run`` right after the datasets load, before hours of
    embedding that could not be trained on (what the store holds already is kept)."""
    if whys := unassigned_splits(ctx):
        raise ValueError(untrainable(whys))


def unassigned_splits(ctx: RunContext) -> list[str]:
    """Each task, dataset (and fold) whose train, validation or test split holds none of its tracks — which the
    training stage stops on before any probe trains — said once per task and dataset, not per model: ``repeval
    plan`` says it before anything is embedded."""
    out = []
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            for fold, rows in fold_rows(ctx, ei, ds.name).items():
                why = unassigned_split(ctx, ei, exp.task.name, ds, fold, rows)
                if why and why not in out:
                    out.append(why)
    return out


def unassigned_split(ctx: RunContext, ei: int, task: str, ds: Any, fold: int | None, rows: pa.Table) -> str | None:
    """Why ``task`` on dataset ``ds`` (``fold``) cannot train or be tested: a split that ``rows`` (its tracks, each
    with its split) leaves empty — none of the tracks embedded or not — with the counts of the three and the fix;
    ``None`` when each has tracks."""
    counts = _split_counts(rows)
    if all(counts.values()):
        return None  # (the other groups' splits are read only when this one's has an empty split)
    if fold is not None and (empty := _empty_fold(ctx, ei, task, ds, fold, rows.num_rows)):
        return empty
    for name, n in counts.items():
        if not n:
            if fold is not None:
                said = ", ".join(f"{k} {v:,}" for k, v in counts.items())
                return (
                    f"{task} on {ds.name}: the {name} split holds none of its {rows.num_rows:,} tracks ({said}) — "
                    f"check the dataset's splits (split_column, or the official split its fold picks)"
                    f"{fold_hint(ctx, ei, ds.name, fold)}"
                )
            return f"{task} on {ds.name}: the {name} split holds none of its tracks — {_split_remedy(ctx, ei, ds, counts, name)}"
    return None


def _split_counts(rows: pa.Table) -> dict[str, int]:
    """The tracks of ``rows`` per split, each of train, validation and test (0 for one that holds none)."""
    from repeval.datasets.base import SPLITS

    found = {v["values"]: v["counts"] for v in pc.value_counts(rows.column("split")).to_pylist()}  # catalog scale
    return {name: found.get(name, 0) for name in SPLITS}


def _empty_fold(ctx: RunContext, ei: int, task: str, ds: Any, fold: int, n_tracks: int) -> str | None:
    """The folds that hold no track, when they leave ``fold``'s group without a split (:func:`fold_stops`): one
    problem however many groups it stops, said in the same words whichever group finds it."""
    counts = {g: _split_counts(rows) for g, rows in ctx.folds[(ei, ds.name)].items()}
    empty = [g for g, c in counts.items() if not c["validation"]]  # fold g: group g's validation tracks
    stops = fold_stops({g: {s for s, n in c.items() if not n} for g, c in counts.items()})
    if not empty or fold not in {g for groups in stops.values() for g in groups}:
        return None
    holds = "holds" if len(empty) == 1 else "hold"
    if _official_rotation(ctx, ei, ds.name) is None:
        fix = (
            "with few tracks per class use fewer n_folds; else check the dataset's split_column or the official folds "
            "it reads"
        )
    else:  # the data set's own folds, whatever n_folds
        fix = (
            f"the data set's official folds are read as they are, whatever n_folds: check dataset.dir holds the whole "
            f"data set, or run one official fold whose splits all hold tracks (split_type: single, dataset.fold; "
            f"`repeval datasets {ds.name}` says which it has)"
        )
    return (
        f"{task} on {ds.name}: {_folds(empty)} of {len(counts)} {holds} none of its {n_tracks:,} tracks, "
        f"{_stops_said(stops)} — {fix}{_groups_said(ctx.folds[(ei, ds.name)][fold], ds)}"
    )


def _groups_said(rows: pa.Table, ds: Any) -> str:
    """When ``rows``' tracks are grouped (``group_column``, or the artists or songs a loader groups by), how many
    groups they make — every track of a group takes one split (or fold), and a label's groups are dealt to the splits
    as units, so few groups per label leave a split (or fold) without any: more tracks or split_ratios cannot fix
    that, finer groups can; "" without groups."""
    groups = rows.column("group")
    n = len(groups) - groups.null_count
    m = int(pc.count_distinct(groups).as_py() or 0) if n else 0
    if m == 0 or m >= n:
        return ""
    col = getattr(ds, "group_column", None)
    by = f"group_column {col!r}" if col else "its loader"
    return (
        f"; {by} puts {n:,} of its tracks in {counted(m, 'group')}, whose tracks stay together (in one split, or fold), so a "
        "label with only one or two groups leaves some split without any — check the groups (group_column)"
    )


def failed_split(
    ctx: RunContext,
    ei: int,
    task: str,
    dataset: str,
    model: str,
    fold: int | None,
    rows: pa.Table,
    embedded: pa.Array,
    errors: str,
) -> str | None:
    """Why ``task`` on ``dataset`` (``fold``) with ``model`` cannot train or be tested: a split of ``rows`` that
    holds tracks (:func:`unassigned_split` says when it holds none) but none of those ``embedded`` (the track ids of
    the model's clean partition), each an error record once the partition is complete — the command ``errors`` lists
    them. With k folds the folds are named, said once for all the grids they stop (:func:`failed_folds`)."""
    from repeval.datasets.base import SPLITS
    from repeval.tuning.data import empty_split_message

    present = set(
        pc.unique(rows.filter(pc.is_in(rows.column("track_id"), value_set=embedded)).column("split")).to_pylist()
    )
    for name in SPLITS:
        if name in present:
            continue
        if fold is not None and (failed := failed_folds(ctx, ei, task, dataset, model, fold, embedded, errors)):
            return failed
        n = int(pc.sum(pc.equal(rows.column("split"), name)).as_py() or 0)
        why = f" — none of its {counted(n, 'track')} was embedded: `{errors}` says why"
        return f"{task} on {empty_split_message(dataset, model, name, why)}{fold_hint(ctx, ei, dataset, fold, False)}"
    return None


def failed_folds(
    ctx: RunContext, ei: int, task: str, dataset: str, model: str, fold: int, embedded: pa.Array, errors: str
) -> str | None:
    """The folds of which no track is embedded (``embedded``: the track ids of the model's clean partition; each
    track an error record, which the command ``errors`` lists), when they leave ``fold``'s group without a split: one
    problem of the model's partition, said once for all the groups it stops (``None`` when it stops none)."""
    from repeval.datasets.base import SPLITS

    groups = ctx.folds[(ei, dataset)]
    held = {g: _embedded_splits(rows, embedded) for g, rows in groups.items()}
    failed = {
        g: n for g, rows in groups.items() if "validation" not in held[g] and (n := _split_counts(rows)["validation"])
    }
    stops = fold_stops({g: set(SPLITS) - splits for g, splits in held.items()})
    if not failed or fold not in {g for groups in stops.values() for g in groups}:
        return None
    return (
        f"{task} on {dataset}/{model}: none of the {counted(sum(failed.values()), 'track')} of {_folds(failed)} of "
        f"{len(groups)} was embedded, {_stops_said(stops)} — each is an error record: `{errors}` says why"
    )


def _embedded_splits(rows: pa.Table, embedded: pa.Array) -> set[str]:
    """The splits of ``rows`` that hold a track of ``embedded``."""
    held = rows.filter(pc.is_in(rows.column("track_id"), value_set=embedded))
    return {s for s in pc.unique(held.column("split")).to_pylist() if s is not None}


def fold_stops(empty: dict[int, Collection[str]]) -> dict[str, list[int]]:
    """The groups of k folds left without a split, by what each would do on no track: ``empty[g]``, the splits of
    group ``g`` that hold no track (or none embedded). Read from each group's own splits, not from a model of the
    rotation: group ``g`` validates on fold ``g`` and tests on the next, but the rest it trains on may be folds
    beyond ``n_folds`` (a data set's official folds rotate over all of them), and a loader may give each fold its
    own official split (MTG-Jamendo's split-i)."""
    return {
        verb: [g for g in sorted(empty) if split in empty[g]]
        for verb, split in (("validates", "validation"), ("tests", "test"), ("trains", "train"))
    }


def _stops_said(stops: dict[str, list[int]]) -> str:
    """:func:`fold_stops` in words: ``so fold 0 validates, fold 2 tests and fold 1 trains on no track``."""
    said = [f"{_folds(groups)} {verb if len(groups) == 1 else verb[:-1]}" for verb, groups in stops.items() if groups]
    return f"so {_listed(said)} on no track"


def _folds(folds: Iterable[int]) -> str:
    """``fold 1``, ``folds 0 and 1``, ``folds 0, 1 and 3``."""
    names = [str(f) for f in sorted(folds)]
    return f"fold {names[0]}" if len(names) == 1 else f"folds {_listed(names)}"


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _split_remedy(ctx: RunContext, ei: int, ds: Any, counts: dict[str, int], split: str) -> str:
    """How a dataset of one split has its tracks split, and the fix for ``split`` left without tracks: add tracks or
    change split_ratios when they drew the splits; when the loader gave every track its split (split_ratios drew
    none), change what gives them."""
    from repeval.datasets.load import who_splits
    from repeval.tuning.data import split_fix

    found = ctx.reports.get((ei, ds.name))
    if found is None or found.drawn_splits:
        return split_fix(counts, split, ds.split_ratios) + _groups_said(ctx.rows[(ei, ds.name)], ds)
    if getattr(ds, "split_column", None):
        fix = f"give some tracks the {split} split there, or leave their cells empty for split_ratios to draw"
    elif "fold" in found.used_keys:
        return f"{split_fix(counts, split, None)}: {_official_fold_said(ctx, ei, ds, split)}"
    else:
        fix = f"`repeval datasets {ds.name}` says which official splits and folds it has (dataset.fold, split_type)"
    return f"{split_fix(counts, split, None)}: {who_splits(ds)}, so split_ratios drew none — {fix}"


def _official_fold_said(ctx: RunContext, ei: int, ds: Any, split: str) -> str:
    """Which of the data set's official folds ``dataset.fold`` made ``split`` of (its loader read ``fold``: TinySOL's
    folds rotate, validation = fold f, test = the next; MTG-Jamendo's split-f gives every split), and the fix: another
    ``fold`` — the data at ``dataset.dir`` may hold no track of some official fold (a sample of the data set)."""
    fold = int(ds.fold)
    official = _official_rotation(ctx, ei, ds.name)
    if official is not None and official[1]:
        how = f"its official split {fold} (dataset.fold) gives every track its split and leaves the {split} split none"
    else:
        nxt = f"fold {(fold + 1) % official[0]}" if official is not None else "the next fold"
        which = {"validation": f"fold {fold} holds", "test": f"{nxt} holds"}.get(
            split, f"folds other than fold {fold} and {nxt} hold"
        )
        how = (
            f"its official folds give every track its split (validation = fold {fold} (dataset.fold), test = {nxt}, "
            f"train = the rest), and the official {which} none of these tracks"
        )
    return (
        f"{how}, so split_ratios drew none — set dataset.fold to another of its official folds (`repeval datasets "
        f"{ds.name}` says which it has), or check dataset.dir holds the whole data set"
    )
