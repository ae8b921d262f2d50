"""Audio decoding and resampling (block-wise, in windows for long files)."""

from repeval.audio.decode import DecodeError, chunk_blocks, decode, iter_blocks, iter_chunks

__all__ = ["DecodeError", "chunk_blocks", "decode", "iter_blocks", "iter_chunks"]
