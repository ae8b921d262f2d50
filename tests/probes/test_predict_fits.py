"""``predict`` fits a training split's preprocessing once per setting (``select: best`` scores every seed's checkpoint
on every test scenario; a PCA fit is an SVD of the whole split), and never serves a fit to another split."""

from __future__ import annotations

import numpy as np

import repeval.probes.inference as inference
from repeval.config.probe import ProbeConfig
from repeval.probes import predict, train_probes
from repeval.probes.synthetic import gaussian_probe_data


def test_predict_fits_each_training_split_once_per_setting(monkeypatch) -> None:
    data = gaussian_probe_data(n=120, d=8, c=3)
    cfg = ProbeConfig(hidden_units=[], learning_rate=1e-2, batch_size=16, epochs=3, standardize=True, pca_dim=4)
    (r,) = train_probes([(cfg, 0)], data)
    fits = []
    real = inference.Preprocess

    def counting(*args, **kwargs):
        fits.append(args[1:])
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "Preprocess", counting)
    scores = [predict(cfg, data, r.state_dict, x) for _ in range(3) for x, _, _ in data.tests.values()]
    assert len(fits) == 1  # six predictions, one fit
    for sid, (x, _, _) in data.tests.items():  # the same scores the stack computed for its test scenarios
        np.testing.assert_allclose(predict(cfg, data, r.state_dict, x), r.test_scores[sid], atol=1e-5)
    other = gaussian_probe_data(n=120, d=8, c=3, seed=5)
    predict(cfg, other, r.state_dict, other.tests["clean"][0])
    assert len(fits) == 2  # another split: fitted on its own
    assert all(np.array_equal(a, b) for a, b in zip(scores[:2], scores[2:4], strict=True))
