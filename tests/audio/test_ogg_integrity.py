"""An Ogg file cut short (Vorbis, Opus; FLAC-in-Ogg, Speex and multiplexed streams built page by page) is found before
decoding — decoded as far as its whole pages go with a warning naming the fix, or refused when damaged —; whole files —
with tags or junk appended, chained — are not (repeval.audio.integrity, ``ogg_shortfall``). The zero-filled Ogg tests
live in test_damaged_files.py."""

from __future__ import annotations

import io
import logging
import re
import struct

import numpy as np
import pytest
import soundfile as sf

from repeval.audio import DecodeError, decode
from repeval.audio.decode import UNENDED_SLACK_S
from repeval.audio.integrity import OGG_TAIL_BYTES, ogg_shortfall
from repeval.testing.badaudio import ogg_page_starts, tone, write_ogg

RATE_HZ = 48000


def _held_frames(data: bytes, last: int, subtype: str) -> int:
    """The frames the pages up to the one starting at byte ``last`` hold: that page's granule position (Opus: less
    its pre-skip, from the ID header; Opus in Ogg runs at 48 kHz)."""
    granule = struct.unpack("<q", data[last + 6 : last + 14])[0]
    return granule - (struct.unpack("<H", data[28 + 10 : 28 + 12])[0] if subtype == "OPUS" else 0)


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_an_ogg_without_its_end_is_decoded_as_far_as_its_whole_pages_go_with_a_warning(tmp_path, subtype, caplog):
    """An Ogg file without its end — cut at a page boundary or inside a page, or a live stream's recording whose writer
    never flagged its last page as the stream's end (`ffmpeg … -f ogg` stopped) — was refused; librosa / audioread
    decode it, and nothing tells a cut file from such a recording. Now it decodes to the audio its whole pages hold —
    exactly the whole file's first samples, as many as the last whole page's granule position says — with a warning
    naming the file, what is missing, the seconds its pages hold and the fix, said once for two opens in a row (behind
    an ID3v1 tag, and through a file:// URI too); libsndfile's Opus reader fails at the end of a whole file whose last
    page lacks the flag: what it read is kept. Pages holding no audio (cut inside the header pages) are still refused,
    as is a whole file whose last page was overwritten (its CRC does not match: libsndfile drops it)."""
    data = write_ogg(tmp_path / "whole.ogg", tone(3.0, RATE_HZ, channels=2), RATE_HZ, subtype).read_bytes()
    whole = decode(str(tmp_path / "whole.ogg"), RATE_HZ)
    starts = ogg_page_starts(data)
    mid, after = starts[len(starts) // 2], starts[len(starts) // 2 + 1]
    cut = mid + (after - mid) // 2
    last = data[starts[-1] :]
    unflagged = last[:5] + bytes([last[5] & ~4]) + last[6:22] + bytes(4) + last[26:]
    unflagged = unflagged[:22] + struct.pack("<I", _crc(unflagged)) + unflagged[26:]
    inside = rf" ends inside an Ogg page \(its last page needs {after - mid:,} bytes, {cut - mid:,} are left\)"
    no_eos = r"'s last Ogg page is not its stream's end \(no end-of-stream flag\)"
    cases = {  # name: (content, what is missing, the page the audio ends with)
        "inside": (data[:cut], inside, starts[len(starts) // 2 - 1]),
        "inside_id3v1": (data[:cut] + b"TAG" + bytes(125), inside, starts[len(starts) // 2 - 1]),
        "header": (
            data[: mid + 10],
            r" ends inside an Ogg page \(its last page needs at least 27 bytes, 10 are left\)",
            starts[len(starts) // 2 - 1],
        ),
        "boundary": (data[:mid], no_eos, starts[len(starts) // 2 - 1]),
        "live": (data[: starts[-1]] + unflagged, no_eos, starts[-1]),
    }
    caplog.set_level(logging.WARNING, logger="repeval.audio.decode")
    for name, (content, missing, end_page) in cases.items():
        p = tmp_path / f"{name}.ogg"
        p.write_bytes(content)
        for path in (str(p), f"file://{p}") if name == "inside" else (str(p),):
            caplog.clear()
            out = decode(path, RATE_HZ)
            held = _held_frames(data, end_page, subtype)
            assert np.array_equal(out, whole[: len(out)]), name
            # libsndfile's Opus reader fails on a last page that trims the stream without the flag: kept what it read
            assert 0 <= held - len(out) <= (UNENDED_SLACK_S * RATE_HZ if name == "live" else 0), (name, len(out), held)
            assert (name == "live") == (held == len(whole)), name
            said = [r.getMessage() for r in caplog.records]
            assert len(said) == 1 and re.fullmatch(
                rf"Ogg file without its end: {re.escape(path)}{missing} — decoded the {held / RATE_HZ:.3f} s its whole "
                r"pages hold\. A file cut short: copy or download it again; a live stream's recording that stopped "
                r"there: remux it to write its end, e\.g\. `ffmpeg -i in\.ogg -c copy out\.ogg`",
                said[0],
            ), (name, said)
            caplog.clear()
            assert len(decode(path, RATE_HZ)) == len(out) and not caplog.records  # said once for two opens in a row
    for name, content in (("headers_only", data[: starts[1] + 10]), ("no_audio_page", data[: starts[2]])):
        p = tmp_path / f"{name}.ogg"
        p.write_bytes(content)
        with pytest.raises(
            DecodeError,
            match=rf"^truncated Ogg: {re.escape(str(p))}.*, and its whole pages hold no audio — the file was cut short "
            r"\(copy or download it again\)$",
        ):
            decode(str(p), RATE_HZ)
    p = tmp_path / "overwritten.ogg"
    p.write_bytes(data[:-100] + bytes(100))
    assert sf.info(str(p)).frames < 3 * RATE_HZ
    with pytest.raises(
        DecodeError,
        match=rf"^damaged Ogg: {re.escape(str(p))}'s last Ogg page does not match its CRC \(its end was not fully "
        r"written or was overwritten; libsndfile would drop the page\) — copy or download it again$",
    ):
        decode(str(p), RATE_HZ)


def _ape_tag() -> bytes:
    item = struct.pack("<II", 5, 0) + b"Title\x00Song1"
    return item + b"APETAGEX" + struct.pack("<IIII", 2000, len(item) + 32, 1, 0) + bytes(8)


def test_whole_ogg_files_are_not_refused(tmp_path):
    """Whole Ogg files libsndfile writes — Vorbis and Opus, mono and stereo, with less than a page of audio and
    with many pages — decode in full; so do they with an ID3v1 or APEv2 tag or a few bytes of junk appended (some
    taggers and tools do), and two of them one after the other (a chained stream: libsndfile reads the first)."""
    for subtype in ("VORBIS", "OPUS"):
        for channels in (1, 2):
            for seconds in (0.05, 8.0):
                data = write_ogg(tmp_path / "w.ogg", tone(seconds, RATE_HZ, channels=channels), RATE_HZ, subtype)
                data = data.read_bytes()
                assert (len(ogg_page_starts(data)) > 10) == (seconds > 1), (subtype, channels, seconds)
                for name, tail in (("", b""), ("id3v1", b"TAG" + bytes(125)), ("ape", _ape_tag()),
                                   ("junk", b"\r\n" * 5), ("chained", data)):  # fmt: skip
                    p = tmp_path / f"{subtype}_{channels}_{seconds}_{name}.ogg"
                    p.write_bytes(data + tail)
                    assert len(decode(str(p), RATE_HZ)) == round(seconds * RATE_HZ), p.name


def _crc(data: bytes) -> int:
    """Ogg's CRC as its spec defines it, bit by bit: polynomial 0x04C11DB7, not reflected, from zero."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _page(serial: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    """One Ogg page (a body shorter than 255 × 255 bytes, one packet), its CRC computed by :func:`_crc`."""
    lacing = bytes([255] * (len(body) // 255) + [len(body) % 255])
    head = b"OggS\0" + bytes([flags]) + struct.pack("<qIII", seq, serial, seq, 0) + bytes([len(lacing)]) + lacing
    return head[:22] + struct.pack("<I", _crc(head + body)) + head[26:] + body


def _shortfall(data: bytes):
    return ogg_shortfall(io.BytesIO(data), len(data))


def test_the_check_reads_pages_not_codecs_and_takes_no_ogg_s_in_a_page_for_a_page():
    """What the check reads is the page structure, whatever the codec: a FLAC-in-Ogg and a Speex stream (built page
    by page: libsndfile writes neither) pass whole and are refused cut; pages longer than the 16 kB tail read first
    (Ogg FLAC, Opus) are found in a second read; several streams interleaved pass when the file's last page ends
    its stream and are refused when it does not — a file cut just after another stream's end passes (only the last
    page is checked). An ``OggS`` inside a page's data is not taken for a page (its CRC does not match), nor the last
    bytes of a page that look like a tag for one."""
    flac = [b"\x7fFLAC\x01\x00\x00\x01fLaC" + bytes(38), bytes(range(256)) * 20, bytes(1000)]
    speex = [b"Speex   1.2" + bytes(69), bytes(range(200)) * 30, bytes(500)]
    for packets in (flac, speex):
        pages = [_page(7, i, p, 2 * (i == 0) | 4 * (i == len(packets) - 1)) for i, p in enumerate(packets)]
        assert _shortfall(b"".join(pages)) is None
        assert _shortfall(b"".join(pages)[:-10]) == ("Ogg page", len(pages[-1]), len(pages[-1]) - 10)
    big = bytes(range(251)) * 240  # 60,240 bytes: pages of 60,504, no whole one in the last 16 kB of the file
    assert _shortfall(_page(7, 0, b"head", 2) + _page(7, 1, big) + _page(7, 2, big, 4)) is None
    cut = (_page(7, 0, b"head", 2) + _page(7, 1, big) + _page(7, 2, big, 4))[:-30_000]
    assert len(big) > 2 * OGG_TAIL_BYTES and _shortfall(cut) == ("Ogg page", 60_504, 30_504)
    a, b = [_page(1, i, bytes([i]) * 300, 2 * (i == 0)) for i in range(3)], [_page(2, i, b"x" * 300) for i in range(3)]
    a_end, b_end = _page(1, 3, b"end", 4), _page(2, 3, b"end", 4)
    interleaved = b"".join(x + y for x, y in zip(a, b, strict=True))
    assert _shortfall(interleaved + a_end + b_end) is None
    assert _shortfall(interleaved + b_end + a_end) is None
    assert _shortfall(interleaved) == ("Ogg EOS", 0, 0)
    assert _shortfall(interleaved + b_end) is None  # cut where stream 2 ends, stream 1 not: not found
    # in the last data page, the header of a page of one 222-byte segment, ending 10 bytes into the EOS page: taken
    # for a page, the pages would end inside the EOS page's data, after a page without the flag
    decoy = b"OggS\0\0" + bytes(20) + b"\x01" + bytes([222])
    end = _page(7, 2, b"the end of the stream", 4)
    whole = _page(7, 0, b"head", 2) + _page(7, 1, big[:-5000] + decoy + bytes(212)) + end
    assert whole.index(decoy) + 28 + 222 == len(whole) - len(end) + 10
    assert _shortfall(whole) is None
    looks_tagged = _page(7, 0, b"head", 2) + _page(7, 1, b"TAG" + bytes(125), 4)  # its last 128 bytes: an ID3v1 tag?
    assert _shortfall(looks_tagged) is None and _shortfall(looks_tagged[:-1]) == ("Ogg page", 27 + 1 + 128, 27 + 128)
