"""GTZAN's fault-filtered split (Kereliuk, Sturm & Larsen 2015), read from its split files: what the ``gtzan_genre``
loader (:mod:`repeval.datasets.mirdata_loader`) gives its tracks, and what ``repeval validate`` checks before a run
(:mod:`repeval.datasets.mirdata_check`)."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

GTZAN_SPLIT_FILES = {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"}
GTZAN_SPLIT_URL = "https://github.com/jongpillee/music_dataset_split/tree/master/GTZAN_split"


def gtzan_split_paths(root: str) -> dict[str, str] | None:
    """Split → path of GTZAN's fault-filtered split files in ``root`` or its ``GTZAN_split/`` or ``splits/`` folder (the
    first folder holding all three); None without them."""
    for sub in ("", "GTZAN_split", "splits"):
        folder = os.path.join(root, sub)
        paths = {split: os.path.join(folder, name) for split, name in GTZAN_SPLIT_FILES.items()}
        if all(os.path.isfile(p) for p in paths.values()):
            return paths
    return None


def read_gtzan_split(paths: dict[str, str]) -> dict[str, Any]:
    """Track id → split of the files :func:`gtzan_split_paths` found (lines like ``blues/blues.00029.wav``)."""
    out: dict[str, Any] = {}
    for split, path in paths.items():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    out[os.path.splitext(os.path.basename(line.strip().replace("\\", "/")))[0]] = split
    return out


def gtzan_filtered(dataset: Any, ds: Any) -> dict[str, Any] | None:
    """GTZAN's fault-filtered split (Kereliuk, Sturm & Larsen 2015; 443/197/290 tracks, artist-disjoint, without the
    repeated, distorted and mislabelled excerpts) from ``{train,valid,test}_filtered.txt`` (lines like
    ``blues/blues.00029.wav``) in ``dataset.dir`` or its ``GTZAN_split/`` or ``splits/`` folder; None without them."""
    paths = gtzan_split_paths(str(ds.dir or dataset.data_home))
    if paths is not None:
        return read_gtzan_split(paths)
    log.info(
        "gtzan_genre: fault-filtered split files %s not found under %s: a stratified split, which GTZAN's repeated "
        "artists and excerpts inflate (get them from %s)",
        list(GTZAN_SPLIT_FILES.values()), ds.dir, GTZAN_SPLIT_URL,
    )  # fmt: skip
    return None
