"""Multilabel metrics where a data set annotates only some labels per track (NaN in ``y_true``, OpenMIC-2018):
each label is scored on the tracks that annotate it, the micro averages on the annotated pairs, the bootstrap
resamples tracks and never looks at an unannotated pair."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from repeval.metrics import compute_metrics

LABELS = ["a", "b", "c"]


def masked_case(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < 0.4).astype(np.float64)
    s = np.clip(0.5 * y + rng.random((n, 3)) * 0.8, 0, 1)
    y[rng.random((n, 3)) < 0.35] = np.nan  # about a third of the pairs unannotated
    return y, s


def test_per_label_macro_and_micro_equal_sklearn_on_the_annotated_pairs():
    y, s = masked_case()
    rows = {(r.metric, r.label): r.value for r in compute_metrics(
        ["roc_auc_macro", "roc_auc_micro", "pr_auc_macro", "pr_auc_micro"], "multilabel_classification", y, s, LABELS
    )}  # fmt: skip
    obs = ~np.isnan(y)
    for metric, fn in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
        per = [fn(y[obs[:, c], c], s[obs[:, c], c]) for c in range(3)]
        for c, lab in enumerate(LABELS):
            assert rows[(f"{metric}_macro", lab)] == pytest.approx(per[c], abs=1e-12)
        assert rows[(f"{metric}_macro", None)] == pytest.approx(np.mean(per), abs=1e-12)
        assert rows[(f"{metric}_micro", None)] == pytest.approx(fn(y[obs], s[obs]), abs=1e-12)


def test_a_label_without_annotated_positive_is_left_out_of_the_macro_average_as_before():
    y, s = masked_case(1)
    y[:, 2] = np.where(np.isnan(y[:, 2]), np.nan, 0.0)  # label c: annotated negatives only
    with pytest.warns(UserWarning, match="no positive test example"):
        rows = compute_metrics(["roc_auc_macro"], "multilabel_classification", y, s, LABELS)
    obs = ~np.isnan(y)
    per = [roc_auc_score(y[obs[:, c], c], s[obs[:, c], c]) for c in range(2)]
    assert {r.label for r in rows} == {None, "a", "b"}
    assert next(r.value for r in rows if r.label is None) == pytest.approx(np.mean(per), abs=1e-12)


def test_bootstrap_intervals_ignore_the_scores_of_unannotated_pairs():
    """Scores where a pair is unannotated change nothing, point estimate or interval (the same track resamples)."""
    y, s = masked_case(2)
    other = np.where(np.isnan(y), 1 - s, s)
    kw = {"ci": True, "n_resamples": 200, "seed": 3}
    names = ["roc_auc_macro", "pr_auc_micro"]
    a = compute_metrics(names, "multilabel_classification", y, s, LABELS, **kw)
    b = compute_metrics(names, "multilabel_classification", y, other, LABELS, **kw)
    assert a == b
    assert all(r.ci_low is not None and r.ci_low <= r.value <= r.ci_high for r in a)
    # yet the unannotated scores would matter if counted as absent
    absent = np.nan_to_num(y)
    assert compute_metrics(names, "multilabel_classification", absent, s, LABELS) != compute_metrics(
        names, "multilabel_classification", absent, other, LABELS
    )
