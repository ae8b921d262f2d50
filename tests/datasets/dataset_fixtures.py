"""Tiny data sets in the real on-disk layouts of MagnaTagATune, MTG-Jamendo and VocalSet.

Audio is a short sine written with soundfile (mp3 where the real data set ships mp3).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import soundfile as sf

SR = 16000


def write_audio(path: Path, seed: int = 0, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    audio = (0.1 * np.sin(2 * np.pi * (220 + 10 * seed) * t)).astype(np.float32)
    fmt = "MP3" if path.suffix == ".mp3" else "WAV"
    sf.write(path, audio, SR, format=fmt)
    return path


def ds_cfg(name: str, type_: str = "custom", **kw: Any) -> Any:
    """A dataset config: the real pydantic model (validates the name like a user config would)."""
    from repeval.config.data import DatasetConfig

    return DatasetConfig(name=name, type=type_, **kw)


def refused_alike(ds: Any, task: Any, said: str) -> None:
    """``repeval validate`` (``manifest_problems``) says ``said`` of the catalog ``ds``, and its load stops with it."""
    import pytest

    from repeval.datasets import load_dataset
    from repeval.datasets.catalog import manifest_problems

    assert manifest_problems(ds, task) == [said]
    with pytest.raises(ValueError) as err:
        load_dataset(ds, task)
    assert str(err.value) == f"catalog {ds.manifest}: {said}"


def task_cfg(name: str, type_: str, label: str | None = None) -> Any:
    from repeval.config.data import TaskConfig

    return TaskConfig(name=name, type=type_, label=label)


# ----------------------------------------------------------------------------- MagnaTagATune

MTAT_TAGS = [f"tag{i:02d}" for i in range(55)]  # 55 tags: the 5 rarest fall outside the top 50


def make_magnatagatune(root: Path, with_splits: bool = True, n_songs: int = 12) -> dict[str, Any]:
    """annotations_final.csv (quoted, tab-separated), Won et al. split npys, mp3s under audio/<hex>/."""
    rng = np.random.default_rng(0)
    header = ["clip_id", *MTAT_TAGS, "mp3_path"]
    rows, paths, songs = [], {}, {}
    clip = 0
    for song in range(n_songs):
        folder = "0123456789abcdef"[song % 16]
        for seg in range(3):  # three clips per song
            path = f"{folder}/artist{song}-album-{song:02d}-title_{song}-{seg * 30}-{seg * 30 + 29}.mp3"
            if clip == 5:  # a clip with only rare (non-top-50) tags
                tags = {MTAT_TAGS[52]}
            else:
                tags = {MTAT_TAGS[int(i)] for i in rng.choice(50, size=3, replace=False)}
            rows.append([str(clip), *("1" if t in tags else "0" for t in MTAT_TAGS), path])
            paths[str(clip)] = path
            songs[str(clip)] = f"artist{song}-album-{song:02d}-title_{song}"
            write_audio(root / "audio" / path, clip)
            clip += 1
    # a known-corrupt clip id, listed with its audio
    corrupt = "35644"
    rows.append([corrupt, *("1" if t == MTAT_TAGS[0] else "0" for t in MTAT_TAGS), "f/corrupt-0-29.mp3"])
    write_audio(root / "audio" / "f/corrupt-0-29.mp3", 99)
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    with (meta / "annotations_final.csv").open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL)
        w.writerow(header)
        w.writerows(rows)
    split_of = {}
    if with_splits:
        ids = [r[0] for r in rows if r[0] != corrupt]
        # song-disjoint like the real split: songs 0-7 train, 8-9 valid, 10-11 test; song 11's last clip in no split
        by = {"train": [], "validation": [], "test": []}
        for cid in ids:
            song = int(cid) // 3
            split = "train" if song < 8 else "validation" if song < 10 else "test"
            if cid == str(n_songs * 3 - 1):
                continue
            by[split].append(cid)
            split_of[cid] = split
        for split, fname in (("train", "train.npy"), ("validation", "valid.npy"), ("test", "test.npy")):
            np.save(meta / fname, np.array([f"{i}\t{paths[c]}" for i, c in enumerate(by[split])]))
        np.save(meta / "tags.npy", np.array(MTAT_TAGS[:50]))
    return {"paths": paths, "songs": songs, "split_of": split_of, "rare_clip": "5", "corrupt": corrupt}


# ------------------------------------------------------------------------------- MTG-Jamendo

JAMENDO_PREFIX = {"genre": "genre", "instrument": "instrument", "moodtheme": "mood/theme"}


def make_mtg_jamendo(root: Path, n_tracks: int = 30) -> dict[str, Any]:
    """The official repository layout (data/*.tsv, data/splits/split-k/) plus audio/NN/ID[.low].mp3."""
    header = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
    tracks = []
    for i in range(n_tracks):
        num = 1000 + 37 * i
        tid = f"track_{num:07d}"
        artist = f"artist_{i // 2:06d}"  # two tracks per artist
        rel = f"{num % 100:02d}/{num}.mp3"
        tags = {
            "genre": [f"genre---g{i % 3}", f"genre---g{(i + 1) % 4}"],
            "instrument": [f"instrument---i{i % 2}"],
            "moodtheme": [f"mood/theme---m{i % 5}"],
        }
        tags["top50tags"] = tags["genre"][:1] + tags["instrument"] + tags["moodtheme"]
        tracks.append({"id": tid, "artist": artist, "rel": rel, "tags": tags})
        if i == 3:
            continue  # audio missing on disk
        low = i % 2 == 1  # audio-low downloads are named <id>.low.mp3
        write_audio(root / "audio" / (rel.replace(".mp3", ".low.mp3") if low else rel), i)
    data = root / "data"
    artists = sorted({t["artist"] for t in tracks})
    for subset in ("genre", "instrument", "moodtheme", "top50tags"):
        data.mkdir(parents=True, exist_ok=True)

        def write(path: Path, items: list[dict[str, Any]], subset: str = subset) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as fh:
                w = csv.writer(fh, delimiter="\t", lineterminator="\n")
                w.writerow(header)
                for t in items:
                    w.writerow([t["id"], t["artist"], "album_1", t["rel"], "30.0", *t["tags"][subset]])

        write(data / f"autotagging_{subset}.tsv", tracks)
        for k in range(5):
            rot = artists[k:] + artists[:k]  # artist-disjoint, different per split
            n = len(rot)
            parts = {
                "train": rot[: int(0.6 * n)],
                "validation": rot[int(0.6 * n) : int(0.8 * n)],
                "test": rot[int(0.8 * n) :],
            }
            for split, arts in parts.items():
                write(
                    data / "splits" / f"split-{k}" / f"autotagging_{subset}-{split}.tsv",
                    [t for t in tracks if t["artist"] in arts],
                )
    return {"tracks": tracks, "missing": tracks[3]["id"]}


# ---------------------------------------------------------------------------------- VocalSet

VOCALSET_SINGERS = [f"f{i}" for i in range(1, 10)] + [f"m{i}" for i in range(1, 12)]
VOCALSET_TECHNIQUES = {
    "arpeggios": ["belt", "breathy", "lip_trill", "vibrato", "fast_forte"],
    "long_tones": ["straight", "trill", "trillo", "vocal_fry"],
    "excerpts": ["spoken", "inhaled"],
}


def make_vocalset(root: Path, singer_lists: bool = True) -> dict[str, Any]:
    """FULL/<singer>/<context>/<technique>/<singer>_<context>_<technique>_<vowel>.wav, VocalSet quirks included."""
    full = root / "FULL"
    n = 0
    for singer in VOCALSET_SINGERS:
        for context, techniques in VOCALSET_TECHNIQUES.items():
            for tech in techniques:
                for vowel in ("a", "e"):
                    write_audio(full / singer / context / tech / f"{singer}_{context}_{tech}_{vowel}.wav", n, 0.05)
                    n += 1
    # quirks of the distribution
    write_audio(full / "f2" / "arpeggios" / "lip_trill" / "lip_trill_arps.wav", 1, 0.05)  # no singer prefix
    write_audio(full / "f2" / "arpeggios" / "vibrato" / "f2_arpeggios_vibrato_a(1).wav", 2, 0.05)  # duplicate copy
    write_audio(full / "m4" / "arpeggios" / "vibrado" / "m4_slow_vibrato_arps.wav", 3, 0.05)  # folder typo
    macosx = root / "__MACOSX" / "FULL" / "f1"
    macosx.mkdir(parents=True, exist_ok=True)
    (macosx / "._f1_x.wav").write_bytes(b"\0" * 16)
    if singer_lists:
        (root / "test_singers_technique.txt").write_text("female2\nfemale8\nmale3\nmale5\nmale10\n")
        train = [s for s in VOCALSET_SINGERS if s not in ("f2", "f8", "m3", "m5", "m10")]
        (root / "train_singers_technique.txt").write_text(
            "\n".join(("female" if s[0] == "f" else "male") + s[1:] for s in train) + "\n"
        )
    return {"n_files": n}


# --------------------------------------------------------------------------------- Beatport


def make_beatport_variants(shared: Path, root: Path) -> dict[str, str]:
    """A beatport_key copy (from the mirdata sample) whose tracks carry tricky key annotations."""
    src = shared / "mirdata_samples" / "mir_datasets" / "beatport_key"
    name = "100066 Lindstrom - Monsteer (Original Mix)"
    keys = {"1": "Db major", "2": "bb minor", "3": "C minor|G major", "4": "unknown", "5": "F#_ minor", "6": "other"}
    tracks = {}
    for tid, key in keys.items():
        for sub, ext in (("audio", ".mp3"), ("meta", ".json")):
            (root / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{name}{ext}", root / sub / f"{tid}{ext}")
        (root / "keys").mkdir(parents=True, exist_ok=True)
        (root / "keys" / f"{tid}.txt").write_text(key)
        tracks[tid] = {
            "audio": [f"audio/{tid}.mp3", "0"],
            "meta": [f"meta/{tid}.json", "0"],
            "key": [f"keys/{tid}.txt", "0"],
        }
    index = root / "index.json"
    index.write_text(json.dumps({"version": "1.0.0", "tracks": tracks}))
    return {"index": str(index), **keys}


def namespace(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**kw)


def catalog_config(manifest: str, **run: str) -> dict[str, Any]:
    """A configuration of one multiclass catalog experiment reading ``manifest``'s ``label`` column, its audio files
    not checked (``check_files: false``), with ``run`` as its run keys."""
    return {
        **({"run": dict(run)} if run else {}),
        "experiments": [
            {
                "task": {"name": "label", "type": "multiclass_classification"},
                "datasets": [{"name": "cat", "type": "catalog", "manifest": manifest, "check_files": False}],
                "deformations": [],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"type": "classifier", "hidden_units": []}],
            }
        ],
    }
