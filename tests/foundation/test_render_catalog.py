"""The quickstart render and the generic catalog loader."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from repeval.config import parse_config
from repeval.datasets import load_dataset
from repeval.datasets.render import render_dataset
from repeval.datasets.render_specs import RenderSpec


def test_render_is_real_audio_with_labels_and_seeded_splits(tmp_path):
    spec = RenderSpec(instruments=("piano", "flute"), notes_per_instrument=10, seed=3)
    m1 = render_dataset(tmp_path / "a", spec)
    m2 = render_dataset(tmp_path / "b", spec)
    rows = list(csv.DictReader(m1.open()))
    assert len(rows) == 20
    assert {r["instrument"] for r in rows} == {"piano", "flute"}
    assert all(r["pitch_class"] in {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"} for r in rows)
    for inst in ("piano", "flute"):
        splits = [r["split"] for r in rows if r["instrument"] == inst]
        assert set(splits) == {"train", "validation", "test"}  # stratified per instrument
    # same seed → same files, bit for bit
    assert m1.read_text() == m2.read_text()
    a, sr = sf.read(tmp_path / "a" / rows[0]["audio_path"])
    b, _ = sf.read(tmp_path / "b" / rows[0]["audio_path"])
    assert sr == 22050 and np.array_equal(a, b)
    # it is a sounding note, not silence, and the two instruments differ spectrally
    assert np.abs(a).max() > 0.01
    assert np.sqrt(np.mean(a[: sr // 2] ** 2)) > 10 * np.sqrt(np.mean(a[-1000:] ** 2)) + 1e-6  # note, then decay
    piano = next(r for r in rows if r["instrument"] == "piano")
    flute = next(r for r in rows if r["instrument"] == "flute")
    pa_, _ = sf.read(tmp_path / "a" / piano["audio_path"])
    fl_, _ = sf.read(tmp_path / "a" / flute["audio_path"])
    assert not np.allclose(pa_, fl_)
    # rendered again, the same set leaves its manifest as it was: a rewritten one's new time read as an edit, and the
    # next run warned that the store's embeddings came from a manifest "edited" since
    before = m1.stat().st_mtime_ns
    assert render_dataset(tmp_path / "a", spec) == m1 and m1.stat().st_mtime_ns == before
    assert render_dataset(tmp_path / "a", RenderSpec(instruments=("piano", "flute"), notes_per_instrument=10, seed=4))
    assert m1.read_text() != m2.read_text()  # another set: a new manifest


def _catalog_cfg(manifest, **ds):
    return parse_config(
        {
            "experiments": [
                {
                    "task": {"name": "instrument", "type": "multiclass_classification"},
                    "datasets": [{"name": "cat", "type": "catalog", "manifest": str(manifest), **ds}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{}],
                }
            ]
        }
    ).experiments[0]


def test_catalog_loader_reads_manifest_and_reports_problems(rendered_notes, tmp_path):
    rows = list(csv.DictReader(rendered_notes.open()))
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["track_id", "audio_path", "instrument"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    "track_id": r["track_id"],
                    "audio_path": str(rendered_notes.parent / r["audio_path"]),
                    "instrument": r["instrument"],
                }
            )
        dup = {"track_id": rows[0]["track_id"], "audio_path": str(rendered_notes.parent / rows[1]["audio_path"])}
        w.writerow({**dup, "instrument": "piano"})  # duplicate id
        w.writerow({"track_id": "ghost", "audio_path": "missing.wav", "instrument": "piano"})  # missing file
        w.writerow(
            {"track_id": "nolabel", "audio_path": str(rendered_notes.parent / rows[0]["audio_path"]), "instrument": ""}
        )
    exp = _catalog_cfg(manifest, label_column="instrument")
    table, report = load_dataset(exp.datasets[0], exp.task)
    assert table.num_rows == len(rows)
    assert any("row" in d and rows[0]["track_id"] in d for d in report.duplicate_ids)
    assert any("ghost" in m for m in report.missing_audio)
    assert any("nolabel" in u for u in report.unlabelled)
    # no split column: a seeded stratified 80/10/10 split fills it
    splits = table.column("split").to_pylist()
    assert set(splits) == {"train", "validation", "test"}
    again, _ = load_dataset(exp.datasets[0], exp.task)
    assert again.column("split").to_pylist() == splits


def test_catalog_missing_column_names_the_fix(rendered_notes):
    exp = _catalog_cfg(rendered_notes, label_column="genre")
    with pytest.raises(ValueError, match="has no column"):
        load_dataset(exp.datasets[0], exp.task)
