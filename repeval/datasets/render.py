"""Render a TinySOL-like set of single notes from a General-MIDI SoundFont.

The SoundFont is the one shipped inside the ``pretty-midi`` wheel (TimGM6mb, real sampled
instruments) and ``tinysoundfont`` renders it, so the quickstart needs no download. Output:
``OUT/audio/<track_id>.wav`` and ``OUT/manifest.csv`` (a ``catalog`` manifest with
``instrument``, ``pitch_class``, ``pitch``, ``dynamics`` and a seeded stratified ``split``).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

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
    unknown = set(spec.instruments) - set(INSTRUMENTS)
    if unknown:
        raise ValueError(f"unknown instruments {sorted(unknown)}; valid: {', '.join(INSTRUMENTS)}")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    synth = tinysoundfont.Synth(samplerate=spec.sample_rate_hz)
    sfid = synth.sfload(str(soundfont_path()))
    n_on = int(spec.note_s * spec.sample_rate_hz)
    n_tail = int(spec.tail_s * spec.sample_rate_hz)

    rows = []
    for inst in spec.instruments:
        program, lo, hi = INSTRUMENTS[inst]
        pitches = rng.choice(
            np.arange(lo, hi + 1), size=spec.notes_per_instrument, replace=hi - lo + 1 < spec.notes_per_instrument
        )
        dyns = rng.choice(list(spec.dynamics), size=spec.notes_per_instrument)
        synth.program_select(0, sfid, 0, program)
        order = rng.permutation(spec.notes_per_instrument)
        n_val = max(1, round(spec.split_ratios[1] * spec.notes_per_instrument))
        n_test = max(1, round(spec.split_ratios[2] * spec.notes_per_instrument))
        split_of = {}
        for rank, i in enumerate(order):
            split_of[int(i)] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
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
                    "split": split_of[i],
                }
            )
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "LICENSE-AUDIO.txt").write_text(
        "Rendered with the TimGM6mb General-MIDI SoundFont shipped in the pretty-midi wheel "
        "(GPL-2.0, Tim Brechbill) using tinysoundfont.\n"
    )
    log.info("rendered %d notes into %s", len(rows), out)
    return manifest
