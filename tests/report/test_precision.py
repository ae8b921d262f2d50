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
    assert shown([0.9, 0.00001]) == ["0.900", "0.000"]  # the largest, not the smallest, sets them
    assert shown([3e-9]) == ["0.000"]  # too small for six decimals: rounding noise, zero
    assert column_decimals([float("nan")]) == 3 and fmt_number(float("nan")) == "–"
