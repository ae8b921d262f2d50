"""Configuration pieces the tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_notes(out: Path) -> Path:
    """The tests' small rendered TinySOL-like set (the ``rendered_notes`` fixture's): 4 instruments × 12 notes rendered
    into ``out``; returns its manifest path."""
    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import RenderSpec

    spec = RenderSpec(instruments=("piano", "violin", "trumpet", "flute"), notes_per_instrument=12, seed=1)
    return render_dataset(out, spec)


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


def notes_manifest(rendered_notes: Path, out: Path, rows: list[dict[str, str]], extra: Any = ()) -> Path:
    """A catalog manifest at ``out`` of ``rows`` of the rendered-notes manifest ``rendered_notes`` (their audio paths
    made absolute), then each of ``extra`` — ``(track id, audio path, split or None)``: a row like the first with its
    own file (and split)."""
    import csv

    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "audio_path": str(rendered_notes.parent / r["audio_path"])})
        for tid, path, split in extra:
            w.writerow({**rows[0], "track_id": tid, "audio_path": str(path), **({"split": split} if split else {})})
    return out


def one_row_config(folder: Path, run_id: str | None = None) -> Path:
    """``folder/exp.yaml``: one experiment on a catalog of one row (``folder/m.csv``, its audio absent), its store and
    runs under ``folder`` — for commands that stop, or are stopped, before they read audio."""
    (folder / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
    cfg = folder / "exp.yaml"
    run = f"run_id: {run_id}, " if run_id else ""
    cfg.write_text(
        f"run: {{{run}runs_dir: {folder / 'runs'}, store: {folder / 'store'}}}\n"
        "experiments:\n- task: {name: t, type: multiclass_classification}\n"
        f"  datasets: [{{name: d, type: catalog, manifest: {folder / 'm.csv'}, label_column: label}}]\n"
        "  embedding_models: [mfcc-stats]\n  downstream_models: [{type: classifier, hidden_units: []}]\n"
    )
    return cfg


def snr_steps(db: float, p: float = 1) -> list[dict[str, Any]]:
    """A scenario's steps: white noise at ``db`` dB SNR exactly (min = max), with probability ``p``."""
    return [{"type": "AddGaussianSNR", "params": {"min_snr_db": db, "max_snr_db": db, "p": p}}]


def gain_steps(db: float) -> list[dict[str, Any]]:
    """A scenario's steps: a gain of ``db`` dB exactly (min = max)."""
    return [{"type": "Gain", "params": {"min_gain_in_db": db, "max_gain_in_db": db, "p": 1}}]
