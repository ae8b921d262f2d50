"""Audio decoding and resampling."""

from repeval.audio.decode import DecodeError, decode

__all__ = ["DecodeError", "decode"]
