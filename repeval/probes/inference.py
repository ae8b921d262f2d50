"""A trained probe's scores on new embeddings, from its checkpoint (:func:`predict`)."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

from repeval.probes.data import ProbeData, heads_of, target_scale, unscaled
from repeval.probes.inputs import Preprocess, Segments, _preprocessed
from repeval.probes.losses import scores_of
from repeval.probes.model import build_probe

#: the last few fits :func:`predict` made: (id of the training split, setting) → (the split, its Preprocess)
_FITS: dict[tuple[int, bool, int | None], tuple[weakref.ref, Preprocess]] = {}


def _fitted(x: np.ndarray, standardize: bool, pca_dim: int | None) -> Preprocess:
    """``Preprocess(x, standardize, pca_dim)``, fitted once per training split and setting: ``select: best`` scores
    every seed's checkpoint on every test scenario, each call refitting the same statistics (a PCA's SVD of the whole
    split). Keyed by the array's identity, held by a weak reference (a new split is never served an old fit)."""
    key = (id(x), standardize, pca_dim)
    hit = _FITS.get(key)
    if hit is not None and hit[0]() is x:
        return hit[1]
    prep = Preprocess(x, standardize, pca_dim)
    if len(_FITS) >= 8:
        _FITS.pop(next(iter(_FITS)))
    _FITS[key] = (weakref.ref(x), prep)
    return prep


def predict(
    cfg: Any, data: ProbeData, state_dict: dict[str, Any], x: np.ndarray, counts: np.ndarray | None = None
) -> np.ndarray:
    """Scores of a trained probe (a :class:`~repeval.probes.model.Probe` state dict) on raw embeddings ``x``
    (with ``counts``, for an attention probe: ``x`` holds frames, ``counts`` each track's number of them, and
    there is one row of scores per track).

    The preprocessing is refitted on ``data.x_train`` (and a regression's target scale on ``data.y_train``: it is
    deterministic), so a checkpoint holds only the probe's weights.
    """
    prep = _fitted(data.x_train, bool(cfg.standardize), cfg.effective_pca_dim)
    with torch.random.fork_rng(devices=[]):
        probe = build_probe(
            cfg, prep.output_dim, data.n_outputs, attention=heads_of(cfg, data) if counts is not None else 0
        )
    probe.load_state_dict(state_dict)
    probe.eval()
    z = _preprocessed(x, [prep], pad=counts is not None)[0]
    with torch.no_grad():
        if counts is None:
            return unscaled(scores_of(probe(z), data.task_type).numpy(), target_scale(data))
        seg, frames = Segments(counts), z
        out = []
        for s in range(0, len(seg), 256):
            idx, mask = seg.batch(torch.arange(s, min(len(seg), s + 256)))
            out.append(scores_of(probe(frames[idx], mask), data.task_type))
        return unscaled(torch.cat(out).numpy(), target_scale(data))
