"""mirdata-backed datasets: any mirdata data set with a usable track label.

The dataset is opened with ``data_home = dataset.dir`` and, because mirdata 1.0 ships no index
files (it downloads them on first use), ``dataset.index_path`` is set before first use when the
config gives ``index_path``. Tracks listed in the index whose audio is absent are reported in
``LoadReport.missing_audio`` and skipped.

Wired data sets (:data:`SPECS`, each registered under its mirdata name) name their labels and
official splits; any other mirdata data set loads through the generic path, where the task's
label is a track attribute (``task.label: genre``) and the split comes from a track's ``split``
or ``subset`` attribute when it has one. Official splits that are folds (TinySOL) rotate like
``split_type: all`` (validation = fold ``dataset.fold``, test = the next fold); train/test-only
official splits (OpenMIC-2018) get a validation part carved from train. OpenMIC-2018 annotates a few
instruments per clip: with ``dataset.unannotated: mask`` (the default) its rows carry each track's
annotated instruments (the ``observed`` column), which probes train and metrics score on.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.datasets.base import DatasetInfo, LabelInfo, LoadReport, register_dataset, unknown_label_message
from repeval.datasets.catalog import SPLIT_ALIASES
from repeval.datasets.encoding import normalize_pitch_class
from repeval.datasets.gtzan_split import gtzan_filtered
from repeval.datasets.labels import check_task_type, task_label_name
from repeval.datasets.rows import RowCollector, require_rows
from repeval.datasets.splits import carve_validation, folds_to_split_codes
from repeval.registry import unknown_name_message
from repeval.words import counted

log = logging.getLogger(__name__)

MC, ML, KEY = "multiclass_classification", "multilabel_classification", "key_estimation"


@dataclass(frozen=True)
class MirdataLabel:
    """A label of a mirdata data set: how to read it from a track, and whether the official split applies."""

    info: LabelInfo
    extract: Callable[[Any], Any]
    official_split: bool = False
    #: a multilabel data set that annotates only some labels per track: ``track -> (present labels, annotated
    #: labels)``, used with ``dataset.unannotated: mask`` (``extract`` serves ``absent``)
    annotated: Callable[[Any], tuple[list[str], list[str]]] | None = None


@dataclass(frozen=True)
class MirdataSpec:
    name: str
    labels: tuple[MirdataLabel, ...]
    #: official split of a track: "train"/"validation"/"test", a fold number, or None
    split_of: Callable[[Any], Any] | None = None
    #: official split for all tracks at once: (mirdata dataset, dataset config) -> {track_id: split}, or None when the
    #: data set's split files are absent (a stratified split then); tracks outside the map are left out
    split_map: Callable[[Any, Any], dict[str, Any] | None] | None = None
    #: group (artist, song, recorded sound) of a track, for leakage-free splits and folds
    group_of: Callable[[Any], Any] | None = None
    #: the official split has no validation part: carve one from train
    carve_validation: bool = False
    #: number of official folds when ``split_of`` gives fold numbers (default: largest fold + 1), or of the official
    #: splits ``split_map`` picks one of by ``dataset.fold``
    n_folds: int | None = None
    description: str = ""
    #: ``dataset.fold`` picks one of its official folds (``split_of`` gives fold numbers) or splits (``split_map``)
    official_folds: bool = False

    def info(self) -> DatasetInfo:
        keys = {"fold"} if self.official_folds else set()
        keys |= {"split_ratios", "split_seed"} if self.carve_validation else set()
        return DatasetInfo(
            self.name, "mirdata", tuple(lab.info for lab in self.labels), self.description, frozenset(keys)
        )

    def fixed_split(self, name: str) -> str | None:
        """How label ``name``'s official split is made when it fixes every track's train/validation/test split (no
        official folds to rotate, no split files that may be absent), so ``split_type: all`` cannot rotate folds on
        it (:func:`repeval.datasets.load.check_rotation`); None otherwise."""
        lab = next((x for x in self.labels if x.info.name == name), None)
        fixed = lab is not None and lab.official_split and not self.official_folds and self.split_map is None
        return lab.info.splits if fixed and lab is not None else None

    def official_fold_count(self, name: str) -> int | None:
        """How many official folds or splits ``dataset.fold`` picks from for label ``name`` (TinySOL's 5 folds,
        MTG-Jamendo's split-0..4) when the data set declares the count; None otherwise. A ``fold`` (or, under
        ``split_type: all``, an ``n_folds``) beyond it would stop the load."""
        lab = next((x for x in self.labels if x.info.name == name), None)
        return self.n_folds if lab is not None and lab.official_split and self.official_folds else None

    def label(self, name: str) -> MirdataLabel:
        for lab in self.labels:
            if lab.info.name == name:
                return lab
        raise ValueError(unknown_label_message(self.name, name, [x.info.name for x in self.labels]))


# ------------------------------------------------------------------------ opening mirdata


def mirdata_names() -> list[str]:
    import mirdata

    return list(mirdata.list_datasets())


def open_mirdata(ds: Any) -> Any:
    """``mirdata.initialize(ds.name, data_home=ds.dir)`` with ``index_path`` set before first use."""
    import mirdata

    names = mirdata_names()
    if ds.name not in names:
        raise ValueError(unknown_name_message("mirdata dataset", ds.name, set(names)))
    dataset = mirdata.initialize(ds.name, data_home=ds.dir)
    if ds.index_path:
        if not os.path.isfile(ds.index_path):
            raise FileNotFoundError(f"dataset '{ds.name}': index_path {ds.index_path} does not exist")
        dataset.index_path = str(ds.index_path)
    try:
        dataset._index  # noqa: B018  (reads the index now, to fail with a useful message)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"mirdata has no index for '{ds.name}' at {dataset.index_path}: mirdata 1.0 downloads index files on "
            f"first use — run `repeval data download {ds.name}` with network access, or set dataset.index_path to "
            "a local index JSON"
        ) from exc
    if not os.path.isdir(dataset.data_home):
        raise FileNotFoundError(
            f"dataset '{ds.name}' has no data under {dataset.data_home} — set dataset.dir, or run "
            f"`repeval data download {ds.name}`"
        )
    return dataset


# ------------------------------------------------------------------------------ extractors


def _attr(name: str) -> Callable[[Any], Any]:
    return functools.partial(_getattr, name=name)


def _getattr(track: Any, name: str) -> Any:
    return getattr(track, name)


def _pitch_class(pitch: Any) -> str | None:
    return normalize_pitch_class(str(pitch)) if pitch else None


def _register(pitch: Any) -> str | None:
    m = re.search(r"(-?\d+)$", str(pitch or ""))
    return m.group(1) if m else None


def _first_genre(track: Any) -> str | None:
    genres = track.genres or {}
    values = genres.get("genres") if isinstance(genres, dict) else genres
    return values[0] if values else None


def _sound(field: str) -> Callable[[Any], Any]:
    return functools.partial(_sound_field, field=field)


def _sound_field(track: Any, field: str) -> Any:
    return (track.sound_info or {}).get(field)


def _fma_key(track: Any) -> str | None:
    return f"{track.key} {str(track.mode).lower()}" if track.key and track.mode else None


#: OpenMIC-2018's threshold on an instrument's aggregated relevance: present at or above it (the official baseline's
#: ``Y_true >= 0.5``, cosmir/openmic-2018 ``examples/modeling-baseline.ipynb``)
OPENMIC_PRESENT = 0.5


def _openmic_annotated(track: Any) -> tuple[list[str], list[str]]:
    """OpenMIC-2018's instruments as its official protocol reads them: present where the aggregated relevance is at
    least 0.5, annotated where the track has a relevance at all (mirdata leaves unannotated instruments out)."""
    relevance = track.instruments or {}
    return sorted(k for k, v in relevance.items() if v >= OPENMIC_PRESENT), sorted(relevance)


def _song_group(track: Any) -> str | None:
    song = track.song_id
    return None if song is None or int(song) < 0 else f"song{song}"


def _split_name(value: Any) -> Any:
    """A track's official split attribute → train/validation/test, a fold number, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    for part in reversed(re.split(r"[_\-\s]+", text)):
        if part in SPLIT_ALIASES:
            return SPLIT_ALIASES[part]
    return None


def _track_split(track: Any) -> Any:
    """Generic official split: a track's ``split`` attribute, else its ``subset`` (fold 0 is a split too)."""
    value = getattr(track, "split", None)
    return _split_name(value if value is not None else getattr(track, "subset", None))


def _tinysol_fold(track: Any) -> Any:
    return _split_name(track.split)


def _jamendo_splits(dataset: Any, ds: Any) -> dict[str, Any]:
    fold = int(getattr(ds, "fold", 0) or 0)
    if not 0 <= fold < 5:  # (MirdataSpec.n_folds; the configuration's check refuses it before anything runs)
        raise ValueError(f"mtg_jamendo_autotagging_moodtheme has official splits 0..4; got dataset.fold {fold}")
    splits = dataset.get_track_splits(fold)
    return {tid: name for name, ids in splits.items() for tid in ids}


def _label(
    name: str,
    ttype: str,
    extract: Callable[[Any], Any],
    desc: str,
    official: bool = False,
    splits: str = "stratified 80/10/10",
) -> MirdataLabel:
    return MirdataLabel(LabelInfo(name, ttype, desc, splits), extract, official)


_FOLDS = "official folds (validation = fold i, test = fold i+1; thesis: fold 0)"

SPECS: dict[str, MirdataSpec] = {
    spec.name: spec
    for spec in (
        MirdataSpec(
            "tinysol",
            (
                _label("instrument", MC, _attr("instrument_full"), "14 instruments", True, _FOLDS),
                _label("family", MC, _attr("family"), "instrument family", True, _FOLDS),
                _label("pitch_class", MC, lambda t: _pitch_class(t.pitch), "12 pitch classes (sharps)"),
                _label("pitch", MC, _attr("pitch"), "pitch with octave, e.g. A#2"),
                _label("pitch_register", MC, lambda t: _register(t.pitch), "octave number"),
                _label("dynamics", MC, _attr("dynamics"), "pp, p, mf, f, ff"),
            ),
            split_of=_tinysol_fold,
            n_folds=5,
            official_folds=True,
            description="TinySOL single notes; instrument uses the official folds like the thesis",
        ),
        MirdataSpec(
            "beatport_key",
            (
                _label("key", KEY, _attr("key"), "global key; tracks with several or no keys are dropped"),
                _label("genre", MC, _first_genre, "first Beatport genre"),
            ),
            description="Beatport EDM key (thesis: 80/10/10 stratified)",
        ),
        MirdataSpec(
            "giantsteps_key",
            (
                _label("key", KEY, _attr("key"), "global key"),
                _label("genre", MC, _first_genre, "first Beatport genre"),
            ),
        ),
        MirdataSpec(
            "gtzan_genre",
            (
                _label(
                    "genre",
                    MC,
                    _attr("genre"),
                    "10 genres",
                    True,
                    "fault-filtered split when its files are in dataset.dir, else stratified 80/10/10",
                ),
            ),
            split_map=gtzan_filtered,
            description="GTZAN genre; the fault-filtered split from {train,valid,test}_filtered.txt in dataset.dir "
            "(or its GTZAN_split/ or splits/ folder; tracks in none of them are left out)",
        ),
        MirdataSpec(
            "medley_solos_db",
            (_label("instrument", MC, _attr("instrument"), "8 instruments", True, "official subsets"),),
            split_of=lambda t: _split_name(t.subset),
            group_of=_song_group,
        ),
        MirdataSpec(
            "mtg_jamendo_autotagging_moodtheme",
            (_label("tags", ML, _attr("tags"), "mood/theme tags", True, "official split-k (k = dataset.fold)"),),
            split_map=_jamendo_splits,
            group_of=_attr("artist_id"),
            n_folds=5,
            official_folds=True,
        ),
        MirdataSpec(
            "good_sounds",
            (
                _label("instrument", MC, _sound("instrument"), "12 instruments"),
                _label("pitch_class", MC, lambda t: _pitch_class(_sound_field(t, "note")), "12 pitch classes"),
                _label("klass", MC, _sound("klass"), "sound quality class (good-sound, bad-pitch, ...)"),
                _label("dynamics", MC, _sound("dynamics"), "dynamics"),
            ),
            # takes of one sound (several microphones) must never straddle splits
            group_of=lambda t: _sound_field(t, "id"),
        ),
        MirdataSpec(
            "openmic2018",
            (
                MirdataLabel(
                    LabelInfo(
                        "instrument",
                        ML,
                        "20 instruments; each track annotates some: unannotated: mask (default, the official "
                        "protocol) trains and scores each instrument on the tracks annotating it, present at "
                        "aggregated confidence >= 0.5; absent: present > 0.5, unannotated pairs count as absent",
                        "official split01 train/test, validation carved from train by artist",
                    ),
                    _attr("instruments"),
                    True,
                    annotated=_openmic_annotated,
                ),
            ),
            split_of=lambda t: _split_name(t.split),
            group_of=_attr("artist"),
            carve_validation=True,
        ),
        MirdataSpec("fma_keys", (_label("key", KEY, _fma_key, "global key"),)),
        MirdataSpec(
            "mridangam_stroke",
            (
                _label("stroke", MC, _attr("stroke_name"), "10 strokes"),
                _label("tonic", MC, _attr("tonic"), "6 tonics"),
            ),
        ),
    )
}


# ---------------------------------------------------------------------------------- loader


def _generic_label(name: str, task: Any) -> MirdataLabel:
    return MirdataLabel(LabelInfo(name, task.effective_type, f"track attribute '{name}'"), _attr(name), True)


def _rotate_folds(rows: pa.Table, folds: list[Any], ds: Any, n_folds: int | None, report: LoadReport) -> pa.Table:
    """Official fold numbers → splits: validation = fold ``ds.fold``, test = the next fold, train = the rest."""
    n_folds = n_folds or max(f for f in folds if f is not None) + 1
    if n_folds < 3:
        # a finding that drops no row (it was counted as a row problem, "1 other"); it says what ``fold`` does here,
        # read for it — else the note that ``fold`` is unused said the data set had no official folds at all
        given = ds.keys_given() if hasattr(ds, "keys_given") else set()
        picks = f", and fold ({ds.fold}) picks none of them" if "fold" in given else ""
        drawn = "n_folds stratified folds" if getattr(ds, "split_type", "single") == "all" else "split_ratios"
        report.notes.append(
            f"the tracks' split attribute gives {counted(n_folds, 'official fold')}, too few to rotate, which takes 3 or more "
            f"(validation = fold i, test = fold i+1, train = the rest): their splits are drawn from {drawn} "
            f"instead{picks} — set group_column to keep related tracks in one split"
        )
        return rows
    fold = int(getattr(ds, "fold", 0) or 0)
    codes = folds_to_split_codes(np.array([-1 if f is None else f for f in folds]), n_folds, fold)
    names = np.array(["train", "validation", "test"], dtype=object)[codes]
    split = pa.array([None if f is None else s for f, s in zip(folds, names, strict=True)], pa.string())
    return rows.set_column(rows.schema.get_field_index("split"), "split", split)


def load_mirdata(ds: Any, task: Any, spec: MirdataSpec | None) -> tuple[pa.Table, LoadReport]:
    """Load a mirdata data set: ``spec`` names its labels and splits; None (the generic loader): the
    task's label is a track attribute and the split a track's ``split``/``subset`` attribute."""
    if spec is not None:
        label = spec.label(task_label_name(task, spec.info()))
        check_task_type(label.info, task, ds.name)
    else:
        label = _generic_label(task_label_name(task), task)
    dataset = open_mirdata(ds)
    report = LoadReport()
    if not getattr(ds, "index_path", None):  # mirdata's own index, recorded where the store records the audio's source
        report.listed["index"] = str(dataset.index_path)
    # a key label is normalised (Db major → C# major) even when the task is written as multiclass
    task_type = KEY if label.info.task_type == KEY and task.effective_type != ML else task.effective_type
    # labels annotated per track: masked (each label trained and scored on the tracks that annotate it), or every
    # unannotated pair counted as absent (``dataset.unannotated: absent``)
    annotated = label.annotated if getattr(ds, "unannotated", "mask") == "mask" else None
    collector = RowCollector(
        task_type, report, getattr(ds, "classes", None), getattr(ds, "check_files", True), masked=annotated is not None
    )
    official = label.official_split
    split_map = spec.split_map(dataset, ds) if (official and spec is not None and spec.split_map) else None
    split_of = spec.split_of if spec is not None else _track_split
    group_col = getattr(ds, "group_column", None)
    group_of = _attr(group_col) if group_col else (spec.group_of if spec is not None else None)
    folds: list[Any] = []
    unlisted = 0
    for tid in dataset.track_ids:
        if split_map is not None and tid not in split_map:
            unlisted += 1
            continue
        try:
            track = dataset.track(tid)
            observed = None
            if annotated is not None:
                raw, observed = annotated(track)
            else:
                raw = label.extract(track)
            split: Any = None
            if official and split_map is not None:
                split = split_map.get(tid)
            elif official and split_of is not None:
                split = split_of(track)
            group = group_of(track) if group_of is not None else None
            if isinstance(group, list | tuple):
                group = group[0] if group else None
        except (AttributeError, KeyError, ValueError, TypeError, OSError) as exc:
            if isinstance(exc, AttributeError) and spec is None and label.info.name in str(exc):
                raise ValueError(
                    f"mirdata dataset '{ds.name}' tracks have no attribute '{label.info.name}' — set task.label to a "
                    "track attribute (see the mirdata docs for this dataset)"
                ) from None
            report.add("other", f"{tid} ({type(exc).__name__}: {exc})")
            continue
        fold = split if isinstance(split, int) else None
        if collector.add(
            tid, getattr(track, "audio_path", None), raw, None if fold is not None else split, group, observed
        ):
            folds.append(fold)
    if unlisted:
        verb = "is" if unlisted == 1 else "are"  # "1 tracks are": a count said as it reads
        report.add(
            "other", f"{counted(unlisted, 'track')} {verb} in no file of the official split (not part of it, dropped)"
        )
    rows = require_rows(
        collector.table(), ds.name, report, f"check dataset.dir ({dataset.data_home}) and dataset.index_path"
    )
    if any(f is not None for f in folds):
        rows = _rotate_folds(rows, folds, ds, spec.n_folds if spec is not None else None, report)
    if official and spec is not None and spec.carve_validation:
        ratios = tuple(getattr(ds, "split_ratios", (0.8, 0.1, 0.1)))
        fraction = ratios[1] / (ratios[0] + ratios[1]) if ratios[1] > 0 else 0.1
        rows = carve_validation(rows, fraction, int(getattr(ds, "split_seed", 0)))
    log.info("mirdata %s: %d tracks for label '%s'", ds.name, rows.num_rows, label.info.name)
    return rows, report


GENERIC_INFO = DatasetInfo(
    "mirdata",
    "mirdata",
    (
        LabelInfo(
            "<track attribute>", "any", "task.label names a track attribute", "track split/subset, else stratified"
        ),
    ),
    "any mirdata data set: the label is a track attribute",
    frozenset({"fold"}),  # a track's split attribute may be a fold number
)


def _load_generic(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    return load_mirdata(ds, task, None)


def load_wired(ds: Any, task: Any, name: str) -> tuple[pa.Table, LoadReport]:
    """Loader of a wired data set (registered as ``functools.partial(load_wired, name=...)``, which pickles)."""
    return load_mirdata(ds, task, SPECS[name])


register_dataset("mirdata", info=GENERIC_INFO)(_load_generic)
for _name, _spec in SPECS.items():
    register_dataset(_name, info=_spec.info())(functools.partial(load_wired, name=_name))
