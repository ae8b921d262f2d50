"""What the pipeline stage tests share: a short and a long noise file and a bad one, decoding and embedding them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from repeval.config.embed import EmbeddingModelConfig
from repeval.pipeline.embedder import Embed
from repeval.pipeline.stages import DecodeDeform, table_to_batch

SR = 8000
NOISE = [("AddGaussianSNR", {"min_snr_db": 5.0, "max_snr_db": 30.0, "p": 1.0})]
GAIN = [("Gain", {"min_gain_db": -12.0, "max_gain_db": 0.0, "p": 1.0})]


def _decode_rows(files, names, wanted, chunk_s=5.0, seed=0, steps=None):
    udf = DecodeDeform(SR, steps if steps is not None else {"D1": NOISE, "D2": GAIN}, seed, chunk_s=chunk_s)
    batch = {
        "track_id": np.array(names),
        "audio_path": np.array([str(files / f"{n}.wav") for n in names]),
        "split": np.array(["test"] * len(names)),
        "scenarios": [np.array(w) for w in wanted],
    }
    return table_to_batch(pa.concat_tables(udf(batch)))


def _embed(files, names, wanted, keep_frames=True, chunk_s=5.0):
    cfg = EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR, "chunk_s": chunk_s})
    emb = Embed(cfg, keep_frames=keep_frames, threads=1)
    rows = _decode_rows(files, names, wanted, chunk_s=chunk_s, steps={"D1": NOISE})
    return emb, rows, emb(rows)
