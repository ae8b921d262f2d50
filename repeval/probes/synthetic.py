"""Synthetic probe data for tests and benchmarks: class-conditional Gaussians.

Learnable but not trivially separable (the class means are drawn at unit scale and every point
gets isotropic noise of ``noise`` standard deviations), offset from zero so that standardising
matters. Multilabel and regression variants derive their targets from the same points.
"""

from __future__ import annotations

import numpy as np

from repeval.probes.data import ProbeData


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


def marked_frame_probe_data(
    n: int = 240, c: int = 4, d: int = 16, *, seed: int = 0, noise: float = 0.3, attention: bool = True
) -> ProbeData:
    """A set where a track's class is visible in one of its frames only, for frame-level probes.

    A track has ``c`` frames (``c`` or ``c + 1`` for every other track, so lengths vary): one per class
    direction ``e_j`` in a random order, plus isotropic noise. The frame of the track's own class also carries
    a marker (a large value on the last axis). Every track's mean frame is therefore the same up to noise (all
    classes present once, one marker): mean embeddings carry no class, while pooling that attends to the marked
    frame recovers it. With ``attention`` the rows are frames with per-track counts
    (``ProbeData.train_counts`` …); without, each row is a track's mean frame.
    """
    rng = np.random.default_rng(seed)
    if d < c + 1:
        raise ValueError("d must exceed the number of classes")

    def split(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.integers(0, c, m)
        frames, counts = [], []
        for i in range(m):
            order = rng.permutation(c)
            extra = [int(rng.integers(0, c))] if i % 2 else []  # a repeated unmarked frame: lengths differ
            f = np.zeros((c + len(extra), d), np.float32)
            for t, j in enumerate([*order, *extra]):
                f[t, j] = 1.0
            f[int(np.flatnonzero(order == y[i])[0]), -1] = 3.0
            frames.append(f + rng.normal(0, noise, f.shape).astype(np.float32))
            counts.append(len(f))
        return np.concatenate(frames), y, np.array(counts, np.int64)

    def means(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
        groups = np.repeat(np.arange(len(counts)), counts)
        out = np.zeros((len(counts), x.shape[1]), np.float32)
        np.add.at(out, groups, x)
        return out / counts[:, None]

    (xtr, ytr, ctr), (xva, yva, cva), (xte, yte, cte) = split(n), split(n // 3), split(n // 3)
    ids = [f"t{i}" for i in range(len(yte))]
    classes = [f"c{i}" for i in range(c)]
    if not attention:
        return ProbeData(
            "multiclass_classification", classes, means(xtr, ctr), ytr, means(xva, cva), yva,
            {"clean": (means(xte, cte), yte, ids)},
        )  # fmt: skip
    return ProbeData(
        "multiclass_classification", classes, xtr, ytr, xva, yva, {"clean": (xte, yte, ids)},
        train_counts=ctr, val_counts=cva, test_counts={"clean": cte},
    )  # fmt: skip
