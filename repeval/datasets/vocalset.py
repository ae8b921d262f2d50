"""VocalSet (Wilkins et al. 2018): singer identification and vocal technique identification.

- ``singer`` (``singer_identification``): all recordings, 20 singers, seeded stratified 80/10/10
  split (the thesis).
- ``technique`` (``technique_identification``): the ten techniques of the dataset paper (belt,
  breathy, inhaled, lip_trill, spoken, straight, trill, trillo, vibrato, vocal_fry; 1,912 clips
  in the thesis) and a **singer-disjoint** split: the dataset's test singers
  (``test_singers_technique.txt``; f2 f8 m3 m5 m10), the thesis' validation singers f9 m9 m11
  taken from the training singers, everyone else in train. The singer is the group, so
  ``split_type: all`` folds are singer-disjoint too.

mir_ref matched singers by the first two characters of the file name, which sends m10 and m11 to
the training set (as "m1") and f9/m9 to both train and validation — singers leaked across splits
— and matched techniques by substring, labelling every ``lip_trill`` clip ``trill``. Here the
singer and technique come from the folders (``FULL/<singer>/<context>/<technique>/<file>.wav``),
which also covers the files whose names lack the singer prefix.

Layout: ``dataset.dir`` holds ``FULL/`` (or the singer folders directly) and optionally
``train_singers_technique.txt`` / ``test_singers_technique.txt`` (``female2`` / ``male10`` or
``f2`` / ``m10``, one per line or separated by commas or spaces). Copies named ``*(1).wav`` are duplicates and are
reported; the unprefixed ``caro_vibrato``, ``dona_vibrato``, ``row_vibrato`` and ``slow_vibrato_arps``, which
MARBLE's and mir_ref's preprocessing delete, are reported and left out too.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from repeval.datasets.base import DatasetInfo, LabelInfo, LoadReport, register_dataset
from repeval.datasets.labels import resolve_label
from repeval.datasets.rows import RowCollector, require_rows

log = logging.getLogger(__name__)

TECHNIQUES = (
    "belt",
    "breathy",
    "inhaled",
    "lip_trill",
    "spoken",
    "straight",
    "trill",
    "trillo",
    "vibrato",
    "vocal_fry",
)
#: the dataset's technique test singers (test_singers_technique.txt)
TEST_SINGERS = ("f2", "f8", "m3", "m5", "m10")
#: the thesis' validation singers, taken from the original training singers
VALIDATION_SINGERS = ("f9", "m9", "m11")
#: recordings without a singer prefix that MARBLE's preprocessing (and mir_ref's, after it) deletes as duplicates or
#: recordings outside the dataset paper's Table 2; the thesis' counts leave them out
KNOWN_DUPLICATES = frozenset({"caro_vibrato", "dona_vibrato", "row_vibrato", "slow_vibrato_arps"})
#: folder-name typos in the distribution
_TECHNIQUE_FIXES = {"vibrado": "vibrato"}
_SINGER_RE = re.compile(r"^(f|m|female|male)(\d+)$")
ZENODO_URL = "https://zenodo.org/record/1203819"

INFO = DatasetInfo(
    "vocalset",
    "custom",
    (
        LabelInfo("singer", "multiclass_classification", "20 singers", "stratified 80/10/10"),
        LabelInfo(
            "technique",
            "multiclass_classification",
            "10 techniques of the dataset paper",
            "singer-disjoint: test f2 f8 m3 m5 m10, validation f9 m9 m11",
        ),
    ),
    "VocalSet singer and technique identification",
)


def singer_id(text: str) -> str | None:
    """``female2`` / ``F2`` / ``m10`` → ``f2`` / ``f2`` / ``m10``; None if not a singer name."""
    m = _SINGER_RE.match(text.strip().lower())
    return f"{m.group(1)[0]}{int(m.group(2))}" if m else None


def _read_singers(path: Path) -> list[str]:
    """The singers a list file names: one per line, or separated by commas or spaces; a file that names none (an
    unexpected format) is an error, never an empty list — that would move the file's singers to another split."""
    out = [s for s in (singer_id(x) for x in re.split(r"[\s,;]+", path.read_text(encoding="utf-8"))) if s]
    if not out:
        raise ValueError(f"VocalSet: {path} names no singer (expected e.g. 'female2' or 'm10', one per line)")
    return out


def _audio_root(root: Path) -> Path:
    for sub in ("FULL", "data_by_singer", ""):
        p = root / sub
        if p.is_dir() and any(singer_id(c.name) for c in p.iterdir() if c.is_dir()):
            return p
    raise FileNotFoundError(
        f"VocalSet: no singer folders (f1 … m11) under {root} or {root / 'FULL'} — unzip VocalSet from {ZENODO_URL} "
        "into dataset.dir"
    )


def technique_splits(root: Path) -> tuple[dict[str, str], str]:
    """singer → split for the technique task, and where the test singers came from."""
    test_file, train_file = root / "test_singers_technique.txt", root / "train_singers_technique.txt"
    test = _read_singers(test_file) if test_file.is_file() else list(TEST_SINGERS)
    source = str(test_file) if test_file.is_file() else "built-in list (test_singers_technique.txt not found)"
    out = {s: "test" for s in test}
    out.update({s: "validation" for s in VALIDATION_SINGERS if s not in out})
    if train_file.is_file():
        out.update({s: "train" for s in _read_singers(train_file) if s not in out})
    return out, source


@register_dataset("vocalset", info=INFO)
def load_vocalset(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    label = resolve_label(INFO, task).name
    if not ds.dir:
        raise ValueError(f"dataset 'vocalset' needs dir (the unzipped VocalSet from {ZENODO_URL})")
    root = Path(ds.dir)
    audio_root = _audio_root(root)
    report = LoadReport()
    collector = RowCollector(
        task.effective_type, report, getattr(ds, "classes", None), getattr(ds, "check_files", True)
    )
    split_of: dict[str, str] = {}
    if label == "technique":
        split_of, source = technique_splits(root)
        log.info("vocalset technique test singers from %s", source)
    skipped = 0
    for path in sorted(audio_root.rglob("*.wav")):
        rel = path.relative_to(audio_root)
        if "__MACOSX" in rel.parts or path.name.startswith("._"):
            continue
        singer = singer_id(rel.parts[0]) if len(rel.parts) > 1 else None
        singer = singer or singer_id(path.stem.split("_", 1)[0])
        if singer is None:
            report.add("other", f"{rel} (no singer folder or prefix)")
            continue
        tid = path.stem
        if re.search(r"\(\d+\)$", tid):
            report.add("duplicate_ids", f"{tid} ({rel}: a numbered copy)")
            continue
        if tid in KNOWN_DUPLICATES:
            report.add("other", f"{tid} ({rel}: deleted by MARBLE's and mir_ref's preprocessing, left out)")
            continue
        if label == "singer":
            collector.add(tid, os.fspath(path), singer)
            continue
        technique = _TECHNIQUE_FIXES.get(path.parent.name.lower(), path.parent.name.lower())
        if technique not in TECHNIQUES:
            skipped += 1
            continue
        split = None if getattr(ds, "split_type", "single") == "all" else split_of.get(singer, "train")
        collector.add(tid, os.fspath(path), technique, split, singer)
    if skipped:
        log.info("vocalset: %d recordings of other techniques left out (only the ten of the paper are used)", skipped)
    rows = require_rows(collector.table(), "vocalset", report, f"recordings expected under {audio_root}")
    return rows, report
