"""How severity goes with a robustness curve's level (:func:`severity`): for each numeric parameter of audiomentations'
waveform transforms (0.43) whose rise or fall makes the deformation clearly harsher, its unit and its direction, so a
curve's axis runs from mild to severe; a parameter with no such direction (a filter's centre frequency, a noise's
colour, a target loudness, a room's size) is said so on the axis."""

from __future__ import annotations

#: a parameter's name without ``min_``/``max_`` → its unit, how severity goes with it (``falls``: the lower the
#: harsher; ``rises``: the higher the harsher; ``away``: the farther from its none value the harsher) and its none
#: value (no deformation; None: not a finite value of it) — for any transform
KNOWN_PARAMS: dict[str, tuple[str, str, float | None]] = {
    "snr_db": ("dB", "falls", None),  # AddGaussianSNR, AddColorNoise, AddBackgroundNoise, AddShortNoises
    "bitrate": ("kbps", "falls", None),  # Mp3Compression
    "gain_db": ("dB", "away", 0.0),  # Gain, GainTransition, the shelf and peaking filters, SevenBandParametricEQ
    "semitones": ("semitones", "away", 0.0),  # PitchShift
    "rate": ("×", "away", 1.0),  # TimeStretch
    "amplitude": ("", "rises", 0.0),  # AddGaussianNoise
    "absolute_rms_db": ("dB", "rises", None),  # AddBackgroundNoise's noise at an absolute level
    "absolute_noise_rms_db": ("dB", "rises", None),  # AddShortNoises'
    "time_between_sounds": ("s", "falls", None),  # AddShortNoises: the more often, the harsher
    "bit_depth": ("bits", "falls", None),  # BitCrush
    "percentile_threshold": ("%", "rises", 0.0),  # ClippingDistortion: the share of samples clipped
    "distortion": ("", "rises", None),  # TanhDistortion (at 0 it still shapes the wave: no level of none)
    "threshold_db": ("dB", "falls", None),  # Limiter: the lower, the more limited
    "band_part": ("", "rises", 0.0),  # TimeMask: the share of the track silenced
    "fraction": ("", "rises", 0.0),  # Padding: the share of the track replaced
    "repeats": ("", "rises", 0.0),  # RepeatPart
    "shift": ("", "away", 0.0),  # Shift: a fraction of the track, either way
    "distance": ("m", "rises", None),  # AirAbsorption
    "target_rt60": ("s", "rises", None),  # RoomSimulator: the longer the reverberation, the harsher
    "absorption_value": ("", "falls", None),  # RoomSimulator: the less absorbed, the more reverberant
    "mic_distance": ("m", "rises", None),  # RoomSimulator: farther from the source, more room than source
    "quality": ("", "rises", None),  # Mp3Compression's LAME quality: 0 best, 9 worst
    "sample_rate": ("Hz", "falls", None),  # Aliasing, Resample: the lower, the more is lost
    "rolloff": ("dB/octave", "rises", None),  # the pass and stop filters (no shelf has one): steeper, more removed
    "a_max": ("", "falls", None),  # Clip: the lower the ceiling, the more clipped
    "a_min": ("", "rises", None),  # Clip: the higher the floor, the more clipped
    "top_db": ("dB", "falls", None),  # Trim: the lower, the more is taken for silence and cut
    "part_duration": ("s", "rises", None),  # RepeatPart: the longer the part repeated, the more of the track
    "order": ("", "rises", None),  # RoomSimulator's max_order: the more reflections, the more reverberant
    "burst_probability": ("", "rises", None),  # AddShortNoises: the more bursts, the more noise
}

#: a (transform, parameter) whose direction differs from another transform's of the same parameter name
BY_TRANSFORM: dict[tuple[str, str], tuple[str, str, float | None]] = {
    ("LowPassFilter", "cutoff_freq"): ("Hz", "falls", None),  # the lower the cutoff, the more removed
    ("HighPassFilter", "cutoff_freq"): ("Hz", "rises", None),
    ("BandPassFilter", "bandwidth_fraction"): ("", "falls", None),  # the narrower the band kept, the more removed
    ("BandStopFilter", "bandwidth_fraction"): ("", "rises", None),  # the wider the band removed, the more removed
}

#: the parameters drawn on a log axis: a bitrate's halvings (320, 160, 64, 32, 16, 8 kbps) spaced alike, not its low
#: end, where the metric changes, crowded into a corner
LOG_PARAMS = frozenset({"bitrate"})


def severity(transform: str, base: str, label: str) -> tuple[str, str, float | None]:
    """``(unit, way, none value)`` of parameter ``base`` (without ``min_``/``max_``; ``label``: as the series names it)
    of ``transform`` (:data:`BY_TRANSFORM`, else :data:`KNOWN_PARAMS`); a way of ``""`` where severity has no one
    direction, its unit read off its name."""
    return BY_TRANSFORM.get((transform, base)) or KNOWN_PARAMS.get(base) or (unit_of(label), "", None)


def unit_of(name: str) -> str:
    """A unit read off a parameter's name (``_db``, ``_hz``, ``_ms``), or none."""
    for suffix, unit in (("_db", "dB"), ("_hz", "Hz"), ("_freq", "Hz"), ("_ms", "ms"), ("_seconds", "s")):
        if name.lower().endswith(suffix):
            return unit
    return ""
