"""How many decimals a column of numbers shows, chosen from its values (``repeval table --decimals N``: N everywhere).

Every cell of a column has the column's decimals — its mean, its ± std and its interval's bounds alike — so the
points line up down the column and a mean lines up with its std, as pandas and polars show a column at one precision.
The decimals come from the column's values (:func:`column_decimals`):

- a column whose means lie within ±1 (accuracy, F1, ROC-AUC, R² — and their changes under deformation) keeps
  three decimals, ``0.912 ± 0.021`` — or, where its largest mean would read ``0.00x`` or ``0.000`` (changes too
  small to see, an error of a target in [0, 1]), the decimals that show the largest's first two significant digits,
  six at most (a column smaller still keeps three, its values said in scientific notation: ``3.0e−09``):
  ``+0.00042``, ``−0.00120``;
- a column with larger means (an error in the target's units) shows the largest with four significant digits,
  ``1164608 ± 1373710``, ``12.35 ± 0.81`` — up to two more decimals where two different means would read alike.

The decimals follow a column's largest mean, not its smallest: a failed model's score of 0.00001 beside others' 0.9
reads ``1.0e−05`` (a value other than zero that would read zero at its column's decimals is said with two
significant digits, in scientific notation below 1e-4: :func:`repeval.report.render.fmt_number` — a std too:
``0.00040`` beside 0.9, ``12 ± 0.20`` beside 1234), not every cell of its column ``0.90000``. But a mean beyond ±1 a
hundred times the column's median magnitude or more (a diverged probe's R² of −49.82 beside others' 0.392, an MSE of
1e9 beside others' 12.35) does not
set them: it reads at the others' decimals, ``−49.820``, not every cell of its column ``0.39``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from repeval.report.cells import Table

#: the decimals of a column of scores within ±1 (what every column showed before the decimals were chosen per column)
SCORE_DECIMALS = 3
#: the significant digits of a larger column's largest mean
SIGNIFICANT = 4
#: the most decimals a column of small values gets
MOST_DECIMALS = 6
#: a mean this many times a column's median magnitude or more is an outlier, which does not set its decimals
OUTLIER = 100


def _finite(values: Iterable[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
    return a[np.isfinite(a)]


def _lead(x: float) -> int:
    """The decimal place of ``x``'s first significant digit (0.0004: 4; 12.3: -1)."""
    return -math.floor(math.log10(abs(x)))


def _largest(m: np.ndarray) -> float:
    """The largest magnitude of ``m`` but its outliers: beyond ±1 and :data:`OUTLIER` times the median magnitude or
    more (a column of changes, most of them about zero, has none: its largest sets its decimals)."""
    mags = np.abs(m)
    median = float(np.median(mags))
    return float((mags[(mags <= 1) | (mags < OUTLIER * median)] if median > 0 else mags).max())


def _alike(means: np.ndarray, decimals: int) -> bool:
    """Whether two different means (not rounding noise apart) read the same at ``decimals``."""
    vals = np.unique(means)
    for a, b in pairwise(vals):
        if b - a > 1e-9 * max(abs(a), abs(b)) and f"{a:.{decimals}f}" == f"{b:.{decimals}f}":
            return True
    return False


def column_decimals(means: Iterable[float] | np.ndarray, *, scale: float = 1.0) -> int:
    """The decimals a column of ``means`` shows (its stds and interval bounds with them), multiplied by ``scale``
    (``--scale 100``: percentages): see the module's account."""
    m = _finite(means)
    if not m.size:
        return SCORE_DECIMALS
    largest = _largest(m)
    if largest <= 1:
        if largest * scale == 0:
            return SCORE_DECIMALS
        wanted = _lead(largest * scale) + 1
        return wanted if SCORE_DECIMALS < wanted <= MOST_DECIMALS else SCORE_DECIMALS  # smaller still: 0.000
    ms = m * scale
    decimals = max(0, SIGNIFICANT - 1 - math.floor(math.log10(largest * scale)))
    top = decimals + 2
    while decimals < top and _alike(ms, decimals):
        decimals += 1
    return decimals


def table_decimals(t: Table, *, scale: float = 1.0, decimals: int | None = None) -> list[int]:
    """The decimals of each column of ``t`` (:func:`column_decimals` of its means, its scores multiplied by ``scale``:
    :func:`column_scales`); ``decimals``: that many for every column (``--decimals``)."""
    if decimals is not None:
        return [decimals] * len(t.columns)
    return [column_decimals(t.mean[:, j], scale=f) for j, f in enumerate(column_scales(t, scale))]


def is_score(metric: str, means: Iterable[float] | np.ndarray = ()) -> bool:
    """Whether ``metric``'s values are scores of at most 1 — accuracy, F1, ROC-AUC, the key score, R² — that
    ``--scale 100`` makes percentages, not an error in the target's units (MSE, MAE: an MSE of 0.385 is not 38.5%);
    a metric this version does not know is a score where its ``means`` lie within ±1."""
    from repeval.metrics import higher_is_better

    try:
        return higher_is_better(metric)  # every higher-is-better metric is a score of at most 1
    except ValueError:
        m = _finite(means)
        return bool(m.size) and float(np.abs(m).max()) <= 1


def column_scales(t: Table, scale: float) -> list[float]:
    """What each column of ``t`` is multiplied by: ``scale`` for a column of scores (and their changes under
    deformation), 1 for an error's (:func:`is_score`)."""
    return [scale if scale == 1 or is_score(m, t.mean[:, j]) else 1.0 for j, (m, _) in enumerate(t.columns)]


def scale_note(t: Table, scale: float) -> str:
    """What the caption says of ``--scale``: ``values ×100`` when every column is a score, else ``r2 ×100;
    mean_squared_error as computed (an error in the target's units)`` (empty for a scale of 1)."""
    if scale == 1:
        return ""
    factors = column_scales(t, scale)
    metrics = list(dict.fromkeys(m for m, _ in t.columns))
    kept = [m for m in metrics if any(f != scale for (c, _), f in zip(t.columns, factors, strict=True) if c == m)]
    if not kept:
        return f"values ×{scale:g}"
    errors = f"{', '.join(kept)} as computed ({'an error' if len(kept) == 1 else 'errors'} in the target's units)"
    scaled = [m for m in metrics if m not in kept]
    return f"{', '.join(scaled)} ×{scale:g}; {errors}" if scaled else f"{errors}: --scale multiplies scores alone"
