"""What a stack's probes see: the preprocessing fitted on the training split (:class:`Preprocess`), and a split's
rows under it, batch by batch (:class:`Inputs`; a track's frames for attention pooling, :class:`Segments`), and
the stack's forward pass over a whole split (:func:`_forward_all`, :func:`_forward_pooled`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from repeval.probes.stacked import StackedMLP

#: rows per chunk when a whole split is pushed through a stack (bounds memory: K × rows × dim)
EVAL_CHUNK_ELEMENTS = 32_000_000


#: bytes of the float64 chunk of the training split :func:`column_stats` holds at a time (as many rows as fit: 8,192
#: rows of 64 dimensions, 1,024 of 512), whatever the split's width and length
STATS_CHUNK_BYTES = 4 << 20


def stats_chunk_rows(width: int) -> int:
    """Rows of a ``width``-dimensional split :func:`column_stats` reads at a time (:data:`STATS_CHUNK_BYTES`)."""
    return max(1, STATS_CHUNK_BYTES // (8 * max(1, width)))


def column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and population standard deviation of ``(n, d)`` ``x``, summed in float64 as scikit-learn's
    ``StandardScaler`` sums them (Jukemir's standardisation). numpy sums a float32 array over its rows in float32, one
    row after another: over the 10⁵–10⁶ rows of a split of frames the mean of values ~3 ± 0.01 drifted by half a
    standard deviation at 300,000 rows (its std by 11%), by 3.5 at 10⁶.

    One pass over ``x``, :func:`stats_chunk_rows` rows at a time (no split-sized temporary; a memory-mapped split is
    read once): each chunk cast once into one reused float64 buffer, centred on its own mean, and its mean and sum of
    squared deviations merged into the running ones (Chan, Golub & LeVeque's pairwise update). A column whose values
    are all equal gets its value as its mean and a std of exactly 0 (each chunk's sum of float32 values is exact in
    float64), and only such a column."""
    n, d = x.shape
    rows = stats_chunk_rows(d)
    mean, squares = np.zeros(d, np.float64), np.zeros(d, np.float64)
    buf = np.empty((min(n, rows), d), np.float64)
    for a in range(0, n, rows):
        chunk = buf[: min(rows, n - a)]
        np.copyto(chunk, x[a : a + rows])
        m = len(chunk)
        chunk_mean = chunk.sum(0) / m
        chunk -= chunk_mean
        delta = chunk_mean - mean
        mean += delta * (m / (a + m))
        squares += np.einsum("ij,ij->j", chunk, chunk) + delta * delta * (a * m / (a + m))
    return mean, np.sqrt(squares / max(n, 1))


def pca_too_wide(pca_dim: int, n_rows: int, width: int) -> str | None:
    """Why a PCA to ``pca_dim`` dimensions cannot be fitted on ``n_rows`` training rows of ``width`` dimensions (it
    gives at most the smaller of the two, as scikit-learn's ``PCA`` — mir_ref's — refuses to fit more), or None."""
    most = min(n_rows, width)
    if pca_dim <= most:
        return None
    why = f"{width}-dimensional embeddings" if width <= n_rows else f"{n_rows} training rows (tracks, or frames)"
    return (
        f"PCA to {pca_dim} dimensions (pca_dim, or emb_shape with emb_dim_reduction: PCA), but the training split has "
        f"{n_rows} rows of {width}-dimensional embeddings, and a PCA gives at most as many dimensions as the smaller "
        f"of the two ({why}): set it to at most {most}, or remove the PCA"
    )


class Preprocess:
    """Standardisation and PCA fitted on the training split only.

    Standardisation is scikit-learn's ``StandardScaler`` (Jukemir's ``data_standardization``, p-lambda/jukemir
    ``jukemir/probe/__init__.py``): the training mean subtracted, divided by the population std — and a column that
    is constant on the training split (a dead unit, a fixed statistic) keeps scale 1, as sklearn's
    ``_handle_zeros_in_scale`` does. Dividing it by ~1e-8 instead multiplied any value it takes elsewhere (a
    deformed test clip that wakes a dead unit) by 1e8.
    """

    def __init__(self, x: np.ndarray, standardize: bool, pca_dim: int | None) -> None:
        x = np.asarray(x, np.float32)
        mean, std = column_stats(x) if (standardize or pca_dim) and len(x) else (None, None)
        self.mean = mean.astype(np.float32) if mean is not None else np.zeros(x.shape[1], np.float32)
        self.std = np.ones(x.shape[1], np.float32)
        if standardize and std is not None:
            # a column constant on the training split: std exactly 0 and its mean the value itself (column_stats),
            # so the training rows standardise to exactly 0
            self.std = np.where(std == 0, np.float32(1), std + 1e-8).astype(np.float32)
        self.components = None
        if pca_dim:
            wrong = pca_too_wide(pca_dim, *x.shape)
            if wrong:
                raise ValueError(wrong)
            z = (x - self.mean) / self.std
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            self.components = vt[:pca_dim].T.astype(np.float32)

    @property
    def output_dim(self) -> int:
        return int(self.components.shape[1]) if self.components is not None else len(self.mean)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)
        return z @ self.components if self.components is not None else z


def _chunks(n: int, k: int, width: int) -> list[slice]:
    step = max(1, EVAL_CHUNK_ELEMENTS // max(1, k * width))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


class Segments:
    """Tracks whose frames are consecutive rows of a frame matrix (``embedding_aggregation: attention``), batched
    as padded index tensors. The frame matrix carries one extra all-zero row at its end, which padding points at."""

    def __init__(self, counts: np.ndarray, device: str | torch.device = "cpu") -> None:
        c = torch.from_numpy(np.array(counts, np.int64))  # a copy: arrays from the object store are read-only
        self.counts = c.to(device)
        self.starts = (torch.cumsum(c, 0) - c).to(device)
        self.n_frames = int(c.sum())
        self.max_len = int(c.max()) if len(c) else 0

    def __len__(self) -> int:
        return len(self.counts)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, mask)``, both ``(B, T)`` for the tracks ``rows`` (T: their longest): the frames' rows in the
        frame matrix (its padding row where a track has fewer frames) and true where a frame is real."""
        lens = self.counts[rows]
        steps = torch.arange(int(lens.max()), device=rows.device)
        mask = steps < lens.unsqueeze(1)
        idx = torch.where(mask, self.starts[rows].unsqueeze(1) + steps, self.n_frames)
        return idx, mask


def _preprocessed(x: np.ndarray, preps: list[Preprocess], pad: bool) -> torch.Tensor:
    """``(V, n [+ 1], d)``: ``x`` under each preprocessing variant, filled one variant at a time (one variant's
    transient copy, not V), with :meth:`Segments.batch`'s zero padding row at the end when ``pad``."""
    n = len(x)
    shape = (len(preps), n + int(pad), preps[0].output_dim)
    out = torch.zeros(shape) if pad else torch.empty(shape)
    for i, prep in enumerate(preps):
        np.copyto(out[i, :n].numpy(), prep(x))  # x may be a read-only view of the object store: no tensor of it
    return out


def _shared_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor on ``x``'s memory (no copy when ``x`` is float32 and C-contiguous), also when ``x`` is a
    read-only view of the object store's copy. Only :class:`Inputs` makes these, and only reads them: PyTorch's
    warning that writing through such a tensor is undefined is silenced here and nowhere else."""
    a = np.ascontiguousarray(x, np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


class Inputs:
    """A split's probe inputs under each preprocessing variant of a stack, ``(V, n [+ 1], d)``, made batch by batch:
    the raw rows (in a trial, a read-only view of the object store's copy) are gathered, then standardised for the
    variant that asks for them — the float32 subtraction and division of :class:`Preprocess`, so the values are its
    own bit for bit — and a trial holds no preprocessed copy of the split. With ``pad`` a zero row follows the ``n``
    rows (where :meth:`Segments.batch` points padding). Variants with PCA are projected up front (a product over the
    whole split; :func:`_preprocessed`)."""

    def __init__(
        self, x: np.ndarray, preps: list[Preprocess], pad: bool, device: str | torch.device = "cpu"
    ) -> None:  # fmt: skip
        self.n, self.pad = len(x), pad
        self.shape = (len(preps), self.n + int(pad), preps[0].output_dim)
        self.full: torch.Tensor | None = None
        if any(p.components is not None for p in preps):
            self.full = _preprocessed(x, preps, pad).to(device)
            self.device = self.full.device
            return
        self.raw = _shared_tensor(x).to(device)
        self.device = self.raw.device
        self.mean = torch.from_numpy(np.stack([p.mean for p in preps]).astype(np.float32)).to(device)
        self.std = torch.from_numpy(np.stack([p.std for p in preps]).astype(np.float32)).to(device)
        #: variants whose standardisation is the identity ((x - 0) / 1 == x exactly): their batches are the raw rows
        self.plain = [bool((p.mean == 0).all() and (p.std == 1).all()) for p in preps]
        self.variants = torch.arange(len(preps), device=device)  # every variant, once per batch (every_variant)

    def _standardised(self, rows: torch.Tensor, idx: torch.Tensor | None, var: torch.Tensor | int) -> torch.Tensor:
        """``rows`` (raw, ``(*lead, *rest, d)``) standardised for ``var`` (an index, or one per leading entry)."""
        if all(self.plain) or all(self.plain[v] for v in ([var] if isinstance(var, int) else var.tolist())):
            z = rows.contiguous()  # a fresh gather as it is; a broadcast view of the raw rows copied
            if self.pad and idx is not None:
                z.masked_fill_((idx >= self.n).unsqueeze(-1), 0.0)
            return z
        mean, std = self.mean[var], self.std[var]
        if isinstance(var, torch.Tensor):  # one variant per leading entry: broadcast over the rest
            shape = (*var.shape, *([1] * (rows.dim() - var.dim() - 1)), rows.shape[-1])
            mean, std = mean.view(shape), std.view(shape)
        z = (rows - mean).div_(std)  # one new tensor of the batch's size
        if self.pad and idx is not None:
            z.masked_fill_((idx >= self.n).unsqueeze(-1), 0.0)
        return z

    def take(self, idx: torch.Tensor, var: torch.Tensor | int) -> torch.Tensor:
        """Rows ``idx`` (any shape; with ``pad``, index ``n`` is the zero row) of variant ``var`` — an index, or a
        ``(K,)`` tensor giving each leading entry of ``idx`` ``(K, ...)`` its variant → ``(*idx.shape, d)``."""
        if self.full is not None:
            if isinstance(var, int):
                return self.full[var][idx]
            return self.full[var.view(-1, *([1] * (idx.dim() - 1))), idx]
        rows = self.raw[idx.clamp(max=self.n - 1)] if self.pad else self.raw[idx]
        return self._standardised(rows, idx, var)

    def every_variant(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` ``(B,)`` under every variant → ``(V, B, d)`` (the rows gathered once)."""
        if self.full is not None:
            return self.full.index_select(1, idx)
        rows = self.raw.index_select(0, idx).unsqueeze(0)
        return self._standardised(rows.expand(self.shape[0], -1, -1), None, self.variants)

    def span(self, sl: slice, var: torch.Tensor) -> torch.Tensor:
        """Rows ``sl`` of the ``n`` for the variants ``var`` ``(K,)`` → ``(K, len, d)``."""
        if self.full is not None:
            return self.full[:, sl][var]
        return self._standardised(self.raw[sl].unsqueeze(0).expand(len(var), -1, -1), None, var)


def _pooled(
    model: StackedMLP, xs: Inputs, seg: Segments, rows: torch.Tensor, keys: list[Any], variants: list[int]
) -> torch.Tensor:
    """The attention-pooled first-layer input ``(K, B, d)`` of every stack position: ``rows`` ``(K, B)`` its tracks,
    ``keys`` what its rows depend on (positions with equal keys see the same rows), ``variants`` its
    preprocessing variant in ``xs`` ``(V, n + 1, d)``. Each distinct (rows, variant) batch is gathered once."""
    groups: dict[tuple[Any, int], list[int]] = {}
    for pos, (key, v) in enumerate(zip(keys, variants, strict=True)):
        groups.setdefault((key, v), []).append(pos)
    parts = []
    for (_, v), positions in groups.items():
        idx, mask = seg.batch(rows[positions[0]])
        parts.append((positions, xs.take(idx, v), mask))
    return model.pool(parts)


def _forward_pooled(model: StackedMLP, xs: Inputs, seg: Segments, var_idx: torch.Tensor) -> torch.Tensor:
    """:func:`_forward_all` for attention probes: ``xs`` ``(V, frames + 1, d)``, ``seg`` the tracks → ``(K, n, C)``."""
    n, d = len(seg), xs.shape[2]
    variants = var_idx.tolist()
    width = max(model.k * max(model.dims), seg.max_len * (d + model.k * max(1, model.heads)))
    step = max(1, EVAL_CHUNK_ELEMENTS // max(1, width))
    outs = []
    with torch.no_grad():
        for s in range(0, n, step):
            rows = torch.arange(s, min(n, s + step), device=xs.device).expand(model.k, -1)
            x = _pooled(model, xs, seg, rows, [0] * model.k, variants)
            outs.append(model.forward(x, train=False))
    return torch.cat(outs, 1)


def _forward_all(model: StackedMLP, xs: Inputs, var_idx: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits of every probe on a whole split: ``xs`` ``(V, n, d)`` → ``(K, n, C)``."""
    outs = []
    with torch.no_grad():
        for sl in _chunks(xs.shape[1], model.k, max(model.dims)):
            x = xs.span(sl, var_idx)
            outs.append(model.forward(x, train=False))
    return torch.cat(outs, 1)
