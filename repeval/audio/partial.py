"""Audio decoded from part of its file, and the note its store row carries (``audio_note``).

``run.truncated_audio`` says what becomes of a file provably cut short — a WAV, MP3 or FLAC whose header (or last
frame) declares more audio than the file holds (:data:`CUT_CAUSES`, found by :func:`repeval.audio.integrity.shortfall`):
``error`` (the default) refuses it — an error record naming the fix —, ``decode`` decodes the whole frames it holds,
with a warning, and its row says so in ``audio_note``. An Ogg file without its end (cut, or a live stream's recording:
:data:`~repeval.audio.ogg_end.OGG_UNENDED`) is decoded as far as its whole pages go under both, and noted too. A file
that is whole has no note (null). Zero-filled files (a download that preallocated the file and stopped: its size is
right, its tail is zeros) are refused under both: their zeros are no frames, and nothing short of re-downloading gives
their audio back.
"""

from __future__ import annotations

from dataclasses import dataclass

#: what ``run.truncated_audio`` takes, and its default (defined with the configuration, re-exported here)
from repeval.config.run import DEFAULT_TRUNCATED_AUDIO, TruncatedAudio  # noqa: F401

#: the causes (:func:`repeval.audio.integrity.shortfall`) of a file cut short that ``run.truncated_audio: decode``
#: decodes as far as its whole frames go: a WAV whose data chunk, an MP3 whose Xing/Info header, a FLAC whose STREAMINFO
#: declares more than the file holds, and an MP3 ending inside an audio frame
CUT_CAUSES = ("WAV", "MP3", "MP3 frame", "FLAC")

#: a file cut short is read until its decoder fails (libsndfile: "lost sync", "Internal psf_fseek() failed", an MP3's
#: last frame) no earlier than this many seconds — or two of :data:`MAX_BLOCK_FRAMES` — before where its whole frames
#: are known to end; a read failing earlier is damage elsewhere in the file, refused as before
CUT_SLACK_S = 2.0

#: the longest block (frames) of a FLAC in its subset format (what encoders write): where a cut FLAC's frames end is
#: known to its last frame header, whose frame may itself be cut, and libFLAC fails on the frame before it
MAX_BLOCK_FRAMES = 16384

#: the fix a refusal of a file cut short names beside getting the file again
DECODE_HINT = "or set run.truncated_audio: decode to embed the audio it holds, its row noted in audio_note"


@dataclass(frozen=True)
class Partial:
    """What the decoder knows, when a file opens, of one it decodes only part of: the ``cause``
    (:data:`CUT_CAUSES`, or ``"Ogg"``), the seconds its header declares (``None``: not told) and the frames (at the
    file's rate) from the end of its length as opened within which a read error ends the file instead of being raised
    (:func:`repeval.audio.decode.read_block`)."""

    cause: str
    declared_s: float | None
    slack_frames: int

    def note(self, decoded_s: float) -> str:
        """The row's ``audio_note``, ``decoded_s`` being the seconds decoded."""
        if self.cause == "Ogg":
            return f"Ogg without its end page: {decoded_s:.1f} s decoded"
        if self.declared_s is None:
            return f"cut {self.cause.split()[0]}: ends inside an audio frame, holds {decoded_s:.1f} s"
        return f"cut {self.cause}: declares {self.declared_s:.1f} s, holds {decoded_s:.1f} s"

    def warning(self, path: str) -> str:
        """The warning a file cut short is decoded with under ``run.truncated_audio: decode`` (once per file)."""
        declared = "" if self.declared_s is None else f" (it declares {self.declared_s:.1f} s)"
        return (
            f"truncated {self.cause.split()[0]}: {path} was cut short{declared} — run.truncated_audio: decode embeds "
            "the whole frames it holds and notes it in the row's audio_note; copy or download it again to embed it whole"
        )


def cut(cause: str, declared: int, held: int, frames: int, rate_hz: int) -> Partial:
    """The :class:`Partial` of a file cut short whose check (:func:`repeval.audio.integrity.shortfall`) found
    ``(cause, declared, held)``, opened by libsndfile with a length of ``frames`` at ``rate_hz``. Where its whole frames
    end and what it declares, by cause: a WAV opens with the frames it holds, and declares them times the bytes its
    data chunk declares over those it holds; an MP3 with a Xing/Info header opens with the length that header declares
    and holds about the part of its stream size that is there; an MP3 ending inside a frame opens with libsndfile's
    guess from its size (nothing declares its length); a FLAC opens with the samples STREAMINFO declares and its frames
    end at ``held``."""
    rate = max(rate_hz, 1)
    if cause == "WAV":
        declared_s: float | None = frames / rate * declared / max(held, 1)
        ends = frames
    elif cause == "MP3":
        declared_s, ends = frames / rate, int(frames * held / max(declared, 1))
    elif cause == "FLAC":
        declared_s, ends = declared / rate, held
    else:  # "MP3 frame"
        declared_s, ends = None, frames
    slack = max(int(CUT_SLACK_S * rate), 2 * MAX_BLOCK_FRAMES)
    return Partial(cause, declared_s, max(0, frames - ends) + slack)
