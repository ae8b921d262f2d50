"""Probe data as trials and the driver hold it: read-only views of the object store's copy. Every aggregation trains
and predicts on it exactly as on writable arrays; a stack reads the raw rows in place and standardises them batch by
batch (no preprocessed copy of a split), with the values a preprocessed copy has; and the only tensors made of
read-only arrays are those (PyTorch warns once per process that writing through one is undefined behaviour)."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from repeval.config.probe import ProbeConfig
from repeval.probes import ProbeData, predict, train_probes
from repeval.probes.inputs import Inputs, Preprocess, _preprocessed
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

    def silenced() -> bool:  # inside Inputs' one place that reads read-only arrays in place
        return any(f[0] == "ignore" and f[1] is not None and f[1].pattern.startswith("The given NumPy array is not")
                   for f in warnings.filters)  # fmt: skip

    def guarded(make):
        def tensor(a, *args, **kwargs):
            if isinstance(a, np.ndarray):
                made.append(a.flags.writeable)
                assert a.flags.writeable or silenced(), "a tensor of a read-only array"
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
    assert made and not all(made)  # the guard saw arrays turned into tensors, read-only ones among them
    for r, a, want in zip(got, again, train_probes(members, data), strict=True):
        assert r.failed is None and r.best_epoch == want.best_epoch
        for sid in data.tests:
            np.testing.assert_array_equal(r.test_scores[sid], want.test_scores[sid])
        np.testing.assert_allclose(a, want.test_scores["clean"], atol=1e-6)


@pytest.mark.parametrize("pad", [False, True])
def test_inputs_standardise_batches_like_a_preprocessed_copy_and_read_the_rows_in_place(pad: bool) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((50, 6)) * 3 + 1).astype(np.float32)
    x.flags.writeable = False  # as a trial holds it
    preps = [Preprocess(x, False, None), Preprocess(x, True, None)]
    full = _preprocessed(x, preps, pad)  # the copy a stack held before: (V, n [+ 1], d)
    inputs = Inputs(x, preps, pad)
    assert inputs.shape == tuple(full.shape)
    assert np.shares_memory(inputs.raw.numpy(), x)  # the raw rows, not a copy
    idx = torch.tensor([[3, 7, 50 if pad else 49], [0, 0, 12]])
    var = torch.tensor([1, 0])
    assert torch.equal(inputs.take(idx, var), full[var.view(-1, 1), idx])  # bit for bit, the padding row zero
    assert torch.equal(inputs.take(idx, 1), full[1][idx])
    rows = torch.tensor([4, 9, 2])
    assert torch.equal(inputs.every_variant(rows), full.index_select(1, rows))
    assert torch.equal(inputs.span(slice(10, 20), var), full[:, 10:20][var])
    pca = Inputs(x, [Preprocess(x, True, 3)], pad)  # a projection is made up front, as before
    assert pca.full is not None and torch.equal(pca.full, _preprocessed(x, [Preprocess(x, True, 3)], pad))


def test_standardisation_is_fitted_without_a_copy_of_the_training_split() -> None:
    """``Preprocess``'s means and standard deviations are those of the split in float64 (scikit-learn's), without a
    split-sized temporary — also for a split of fewer rows than a chunk of a narrow one holds, or a wide one (a float64
    chunk of 8,192 rows of 2,048 dimensions was twice a 2,000-track split) — tracemalloc sees numpy's allocations."""
    import tracemalloc

    from repeval.probes.inputs import column_stats, stats_chunk_rows

    rng = np.random.default_rng(3)
    r64, r2, r1 = stats_chunk_rows(64), stats_chunk_rows(2), stats_chunk_rows(1)
    for n, d in [(3 * r64 + 17, 64), (r2 + 1, 2), (2 * r1, 1), (100, 9), (1, 3)]:
        x = (rng.standard_normal((n, d)) * 40 + 1e3).astype(np.float32)
        mean, std = column_stats(x)
        np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
        np.testing.assert_allclose(std, x.astype(np.float64).std(0), rtol=1e-9, atol=1e-9)
    for n, d in [(8 * r64, 64), (2000, 2048)]:
        x = rng.standard_normal((n, d)).astype(np.float32)
        peaks = []
        for numpy_std in (True, False):
            tracemalloc.start()
            x.std(0) if numpy_std else Preprocess(x, True, None)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert peaks[0] >= x.nbytes > 3 * peaks[1], (n, d, peaks)  # numpy's own: a copy; the fit: a chunk of rows
