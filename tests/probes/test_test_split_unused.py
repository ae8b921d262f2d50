"""The test sets never reach training: early stopping, the kept checkpoint and the preprocessing (standardisation,
PCA) depend on the training and validation splits only — the protocol the README promises (train, select on
validation, then test once)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from repeval.config.probe import ProbeConfig
from repeval.probes import train_probes
from repeval.probes.synthetic import gaussian_probe_data


@pytest.mark.parametrize("task_type", ["multiclass_classification", "multilabel_classification", "regression"])
def test_other_test_sets_train_the_same_probes(task_type: str) -> None:
    data = gaussian_probe_data(task_type, n=64, d=8, c=3)
    rng = np.random.default_rng(1)
    xte, yte, _ = data.tests["clean"]
    # other test tracks: shifted, rescaled embeddings with shuffled targets, a scenario more, another count of tracks
    other_x = (rng.normal(5.0, 4.0, (len(xte) + 7, xte.shape[1]))).astype(np.float32)
    other_y = np.concatenate([yte, yte[:7]])[rng.permutation(len(xte) + 7)]
    other_ids = [f"o{i}" for i in range(len(other_x))]
    other = dataclasses.replace(
        data, tests={"clean": (other_x, other_y, other_ids), "D9": (other_x * 100, other_y, other_ids)}
    )
    probe = "classifier" if task_type != "regression" else "regressor"
    cfgs = [
        ProbeConfig(type=probe, hidden_units=[], learning_rate=1e-2, batch_size=16, epochs=8, patience=2),
        ProbeConfig(
            type=probe, hidden_units=[16], standardize=True, pca_dim=5, dropout=0.25, learning_rate=1e-2,
            batch_size=16, epochs=8, patience=2,
        ),
    ]  # fmt: skip
    members = [(c, 0) for c in cfgs]
    for a, b in zip(train_probes(members, data), train_probes(members, other), strict=True):
        assert a.failed is None and b.failed is None
        assert (a.best_epoch, a.best_criterion, a.epochs) == (b.best_epoch, b.best_criterion, b.epochs)
        assert a.history == b.history
        assert a.state_dict.keys() == b.state_dict.keys()
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
        assert set(b.test_scores) == {"clean", "D9"} and len(b.test_scores["clean"]) == len(other_x)
