"""Synthetic probe data for tests and benchmarks: class-conditional Gaussians.

Learnable but not trivially separable (the class means are drawn at unit scale and every point
gets isotropic noise of ``noise`` standard deviations), offset from zero so that standardising
matters. Multilabel and regression variants derive their targets from the same points.
"""

from __future__ import annotations

import numpy as np

from repeval.probes.train import ProbeData


def gaussian_probe_data(
    task_type: str = "multiclass_classification",
    n: int = 160,
    d: int = 12,
    c: int = 4,
    *,
    seed: int = 0,
    noise: float = 1.5,
    separation: float = 1.0,
    splits: tuple[float, float, float] | None = None,
    scenarios: bool = True,
) -> ProbeData:
    """``n`` training rows (or ``n`` rows in all when ``splits`` gives train/val/test fractions).

    ``separation`` scales the class means (their distance grows with ``separation · √d``).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0, separation, (c, d))
    mix = np.array([[1.0, -0.5], [0.3, 0.8]], np.float32)

    def split(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, c, m)
        x = (means[y] + rng.normal(0, noise, (m, d)) + 3.0).astype(np.float32)
        if task_type == "multilabel_classification":
            yy = np.zeros((m, c), np.float32)
            yy[np.arange(m), y] = 1
            yy[np.arange(m), (y + 1) % c] = rng.integers(0, 2, m)
            return x, yy
        if task_type == "regression":
            return x, (x[:, :2] @ mix).astype(np.float32)
        return x, y

    if splits is None:
        sizes = (n, n // 3, n // 3)
    else:
        sizes = (round(n * splits[0]), round(n * splits[1]), n - round(n * splits[0]) - round(n * splits[1]))
    xtr, ytr = split(sizes[0])
    xva, yva = split(sizes[1])
    xte, yte = split(sizes[2])
    classes = [f"dim{i}" for i in range(2)] if task_type == "regression" else [f"c{i}" for i in range(c)]
    ids = [f"t{i}" for i in range(len(xte))]
    tests = {"clean": (xte, yte, ids)}
    if scenarios:  # a "deformed" test set: the same points, shrunk towards the origin
        tests["D1"] = (xte * 0.5, yte, ids)
    return ProbeData(task_type, classes, xtr, ytr, xva, yva, tests)
