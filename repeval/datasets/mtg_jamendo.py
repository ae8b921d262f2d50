"""MTG-Jamendo auto-tagging (Bogdanov et al. 2019): all four subsets with their official splits.

``dataset.subset`` picks ``genre``, ``instrument``, ``moodtheme`` or ``top50tags`` (or register
names ``mtg_jamendo_<subset>``); ``dataset.fold`` picks the official split ``split-<fold>``
(0..4; ``split_type: all`` runs all five). The official split files carry every column
(``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS...``), so they alone define the rows; the
splits are artist-disjoint, and artists are kept as groups.

Tags: ``genre---rock`` → ``rock`` for the single-category subsets; ``top50tags`` mixes
categories, so its tags keep the ``category---`` prefix.

On-disk layout (``dataset.dir``, the official repository plus audio; mirdata's and mir_ref's
layouts load too)::

    data/autotagging_<subset>.tsv                         (or metadata/, or dir itself)
    data/splits/split-<k>/autotagging_<subset>-{train,validation,test}.tsv
    audio/<NN>/<id>.mp3  or  audio/<NN>/<id>.low.mp3     (or audios/, audio-low/, raw_30s/audio/, dir itself)
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from repeval.datasets.base import DatasetInfo, LabelInfo, LoadReport, register_dataset
from repeval.datasets.labels import resolve_label
from repeval.datasets.rows import RowCollector, require_rows
from repeval.registry import unknown_name_message

log = logging.getLogger(__name__)

SUBSETS = ("genre", "instrument", "moodtheme", "top50tags")
N_SPLITS = 5
_META_DIRS = ("data", "metadata", "")
_AUDIO_DIRS = ("audio", "audios", "audio-low", "raw_30s/audio", "raw_30s_audio", "mp3", "")
REPO_URL = "https://github.com/MTG/mtg-jamendo-dataset"


def _info(name: str, subset: str | None) -> DatasetInfo:
    what = subset or "<dataset.subset>"
    return DatasetInfo(
        name,
        "custom",
        (LabelInfo("tags", "multilabel_classification", f"{what} tags", "official split-k (k = dataset.fold)"),),
        f"MTG-Jamendo auto-tagging, subset {what}" + ("" if subset else f" ({', '.join(SUBSETS)})"),
        frozenset({"fold"}),
        N_SPLITS,
    )


def _find_file(root: Path, rel: str) -> Path | None:
    for sub in _META_DIRS:
        p = root / sub / rel
        if p.is_file():
            return p
    return None


def read_tsv(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """Rows of an MTG-Jamendo TSV as (track id, artist id, path, tags)."""
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if not header or header[0] != "TRACK_ID":
            raise ValueError(f"{path} is not an MTG-Jamendo TSV (first column {header[:1] if header else None})")
        for row in reader:
            if row:
                out.append((row[0], row[1], row[3], [t.strip() for t in row[5:] if t.strip()]))
    return out


def _tag(tag: str, keep_prefix: bool) -> str:
    return tag if keep_prefix or "---" not in tag else tag.split("---", 1)[1]


class _AudioResolver:
    """Finds a track's mp3 under the first audio folder that has it (full or ``.low.mp3`` quality)."""

    def __init__(self, root: Path) -> None:
        self.roots = [root / sub for sub in _AUDIO_DIRS if (root / sub).is_dir()]
        self._hits: dict[Path, int] = {}

    def __call__(self, rel: str) -> str:
        low = rel[: -len(".mp3")] + ".low.mp3" if rel.endswith(".mp3") else rel
        for r in sorted(self.roots, key=lambda r: -self._hits.get(r, 0)):
            for candidate in (r / rel, r / low):
                if candidate.is_file():
                    self._hits[r] = self._hits.get(r, 0) + 1
                    return os.fspath(candidate)
        return os.fspath((self.roots[0] if self.roots else Path()) / rel)


def load_mtg_jamendo(ds: Any, task: Any, subset: str | None = None) -> tuple[pa.Table, LoadReport]:
    subset = subset or getattr(ds, "subset", None)
    if subset not in SUBSETS:
        raise ValueError(
            unknown_name_message("MTG-Jamendo subset", str(subset), set(SUBSETS)) + " — set dataset.subset"
            if subset
            else f"dataset '{ds.name}' needs subset: one of {', '.join(SUBSETS)}"
        )
    resolve_label(_info(ds.name, subset), task)
    if not ds.dir:
        raise ValueError(f"dataset '{ds.name}' needs dir (a checkout of {REPO_URL} with the audio)")
    root = Path(ds.dir)
    fold = int(getattr(ds, "fold", 0) or 0)
    if not 0 <= fold < N_SPLITS:
        raise ValueError(f"MTG-Jamendo has official splits 0..{N_SPLITS - 1}; got dataset.fold {fold}")
    report = LoadReport()
    keep_prefix = subset == "top50tags"
    entries: list[tuple[tuple[str, str, str, list[str]], str | None]] = []
    split_files = {
        s: _find_file(root, f"splits/split-{fold}/autotagging_{subset}-{s}.tsv")
        for s in ("train", "validation", "test")
    }
    if all(split_files.values()):
        entries = [(row, split) for split, path in split_files.items() if path is not None for row in read_tsv(path)]
    else:
        meta = _find_file(root, f"autotagging_{subset}.tsv")
        if meta is None:
            raise FileNotFoundError(
                f"MTG-Jamendo {subset}: neither data/splits/split-{fold}/autotagging_{subset}-*.tsv nor "
                f"data/autotagging_{subset}.tsv found under {root} — clone {REPO_URL} into dataset.dir"
            )
        # a finding that drops no row (it was counted as a row problem, "1 other")
        report.notes.append(
            f"official split-{fold} files not found under {root} (splits/split-{fold}/autotagging_{subset}-*.tsv): "
            "its splits are drawn instead, seeded, stratified and grouped by artist"
        )
        entries = [(row, None) for row in read_tsv(meta)]
    audio = _AudioResolver(root)
    collector = RowCollector(
        task.effective_type, report, getattr(ds, "classes", None), getattr(ds, "check_files", True)
    )
    for (tid, artist, rel, tags), split_name in entries:
        collector.add(tid, audio(rel), [_tag(t, keep_prefix) for t in tags], split_name, artist or None)
    rows = require_rows(collector.table(), ds.name, report, f"audio expected under {root}/audio/<NN>/<id>.mp3")
    log.info("mtg_jamendo %s split-%d: %d tracks", subset, fold, rows.num_rows)
    return rows, report


register_dataset("mtg_jamendo", info=_info("mtg_jamendo", None))(load_mtg_jamendo)
for _subset in SUBSETS:
    register_dataset(f"mtg_jamendo_{_subset}", info=_info(f"mtg_jamendo_{_subset}", _subset))(
        functools.partial(load_mtg_jamendo, subset=_subset)
    )
