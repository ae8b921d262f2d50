"""A column's decimals from its values (:mod:`repeval.report.precision`)."""

from __future__ import annotations

from repeval.report.precision import column_decimals
from repeval.report.render import fmt_number


def test_a_columns_decimals_follow_its_largest_value_and_tell_its_means_apart():
    def shown(values, **kw):
        d = column_decimals(values, **kw)
        return [fmt_number(v, decimals=d, scale=kw.get("scale", 1.0)) for v in values]

    assert shown([0.9123, 0.85]) == ["0.912", "0.850"]  # scores within ±1: three decimals, as always
    assert shown([0.9123], scale=100) == ["91.230"]  # --scale 100 keeps them
    assert shown([1164607.887, 2600.4]) == ["1164608", "2600"]  # four significant digits of the largest
    assert shown([12.345, -3.2]) == ["12.35", "−3.20"]
    assert shown([1234.51, 1234.54]) == ["1234.51", "1234.54"]  # two means that would read alike: up to 2 more
    assert shown([0.00042, -0.0001]) == ["0.00042", "−0.00010"]  # tiny changes: the largest's two digits
    assert shown([0.9, 0.00001]) == ["0.900", "1.0e−05"]  # the largest, not the smallest, sets them
    assert column_decimals([float("nan")]) == 3 and fmt_number(float("nan")) == "–"


def test_an_outlier_does_not_set_a_columns_decimals():
    """A diverged probe's R² of −49.8 beside others' 0.39 gave the whole column two decimals (``0.39``, ``0.01``),
    an MSE of 1e9 beside others' 12.3 none (``12``). An outlier (beyond ±1, a hundred times the median magnitude) reads
    at the others' decimals now; a column of changes mostly about zero keeps its largest's."""

    def shown(values):
        d = column_decimals(values)
        return [fmt_number(v, decimals=d) for v in values]

    assert shown([0.392, 0.009, 0.268, -49.823]) == ["0.392", "0.009", "0.268", "−49.823"]
    assert shown([12.3, 14.5, 9.8, 1e9]) == ["12.30", "14.50", "9.80", "1000000000.00"]
    assert shown([-1e-5, 1e-5, 0.0, 0.02, -0.03]) == ["−1.0e−05", "1.0e−05", "0.000", "0.020", "−0.030"]


def test_the_heat_maps_cells_share_one_precision():
    """The report's robustness heat map showed each Δ at three decimals — changes of R² too small for them all read
    ``−0.000`` — or, at a precision of its own, ``−0.000016`` beside ``−0.00018``: its cells share the column's."""
    import re

    import numpy as np

    from repeval.report.heat import robustness_html
    from repeval.report.plots import RobustnessGrid

    grid = RobustnessGrid("r2", {"a": "M1"}, ["D1", "D2", "D3"], np.array([[-0.000179, -0.000016, -0.000441]]), set())
    out = robustness_html(lambda: grid, "robustness: r2")
    assert re.findall(r'<td style="[^"]*" title="[^"]*">([^<]*)</td>', out) == ["−0.00018", "−0.00002", "−0.00044"]
    assert "the closer |Δ| is to the largest, 0.00044" in out, out


def test_a_value_other_than_zero_never_reads_zero():
    """Values below 5e-7 read ``0.000`` whatever their column (a column of them too), and a failed model's 0.00001
    beside others' 0.9 read ``0.000``: a value other than zero now reads in scientific notation where its column's
    decimals would make it zero — its mean, ± std and interval alike; zero and floating-point noise stay ``0.000``."""
    from repeval.report.render import NOISE

    def shown(values, **kw):
        d = column_decimals(values)
        return [fmt_number(v, decimals=d, **kw) for v in values]

    assert shown([3e-9, 4.2e-7, 0.0]) == ["3.0e−09", "4.2e−07", "0.000"]
    assert shown([0.9, 1e-5, -2.5e-8], signed=True) == ["+0.900", "+1.0e−05", "−2.5e−08"]
    assert shown([0.1 + 0.2 - 0.3, -NOISE / 2], signed=True) == ["0.000", "0.000"]
    assert fmt_number(4.2e-7) == "4.2e−07" and fmt_number(4.2e-7, scale=100) == "0.000042"


def test_a_value_that_would_read_zero_reads_its_two_digits_plainly_above_1e_4():
    """A value other than zero that would read zero at its column's decimals was said in scientific notation however
    large: a std of 0.2 beside an MAE of 1234 read ``1234 ± 2.0e−01``, a Δ of 0.0004 beside 0.9 ``+4.0e−04``. Its two
    significant digits read plainly now, ``0.20`` and ``+0.00040``; below 1e-4, in scientific notation still."""
    assert fmt_number(0.2, decimals=0) == "0.20" and fmt_number(-0.004, decimals=2) == "−0.0040"
    assert fmt_number(0.0004, decimals=3, signed=True) == "+0.00040"
    assert fmt_number(-9.5e-5, decimals=3) == "−9.5e−05" and fmt_number(1e-5, decimals=3, signed=True) == "+1.0e−05"
