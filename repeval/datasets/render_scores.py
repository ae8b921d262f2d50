"""What each clip of the mixtures and keys sets plays (a :class:`_Score`: programs, timed notes, length and manifest
labels), drawn from the clip's own seeded random stream (:func:`_clip_rng`), and :func:`triad`, the chords of the
key set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repeval.datasets.render_specs import (
    BASS_INSTRUMENTS,
    CHORD_INSTRUMENTS,
    DYNAMICS,
    INSTRUMENTS,
    PITCH_CLASSES,
    PROGRESSIONS,
    SCALES,
    KeySpec,
    MixtureSpec,
)


def _clip_rng(seed: int, i: int) -> np.random.Generator:
    """Clip ``i``'s own random stream: its content does not depend on which other clips are rendered, in which
    order or in which process."""
    return np.random.default_rng([seed, i])


@dataclass(frozen=True)
class _Score:
    """What to render for one clip (``programs`` per channel; notes as
    :meth:`~repeval.datasets.render_synth._Renderer.clip` takes them) and its manifest row without id, path and
    split."""

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


def triad(tonic: int, mode: str, degree: int) -> list[int]:
    """Semitones above the tonic of the triad on scale ``degree`` (0-based) of ``mode``; in minor the dominant
    (degree 4) is major, with the raised leading tone, as in harmonic minor."""
    scale = SCALES[mode]
    notes = [scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]
    if mode == "minor" and degree == 4:
        notes[1] += 1  # the leading tone
    return [tonic + n for n in notes]
