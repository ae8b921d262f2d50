"""Every metric against scikit-learn / mir_eval on random and edge-case inputs."""

from __future__ import annotations

import warnings

import mir_eval
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from repeval.metrics import MetricWarning, compute_metrics, confusion_matrix
from repeval.testing.results import KEYS, fake_predictions

ATOL = 1e-10
AVERAGES = ("micro", "macro", "weighted")


def values(rows, metric):
    agg = [r.value for r in rows if r.metric == metric and r.label is None]
    per = {r.label: r.value for r in rows if r.metric == metric and r.label is not None}
    assert len(agg) == 1
    return agg[0], per


def quiet_compute(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        return compute_metrics(*args, **kwargs)


# ----------------------------------------------------------------------------- ranking
multilabel_case = st.tuples(
    st.integers(2, 40),  # n
    st.integers(1, 6),  # labels
    st.booleans(),  # tied scores
    st.integers(0, 2**32 - 1),
)


def _check_ranking(y, s):
    labels = [f"t{i}" for i in range(y.shape[1])]
    names = ["roc_auc_macro", "roc_auc_micro", "roc_auc_weighted", "pr_auc_macro", "pr_auc_micro", "pr_auc_weighted"]
    rows = quiet_compute(names, "multilabel_classification", y, s, labels)
    pos = y.sum(0)
    roc_ok = np.flatnonzero((pos > 0) & (pos < len(y)))
    pr_ok = np.flatnonzero(pos > 0)
    for avg in ("macro", "weighted"):
        got, _per = values(rows, f"roc_auc_{avg}")
        if len(roc_ok):
            want = skm.roc_auc_score(y[:, roc_ok], s[:, roc_ok], average=avg)
            assert got == pytest.approx(want, abs=ATOL)
        else:
            assert np.isnan(got)
        got, _ = values(rows, f"pr_auc_{avg}")
        if len(pr_ok):
            want = skm.average_precision_score(y[:, pr_ok], s[:, pr_ok], average=avg)
            assert got == pytest.approx(want, abs=ATOL)
        else:
            assert np.isnan(got)
    _, per_roc = values(rows, "roc_auc_macro")
    _, per_pr = values(rows, "pr_auc_macro")
    assert set(per_roc) == {labels[i] for i in roc_ok}
    assert set(per_pr) == {labels[i] for i in pr_ok}
    for i in roc_ok:
        assert per_roc[labels[i]] == pytest.approx(skm.roc_auc_score(y[:, i], s[:, i]), abs=ATOL)
    for i in pr_ok:
        assert per_pr[labels[i]] == pytest.approx(skm.average_precision_score(y[:, i], s[:, i]), abs=ATOL)
    flat = y.ravel()
    got, _ = values(rows, "roc_auc_micro")
    if 0 < flat.sum() < len(flat):
        assert got == pytest.approx(skm.roc_auc_score(y, s, average="micro"), abs=ATOL)
    else:
        assert np.isnan(got)
    got, _ = values(rows, "pr_auc_micro")
    if flat.sum() > 0:
        assert got == pytest.approx(skm.average_precision_score(y, s, average="micro"), abs=ATOL)


@settings(max_examples=60, deadline=None)
@given(multilabel_case)
def test_ranking_matches_sklearn(case):
    n, c, ties, seed = case
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.4).astype(int)
    s = rng.integers(0, 3, size=(n, c)) / 2.0 if ties else rng.random((n, c))
    _check_ranking(y, s)


def test_ranking_all_scores_tied():
    rng = np.random.default_rng(1)
    y = (rng.random((50, 3)) < 0.3).astype(int)
    y[0] = 1
    s = np.full(y.shape, 0.5)
    rows = compute_metrics(["roc_auc_macro", "pr_auc_macro"], "multilabel_classification", y, s, ["a", "b", "c"])
    assert values(rows, "roc_auc_macro")[0] == pytest.approx(0.5)
    assert values(rows, "pr_auc_macro")[0] == pytest.approx(y.mean(0).mean())
    _check_ranking(y, s)


def test_ranking_empty_and_full_labels_are_left_out_with_a_warning():
    rng = np.random.default_rng(2)
    y = (rng.random((30, 4)) < 0.5).astype(int)
    y[:, 1] = 0  # no positive ("empty label")
    y[:, 2] = 1  # single class present
    s = rng.random(y.shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_metrics(["roc_auc_macro"], "multilabel_classification", y, s, list("abcd"))
    messages = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    assert any("no positive test example (b)" in m for m in messages)
    assert any("positive on every test example (c)" in m for m in messages)
    _check_ranking(y, s)


def test_ranking_one_vs_rest_for_multiclass():
    rng = np.random.default_rng(3)
    y, s, labels = fake_predictions("multiclass_classification", rng, n=80, c=4)
    s = s / s.sum(1, keepdims=True)
    rows = compute_metrics(["roc_auc_macro", "roc_auc_weighted"], "multiclass_classification", y, s, labels)
    for avg in ("macro", "weighted"):
        want = skm.roc_auc_score(y, s, multi_class="ovr", average=avg)
        assert values(rows, f"roc_auc_{avg}")[0] == pytest.approx(want, abs=ATOL)


# ---------------------------------------------------------------------- classification
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 50), st.integers(1, 6), st.booleans(), st.integers(0, 2**32 - 1))
def test_classification_matches_sklearn(n, c, ties, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    s = rng.integers(0, 2, size=(n, c)).astype(float) if ties else rng.random((n, c))
    labels = [f"k{i}" for i in range(c)]
    names = ["accuracy", "balanced_accuracy"] + [f"{m}_{a}" for m in ("f1", "precision", "recall") for a in AVERAGES]
    scores = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes only in y_pred
        rows = compute_metrics(names, "multiclass_classification", y, s, labels)
        pred = s.argmax(1)
        assert values(rows, "accuracy")[0] == pytest.approx(skm.accuracy_score(y, pred), abs=ATOL)
        assert values(rows, "balanced_accuracy")[0] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=ATOL)
        present = np.union1d(y, pred)
        for m, fn in scores.items():
            for avg in AVERAGES:
                want = fn(y, pred, average=avg, zero_division=0)
                assert values(rows, f"{m}_{avg}")[0] == pytest.approx(want, abs=ATOL), f"{m}_{avg}"
            per = fn(y, pred, labels=present, average=None, zero_division=0)
            want_per = {labels[k]: v for k, v in zip(present, per, strict=True)}
            assert values(rows, f"{m}_macro")[1] == pytest.approx(want_per), m
        recall = skm.recall_score(y, pred, labels=np.unique(y), average=None)
    assert values(rows, "balanced_accuracy")[1] == pytest.approx(
        dict(zip([labels[k] for k in np.unique(y)], recall, strict=True))
    )


def test_single_class_present_warns_and_matches_sklearn():
    y = np.zeros(20, dtype=int)
    s = np.random.default_rng(4).random((20, 3))
    with pytest.warns(MetricWarning, match="only one class"):
        rows = compute_metrics(["accuracy", "f1_macro"], "multiclass_classification", y, s, ["a", "b", "c"])
    pred = s.argmax(1)
    assert values(rows, "accuracy")[0] == pytest.approx(skm.accuracy_score(y, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert values(rows, "f1_macro")[0] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))


@pytest.mark.parametrize("task_type", ["multiclass_classification", "key_estimation"])
def test_one_class_warning_says_what_each_average_does(task_type):
    """Every test track of one class: the warning names, per metric, what the values below are — ROC-AUC macro
    undefined, PR-AUC macro 1 whatever the scores, f1_macro the class's F1 averaged with 0 for each other class
    predicted for some track (not "that class alone")."""
    labels = ["C major", "G major", "A minor"]
    y = np.zeros(6, dtype=int)
    s = np.array([[0.8, 0.1, 0.1]] * 4 + [[0.1, 0.8, 0.1]] * 2)  # two tracks predicted as "G major"
    names = ["f1_macro", "f1_weighted", "balanced_accuracy", "roc_auc_macro", "pr_auc_macro", "roc_auc_micro"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = compute_metrics(names, task_type, y, s, labels, ci=False)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    assert "describe that class alone" not in message.split(";")[0]
    assert "roc_auc_macro and roc_auc_weighted are undefined" in message
    assert np.isnan(values(rows, "roc_auc_macro")[0])
    assert "pr_auc_macro and pr_auc_weighted are 1 whatever the scores" in message
    assert values(rows, "pr_auc_macro")[0] == 1.0
    assert "f1_macro averages its F1 with F1 0 for the 1 other class predicted for some track (G major)" in message
    assert values(rows, "f1_macro")[0] == pytest.approx(0.8 / 2)  # F1 of C major is 0.8, G major's 0
    assert values(rows, "f1_weighted")[0] == pytest.approx(0.8) and "f1_weighted" in message
    assert np.isfinite(values(rows, "roc_auc_micro")[0]) and "micro averages stay defined" in message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = compute_metrics(["f1_macro"], task_type, y[:4], s[:4], labels, ci=False)
    assert "f1_macro is its F1 alone" in str(caught[0].message) and values(rows, "f1_macro")[0] == 1.0
    s[-1] = [0.1, 0.1, 0.8]  # a track predicted as each other class: counted in words, not "class(es)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_metrics(["f1_macro"], task_type, y, s, labels, ci=False)
    assert "for the 2 other classes predicted for some track (G major, A minor)" in str(caught[0].message)


def test_absent_class_warns_and_has_no_per_class_row():
    y = np.array([0, 1, 0, 1, 0])
    s = np.eye(3)[[0, 1, 1, 1, 0]]
    with pytest.warns(MetricWarning, match="no test example"):
        rows = compute_metrics(["f1_macro"], "multiclass_classification", y, s, ["a", "b", "c"])
    assert set(values(rows, "f1_macro")[1]) == {"a", "b"}


@pytest.mark.parametrize("predicted", [False, True])
def test_absent_class_warning_says_what_each_average_does(predicted):
    """A class with no test example is left out of the ROC-AUC, PR-AUC and recall macro averages (undefined), but
    f1_macro (scikit-learn's ``f1_score(average="macro")``, no ``labels=``) counts it with F1 0 once some track is
    predicted as it: the warning says which, per metric, and the values agree with it."""
    y = np.array([0, 0, 1, 1])
    s = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    if predicted:
        s[1] = [0.2, 0.1, 0.7]  # one track predicted as the absent class "c"
    names = ["f1_macro", "balanced_accuracy", "roc_auc_macro", "pr_auc_macro"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = compute_metrics(names, "multiclass_classification", y, s, ["a", "b", "c"])
    (message,) = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    assert "(c): their ROC-AUC, PR-AUC and recall are undefined and left out of roc_auc_macro, pr_auc_macro, " in (
        message
    )
    pred = s.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about a class only in y_pred
        f1 = skm.f1_score(y, pred, average=None, labels=[0, 1, 2], zero_division=0)
        assert values(rows, "f1_macro")[0] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
        assert values(rows, "balanced_accuracy")[0] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    if predicted:
        assert "f1_macro counts them with F1 0" in message
        assert values(rows, "f1_macro")[0] == pytest.approx(f1.mean()) and values(rows, "f1_macro")[1]["c"] == 0
    else:
        assert "f1_macro leaves them out too" in message
        assert values(rows, "f1_macro")[0] == pytest.approx(f1[:2].mean()) and "c" not in values(rows, "f1_macro")[1]
    for name in ("roc_auc_macro", "pr_auc_macro"):
        assert set(values(rows, name)[1]) == {"a", "b"}
        assert values(rows, name)[0] == pytest.approx(np.mean(list(values(rows, name)[1].values())))


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(5)
    y, s, labels = fake_predictions("multiclass_classification", rng, n=70, c=5, ties=True)
    want = skm.confusion_matrix(y, s.argmax(1), labels=range(5))
    np.testing.assert_array_equal(confusion_matrix(y, s, labels), want)
    norm = confusion_matrix(y, s, labels, normalize="true")
    np.testing.assert_allclose(norm, skm.confusion_matrix(y, s.argmax(1), labels=range(5), normalize="true"))
    with pytest.raises(ValueError, match="per-label"):
        confusion_matrix(np.eye(3, dtype=int), np.eye(3), list("abc"), task_type="multilabel_classification")


# --------------------------------------------------------------------------------- key
def _mir_ref_key(y, pred, labels):
    scores = [mir_eval.key.weighted_score(labels[t], labels[p]) for t, p in zip(y, pred, strict=True)]
    by_key: dict[str, list[float]] = {}
    for t, sc in zip(y, scores, strict=True):
        by_key.setdefault(labels[t], []).append(sc)
    return float(np.mean(scores)), {k: float(np.mean(v)) for k, v in by_key.items()}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, len(KEYS)), st.booleans(), st.integers(0, 2**32 - 1))
def test_key_weighted_score_matches_mir_eval(n, c, ties, seed):
    rng = np.random.default_rng(seed)
    labels = KEYS[:c]
    y = rng.integers(0, c, size=n)
    s = rng.integers(0, 2, size=(n, c)).astype(float) if ties else rng.random((n, c))
    rows = quiet_compute(["weighted_score_key", "key_weighted_score_macro"], "key_estimation", y, s, labels)
    micro, per = _mir_ref_key(y, s.argmax(1), labels)
    assert values(rows, "key_weighted_score_micro")[0] == pytest.approx(micro, abs=ATOL)
    got_macro, got_per = values(rows, "key_weighted_score_macro")
    assert got_macro == pytest.approx(np.mean(list(per.values())), abs=ATOL)
    assert got_per == pytest.approx(per)


def test_key_scoring_table():
    labels = ["C major", "G major", "A minor", "C minor", "C# major", "Db major"]
    y = np.zeros(6, dtype=int)
    with pytest.warns(MetricWarning):
        rows = compute_metrics(["key_weighted_score_micro"], "key_estimation", np.array([4]), np.eye(6)[[5]], labels)
    assert rows[0].value == 1.0  # C# major vs Db major: same key
    scores = np.eye(6)[[0, 1, 2, 3, 5, 5]]
    with pytest.warns(MetricWarning):
        rows = compute_metrics(["key_weighted_score_macro"], "key_estimation", y, scores, labels)
    # same, fifth above, relative, parallel, other, other
    assert rows[0].value == pytest.approx(np.mean([1.0, 0.5, 0.3, 0.2, 0.0, 0.0]))


# -------------------------------------------------------------------------- regression
@settings(max_examples=40, deadline=None)
@given(st.integers(3, 50), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_r2_matches_sklearn(n, d, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d))
    p = y + rng.normal(scale=rng.random() * 2, size=(n, d))
    rows = compute_metrics(["r2", "mse", "mae"], "regression", y, p, [f"d{i}" for i in range(d)])
    agg, per = values(rows, "r2")
    assert agg == pytest.approx(skm.r2_score(y, p), abs=1e-9)
    want = skm.r2_score(y, p, multioutput="raw_values")
    assert [per[f"d{i}"] for i in range(d)] == pytest.approx(list(want), abs=1e-9)
    assert values(rows, "mean_squared_error")[0] == pytest.approx(skm.mean_squared_error(y, p), abs=1e-12)
    assert values(rows, "mean_absolute_error")[0] == pytest.approx(skm.mean_absolute_error(y, p), abs=1e-12)


def test_r2_constant_dimension_is_undefined():
    rng = np.random.default_rng(6)
    y = np.c_[rng.normal(size=20), np.full(20, 3.0)]
    p = y + rng.normal(size=y.shape)
    with pytest.warns(MetricWarning, match="constant"):
        rows = compute_metrics(["r2"], "regression", y, p, ["valence", "arousal"])
    agg, per = values(rows, "r2")
    assert set(per) == {"valence"}
    assert agg == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]))


def test_r2_one_dimensional_inputs():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.1, 1.9, 3.2, 3.7])
    rows = compute_metrics(["r2"], "regression", y, p, ["tempo"])
    assert values(rows, "r2")[0] == pytest.approx(skm.r2_score(y, p))


def test_absent_class_warning_names_only_the_metrics_computed():
    """The warning named roc_auc_macro, pr_auc_macro and balanced_accuracy whatever the experiment computed (a run
    of accuracy, f1_macro and f1_micro was told of three metrics it has not): it names those computed that the absent
    class changes, and is not given when none is (accuracy and the micro averages pool every decision)."""
    y = np.array([0, 0, 1, 1])
    s = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])

    def said(names: list[str]) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compute_metrics(names, "multiclass_classification", y, s, ["a", "b", "c"])
        return [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]

    (message,) = said(["accuracy", "f1_macro", "f1_micro"])
    assert message == (
        "1 of 3 classes have no test example (c): f1_macro leaves them out too, as no track is predicted as one of them"
    )
    (message,) = said(["roc_auc_macro", "recall_macro"])
    assert "are undefined and left out of roc_auc_macro, recall_macro" in message and "f1_macro" not in message
    assert "pr_auc_macro" not in message and "weighted averages" not in message
    assert said(["accuracy", "f1_micro"]) == []
