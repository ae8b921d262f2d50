"""Damaged files are refused naming the fix: a WAV or MP3 cut short, a VBR MP3 without a Xing header, an MP3, Ogg or
FLAC whose tail is zeros (a download or copy that stopped); whole files ending in tags, padding or silence are not
(repeval.audio.integrity). An Ogg cut short is test_ogg_integrity.py's."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import soundfile as sf

from repeval.audio import DecodeError, decode, iter_chunks


@pytest.mark.parametrize("name", ["empty.wav", "empty.flac", "empty.mp3"])
def test_a_file_of_zero_bytes_is_refused_as_empty_naming_the_fix(tmp_path, name):
    """A 0-byte audio file (a copy or export that failed) was refused with libsndfile's "Format not recognised", as
    if its format were the problem; it is named empty, locally and through a filesystem URI."""
    p = tmp_path / name
    p.write_bytes(b"")
    for path in (str(p), p.as_uri()):
        with pytest.raises(DecodeError, match=r"^empty file \(0 bytes\): .*empty\.\w+ — it was never written .* again"):
            decode(path, 8000)


def test_a_wav_cut_short_is_refused_naming_the_sizes(tmp_path):
    """A WAV whose data chunk declares more bytes than the file holds (a copy or download that stopped) is an error
    — libsndfile would read the half that exists and the track would be embedded as shorter audio; a streamed WAV
    whose writer never filled in the size (0xFFFFFFFF) is read whole."""
    import struct

    from repeval.testing.badaudio import tone

    p = tmp_path / "trunc.wav"
    sf.write(p, tone(12.0, 8000), 8000, subtype="FLOAT")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"truncated WAV: .*trunc.wav declares [\d,]+ bytes of audio but holds"):
        list(iter_chunks(str(p), 8000, chunk_s=2.0))
    at = data.index(b"data")
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(data[: at + 4] + struct.pack("<I", 0xFFFFFFFF) + data[at + 8 :])
    assert abs(len(decode(str(streamed), 8000)) - 12 * 8000) <= 16


def test_an_mp3_cut_short_is_refused_when_its_header_declares_the_size(tmp_path):
    """An MP3 whose Xing/Info header declares a stream size the file does not hold (a copy or download that stopped)
    is an error — libsndfile decoded the frames that are there, and the track was embedded as shorter audio. Behind an
    ID3v2 tag too; the whole file, with or without a tag, decodes (an MP3 without such a header: its end tells)."""
    p = tmp_path / "whole.mp3"
    sf.write(p, np.sin(np.arange(3 * 8000) / 8000 * 2 * np.pi * 440).astype(np.float32), 8000, format="MP3")
    data = p.read_bytes()
    assert b"Xing" in data[:64] or b"Info" in data[:64]  # libsndfile's LAME writes one
    id3 = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)  # a 128-byte tag (syncsafe size)
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(id3 + data)
    for good in (p, tagged):
        assert abs(len(decode(str(good), 8000)) - 3 * 8000) <= 8000 // 10, good
    for name, content in (("cut.mp3", data[: len(data) // 2]), ("cut_tagged.mp3", id3 + data[: len(data) // 2])):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DecodeError, match=rf"^truncated MP3: .*{name} declares {len(data):,} bytes of audio but"):
            decode(str(tmp_path / name), 8000)


def test_an_mp3_whose_xing_header_declares_size_zero_is_judged_by_its_end(tmp_path):
    """A Xing/Info header flagging a stream size it never filled in (0: a writer that did not go back) skipped both
    the size check and the end-of-file checks: such a file cut inside a frame, or zero-filled, was decoded short or
    failed part-way. Now it is judged by its end, as a file without a size is; whole, it decodes."""
    from repeval.testing.badaudio import mp3_frame_starts

    p = tmp_path / "whole.mp3"
    sf.write(p, np.sin(np.arange(6 * 8000) / 8000 * 2 * np.pi * 440).astype(np.float32), 8000, format="MP3",
             bitrate_mode="CONSTANT")  # fmt: skip
    data = bytearray(p.read_bytes())
    at = data.find(b"Xing", 0, 64)
    at = at if at >= 0 else data.find(b"Info", 0, 64)
    flags = struct.unpack(">I", data[at + 4 : at + 8])[0]
    assert at > 0 and flags & 2, flags  # libsndfile's LAME writes the stream size
    size_at = at + 8 + 4 * (flags & 1)
    data[size_at : size_at + 4] = bytes(4)
    (tmp_path / "zero_size.mp3").write_bytes(data)
    assert abs(len(decode(str(tmp_path / "zero_size.mp3"), 8000)) - 6 * 8000) <= 8000 // 10
    starts = mp3_frame_starts(bytes(data))
    (tmp_path / "cut.mp3").write_bytes(data[: starts[len(starts) // 2] + 10])  # inside a frame
    with pytest.raises(DecodeError, match=r"^truncated MP3: .*cut\.mp3 ends inside an audio frame"):
        decode(str(tmp_path / "cut.mp3"), 8000)
    keep = len(data) // 3
    assert len(data) - keep > 4096  # above the zero-run threshold
    (tmp_path / "zeros.mp3").write_bytes(data[:keep] + bytes(len(data) - keep))
    with pytest.raises(DecodeError, match=r"^zero-filled MP3: .*zeros\.mp3 ends in [\d,]+ zero bytes"):
        decode(str(tmp_path / "zeros.mp3"), 8000)


def test_mpeg_frame_lengths_follow_the_standard_tables():
    """The frame length a header declares (bitrate, sample rate, padding) for MPEG-1/2/2.5 layers I/II/III; no length
    for free format, reserved values, or a header of another stream than the first frame's."""
    from repeval.audio.integrity import mpeg_frame_bytes

    lengths = {
        0xFFFB9000: 417,  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 144 * 128000 / 44100
        0xFFFB9200: 418,  # … padded
        0xFFFDA400: 576,  # MPEG-1 layer II, 192 kbit/s, 48 kHz
        0xFFFFC800: 576,  # MPEG-1 layer I, 384 kbit/s, 32 kHz: (12 * 384000 / 32000) * 4
        0xFFFFCA00: 580,  # … padded: one 4-byte slot
        0xFFF38000: 208,  # MPEG-2 layer III, 64 kbit/s, 22.05 kHz: 72 * 64000 / 22050
        0xFFF5E400: 960,  # MPEG-2 layer II, 160 kbit/s, 24 kHz: 144 * 160000 / 24000
        0xFFF7E800: 768,  # MPEG-2 layer I, 256 kbit/s, 16 kHz
        0xFFE31800: 72,  # MPEG 2.5 layer III, 8 kbit/s, 8 kHz
    }
    for header, length in lengths.items():
        assert mpeg_frame_bytes(header) == length, hex(header)
        assert mpeg_frame_bytes(header, first=header & ~0xF200) == length, hex(header)  # same stream, other bitrate
    for header in (0xFFFB0000, 0xFFFBF000, 0xFFFB9C00, 0xFFF99000, 0xFFEB9000, 0xFFFB9002, 0x7FFB9000):
        assert mpeg_frame_bytes(header) is None, hex(header)  # free format, bad bitrate/rate/layer/version/emphasis
    assert mpeg_frame_bytes(0xFFFB9000, first=0xFFF38000) is None  # MPEG-1 in an MPEG-2 stream
    assert mpeg_frame_bytes(0xFFFB9000, first=0xFFFB9400) is None  # another sample rate


def _ape_tag() -> bytes:
    """An APEv2 tag with a header and one item."""
    import struct

    item = struct.pack("<II", 5, 0) + b"Title\x00Song1"
    size = len(item) + 32  # the items and the footer

    def block(flags: int) -> bytes:
        return b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, flags) + bytes(8)

    return block(0xA0000000) + item + block(0x80000000)


def _lyrics3v2_tag() -> bytes:
    body = b"LYRICSBEGIN" + b"IND00002" + b"10"
    return body + b"%06d" % len(body) + b"LYRICS200"


@pytest.mark.parametrize("rate_hz", [8000, 22050, 44100])  # MPEG 2.5, MPEG-2 and MPEG-1 layer III
def test_an_mp3_without_a_xing_header_cut_short_is_refused_naming_its_last_frame(tmp_path, rate_hz):
    """An MP3 whose first frame carries no Xing/Info header (CBR files from many encoders and rippers) cut short was
    decoded as the frames that were there — libsndfile says nothing. Its end tells: a cut file ends inside a frame
    (mid-file, mid-last-frame, inside the last header, a byte short; behind an ID3v2 tag, under tags written later —
    APEv2, Lyrics3, ID3v1 —, through a file:// URI). Whole files decode, with those tags or zero padding after the
    last frame."""
    from repeval.testing.badaudio import mp3_frame_starts, without_first_frame

    y = np.sin(np.arange(2 * rate_hz) * 0.3).astype(np.float32)
    sf.write(tmp_path / "info.mp3", y, rate_hz, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
    data = without_first_frame((tmp_path / "info.mp3").read_bytes())  # a CBR file: LAME's Info frame first
    assert b"Xing" not in data[:200] and b"Info" not in data[:200]
    starts = mp3_frame_starts(data)  # whole frames, chained to the end
    (tmp_path / "plain.mp3").write_bytes(data)
    n = len(decode(str(tmp_path / "plain.mp3"), rate_hz))
    frame = 1152 if rate_hz > 24000 else 576  # samples per frame
    assert n == len(starts) * frame  # every frame, with the encoder's delay and padding (the Info frame told them)
    assert 0 < n - len(decode(str(tmp_path / "info.mp3"), rate_hz)) <= 3 * frame
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)
    id3v1 = b"TAG" + bytes(125)
    tail_tags = _ape_tag() + _lyrics3v2_tag() + id3v1
    for name, content in (
        ("v1.mp3", data + id3v1),
        ("v2.mp3", id3v2 + data),
        ("tags.mp3", id3v2 + data + tail_tags),
        ("padded.mp3", data + bytes(1000)),
    ):
        (tmp_path / name).write_bytes(content)
        assert abs(len(decode(str(tmp_path / name), rate_hz)) - n) <= frame, name
    last, k = starts[-1], len(starts) // 2
    whole_last = len(data) - last
    cuts = {
        "mid.mp3": (starts[k] + 7, f"{starts[k + 1] - starts[k]:,} bytes, 7 are"),
        "mid_last.mp3": (last + whole_last // 2, f"{whole_last:,} bytes, {whole_last // 2:,} are"),
        "in_header.mp3": (last + 2, "at least 4 bytes, 2 are"),
        "in_header1.mp3": (last + 1, "at least 4 bytes, 1 is"),
        "header_3.mp3": (last + 3, f"{whole_last:,} bytes, 3 are"),
        "one_short.mp3": (len(data) - 1, f"{whole_last:,} bytes, {whole_last - 1:,} are"),
    }
    for name, (cut, needs) in cuts.items():
        for prefix, suffix, tagged in ((b"", b"", ""), (id3v2, tail_tags, "tagged_")):
            p = tmp_path / f"{tagged}{name}"
            p.write_bytes(prefix + data[:cut] + suffix)
            with pytest.raises(
                DecodeError,
                match=rf"^truncated MP3: .*{p.name} ends inside an audio frame \(its last frame needs {needs} left\)"
                r" — the file was cut short \(copy or download it again, or set run.truncated_audio: decode to "
                r"embed the audio it holds, its row noted in audio_note\)$",
            ):
                decode(str(p), rate_hz)
    with pytest.raises(DecodeError, match=r"^truncated MP3: file://.*mid.mp3 ends inside an audio frame"):
        decode(f"file://{tmp_path / 'mid.mp3'}", rate_hz)


@pytest.mark.parametrize("rate_hz", [8000, 22050, 44100])  # MPEG 2.5, MPEG-2 and MPEG-1 layer III
def test_a_vbr_mp3_without_a_xing_header_is_refused_naming_the_fix(tmp_path, rate_hz):
    """A whole VBR MP3 whose first frame carries no Xing header: libsndfile guesses its length from the first
    frame's bitrate and stops there — a 2-s file decoded to a fraction of its samples without a word, and the track
    was embedded from a fragment. It is refused, naming the fix (also between ID3v2 and ID3v1 tags, through a
    file:// URI); the same file with its Xing header decodes whole, and so does one whose first frame has the lowest
    bitrate (libsndfile's guess is too long then, its reads stop at the end)."""
    from repeval.testing.badaudio import mp3_frame_starts, tone, without_first_frame

    sf.write(tmp_path / "xing.mp3", tone(2.0, rate_hz), rate_hz, format="MP3")  # VBR (libsndfile's default)
    data = without_first_frame((tmp_path / "xing.mp3").read_bytes())  # LAME's Xing frame first
    assert b"Xing" not in data[:200] and b"Info" not in data[:200]
    frame = 1152 if rate_hz > 24000 else 576
    samples = len(mp3_frame_starts(data)) * frame
    assert abs(len(decode(str(tmp_path / "xing.mp3"), rate_hz)) - 2 * rate_hz) <= frame
    (tmp_path / "vbr.mp3").write_bytes(data)
    (tmp_path / "tagged.mp3").write_bytes(
        b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128) + data + b"TAG" + bytes(125)
    )
    for path in (str(tmp_path / "vbr.mp3"), str(tmp_path / "tagged.mp3"), f"file://{tmp_path / 'vbr.mp3'}"):
        with pytest.raises(
            DecodeError,
            match=rf"^VBR MP3 without a Xing header: {re.escape(path)} decodes to [\d,]+ of its {samples:,} samples \(libsndfile "
            r"cannot tell the length of such a file\) — re-encode it, or add a Xing header \(e\.g\. `vbrfix` or "
            r"`ffmpeg -i in\.mp3 -c copy out\.mp3`\)$",
        ):
            decode(path, rate_hz)
    quiet = tone(2.0, rate_hz)
    quiet[: rate_hz // 2] = 0  # silence first: the first frame at the lowest bitrate
    sf.write(tmp_path / "quiet_xing.mp3", quiet, rate_hz, format="MP3")
    (tmp_path / "quiet.mp3").write_bytes(without_first_frame((tmp_path / "quiet_xing.mp3").read_bytes()))
    assert (
        len(decode(str(tmp_path / "quiet.mp3"), rate_hz))
        == len(mp3_frame_starts((tmp_path / "quiet.mp3").read_bytes())) * frame
    )


def _zero_message(path: str, content: bytes) -> str:
    zeros = len(content) - len(content.rstrip(b"\0"))
    return (
        rf"^zero-filled MP3: {re.escape(path)} ends in {zeros:,} zero bytes \({zeros / len(content):.0%} of the file\) "
        r"instead of audio frames — the file was not fully written \(a download or copy that stopped; copy or download "
        r"it again\)$"
    )


@pytest.mark.parametrize("rate_hz", [22050, 44100])  # MPEG-2 and MPEG-1 layer III
def test_a_zero_filled_mp3_is_refused_naming_the_fix(tmp_path, rate_hz):
    """An MP3 whose last 30-60 % are zeros (a preallocated download or copy that stopped) has the size its Xing/Info
    header declares, and without such a header its end shows no cut frame: libsndfile gave up on the zeros part-way
    ("Unspecified internal error", which named neither cause nor fix) or, for a VBR file without a Xing header,
    stopped short without a word. Refused before decoding, naming the zero bytes and the fix — with a Xing header
    (VBR and CBR), without one (CBR and VBR), behind an ID3v2 tag, through a file:// URI; a run of zeros longer
    than the tail read first is counted to its start."""
    from repeval.audio.integrity import MP3_TAIL_BYTES
    from repeval.testing.badaudio import tone, without_first_frame, zero_filled

    y = tone(6.0, rate_hz)
    sf.write(tmp_path / "vbr.mp3", y, rate_hz, format="MP3")
    sf.write(tmp_path / "cbr.mp3", y, rate_hz, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
    sources = {}
    for kind in ("vbr", "cbr"):
        data = (tmp_path / f"{kind}.mp3").read_bytes()
        assert b"Xing" in data[:64] or b"Info" in data[:64]
        sources[f"xing_{kind}"] = data
        sources[f"no_xing_{kind}"] = without_first_frame(data)
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)
    longest_run = 0
    for name, data in sources.items():
        for fraction in (0.3, 0.6):
            for prefix, tag in ((b"", ""), (id3v2, "_id3v2")):
                content = prefix + zero_filled(data, fraction)
                p = tmp_path / f"{name}_{int(fraction * 100)}{tag}.mp3"
                p.write_bytes(content)
                with pytest.raises(DecodeError, match=_zero_message(str(p), content)):
                    decode(str(p), rate_hz)
                longest_run = max(longest_run, len(content) - len(content.rstrip(b"\0")))
    assert longest_run > MP3_TAIL_BYTES  # counted back beyond the tail
    p = tmp_path / "xing_vbr_60.mp3"
    with pytest.raises(DecodeError, match=_zero_message(f"file://{p}", p.read_bytes())):
        decode(f"file://{p}", rate_hz)


def test_legitimate_mp3s_ending_in_tags_padding_or_silence_are_not_refused(tmp_path):
    """What a whole MP3 may end in is never taken for a zero-filled tail: ID3v1, APEv2 and Lyrics3 tags, a few
    zero padding bytes, digital silence, a last frame ending in 1,263 zero bytes (LAME's Info frame at 320 kbit/s,
    the longest run of zeros a LAME file holds) plus 1,000 bytes of padding — with and without a Xing header; with
    one, any number of zero bytes after the stream it declares (libsndfile stops at its end). Each decodes to the
    samples the file without them decodes to (one frame more with the Info frame at the end)."""
    from repeval.audio.integrity import mpeg_frame_bytes
    from repeval.testing.badaudio import tone, without_first_frame

    rate_hz = 32000  # MPEG-1: its longest frames (320 kbit/s, 1,441 bytes)
    y = np.concatenate([tone(1.0, rate_hz), np.zeros(rate_hz, np.float32)])  # ends in digital silence
    sf.write(tmp_path / "xing.mp3", y, rate_hz, format="MP3", bitrate_mode="CONSTANT", compression_level=0.0)
    xing = (tmp_path / "xing.mp3").read_bytes()
    no_xing = without_first_frame(xing)
    info = xing[: mpeg_frame_bytes(int.from_bytes(xing[:4], "big"))]  # a frame of the stream, no audio
    assert len(info) - len(info.rstrip(b"\0")) == 1263
    tail_tags = _ape_tag() + _lyrics3v2_tag() + b"TAG" + bytes(125)
    ends = (b"TAG" + bytes(125), tail_tags, bytes(16), bytes(1000), info + bytes(1000))
    for name, data, appended in (("xing", xing, (*ends, bytes(20_000))), ("no_xing", no_xing, ends)):
        (tmp_path / f"{name}.mp3").write_bytes(data)
        n = len(decode(str(tmp_path / f"{name}.mp3"), rate_hz))
        for i, tail in enumerate(appended):
            p = tmp_path / f"{name}_{i}.mp3"
            p.write_bytes(data + tail)
            assert 0 <= len(decode(str(p), rate_hz)) - n <= 1152 * tail.startswith(info[:4]), (name, len(tail))


@pytest.mark.parametrize("rate_hz", [8000, 44100])  # MPEG 2.5 (the whole file less than one read block) and MPEG-1
def test_an_mp3_padded_with_up_to_4_kib_of_zeros_or_long_tags_decodes_whole(tmp_path, rate_hz):
    """A whole MP3 without a Xing/Info size followed by more than 1,024 bytes that are no frame — zero padding of up to
    4 KiB (not refused: a whole file may end in that much), zeros and an ID3v1 tag either way round (a tag may end in
    zero bytes itself: an APE footer does), an APEv2 tag with a picture —
    was an error record: libmpg123 gives up after 1,024 bytes that are no frame ("Unspecified internal error"), losing
    the file (at 8 kHz all of it: it is shorter than one read block). Now libsndfile reads it up to its last frame: it
    decodes to exactly the samples of the file without them (through a file:// URI too); with a Xing size it did."""
    from repeval.audio.integrity import MPG123_RESYNC_BYTES, shortfall
    from repeval.testing.badaudio import tone, without_first_frame

    sf.write(
        tmp_path / "xing.mp3", tone(1.0, rate_hz), rate_hz, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5
    )
    xing = (tmp_path / "xing.mp3").read_bytes()
    item = struct.pack("<II", 3000, 0) + b"Cover Art (Front)\x00" + bytes(3000)  # APEv2: one item, then its footer
    ape = item + b"APETAGEX" + struct.pack("<IIII", 2000, len(item) + 32, 1, 0) + bytes(8)
    id3v1 = b"TAG" + bytes(125)
    for name, data in (("no_xing", without_first_frame(xing)), ("xing", xing)):
        (tmp_path / f"{name}.mp3").write_bytes(data)
        whole = decode(str(tmp_path / f"{name}.mp3"), rate_hz)
        assert len(whole) > rate_hz // 2
        tails = (
            bytes(2048),
            bytes(4096),
            bytes(1024) + id3v1,
            bytes(3000) + id3v1,
            ape,
            id3v1 + bytes(2000),
            ape + bytes(2000),
        )
        for i, tail in enumerate(tails):
            p = tmp_path / f"{name}_{i}.mp3"
            p.write_bytes(data + tail)
            if name == "no_xing":
                assert len(tail) > MPG123_RESYNC_BYTES
                with open(p, "rb") as fh:
                    assert shortfall(fh, len(data + tail)) == ("MP3 padded", len(tail), len(data)), i
            for path in (str(p), f"file://{p}") if i == 0 else (str(p),):
                assert np.array_equal(decode(path, rate_hz), whole), (name, i, path)


def test_the_zero_tail_threshold_is_two_of_the_streams_longest_frames_and_4_kib():
    """A run of zeros at the end of an MP3's audio marks it zero-filled only when it is longer than
    MP3_ZERO_TAIL_BYTES (4 KiB) and than two of the stream's longest frames; not one byte shorter."""
    import io

    from repeval.audio.integrity import MP3_ZERO_TAIL_BYTES, mp3_zero_tail, mpeg_frame_bytes

    for header, longest in ((0xFFFB9000, 1045), (0xFFE51800, 2881)):  # MPEG-1 layer III 44.1 kHz; MPEG 2.5 layer II
        assert mpeg_frame_bytes(header & ~0xF000 | 0xE200) == longest
        limit = max(MP3_ZERO_TAIL_BYTES, 2 * longest)
        first = header.to_bytes(4, "big")
        for run, want in ((limit, None), (limit + 1, (100, limit + 1))):
            buf = first + bytes(range(1, 97)) + bytes(run)
            assert mp3_zero_tail(io.BytesIO(buf), 0, first, 0, buf) == want, (hex(header), run)
            tagged = buf + b"TAG" + bytes(125)  # counted before the tags
            assert mp3_zero_tail(io.BytesIO(tagged), 0, first, 0, tagged) == want, (hex(header), run)


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_a_zero_filled_ogg_is_refused_and_zeros_after_its_last_page_are_not(tmp_path, subtype):
    """A zero-filled Ogg file: libsndfile decoded the pages before the zeros as the whole file — 6 s became 2.4 or
    5.4 s without a word. Refused before decoding, naming the zero bytes and the fix (a run of zeros longer than the
    tail read first counted to its start, through a file:// URI too). Zeros appended after a whole stream (its last
    page marks its end) are not refused: libsndfile decodes all of it."""
    from repeval.audio.integrity import OGG_TAIL_BYTES
    from repeval.testing.badaudio import tone, zero_filled

    sf.write(tmp_path / "whole.ogg", tone(6.0, 48000), 48000, format="OGG", subtype=subtype)
    data = (tmp_path / "whole.ogg").read_bytes()
    for fraction in (0.1, 0.6):
        p = tmp_path / f"zeros_{int(fraction * 100)}.ogg"
        p.write_bytes(zero_filled(data, fraction))
        zeros = len(data) - len(p.read_bytes().rstrip(b"\0"))
        assert (zeros > OGG_TAIL_BYTES) == (fraction == 0.6)
        for path in (str(p), f"file://{p}"):
            with pytest.raises(
                DecodeError,
                match=rf"^zero-filled Ogg: {re.escape(path)} ends in {zeros:,} zero bytes \({fraction:.0%} of the "
                r"file\) instead of Ogg pages — the file was not fully written \(a download or copy that stopped; "
                r"copy or download it again\)$",
            ):
                decode(path, 48000)
    for padding in (100, 5000, 30_000):
        (tmp_path / "padded.ogg").write_bytes(data + bytes(padding))
        assert len(decode(str(tmp_path / "padded.ogg"), 48000)) == 6 * 48000, padding


def test_flac_and_wav_with_a_zero_filled_tail(tmp_path):
    """A zero-filled FLAC: libsndfile loses sync part-way; the reason now says the file ends in zero bytes and names
    the fix (one damaged in its middle: that it is damaged or incomplete, and the fix; one cut short is refused where
    it opens: test_a_flac_cut_short_is_refused_where_it_opens). A zero-filled WAV is refused by
    nothing: its zeros are valid samples (silence), and it decodes at full length."""
    from repeval.testing.badaudio import tone, zero_filled

    y = tone(6.0, 22050)
    sf.write(tmp_path / "whole.flac", y, 22050)
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "zeros.flac").write_bytes(zero_filled(data, 0.4))
    zeros = len(data) - int(len(data) * 0.6)
    with pytest.raises(
        DecodeError,
        match=rf"^corrupt audio data in .*zeros\.flac after \d+ frames: .*lost sync.* — it ends in {zeros:,} zero "
        r"bytes \(40% of the file\): it was not fully written \(a download or copy that stopped; copy or download it "
        r"again\)$",
    ):
        decode(str(tmp_path / "zeros.flac"), 22050)
    mid = len(data) // 2  # 1 KiB overwritten in its middle
    (tmp_path / "damaged.flac").write_bytes(data[:mid] + bytes(range(256)) * 4 + data[mid + 1024 :])
    with pytest.raises(
        DecodeError,
        match=r"^corrupt audio data in .*damaged\.flac after \d+ frames: .* — the file is damaged or incomplete \(copy "
        r"or download it again, or re-encode it from its source\)$",
    ):
        decode(str(tmp_path / "damaged.flac"), 22050)
    sf.write(tmp_path / "whole.wav", y, 22050, subtype="PCM_16")
    (tmp_path / "zeros.wav").write_bytes(zero_filled((tmp_path / "whole.wav").read_bytes(), 0.4))
    out = decode(str(tmp_path / "zeros.wav"), 22050)
    assert len(out) == len(y) and not out[-int(0.39 * len(y)) :].any() and out[: len(y) // 2].any()


def test_a_flac_cut_short_is_refused_where_it_opens(tmp_path):
    """A FLAC cut short opened with the length its STREAMINFO declares and failed only when decoding reached the cut
    ("Internal psf_fseek() failed", "lost sync"): `repeval data check` without --decode passed it. Now its last frame
    headers (two in a row, numbered in order, their CRC-8 matching) tell where its frames end, and it is refused where
    it opens, naming the samples declared and held — cut anywhere from a tenth of the file to a few frames from its end
    (mono and stereo, 16 and 24 bits). Whole files, with ID3v1 or APE tags appended, are not; nor is a file cut inside
    its last frame (at most one block: libsndfile fails on it when decoding)."""
    from repeval.audio.flac_end import flac_shortfall
    from repeval.testing.badaudio import tone

    rng = np.random.default_rng(0)
    for channels, subtype in ((1, "PCM_16"), (2, "PCM_24")):
        y = tone(3.0, 22050, channels=channels) * 0.5 + 0.01 * rng.standard_normal((66150, channels)).squeeze()
        sf.write(tmp_path / "whole.flac", y.astype(np.float32), 22050, subtype=subtype)
        data = (tmp_path / "whole.flac").read_bytes()
        block = int.from_bytes(data[10:12], "big")  # STREAMINFO's (largest) block size: the frames' but the last
        for tail in (b"", b"TAG" + bytes(125), _ape_tag()):
            p = tmp_path / "tagged.flac"
            p.write_bytes(data + tail)
            assert len(decode(str(p), 22050)) == 66150
        for fraction in (0.1, 0.5, 0.9, 0.97):
            cut = int(len(data) * fraction)
            p = tmp_path / f"cut_{fraction}.flac"
            p.write_bytes(data[:cut])
            m = re.fullmatch(
                rf"truncated FLAC: {re.escape(str(p))} declares 66,150 samples but its frames end at sample "
                r"([\d,]+) \(\d+%\) — the file was cut short \(copy or download it again, or set "
                r"run.truncated_audio: decode to embed the audio it holds, its row noted in audio_note\)",
                _decode_error(str(p)),
            )
            assert m, (channels, fraction)
            held = int(m[1].replace(",", ""))  # whole frames, about the fraction of the bytes that is left
            assert held % block == 0 and abs(held - fraction * 66150) < 2 * block, (channels, fraction, held)
        with open(tmp_path / "whole.flac", "rb") as fh:
            assert flac_shortfall(fh, len(data)) is None
        p = tmp_path / "cut_last_frame.flac"
        p.write_bytes(data[:-10])
        with open(p, "rb") as fh:
            assert flac_shortfall(fh, len(data) - 10) is None  # not found before decoding
        assert "corrupt audio data" in _decode_error(str(p))


def _decode_error(path: str) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(path, 22050)
    return str(caught.value)
