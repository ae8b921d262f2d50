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
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

#: GM program, playable MIDI range (inclusive), TinySOL-style instrument name
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "piano": (0, 36, 96),
    "acoustic_guitar": (24, 40, 84),
    "violin": (40, 55, 96),
    "cello": (42, 36, 76),
    "trumpet": (56, 54, 84),
    "french_horn": (60, 41, 77),
    "alto_sax": (65, 49, 81),
    "oboe": (68, 58, 91),
    "clarinet": (71, 50, 91),
    "flute": (73, 60, 96),
}

DYNAMICS = {"pp": 40, "mf": 80, "ff": 120}


@dataclass(frozen=True)
class RenderSpec:
    instruments: tuple[str, ...] = tuple(INSTRUMENTS)
    notes_per_instrument: int = 24
    dynamics: tuple[str, ...] = tuple(DYNAMICS)
    sample_rate_hz: int = 22050
    note_s: float = 1.0
    tail_s: float = 0.5
    seed: int = 0
    split_ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def check(self) -> None:
        unknown = set(self.instruments) - set(INSTRUMENTS)
        if unknown or not self.instruments:
            raise ValueError(f"unknown instruments {sorted(unknown)}; valid: {', '.join(INSTRUMENTS)}")
        if self.notes_per_instrument < 1:
            raise ValueError(f"notes_per_instrument must be at least 1, got {self.notes_per_instrument}")
        bad = set(self.dynamics) - set(DYNAMICS)
        if bad or not self.dynamics:
            raise ValueError(f"unknown dynamics {sorted(bad)}; valid: {', '.join(DYNAMICS)}")
        _check_seed_and_ratios(self.seed, self.split_ratios)


def _check_seed_and_ratios(seed: int, ratios: tuple[float, ...]) -> None:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"split_ratios must be three non-negative fractions summing to 1, got {ratios}")


def soundfont_path() -> Path:
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"the pretty-midi wheel's SoundFont is missing at {path}: reinstall pretty-midi")
    return path


def render_dataset(out: str | Path, spec: RenderSpec | None = None) -> Path:
    """Render the note set into ``out``; returns the manifest path. Deterministic for a seed."""
    import tinysoundfont

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
    for row, split in zip(rows, _allocate(shuffled, len(rows), spec.split_ratios, rng), strict=True):
        row["split"] = split
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _write_licence(out)
    log.info("rendered %d notes into %s", len(rows), out)
    return manifest


# ------------------------------------------------------------------------------ mixtures and keys
#: scale steps of the two modes (natural minor; its dominant chord takes the raised leading tone)
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
#: diatonic progressions (scale degrees from 0) that start on the tonic and end on a cadence
PROGRESSIONS = {
    "major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 1, 4, 0), (0, 3, 0, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (0, 1, 4, 0), (0, 5, 4, 0)),
}
#: instruments that play the chords of a progression, and the ones that may double its bass line
CHORD_INSTRUMENTS = ("piano", "acoustic_guitar")
BASS_INSTRUMENTS = ("cello",)
#: audio files per folder under ``OUT/audio/`` for the mixtures and keys sets
FILES_PER_DIR = 1000
MANIFEST_FORMATS = ("csv", "parquet")
AUDIO_FORMATS = ("wav", "flac")
#: the spec a mixtures or keys folder was rendered with (``OUT/render.json``)
RENDER_RECORD = "render.json"


@dataclass(frozen=True)
class _SetSpec:
    """What the mixtures and keys sets share: their size, audio, seed, splits and file formats."""

    clips: int = 1
    sample_rate_hz: int = 22050
    seed: int = 0
    split_ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    manifest_format: str = "csv"
    #: ``wav`` or ``flac`` (16-bit either way; FLAC is lossless and about half the size)
    audio_format: str = "wav"

    def check(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"unknown audio format '{self.audio_format}'; valid: {', '.join(AUDIO_FORMATS)}")
        if self.clips < 1:
            raise ValueError(f"clips must be at least 1, got {self.clips}")
        _check_seed_and_ratios(self.seed, self.split_ratios)
        if self.manifest_format not in MANIFEST_FORMATS:
            raise ValueError(f"unknown manifest format '{self.manifest_format}'; valid: {', '.join(MANIFEST_FORMATS)}")


@dataclass(frozen=True)
class MixtureSpec(_SetSpec):
    """Instrument mixtures for multilabel tagging: each clip has 1 to ``max_instruments`` distinct instruments
    (drawn with ``instrument_count_weights``), each playing a phrase of ``notes_per_phrase`` notes at random
    onsets, lengths, pitches in its range and dynamics."""

    clips: int = 300
    instruments: tuple[str, ...] = tuple(INSTRUMENTS)
    max_instruments: int = 3
    instrument_count_weights: tuple[float, ...] = (0.3, 0.4, 0.3)
    notes_per_phrase: tuple[int, int] = (2, 4)
    clip_s: float = 3.0


@dataclass(frozen=True)
class KeySpec(_SetSpec):
    """Chord progressions for key estimation: clip ``i`` is in key ``i mod 24`` after a seeded shuffle (every key
    equally often), four chords of ``chord_s`` each from :data:`PROGRESSIONS`, in a random inversion, on a
    chord instrument with (half of the time) the roots doubled an octave or two below."""

    clips: int = 240
    chord_s: float = 0.75
    tail_s: float = 0.25


SPLITS = ("train", "validation", "test")


def _splits(strata: np.ndarray, ratios: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """``train`` / ``validation`` / ``test`` per clip, stratified: within each stratum a seeded shuffle, then
    :func:`_allocate`."""
    shuffled = []
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        shuffled.append(idx[rng.permutation(len(idx))])
    return _allocate(shuffled, len(strata), ratios, rng)


def _allocate(
    shuffled: list[np.ndarray], n_clips: int, ratios: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """The split of each of ``n_clips`` clips, given each stratum's clip indices in a seeded order. Within each
    stratum the first ``round(ratio × n)`` (at least one where the stratum has three clips) go to test, the next to
    validation, the rest to train. Strata of one or two clips get no test or validation clip that way, so a set of
    small strata (48 clips over 24 keys) would have none: a test or validation split holding under half its share
    of the whole set (``round(ratio × n_clips)``, at least one), or an empty train split, is filled up to that
    share, a clip at a time from the stratum with the most clips in the split that has the most (ties: the
    stratum with the fewest in the split filled, then a seeded order). Sets whose strata all have three clips or
    more are never filled up (each such stratum gives test and validation at least two thirds of its share): they
    keep their splits. A set too small for every split with a positive ratio to get a clip is rendered with a
    warning naming the minimum."""
    # counts[s, k]: clips of stratum s in split k (SPLITS order); the clips are laid out test, validation, train
    counts = np.zeros((len(shuffled), 3), dtype=np.int64)
    for s, idx in enumerate(shuffled):
        n = len(idx)
        n_test, n_val = round(ratios[2] * n), round(ratios[1] * n)
        if n >= 3:
            n_test, n_val = max(1, n_test) if ratios[2] > 0 else 0, max(1, n_val) if ratios[1] > 0 else 0
        n_test = min(n_test, n)
        n_val = min(n_val, n - n_test)
        counts[s] = (n - n_test - n_val, n_val, n_test)
    wanted = [k for k in range(3) if ratios[k] > 0]
    if n_clips < len(wanted):
        log.warning(
            "%d clip(s) cannot fill the %s splits: render at least %d clips for a set that trains, selects and "
            "tests (a smaller one has empty splits)",
            n_clips,
            ", ".join(SPLITS[k] for k in wanted),
            len(wanted),
        )
    elif len(shuffled):
        order: np.ndarray | None = None  # the seeded tie-break between strata, drawn only when needed
        for k in (2, 1, 0):
            if ratios[k] <= 0:
                continue
            share = max(1, round(ratios[k] * n_clips))
            held = counts[:, k].sum()
            if held and (k == 0 or 2 * held >= share):  # (three-clip strata hold a third in train: left as is)
                continue
            if order is None:
                order = rng.permutation(len(shuffled))
            while counts[:, k].sum() < share:
                totals = counts.sum(axis=0)
                donors = [d for d in range(3) if d != k and totals[d] > (1 if ratios[d] > 0 else 0)]
                if not donors:
                    break
                donor = max(donors, key=lambda j: int(totals[j]))
                held_by = np.flatnonzero(counts[:, donor] > 0)
                pick = held_by[np.lexsort((order[held_by], counts[held_by, k], -counts[held_by, donor]))[0]]
                counts[pick, donor] -= 1
                counts[pick, k] += 1
    out = np.empty(n_clips, dtype=object)
    for s, idx in enumerate(shuffled):
        _, n_val, n_test = (int(c) for c in counts[s])
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "validation"
        out[idx[n_test + n_val :]] = "train"
    return out


class _Renderer:
    """One ``tinysoundfont.Synth`` with the SoundFont loaded; renders a clip from timed note events."""

    def __init__(self, sample_rate_hz: int) -> None:
        import tinysoundfont

        self.sr = sample_rate_hz
        self.synth = tinysoundfont.Synth(samplerate=sample_rate_hz)
        self.sfid = self.synth.sfload(str(soundfont_path()))

    def clip(self, programs: list[int], notes: list[tuple[float, float, int, int, int]], seconds: float) -> np.ndarray:
        """Mono float32 audio of ``seconds``: ``programs[c]`` on channel ``c``; ``notes`` are
        ``(onset s, duration s, channel, MIDI pitch, velocity)``. Peaks above 0.99 are scaled down to it."""
        synth = self.synth
        for ch, program in enumerate(programs):
            synth.program_select(ch, self.sfid, 0, program)
        events: list[tuple[int, int, int, int, int]] = []  # (sample, off before on, channel, pitch, velocity)
        for onset, dur, ch, pitch, vel in notes:
            start = round(onset * self.sr)
            events.append((start, 1, ch, pitch, vel))
            events.append((max(start + 1, round((onset + dur) * self.sr)), 0, ch, pitch, 0))
        events.sort()
        total = round(seconds * self.sr)
        chunks: list[np.ndarray] = []
        at = 0
        for sample, on, ch, pitch, vel in events:
            sample = min(sample, total)
            if sample > at:
                chunks.append(np.frombuffer(synth.generate(sample - at), dtype=np.float32))
                at = sample
            if on:
                synth.noteon(ch, pitch, vel)
            else:
                synth.noteoff(ch, pitch)
        if total > at:
            chunks.append(np.frombuffer(synth.generate(total - at), dtype=np.float32))
        for ch in range(len(programs)):
            synth.sounds_off(ch)
        synth.generate(2048)  # flush the release so the next clip starts silent
        audio = np.concatenate(chunks).reshape(-1, 2).mean(axis=1)
        peak = float(np.abs(audio).max()) if len(audio) else 0.0
        if peak > 0.99:
            audio = audio * (0.99 / peak)
        return audio.astype(np.float32)


class _ManifestWriter:
    """Rows written as they come: a CSV stream, or Parquet in row groups of ``group`` rows, into a temporary file
    that :meth:`close` renames to ``manifest.<fmt>`` only when the set is whole (``commit``)."""

    def __init__(self, out: Path, fields: list[str], fmt: str, group: int = 8192) -> None:
        self.fields, self.fmt, self.group = fields, fmt, group
        self.path = out / f"manifest.{fmt}"
        self.partial = out / f".manifest.{fmt}.partial"
        self.rows: list[dict[str, Any]] = []
        self._fh: Any = None
        self._csv: Any = None
        self._pq: Any = None
        if fmt == "csv":
            self._fh = self.partial.open("w", newline="")
            self._csv = csv.DictWriter(self._fh, fieldnames=fields)
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
            return
        self.rows.append(row)
        if len(self.rows) >= self.group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        table = pa.table({f: pa.array([r[f] for r in self.rows]) for f in self.fields})  # counts stay integers
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.partial, table.schema)
        self._pq.write_table(table)
        self.rows = []

    def close(self, commit: bool) -> None:
        if self._fh is not None:
            self._fh.close()
        else:
            if commit:
                self._flush()
            if self._pq is not None:
                self._pq.close()
        if commit:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)


def _write_licence(out: Path) -> None:
    (out / "LICENSE-AUDIO.txt").write_text(
        "Rendered with the TimGM6mb General-MIDI SoundFont shipped in the pretty-midi wheel "
        "(GPL-2.0, Tim Brechbill) using tinysoundfont.\n"
    )


def _clip_rng(seed: int, i: int) -> np.random.Generator:
    """Clip ``i``'s own random stream: its content does not depend on which other clips are rendered, in which
    order or in which process."""
    return np.random.default_rng([seed, i])


@dataclass(frozen=True)
class _Score:
    """What to render for one clip (``programs`` per channel; notes as :meth:`_Renderer.clip` takes them) and its
    manifest row without id, path and split."""

    track_id: str
    programs: list[int]
    notes: list[tuple[float, float, int, int, int]]
    seconds: float
    row: dict[str, Any]


def _mixture_score(spec: MixtureSpec, i: int, k: int) -> _Score:
    rng = _clip_rng(spec.seed, i)
    names = list(spec.instruments)
    lo_n, hi_n = spec.notes_per_phrase
    chosen = sorted(rng.choice(len(names), size=k, replace=False))
    insts = [names[c] for c in chosen]
    notes = []
    for ch, inst in enumerate(insts):
        _, lo, hi = INSTRUMENTS[inst]
        center = int(rng.integers(lo + 4, hi - 4)) if hi - lo > 8 else (lo + hi) // 2
        vel = DYNAMICS[str(rng.choice(list(DYNAMICS)))]
        for j in range(int(rng.integers(lo_n, hi_n + 1))):
            # every instrument's first note starts in the first half-second: a tag is never a silent label
            onset = float(rng.uniform(0.0, 0.5 if j == 0 else max(0.0, spec.clip_s - 0.6)))
            dur = float(rng.uniform(0.4, 1.2))
            pitch = int(np.clip(center + rng.integers(-5, 6), lo, hi))
            notes.append((onset, dur, ch, pitch, vel))
    programs = [INSTRUMENTS[inst][0] for inst in insts]
    return _Score(f"mix-{i:07d}", programs, notes, spec.clip_s, {"instruments": "|".join(insts), "n_instruments": k})


_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii")


def _roman(mode: str, degree: int) -> str:
    root, third, fifth = triad(0, mode, degree)
    if third - root == 4:
        return _NUMERALS[degree].upper()
    return _NUMERALS[degree] + ("°" if fifth - root == 6 else "")


def _key_score(spec: KeySpec, i: int, key: int) -> _Score:
    rng = _clip_rng(spec.seed, i)
    tonic_pc, mode = key % 12, "major" if key < 12 else "minor"
    prog = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    inst = CHORD_INSTRUMENTS[int(rng.integers(len(CHORD_INSTRUMENTS)))]
    bass = bool(rng.integers(2))
    base = 48 + tonic_pc if tonic_pc < 7 else 36 + tonic_pc  # chords between G2 and B4
    inversion = int(rng.integers(3))
    vel = DYNAMICS[str(rng.choice(list(DYNAMICS)))]
    programs = [INSTRUMENTS[inst][0]] + ([INSTRUMENTS[BASS_INSTRUMENTS[0]][0]] if bass else [])
    notes = []
    for c, degree in enumerate(prog):
        chord = triad(base, mode, degree)
        onset = c * spec.chord_s
        for pitch in sorted(chord[inversion:] + [q + 12 for q in chord[:inversion]]):
            notes.append((onset, spec.chord_s * 0.95, 0, pitch, vel))
        if bass:
            notes.append((onset, spec.chord_s * 0.95, 1, chord[0] - 12 if chord[0] >= 48 else chord[0], vel))
    row = {
        "key": f"{PITCH_CLASSES[tonic_pc]} {mode}",
        "tonic": PITCH_CLASSES[tonic_pc],
        "mode": mode,
        "progression": "-".join(_roman(mode, d) for d in prog),
        "instrument": inst,
    }
    return _Score(f"key-{i:07d}", programs, notes, len(prog) * spec.chord_s + spec.tail_s, row)


def _render_folder(
    out: Path,
    spec: MixtureSpec | KeySpec,
    start: int,
    folder: str,
    labels: np.ndarray,
    splits: np.ndarray,
    reuse: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Render clips ``start …`` (one folder's worth, ``labels``/``splits`` their planned label and split) into
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
) -> Path:
    """Render every planned clip, a folder of :data:`FILES_PER_DIR` at a time — in ``workers`` processes when more
    than one — and stream the manifest's rows in clip order, with a progress bar when ``progress`` (default: on a
    terminal). The files do not depend on ``workers``. ``OUT/render.json`` records the spec: rendering the same
    spec into the same folder again (after an interruption) keeps the clips already written; another spec
    renders every clip anew. The manifest appears (renamed from a temporary file) only when every clip is
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
    for fmt in MANIFEST_FORMATS:  # until this render is whole, no manifest describes the folder's files
        (out / f"manifest.{fmt}").unlink(missing_ok=True)
    marker.write_text(record)
    render = partial(_render_folder, out, spec, reuse=reuse)
    step = FILES_PER_DIR
    chunks = [(s, f"{s // step:04d}", labels[s : s + step], splits[s : s + step]) for s in range(0, len(labels), step)]
    writer = _ManifestWriter(out, ["track_id", "audio_path", *fields, "split"], spec.manifest_format)
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
    log.info("rendered %d clips into %s%s", n - kept, out, f" ({kept} already there, kept)" if kept else "")
    return writer.path


def render_mixtures(
    out: str | Path, spec: MixtureSpec | None = None, *, workers: int = 1, progress: bool | None = None
) -> Path:
    """Render instrument mixtures (multilabel tagging) into ``out`` with ``workers`` processes; returns the manifest
    path. The manifest's ``instruments`` column holds the clip's instruments in :data:`INSTRUMENTS` order,
    ``|``-separated (give the catalog dataset ``label_separator: "|"``), ``n_instruments`` their count. Splits are
    stratified by the number of instruments. Deterministic for a seed, whatever ``workers``."""
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
    return _render_set(out, spec, counts, splits, ["instruments", "n_instruments"], workers, progress)


def triad(tonic: int, mode: str, degree: int) -> list[int]:
    """Semitones above the tonic of the triad on scale ``degree`` (0-based) of ``mode``; in minor the dominant
    (degree 4) is major, with the raised leading tone, as in harmonic minor."""
    scale = SCALES[mode]
    notes = [scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]
    if mode == "minor" and degree == 4:
        notes[1] += 1  # the leading tone
    return [tonic + n for n in notes]


def render_keys(
    out: str | Path, spec: KeySpec | None = None, *, workers: int = 1, progress: bool | None = None
) -> Path:
    """Render chord progressions (key estimation) into ``out`` with ``workers`` processes; returns the manifest
    path. The manifest's ``key`` column is in mir_eval's spelling with sharps (``C# minor``), ``progression`` the
    scale degrees (``I-IV-V-I``, ``i-iv-V-i``), ``instrument`` the chord instrument. Splits are stratified by key.
    Deterministic for a seed, whatever ``workers``."""
    spec = spec or KeySpec()
    spec.check()
    rng = np.random.default_rng(spec.seed)
    keys = rng.permutation(np.arange(spec.clips) % 24)  # every key equally often (±1)
    splits = _splits(keys, spec.split_ratios, rng)
    fields = ["key", "tonic", "mode", "progression", "instrument"]
    return _render_set(out, spec, keys, splits, fields, workers, progress)
