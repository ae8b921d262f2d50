"""Configuration pieces the tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def notes_dataset(manifest: str | Path, **keys: Any) -> dict[str, Any]:
    """The rendered-notes catalog (``repeval data render``: one row per note, its ``instrument`` the label) as a
    config's dataset entry; its manifest's ``split`` column gives the splits unless ``keys`` say otherwise
    (``split_column=None`` drops it, e.g. for ``split_ratios`` or folds)."""
    entry: dict[str, Any] = {
        "name": "notes",
        "type": "catalog",
        "manifest": str(manifest),
        "label_column": "instrument",
        "split_column": "split",
    }
    entry.update(keys)
    return {k: v for k, v in entry.items() if v is not None}
