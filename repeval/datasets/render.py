"""Render labelled audio from a General-MIDI SoundFont: three data sets, any size, no download.

The SoundFont is the one shipped inside the ``pretty-midi`` wheel (TimGM6mb, real sampled
instruments) and ``tinysoundfont`` renders it. Each renderer writes WAV files under ``OUT/audio/``
and a ``catalog`` manifest ``OUT/manifest.csv`` (or ``.parquet``) with a seeded ``split`` column:

- :func:`render_dataset` — single notes, TinySOL-like (``instrument``, ``pitch_class``, ``pitch``,
  ``dynamics``): multiclass instrument or pitch-class recognition; the quickstart's data;
- :func:`render_mixtures` — 1–3 instruments playing phrases together (``instruments``, a
  ``|``-separated tag list): multilabel instrument tagging;
- :func:`render_keys` — diatonic chord progressions in one of the 24 keys (``key`` in mir_eval's
  spelling, ``C# minor``): key estimation, scored with mir_eval's weighted score.

Mixtures and progressions are planned first (labels and splits as arrays, from the seed), then
rendered and written one clip at a time — the manifest is streamed too, so a set of a million clips
takes the memory of a few thousand rows; their audio goes into folders of 1,000 files.

The parts live beside this module: the instruments, keys and set specs in :mod:`~repeval.datasets.render_specs`,
what each clip plays in :mod:`~repeval.datasets.render_scores`, the SoundFont synthesizer in
:mod:`~repeval.datasets.render_synth`, the split plan in :mod:`~repeval.datasets.render_splits` and the manifest
writer in :mod:`~repeval.datasets.render_output`.
"""

from __future__ import annotations

import csv
import io
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from repeval.datasets.render_output import _ManifestWriter, _write_licence
from repeval.datasets.render_scores import _key_score, _mixture_score
from repeval.datasets.render_specs import (
    DYNAMICS,
    INSTRUMENTS,
    PITCH_CLASSES,
    KeySpec,
    MixtureSpec,
    RenderSpec,
)
from repeval.datasets.render_splits import _allocate, _splits
from repeval.datasets.render_synth import _Renderer, soundfont_path

log = logging.getLogger(__name__)


def render_dataset(out: str | Path, spec: RenderSpec | None = None, progress: bool | None = None) -> Path:
    """Render the note set into ``out``; returns the manifest path. Deterministic for a seed. ``progress``: a bar on a
    terminal, a line a minute without one (:class:`~repeval.pipeline.summary.Progress`; ``False``: neither)."""
    import tinysoundfont

    from repeval.pipeline.summary import Progress

    spec = spec or RenderSpec()
    spec.check()
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    synth = tinysoundfont.Synth(samplerate=spec.sample_rate_hz)
    sfid = synth.sfload(str(soundfont_path()))
    n_on = int(spec.note_s * spec.sample_rate_hz)
    n_tail = int(spec.tail_s * spec.sample_rate_hz)

    rows: list[dict[str, Any]] = []
    shuffled: list[np.ndarray] = []  # each instrument's notes (their rows) in a seeded order
    bar = Progress(len(spec.instruments) * spec.notes_per_instrument, f"render {out.name}", progress, unit="clip")
    try:  # the bar closed on an error too: its line ended before the error's, not left open
        for inst in spec.instruments:
            program, lo, hi = INSTRUMENTS[inst]
            pitches = rng.choice(
                np.arange(lo, hi + 1), size=spec.notes_per_instrument, replace=hi - lo + 1 < spec.notes_per_instrument
            )
            dyns = rng.choice(list(spec.dynamics), size=spec.notes_per_instrument)
            synth.program_select(0, sfid, 0, program)
            shuffled.append(len(rows) + rng.permutation(spec.notes_per_instrument))  # its splits, planned below
            for i, (pitch, dyn) in enumerate(zip(pitches, dyns, strict=True)):
                pitch = int(pitch)
                synth.noteon(0, pitch, DYNAMICS[str(dyn)])
                on = np.frombuffer(synth.generate(n_on), dtype=np.float32)
                synth.noteoff(0, pitch)
                tail = np.frombuffer(synth.generate(n_tail), dtype=np.float32)
                synth.sounds_off(0)
                synth.generate(1024)  # flush the release so the next note starts silent
                stereo = np.concatenate([on, tail]).reshape(-1, 2)
                audio = stereo.mean(axis=1)
                peak = float(np.abs(audio).max())
                if peak > 0.99:
                    audio = audio * (0.99 / peak)
                track_id = f"{inst}-{pitch:03d}-{dyn}-{i:03d}"
                rel = f"audio/{track_id}.wav"
                sf.write(out / rel, audio, spec.sample_rate_hz, subtype="PCM_16")
                bar.update(1)
                rows.append(
                    {
                        "track_id": track_id,
                        "audio_path": rel,
                        "instrument": inst,
                        "pitch_class": PITCH_CLASSES[pitch % 12],
                        "pitch": pitch,
                        "dynamics": str(dyn),
                        "split": "",
                    }
                )
    finally:
        bar.close()
    for row, split in zip(rows, _allocate(shuffled, len(rows), spec.split_ratios, rng), strict=True):
        row["split"] = split
    manifest = out / "manifest.csv"
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    # the same set rendered again leaves its manifest as it was: a new one's time read as an edit, and a run warned
    # that the store's embeddings of it came from a manifest "edited" since
    if not (manifest.is_file() and _read(manifest) == text.getvalue()):
        with manifest.open("w", newline="") as fh:
            fh.write(text.getvalue())
    _write_licence(out)
    log.debug("rendered %d notes into %s", len(rows), out)  # `repeval data render` prints the manifest itself
    return manifest


def _read(path: Path) -> str:
    """``path``'s text as written, its line ends kept (a csv's ``\r\n``)."""
    with path.open(newline="") as fh:
        return fh.read()


# ------------------------------------------------------------------------------ mixtures and keys
#: audio files per folder under ``OUT/audio/`` for the mixtures and keys sets
FILES_PER_DIR = 1000
#: clips a worker renders at a time (never across two folders), the progress's step
RENDER_STEP = 50
#: the spec a mixtures or keys folder was rendered with (``OUT/render.json``)
RENDER_RECORD = "render.json"


def _render_folder(
    out: Path,
    spec: MixtureSpec | KeySpec,
    start: int,
    folder: str,
    labels: np.ndarray,
    splits: np.ndarray,
    reuse: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Render clips ``start …`` (a part of one folder, ``labels``/``splits`` their planned label and split) into
    ``out/audio/<folder>/``; with ``reuse``, a clip whose file exists (an earlier render of the same spec, whole:
    files are written under a temporary name and renamed) is kept. Returns the manifest rows and how many clips
    were kept. Runs in the renderer's processes."""
    renderer: _Renderer | None = None
    path = out / "audio" / folder
    path.mkdir(parents=True, exist_ok=True)
    rows, kept = [], 0
    for j, (label, split) in enumerate(zip(labels.tolist(), splits.tolist(), strict=True)):
        i = start + j
        score = (
            _mixture_score(spec, i, int(label)) if isinstance(spec, MixtureSpec) else _key_score(spec, i, int(label))
        )
        wav = path / f"{score.track_id}.{spec.audio_format}"
        if reuse and wav.is_file():
            kept += 1
        else:
            renderer = renderer or _Renderer(spec.sample_rate_hz)
            audio = renderer.clip(score.programs, score.notes, score.seconds)
            tmp = path / f".{score.track_id}.partial.{spec.audio_format}"
            # 16-bit samples made here: libsndfile's own float conversion rounds differently for FLAC than for WAV
            pcm = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)
            sf.write(tmp, pcm, spec.sample_rate_hz, subtype="PCM_16")
            tmp.replace(wav)
        rows.append(
            {"track_id": score.track_id, "audio_path": f"audio/{folder}/{wav.name}", **score.row, "split": split}
        )
    return rows, kept


def _render_set(
    out: str | Path,
    spec: MixtureSpec | KeySpec,
    labels: np.ndarray,
    splits: np.ndarray,
    fields: list[str],
    workers: int,
    progress: bool | None = None,
    tally: dict[str, int] | None = None,
) -> Path:
    """Render every planned clip, :data:`RENDER_STEP` of a folder of :data:`FILES_PER_DIR` at a time — in
    ``workers`` processes when more than one — and stream the manifest's rows in clip order, with a progress bar when
    ``progress`` (default: on a terminal; without one, a line a minute). The files do not depend on ``workers``. ``OUT/render.json`` records the spec: rendering the same
    spec into the same folder again (after an interruption) keeps the clips already written; another spec
    renders every clip anew (``tally``, when given, gets how many clips were ``rendered`` and how many ``kept``).
    The manifest appears (renamed from a temporary file) only when every clip is
    written: an interrupted render leaves none, not even an earlier render's."""
    import concurrent.futures as cf
    import dataclasses
    import json
    import multiprocessing as mp

    from repeval.pipeline.summary import Progress

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    audio_spec = {k: v for k, v in dataclasses.asdict(spec).items() if k != "manifest_format"}
    record = json.dumps({"kind": type(spec).__name__, "spec": audio_spec, "format": 1}, sort_keys=True)
    marker = out / RENDER_RECORD
    reuse = marker.is_file() and marker.read_text() == record
    # until this render is whole, no manifest describes the folder's files (an earlier one is set aside)
    writer = _ManifestWriter(out, ["track_id", "audio_path", *fields, "split"], spec.manifest_format)
    marker.write_text(record)
    render = partial(_render_folder, out, spec, reuse=reuse)
    # a part of a folder at a time: the progress moves every few seconds, not every 1,000 clips
    bounds = [
        (s, min(s + RENDER_STEP, f0 + FILES_PER_DIR, len(labels)))
        for f0 in range(0, len(labels), FILES_PER_DIR)
        for s in range(f0, min(f0 + FILES_PER_DIR, len(labels)), RENDER_STEP)
    ]
    chunks = [(s, f"{s // FILES_PER_DIR:04d}", labels[s:e], splits[s:e]) for s, e in bounds]
    bar = Progress(len(labels), f"render {out.name}", progress, unit="clip")
    n = kept = 0

    def take(done: tuple[list[dict[str, Any]], int]) -> None:
        nonlocal n, kept
        rows, k = done
        for row in rows:
            writer.write(row)
        n, kept = n + len(rows), kept + k
        bar.update(len(rows))

    whole = False
    try:
        if workers == 1 or len(chunks) == 1:
            for chunk in chunks:
                take(render(*chunk))
        else:
            with cf.ProcessPoolExecutor(min(workers, len(chunks)), mp_context=mp.get_context("spawn")) as pool:
                for done in pool.map(render, *zip(*chunks, strict=True)):  # in order, a few folders ahead
                    take(done)
        whole = True
    finally:
        writer.close(commit=whole)
        bar.close()
    _write_licence(out)
    log.debug("rendered %d clips into %s%s", n - kept, out, f" ({kept} already there, kept)" if kept else "")
    if tally is not None:
        tally.update(rendered=n - kept, kept=kept)
    return writer.path


def render_mixtures(
    out: str | Path,
    spec: MixtureSpec | None = None,
    *,
    workers: int = 1,
    progress: bool | None = None,
    tally: dict[str, int] | None = None,
) -> Path:
    """Render instrument mixtures (multilabel tagging) into ``out`` with ``workers`` processes; returns the manifest
    path. The manifest's ``instruments`` column holds the clip's instruments in :data:`INSTRUMENTS` order,
    ``|``-separated (give the catalog dataset ``label_separator: "|"``), ``n_instruments`` their count. Splits are
    stratified by the number of instruments. Deterministic for a seed, whatever ``workers``. ``tally``: as
    :func:`_render_set` fills it."""
    spec = spec or MixtureSpec()
    spec.check()
    unknown = set(spec.instruments) - set(INSTRUMENTS)
    if unknown:
        raise ValueError(f"unknown instruments {sorted(unknown)}; valid: {', '.join(INSTRUMENTS)}")
    if not 1 <= spec.max_instruments <= len(spec.instruments):
        raise ValueError(f"max_instruments must be between 1 and the {len(spec.instruments)} instruments given")
    if len(spec.instrument_count_weights) != spec.max_instruments or min(spec.instrument_count_weights) < 0:
        raise ValueError(
            f"instrument_count_weights needs {spec.max_instruments} non-negative weights (for 1 to max_instruments"
            f" instruments), got {spec.instrument_count_weights}"
        )
    lo_n, hi_n = spec.notes_per_phrase
    if not 1 <= lo_n <= hi_n:
        raise ValueError(f"notes_per_phrase must be (min, max) with 1 <= min <= max, got {spec.notes_per_phrase}")
    rng = np.random.default_rng(spec.seed)
    weights = np.asarray(spec.instrument_count_weights, dtype=float)
    counts = rng.choice(np.arange(1, spec.max_instruments + 1), size=spec.clips, p=weights / weights.sum())
    splits = _splits(counts, spec.split_ratios, rng)
    return _render_set(out, spec, counts, splits, ["instruments", "n_instruments"], workers, progress, tally)


def render_keys(
    out: str | Path,
    spec: KeySpec | None = None,
    *,
    workers: int = 1,
    progress: bool | None = None,
    tally: dict[str, int] | None = None,
) -> Path:
    """Render chord progressions (key estimation) into ``out`` with ``workers`` processes; returns the manifest
    path. The manifest's ``key`` column is in mir_eval's spelling with sharps (``C# minor``), ``progression`` the
    scale degrees (``I-IV-V-I``, ``i-iv-V-i``), ``instrument`` the chord instrument. Splits are stratified by key.
    Deterministic for a seed, whatever ``workers``. ``tally``: as :func:`_render_set` fills it."""
    spec = spec or KeySpec()
    spec.check()
    rng = np.random.default_rng(spec.seed)
    keys = rng.permutation(np.arange(spec.clips) % 24)  # every key equally often (±1)
    splits = _splits(keys, spec.split_ratios, rng)
    fields = ["key", "tonic", "mode", "progression", "instrument"]
    return _render_set(out, spec, keys, splits, fields, workers, progress, tally)
