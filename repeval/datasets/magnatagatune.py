"""MagnaTagATune (Law et al. 2009) auto-tagging, as in the mir_ref thesis.

Top-50 tags and the train/validation/test split of Won et al. (2020, ``sota-music-tagging-models``
``split/mtat/{train,valid,test,tags}.npy``); clips with none of the top-50 tags are dropped
(21,108 clips remain in the thesis). Without the split files, the other standard split is used:
the 12:1:3 split of the 16 audio folders (Dieleman & Schrauwen 2014: ``0``-``b`` train, ``c``
validation, ``d``-``f`` test). Clips from the same song share a group (the mp3 name without its
``-<start>-<end>`` suffix), so the seeded folds of ``split_type: all`` (without split files)
never put one song in two splits.

On-disk layout (``dataset.dir``; the first existing location of each file is used)::

    annotations_final.csv            (or metadata/, annotations/)   tab-separated, 0/1 per tag
    train.npy valid.npy test.npy tags.npy   (or metadata/, split/, split/mtat/)
    audio/<0-f>/<name>.mp3           (or mp3/<0-f>/..., or <0-f>/... directly under dir)

Three clips are known to be corrupt mp3s (mir_ref drops them): 35644, 55753, 57881.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.datasets.base import DatasetInfo, LabelInfo, LoadReport, register_dataset
from repeval.datasets.labels import resolve_label
from repeval.datasets.rows import RowCollector, require_rows

log = logging.getLogger(__name__)

CORRUPT_CLIPS = frozenset({"35644", "55753", "57881"})
SPLIT_FILES = {"train": "train.npy", "validation": "valid.npy", "test": "test.npy"}
#: the 12:1:3 folder split (Dieleman & Schrauwen 2014), used when Won et al.'s split files are absent
FOLDER_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "validation", **dict.fromkeys("def", "test")}
SPLIT_URL = "https://github.com/minzwon/sota-music-tagging-models/tree/master/split/mtat"
ANNOTATIONS_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/annotations_final.csv"

INFO = DatasetInfo(
    "magnatagatune",
    "custom",
    (
        LabelInfo(
            "tags",
            "multilabel_classification",
            "top-50 tags (Won et al.)",
            "Won et al. 2020 split, else the 12:1:3 folder split",
        ),
    ),
    "MagnaTagATune auto-tagging, top-50 tags, clips without a top-50 tag dropped",
)


def _find(root: Path, name: str, subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        p = root / sub / name
        if p.is_file():
            return p
    return None


def song_of(mp3_path: str) -> str:
    """``f/artist-album-01-title-30-59.mp3`` → ``artist-album-01-title`` (the clip's song)."""
    stem = Path(mp3_path).name.removesuffix(".mp3")
    return re.sub(r"-\d+-\d+$", "", stem)


def read_annotations(path: Path) -> tuple[list[str], dict[str, tuple[str, list[str]]]]:
    """(tag names, {clip_id: (mp3 path, tags)}) from ``annotations_final.csv``."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader)
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise ValueError(f"{path} is not MagnaTagATune's annotations_final.csv (header {header[:3]}…)")
        tags = header[1:-1]
        clips = {}
        for row in reader:
            if not row:
                continue
            clips[row[0]] = (row[-1], [t for t, v in zip(tags, row[1:-1], strict=True) if v.strip() == "1"])
    return tags, clips


def _split_paths(path: Path) -> list[str]:
    """Won et al.'s split files hold ``"<index>\\t<mp3 path>"`` strings."""
    return [str(x).split("\t", 1)[-1] for x in np.load(path, allow_pickle=False)]


@register_dataset("magnatagatune", info=INFO)
def load_magnatagatune(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    resolve_label(INFO, task)
    if not ds.dir:
        raise ValueError("dataset 'magnatagatune' needs dir (the folder with annotations_final.csv and the mp3s)")
    root = Path(ds.dir)
    meta_dirs = ("", "metadata", "annotations", "split/mtat", "split")
    annotations = _find(root, "annotations_final.csv", meta_dirs)
    if annotations is None:
        raise FileNotFoundError(
            f"MagnaTagATune: annotations_final.csv not found under {root} (looked in {list(meta_dirs)}) — "
            f"download it from {ANNOTATIONS_URL}"
        )
    _, clips = read_annotations(annotations)
    report = LoadReport()

    tags_file = _find(root, "tags.npy", meta_dirs)
    if tags_file is not None:
        top = [str(t) for t in np.load(tags_file, allow_pickle=False)]
    else:
        counts = Counter(t for _, tags in clips.values() for t in tags)
        top = sorted(t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50])
        report.add("other", f"tags.npy not found: using the 50 most frequent tags (get tags.npy from {SPLIT_URL})")
    top_set = frozenset(top)

    split_of: dict[str, str] | None = None
    by_folder = False
    split_files = {s: _find(root, f, meta_dirs) for s, f in SPLIT_FILES.items()}
    if all(split_files.values()):
        split_of = {p: s for s, path in split_files.items() if path is not None for p in _split_paths(path)}
    else:
        by_folder = getattr(ds, "split_type", "single") != "all"
        instead = (
            "the 12:1:3 folder split (0-b train, c validation, d-f test)"
            if by_folder
            else "seeded song-grouped stratified folds"
        )
        report.add(
            "other",
            f"Won et al. split files {list(SPLIT_FILES.values())} not found under {root}: using {instead} (get "
            f"them from {SPLIT_URL})",
        )

    audio_root = next(
        (
            root / sub
            for sub in ("audio", "mp3", "")
            if any((root / sub / p).is_file() for p, _ in list(clips.values())[:50])
        ),
        root / "audio",
    )
    collector = RowCollector(
        task.effective_type, report, getattr(ds, "classes", None), getattr(ds, "check_files", True)
    )
    not_in_split = 0
    for clip_id, (mp3, tags) in clips.items():
        if clip_id in CORRUPT_CLIPS:
            report.add("other", f"{clip_id} (known corrupt mp3, dropped as in mir_ref)")
            continue
        split: str | None = None
        if split_of is not None:
            split = split_of.get(mp3)
            if split is None:
                not_in_split += 1
                continue
        elif by_folder:
            split = FOLDER_SPLIT.get(mp3.replace("\\", "/").split("/", 1)[0].lower())
        top_tags = sorted(t for t in tags if t in top_set)
        if not top_tags:
            report.add("unlabelled", f"{clip_id} (no top-50 tag)")
            continue
        collector.add(clip_id, os.fspath(audio_root / mp3), top_tags, split, song_of(mp3))
    if not_in_split:
        report.add("other", f"{not_in_split} clips are in no Won et al. split file (not part of the split, dropped)")
    rows = require_rows(collector.table(), "magnatagatune", report, f"audio expected under {audio_root}")
    log.info("magnatagatune: %d clips, %d tags", rows.num_rows, len(top))
    return rows, report
