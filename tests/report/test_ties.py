"""A table column where every model ties (each 1.0) has no best: no cell of it is bold, as in the per-label tables."""

from __future__ import annotations

import numpy as np

from repeval.report.render import render
from repeval.report.results import load_run
from repeval.report.tables import make_table

TASK = "instrument_recognition"


def test_a_column_every_model_ties_on_has_no_best_in_any_format(run_dir):
    """The main tables (`repeval table`, the report's) bolded every model of a column whose values all tie (each model
    at accuracy 1.0 on clean): each "the best". As the per-label tables do since, such a column has no bold cell, the
    terminal's ``*`` legend is said only under a table with a marked cell, and a column with one best keeps it."""
    results = load_run(run_dir).results
    clean = (results["scenario"] == "clean") & (results["metric"] == "accuracy") & results["label"].isna()
    tied = results.assign(value=results["value"].where(~clean, 1.0))
    t = make_table(tied, "model_comparison", task=TASK, metrics=["accuracy", "f1_macro"])
    accuracy = [j for j, (m, _) in enumerate(t.columns) if m == "accuracy"]
    assert np.isclose(t.mean[:, accuracy], 1.0).all() and len(t.rows) > 1  # every model ties on accuracy
    assert not t.best[:, accuracy].any()
    assert t.best.any(axis=0).sum() == len(t.columns) - len(accuracy)  # f1_macro still has its best
    html = render(t, "html")
    assert html.count('class="num best"') == int(t.best.sum())
    plain = render(t, "plain", color=False)
    assert plain.count("1.000*") == 0 and "* best in column" in plain
    alone = make_table(tied, "model_comparison", task=TASK, metrics=["accuracy"])
    assert not alone.best.any()
    assert "best in column" not in render(alone, "plain", color=False)
    assert "**1.000" not in render(alone, "markdown") and "bold:" not in render(alone, "markdown")
