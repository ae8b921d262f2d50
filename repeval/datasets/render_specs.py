"""What :mod:`repeval.datasets.render` can render: the instruments (General-MIDI program and playable range), pitch
classes, dynamics, scales and chord progressions it draws from, and the specs of its three sets — :class:`RenderSpec`
(single notes), :class:`MixtureSpec` (instrument mixtures) and :class:`KeySpec` (chord progressions) — each with the
``check`` that validates it."""

from __future__ import annotations

from dataclasses import dataclass

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
MANIFEST_FORMATS = ("csv", "parquet")
AUDIO_FORMATS = ("wav", "flac")


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
