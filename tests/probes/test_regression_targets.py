"""Regression probes fit standardised targets and predict in the targets' units."""

from __future__ import annotations

import numpy as np

from repeval.config.probe import ProbeConfig
from repeval.metrics import compute_metrics
from repeval.probes import ProbeData, predict, train_probe
from repeval.probes.synthetic import gaussian_probe_data
from repeval.tasks import resolve_criterion


def test_targets_far_from_unit_scale_are_learnt_and_predicted_in_their_units():
    """Targets like MIDI pitch (tens, offset from 0) beside one in hundredths: on raw targets a probe's head,
    starting near 0, was still far from them when training stopped (R² 0.01 for the synthetic target, −14 for the
    pitch-like one and −8,000 for the small one, which the squared error of the large one drowned); the target is
    a linear function of the embedding, so a linear probe fits every dimension."""
    d = gaussian_probe_data("regression", n=200, scenarios=False)
    scale, offset = np.array([20.0, 0.01], np.float32), np.array([60.0, -3.0], np.float32)

    def units(y: np.ndarray) -> np.ndarray:
        return y * scale + offset

    (x_test, y_test, ids) = d.tests["clean"]
    data = ProbeData(
        "regression", ["pitch", "loudness"], d.x_train, units(d.y_train), d.x_val, units(d.y_val),
        {"clean": (x_test, units(y_test), ids)},
    )  # fmt: skip
    cfg = ProbeConfig(hidden_units=[], learning_rate=1e-2, batch_size=32, epochs=30, patience=5, standardize=True)
    r = train_probe(cfg, data, 0)
    scores = r.test_scores["clean"]
    r2 = {row.label: row.value for row in compute_metrics(["r2"], "regression", units(y_test), scores, data.classes)}
    assert r2["pitch"] > 0.95 and r2["loudness"] > 0.95, r2
    np.testing.assert_allclose(scores.mean(0), units(y_test).mean(0), rtol=0.05)  # in the targets' units
    # the checkpoint scored again outside training (select: best) predicts the same values
    np.testing.assert_allclose(predict(cfg, data, r.state_dict, x_test), scores, rtol=1e-5, atol=1e-5)


def test_a_metric_criterion_follows_the_metrics_direction_and_spellings():
    """``save_criterion: val_mean_squared_error`` was maximised (every metric criterion was taken as higher-is-better),
    so early stopping kept the worst checkpoint, and a metric alias the configuration accepts (``val_mse``,
    ``val_pr_auc``) failed every trial with an empty StopIteration."""
    assert resolve_criterion("val_mean_squared_error", "regression") == ("val_mean_squared_error", "min")
    assert resolve_criterion("val_mse", "regression") == ("val_mean_squared_error", "min")
    assert resolve_criterion("val_pr_auc", "multilabel_classification") == ("val_pr_auc_macro", "max")
    assert resolve_criterion(None, "regression") == ("val_loss", "min")
    data = gaussian_probe_data("regression", n=120, scenarios=False)
    cfg = ProbeConfig(
        hidden_units=[], learning_rate=1e-2, batch_size=32, epochs=12, patience=12, save_criterion="val_mse"
    )
    r = train_probe(cfg, data, 0)
    assert r.best_criterion == min(h["val_criterion"] for h in r.history) < r.history[0]["val_criterion"]
