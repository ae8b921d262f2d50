"""The synthesizer: the General-MIDI SoundFont shipped in the pretty-midi wheel (:func:`soundfont_path`) and
:class:`_Renderer`, which plays a clip's timed notes on it with ``tinysoundfont`` (imported when one is built)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def soundfont_path() -> Path:
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"the pretty-midi wheel's SoundFont is missing at {path}: reinstall pretty-midi")
    return path


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
