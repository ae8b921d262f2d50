"""Multilabel metrics at a decision threshold (F1, precision, recall; macro, micro, weighted; 0.5, or the one after
``@`` in the name) against scikit-learn, with and without unannotated (track, label) pairs, their bootstrap
intervals, and the threshold's validation in a config."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from repeval.config import ConfigError, parse_config
from repeval.metrics import MetricWarning, bootstrap_ci, canonical_metric_name, check_metric_for_task, compute_metrics
from repeval.probes.losses import criterion_value
from repeval.tasks import resolve_criterion

ML = "multilabel_classification"
NAMES = [f"{m}_{avg}" for m in ("f1", "precision", "recall") for avg in ("macro", "micro", "weighted")]
SK = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
METRICS = ("precision", "recall", "f1")  # precision_recall_fscore_support's order


def _case(seed: int, n: int, c: int, masked: bool, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.6)).astype(np.float64)
    # scores exactly at the threshold (ties) count as predicted positive
    s = rng.choice([0.0, 0.49, 0.5, 1.0], size=(n, c)) if ties else rng.random((n, c))
    if masked:
        y[rng.random((n, c)) < rng.uniform(0.1, 0.6)] = np.nan
    return y, s


def _sklearn(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> dict[tuple[str, str | None], float]:
    """scikit-learn on each label's annotated tracks (``zero_division=0``), over the labels with a positive or a
    predicted positive there; the micro averages on the annotated pairs; weighted by each label's positives."""
    obs = ~np.isnan(y)
    pred = (s >= threshold).astype(int)
    out: dict[tuple[str, str | None], float] = {}
    per, support = [], []
    for c in range(y.shape[1]):
        yt, yp = y[obs[:, c], c].astype(int), pred[obs[:, c], c]
        if not (yt.any() or yp.any()):
            continue
        prf = skm.precision_recall_fscore_support(yt, yp, average="binary", zero_division=0)[:3]
        per.append(prf)
        support.append(yt.sum())
        out.update({(f"{m}_macro", f"t{c}"): v for m, v in zip(METRICS, prf, strict=True)})
    yt, yp = y[obs].astype(int), pred[obs]
    micro = skm.precision_recall_fscore_support(yt, yp, average="binary", zero_division=0)[:3] if obs.any() else ()
    for j, (m, den) in enumerate(zip(METRICS, (yp.sum(), yt.sum(), yt.sum() + yp.sum()), strict=True)):
        values = np.array([v[j] for v in per])
        out[(f"{m}_macro", None)] = float(values.mean()) if per else np.nan
        out[(f"{m}_weighted", None)] = values @ support / sum(support) if sum(support) else np.nan
        out[(f"{m}_micro", None)] = micro[j] if den else np.nan
    return out


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_threshold_metrics_match_sklearn_on_the_annotated_pairs(n, c, masked, ties, seed):
    y, s = _case(seed, n, c, masked, ties)
    labels = [f"t{i}" for i in range(c)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        got = {(r.metric, r.label): r.value for r in compute_metrics(NAMES, ML, y, s, labels)}
    want = _sklearn(y, s)
    assert set(got) == set(want)  # a per-label row exactly for the labels with a positive or a prediction
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    if not masked and c > 1:  # fully annotated: scikit-learn's multilabel averages (one column reads as binary)
        pred = (s >= 0.5).astype(int)
        for m, fn in SK.items():
            if not np.isnan(got[(f"{m}_micro", None)]):  # scikit-learn gives 1 where no pair is true or predicted
                assert got[(f"{m}_micro", None)] == pytest.approx(fn(y, pred, average="micro", zero_division=0))
            if y.any(0).all():  # every label has a positive (scikit-learn gives 0 where we give no value)
                assert got[(f"{m}_macro", None)] == pytest.approx(fn(y, pred, average="macro", zero_division=0))
                assert got[(f"{m}_weighted", None)] == pytest.approx(fn(y, pred, average="weighted", zero_division=0))


def test_undefined_and_zero_division_cases():
    """Label a: never predicted (precision 0, recall 0, F1 0); b: no positive but predicted (recall 0); c: neither
    (no value, no row, out of the macro averages); d: perfect."""
    y = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1.0]])
    s = np.array([[0.1, 0.9, 0.2, 0.7], [0.2, 0.1, 0.4, 0.1], [0.3, 0.6, 0.0, 0.5]])
    with pytest.warns(MetricWarning, match=r"F1, precision and recall are left out of the macro averages too unless"):
        rows = compute_metrics(NAMES, ML, y, s, list("abcd"))
    per = {(r.metric, r.label): r.value for r in rows if r.label}
    assert per == {
        **{(f"{m}_macro", "a"): 0.0 for m in SK},
        **{(f"{m}_macro", "b"): 0.0 for m in SK},
        **{(f"{m}_macro", "d"): 1.0 for m in SK},
    }
    agg = {r.metric: r.value for r in rows if r.label is None}
    assert agg["f1_macro"] == agg["precision_macro"] == agg["recall_macro"] == pytest.approx(1 / 3)
    # nothing predicted anywhere: micro precision undefined; no positive either: every value undefined
    with pytest.warns(MetricWarning, match=r"no positive test example \(b\)"):
        none = compute_metrics(NAMES, ML, np.array([[1, 0], [0, 0.0]]), np.zeros((2, 2)), ["a", "b"])
    assert np.isnan(next(r.value for r in none if r.metric == "precision_micro"))
    assert next(r.value for r in none if r.metric == "recall_micro") == 0.0
    with pytest.warns(MetricWarning):
        empty = compute_metrics(NAMES, ML, np.zeros((2, 2)), np.zeros((2, 2)), ["a", "b"])
    assert all(np.isnan(r.value) for r in empty) and all(r.label is None for r in empty)


def test_unannotated_scores_change_nothing_and_intervals_equal_a_naive_loop():
    y, s = _case(5, 80, 3, masked=True, ties=False)
    other = np.where(np.isnan(y), 1 - s, s)
    kw = {"ci": True, "n_resamples": 200, "seed": 7}
    a = compute_metrics(NAMES, ML, y, s, ["t0", "t1", "t2"], **kw)
    assert a == compute_metrics(NAMES, ML, y, other, ["t0", "t1", "t2"], **kw)
    assert all(r.ci_low is not None and r.ci_low <= r.value <= r.ci_high for r in a)
    # the interval of f1_macro: resamples by track, each scored with scikit-learn on its annotated pairs, a resample
    # where a label the value averages is undefined left out (as for every macro average)
    n_resamples, alpha, seed = 200, 0.1, 2
    naive = []
    for row in np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y))):
        per = {k[1]: v for k, v in _sklearn(y[row], s[row]).items() if k[0] == "f1_macro" and k[1]}
        if len(per) == 3:
            naive.append(np.mean(list(per.values())))
    got = bootstrap_ci("f1_macro", ML, y, s, ["t0", "t1", "t2"], n_resamples, alpha, seed)
    np.testing.assert_allclose(got, np.quantile(naive, [alpha / 2, 1 - alpha / 2]), rtol=1e-9, atol=1e-12)


def test_threshold_metrics_apply_to_tagging_and_are_maximised_as_criteria():
    for name in ("f1_macro", "f1_micro", "precision_macro", "recall_micro", "precision", "macro_recall"):
        check_metric_for_task(name, ML)
    assert resolve_criterion("val_f1_macro", ML) == ("val_f1_macro", "max")
    assert resolve_criterion("val_precision", ML) == ("val_precision_macro", "max")
    assert resolve_criterion("val_F1-macro@0.30", ML) == ("val_f1_macro@0.3", "max")
    with pytest.raises(ValueError, match="does not apply to a regression task"):
        check_metric_for_task("precision_macro", "regression")


def test_a_threshold_in_the_name_matches_sklearn_at_it_on_the_annotated_pairs():
    """``f1_macro@0.3``: tags predicted at score >= 0.3 (ties included), each label on its annotated tracks; two
    thresholds of one metric are two distinct rows, each with its own interval."""
    y, s = _case(11, 60, 4, masked=True, ties=False)
    s[:5, 0] = 0.3  # at the threshold: predicted
    labels = [f"t{i}" for i in range(4)]
    names = [f"{n}@0.3" for n in NAMES] + ["F1-macro@0.70", "f1_macro"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        rows = compute_metrics(names, ML, y, s, labels, ci=True, n_resamples=50)
    got = {(r.metric, r.label): r.value for r in rows}
    want = {(f"{m}@0.3", lab): v for (m, lab), v in _sklearn(y, s, 0.3).items()}
    want |= {("f1_macro@0.7", lab): v for (m, lab), v in _sklearn(y, s, 0.7).items() if m == "f1_macro"}
    want |= {("f1_macro", lab): v for (m, lab), v in _sklearn(y, s, 0.5).items() if m == "f1_macro"}
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    assert len({got[(m, None)] for m in ("f1_macro@0.3", "f1_macro", "f1_macro@0.7")}) == 3
    assert all(r.ci_low is not None for r in rows if r.label is None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # as a validation criterion (early stopping, selection)
        assert criterion_value("val_f1_macro@0.3", ML, y, s, 0.0, labels) == got[("f1_macro@0.3", None)]


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        (["f1_macro@1.5"], r"f1_macro@1\.5'.*between 0 and 1 \(both excluded\).*e\.g\. f1_macro@0\.3"),
        (["f1_macro@0"], "between 0 and 1"),
        (["f1_macro@abc"], "between 0 and 1"),
        (["roc_auc_macro@0.3"], r"roc_auc_macro takes no decision threshold.*remove '@0\.3'"),
    ],
)
def test_config_rejects_a_bad_threshold_naming_the_fix(metrics, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(_config(ML, metrics))


def test_config_accepts_thresholds_on_tagging_only():
    exp = parse_config(_config(ML, ["f1_macro@0.3", "f1_macro@0.25", "precision_micro", "AUC-ROC"], "val_f1_micro@0.4"))
    assert exp.experiments[0].metric_names == ("f1_macro@0.3", "f1_macro@0.25", "precision_micro", "roc_auc_macro")
    with pytest.raises(ConfigError, match=r"a decision threshold applies to multilabel_classification tasks only.*"
                       r"predicts each track's top-scored class: write f1_macro \(without '@'\)"):  # fmt: skip
        parse_config(_config("multiclass_classification", ["f1_macro@0.3"]))
    with pytest.raises(ConfigError, match=r"save_criterion: .*decision threshold applies to multilabel"):
        parse_config(_config("multiclass_classification", None, "val_recall_macro@0.3"))
    assert canonical_metric_name("precision@0.250") == "precision_macro@0.25"


def _config(task_type: str, metrics: list[str] | None, criterion: str | None = None) -> dict:
    probe = {"type": "classifier", "hidden_units": []} | ({"save_criterion": criterion} if criterion else {})
    exp = {
        "task": {"name": "tags", "type": task_type},
        "datasets": [{"name": "mix", "type": "catalog", "manifest": "m.csv", "label_column": "tags"}],
        "embedding_models": ["mfcc-stats"],
        "downstream_models": [probe],
    }
    return {"experiments": [exp | ({"metrics": metrics} if metrics else {})]}
