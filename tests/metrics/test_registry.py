"""Names, task applicability, validation and the contract every registered metric meets."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from repeval.metrics import (
    METRICS,
    TASK_TYPE_NAMES,
    MetricRow,
    MetricWarning,
    canonical_metric_name,
    check_metric_for_task,
    compute_metrics,
    higher_is_better,
    metrics_for_task,
    validate,
)
from repeval.metrics.base import ones_weights
from repeval.testing.results import fake_predictions


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("AUC-ROC", "roc_auc_macro"),
        ("AUC-PR", "pr_auc_macro"),
        ("weighted_score_key", "key_weighted_score_micro"),
        ("macro_weighted_score", "key_weighted_score_macro"),
        ("average_precision", "pr_auc_macro"),
        ("roc_auc", "roc_auc_macro"),
        ("categorical_accuracy", "accuracy"),
        ("F1 macro", "f1_macro"),
        ("r2", "r2"),
        ("aucroc", "roc_auc_macro"),  # HEAR and MARBLE
        ("ap", "pr_auc_macro"),  # MARBLE
        ("top1_acc", "accuracy"),  # HEAR
        ("mean average precision", "pr_auc_macro"),
        ("macro_roc_auc", "roc_auc_macro"),  # the average first
        ("micro-PR-AUC", "pr_auc_micro"),
        ("weighted_roc_auc", "roc_auc_weighted"),
        ("macro_key_weighted_score", "key_weighted_score_macro"),
    ],
)
def test_mir_ref_spellings(spelling, canonical):
    assert canonical_metric_name(spelling) == canonical


def test_unknown_metric_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'roc_auc_micro'"):
        canonical_metric_name("roc_auc_mcro")
    with pytest.raises(ValueError, match="Valid metrics"):
        canonical_metric_name("zzz")


def test_check_metric_for_task():
    check_metric_for_task("AUC-ROC", "multilabel_classification")
    with pytest.raises(
        ValueError, match=r"does not apply to a multilabel_classification task \(it applies to regression\); use one of"
    ):
        check_metric_for_task("r2", "multilabel_classification")
    with pytest.raises(ValueError, match="key_estimation"):
        check_metric_for_task("weighted_score_key", "multiclass_classification")
    with pytest.raises(ValueError, match="unknown task type"):
        check_metric_for_task("accuracy", "multiclass")


def test_higher_is_better_and_row_compat():
    assert higher_is_better("AUC-ROC")
    assert not higher_is_better("mean_squared_error")
    row = MetricRow("accuracy", 0.5)
    assert row.label is None and row.ci_low is None
    assert MetricRow("f1_macro", 0.2, "oboe").label == "oboe"


def test_every_task_type_has_metrics():
    for task_type in TASK_TYPE_NAMES:
        assert metrics_for_task(task_type)


@pytest.mark.parametrize(
    ("task_type", "y_true", "y_score", "labels", "match"),
    [
        ("multiclass_classification", np.array([0, 1]), np.ones((2, 2)), [], "labels is empty"),
        ("multiclass_classification", np.array([], dtype=int), np.ones((0, 2)), ["a", "b"], "y_true is empty"),
        ("multiclass_classification", np.array([0, 2]), np.ones((2, 2)), ["a", "b"], "outside"),
        ("multiclass_classification", np.array([0, 1]), np.ones((2, 3)), ["a", "b"], "3 columns but 2 labels"),
        ("multiclass_classification", np.array([0, 1]), np.ones((3, 2)), ["a", "b"], "expected"),
        ("multiclass_classification", np.eye(2), np.ones((2, 2)), ["a", "b"], "argmax"),
        ("multiclass_classification", np.array([0.5, 1.0]), np.ones((2, 2)), ["a", "b"], "integer"),
        ("multiclass_classification", np.array([0, 1]), np.array([[0.1, np.nan], [1, 0]]), ["a", "b"], "NaN"),
        ("multiclass_classification", np.array([0, 1]), np.ones((2, 2)), ["a", "a"], "duplicates"),
        ("multilabel_classification", np.array([[0, 2]]), np.ones((1, 2)), ["a", "b"], "only 0 and 1"),
        ("multilabel_classification", np.array([0, 1]), np.ones((2, 2)), ["a", "b"], "0/1 matrix"),
        ("key_estimation", np.array([0, 1]), np.ones((2, 2)), ["C major", "H minor"], "not a mir_eval key"),
        ("regression", np.ones((3, 2)), np.ones((3, 1)), ["a"], "one column per"),
        ("regression", np.array([1.0, np.inf]), np.ones(2), ["a"], "NaN or infinite"),
        ("ranking", np.array([0]), np.ones((1, 1)), ["a"], "unknown task type"),
    ],
)
def test_validate_rejects_malformed_input(task_type, y_true, y_score, labels, match):
    with pytest.raises(ValueError, match=match):
        validate(task_type, y_true, y_score, labels)


def _draw(task_type: str, rng: np.random.Generator):
    c = 4 if task_type != "regression" else 2
    return fake_predictions(task_type, rng, n=40, c=c, ties=task_type != "regression")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_contract_weighted_kernel_equals_materialised_resample(name):
    """Counts as weights must give exactly the metric of the resampled test set (what the bootstrap relies on)."""
    spec = METRICS[name]
    assert spec.name == name and name == name.lower()
    shipped = pickle.loads(pickle.dumps(spec.kernel))  # Ray ships metrics by pickle
    rng = np.random.default_rng(7)
    for task_type in sorted(spec.task_types):
        y, s, labels = _draw(task_type, rng)
        yt, ys, labs = validate(task_type, y, s, labels, warn=False)
        for _ in range(5):
            idx = rng.integers(0, len(yt), size=len(yt))
            counts = np.bincount(idx, minlength=len(yt)).astype(float)[None, :]
            got_agg, got_per = shipped(yt, ys, labs, counts)
            want_agg, want_per = spec.kernel(yt[idx], ys[idx], labs, ones_weights(len(idx)))
            np.testing.assert_allclose(got_agg, want_agg, rtol=1e-9, atol=1e-12)
            assert (got_per is None) == (want_per is None) == (not spec.per_label)
            if got_per is not None:
                np.testing.assert_allclose(got_per, want_per, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_contract_compute_metrics_rows(name):
    rng = np.random.default_rng(8)
    for task_type in sorted(METRICS[name].task_types):
        y, s, labels = _draw(task_type, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetricWarning)
            rows = compute_metrics([name, name], task_type, y, s, labels)  # duplicates collapse
        aggregates = [r for r in rows if r.label is None]
        assert len(aggregates) == 1 and aggregates[0].metric == name
        assert all(r.metric == name and r.label in labels for r in rows if r.label is not None)
        assert bool([r for r in rows if r.label is not None]) == METRICS[name].per_label
