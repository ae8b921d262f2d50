"""``run.truncated_audio``: a WAV, MP3 or FLAC cut short is refused under ``error`` (the default), naming the setting,
and decoded as far as its whole frames go under ``decode``, warned about once and noted (``audio_note``); an Ogg file
without its end is noted under both (repeval.audio.partial). Real files, cut in tmp from ones written here."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import soundfile as sf

from repeval.audio import DecodeError, decode
from repeval.testing.badaudio import mp3_frame_starts, ogg_page_starts, tone, without_first_frame, write_ogg

RATE_HZ = 8000
FIX = "or set run.truncated_audio: decode to embed the audio it holds, its row noted in audio_note"


def _cut_files(tmp_path) -> dict[str, tuple[str, str, np.ndarray]]:
    """``kind → (cut file, the note's pattern, the whole file decoded)``: a 3-s WAV, MP3 (with a Xing/Info header),
    MP3 without one (CBR) and FLAC, each cut at about half its bytes."""
    y = tone(3.0, RATE_HZ) * 0.5
    out = {}
    for kind, kw in (
        ("WAV", {"subtype": "PCM_16"}),
        ("MP3", {"format": "MP3"}),
        ("MP3 frame", {"format": "MP3", "bitrate_mode": "CONSTANT", "compression_level": 0.5}),
        ("FLAC", {"subtype": "PCM_16"}),
    ):
        ext = kind.split()[0].lower()
        whole = tmp_path / f"whole_{kind.replace(' ', '_')}.{ext}"
        sf.write(whole, y, RATE_HZ, **kw)
        data = whole.read_bytes()
        if kind == "MP3 frame":  # no stream size to check against: its last frame tells
            data = without_first_frame(data)
            whole.write_bytes(data)
            starts = mp3_frame_starts(data)
            cut_at = starts[len(starts) // 2] + 7  # inside a frame
            note = r"cut MP3: ends inside an audio frame, holds (\d+\.\d) s"
        else:
            cut_at = len(data) // 2
            note = rf"cut {kind}: declares 3\.0 s, holds (\d+\.\d) s"
        p = tmp_path / f"cut_{kind.replace(' ', '_')}.{ext}"
        p.write_bytes(data[:cut_at])
        out[kind] = (str(p), note, decode(str(whole), RATE_HZ))
    return out


def test_a_cut_wav_mp3_or_flac_is_refused_under_error_naming_the_setting_and_decoded_under_decode(tmp_path, caplog):
    """Under ``error`` (also the default) each cut file is a DecodeError whose reason names the new setting as a fix
    and no note is made; under ``decode`` it decodes to the start of the whole file — sample for sample for the
    lossless WAV and FLAC, within a frame's worth for the MP3s — to about the half it holds, warns once for two decodes
    in a row, and each decode appends the note its row carries, saying what it declares and holds."""
    caplog.set_level(logging.WARNING, logger="repeval.audio.decode")
    for kind, (path, note, whole) in _cut_files(tmp_path).items():
        for policy in ({}, {"truncated": "error"}):
            notes: list[str] = []
            with pytest.raises(DecodeError, match=rf"^truncated {kind.split()[0]}: .*{re.escape(FIX)}\)$"):
                decode(path, RATE_HZ, notes=notes, **policy)  # type: ignore[arg-type]
            assert notes == [], kind
        caplog.clear()
        notes = []
        first = decode(path, RATE_HZ, truncated="decode", notes=notes)
        again = decode(path, RATE_HZ, truncated="decode", notes=notes)
        assert np.array_equal(first, again), kind
        assert 0.3 * len(whole) < len(first) < 0.6 * len(whole), (kind, len(first), len(whole))
        n = len(first) - (1152 if kind.startswith("MP3") else 0)  # an MP3's last decoded frame may differ
        if kind.startswith("MP3"):
            assert np.abs(first[:n] - whole[:n]).max() < 1e-4, kind
        else:
            assert np.array_equal(first, whole[: len(first)]), kind
        assert len(notes) == 2 and notes[0] == notes[1], (kind, notes)
        m = re.fullmatch(note, notes[0])
        assert m and float(m[1]) == round(len(first) / RATE_HZ, 1), (kind, notes[0])
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and said[0].startswith(f"truncated {kind.split()[0]}: {path} was cut short"), said
        assert "run.truncated_audio: decode embeds the whole frames it holds" in said[0]


def test_a_whole_file_has_no_note_and_damage_before_the_cut_is_still_refused(tmp_path):
    """Whole files decode as before under ``decode``, without a note. A FLAC cut short whose frames are damaged
    well before the cut (a read error seconds before where its whole frames end) is refused under ``decode`` too:
    only the failure at the cut ends a file."""
    y = tone(12.0, RATE_HZ) * 0.5
    sf.write(tmp_path / "whole.flac", y, RATE_HZ, subtype="PCM_16")
    notes: list[str] = []
    assert len(decode(str(tmp_path / "whole.flac"), RATE_HZ, truncated="decode", notes=notes)) == len(y)
    assert notes == []
    data = bytearray((tmp_path / "whole.flac").read_bytes())
    cut = data[: int(len(data) * 0.9)]
    at = int(len(data) * 0.2)  # ~2 s in: ~8 s before the cut
    cut[at : at + 2000] = bytes(2000)
    (tmp_path / "damaged.flac").write_bytes(bytes(cut))
    with pytest.raises(DecodeError, match=r"corrupt audio data in .*damaged\.flac"):
        decode(str(tmp_path / "damaged.flac"), RATE_HZ, truncated="decode")


@pytest.mark.parametrize("truncated", ["error", "decode"])
def test_an_ogg_without_its_end_is_noted_under_both_policies(tmp_path, truncated):
    """An Ogg file without its end page decodes under either setting (nothing tells it from a live stream's
    recording) and its row is noted with the seconds decoded; the whole file is not."""
    data = write_ogg(tmp_path / "whole.ogg", tone(3.0, 48000), 48000, "VORBIS").read_bytes()
    notes: list[str] = []
    decode(str(tmp_path / "whole.ogg"), 48000, truncated=truncated, notes=notes)
    assert notes == []
    starts = ogg_page_starts(data)
    (tmp_path / "cut.ogg").write_bytes(data[: starts[len(starts) // 2]])
    out = decode(str(tmp_path / "cut.ogg"), 48000, truncated=truncated, notes=notes)
    assert notes == [f"Ogg without its end page: {len(out) / 48000:.1f} s decoded"]
