"""Probe data as trials and the driver hold it: read-only views of the object store's copy. Every aggregation trains
and predicts on it exactly as on writable arrays, and no tensor is made of a read-only array (PyTorch warns once per
process that writing through one is undefined behaviour)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from repeval.config.schema import ProbeConfig
from repeval.probes import ProbeData, predict, train_probes
from repeval.probes.synthetic import gaussian_probe_data, marked_frame_probe_data


def read_only(data: ProbeData) -> ProbeData:
    """A copy (pickled, as Ray stores it) whose every array is read-only."""
    out = pickle.loads(pickle.dumps(data))
    arrays = [getattr(out, f) for f in out.__dataclass_fields__]
    arrays += [a for x, y, _ in out.tests.values() for a in (x, y)]
    arrays += [*out.test_groups.values(), *out.test_counts.values()]
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return out


def as_prediction(att: ProbeData) -> ProbeData:
    """The frames of an attention set, shaped for ``embedding_aggregation: prediction``."""

    def groups(c: np.ndarray) -> np.ndarray:
        return np.repeat(np.arange(len(c)), c)

    assert att.train_counts is not None and att.val_counts is not None
    return replace(
        att,
        y_train=att.y_train[groups(att.train_counts)],
        val_groups=groups(att.val_counts),
        test_groups={sid: groups(c) for sid, c in att.test_counts.items()},
        train_counts=None,
        val_counts=None,
        test_counts={},
    )


@pytest.mark.parametrize("form", ["mean", "prediction", "attention"])
def test_probes_train_and_predict_the_same_on_read_only_arrays(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {
        "mean": lambda: gaussian_probe_data(n=120, d=8, c=3),
        "prediction": lambda: as_prediction(marked_frame_probe_data(n=90, seed=1)),
        "attention": lambda: marked_frame_probe_data(n=90, seed=1),
    }[form]()
    cfgs = [
        ProbeConfig(hidden_units=[], learning_rate=1e-2, batch_size=16, epochs=4, patience=2),
        ProbeConfig(hidden_units=["infer"], learning_rate=1e-2, batch_size=16, epochs=4, standardize=True, dropout=0.2),
    ]
    members = [(c, 0) for c in cfgs]
    frozen = read_only(data)
    made = []

    def guarded(make):
        def tensor(a, *args, **kwargs):
            if isinstance(a, np.ndarray):
                made.append(a.flags.writeable)
                assert a.flags.writeable, "a tensor of a read-only array"
            return make(a, *args, **kwargs)

        return tensor

    for name in ("from_numpy", "as_tensor", "tensor"):
        monkeypatch.setattr(torch, name, guarded(getattr(torch, name)))
    got = train_probes(members, frozen)
    x, _, _ = frozen.tests["clean"]
    again = [
        frozen.track_scores("clean", predict(c, frozen, r.state_dict, x, frozen.test_counts.get("clean")))
        for (c, _), r in zip(members, got, strict=True)
    ]
    monkeypatch.undo()
    assert made  # the guard saw the arrays turned into tensors
    for r, a, want in zip(got, again, train_probes(members, data), strict=True):
        assert r.failed is None and r.best_epoch == want.best_epoch
        for sid in data.tests:
            np.testing.assert_array_equal(r.test_scores[sid], want.test_scores[sid])
        np.testing.assert_allclose(a, want.test_scores["clean"], atol=1e-6)
