"""``standardize: true`` is scikit-learn's ``StandardScaler``, the standardisation Jukemir's probes use — also for a
column that is constant on the training split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from repeval.probes.inputs import Inputs, Preprocess


def test_a_column_constant_in_training_is_not_blown_up_at_test_time():
    """A dead unit (always 0 in training) or a fixed statistic (always 0.3) kept scale 1e-8: the value a deformed
    test clip gives it came out multiplied by 1e8. sklearn (and so Jukemir) keeps scale 1 for such a column."""
    rng = np.random.default_rng(0)
    x_train = rng.normal(2.0, 3.0, (500, 4)).astype(np.float32)
    x_train[:, 1] = 0.0
    x_train[:, 3] = 0.3
    x_test = rng.normal(2.0, 3.0, (50, 4)).astype(np.float32)
    x_test[:, 1] = 0.5  # the dead unit wakes up under a deformation
    x_test[:, 3] = 0.3
    want = StandardScaler().fit(x_train).transform(x_test)
    prep = Preprocess(x_train, True, None)
    np.testing.assert_allclose(prep(x_test), want, rtol=1e-5, atol=1e-5)
    assert np.abs(prep(x_train)[:, [1, 3]]).max() < 1e-6  # the training split itself: zeros, as sklearn's
    # the training loop standardises batch by batch with the same statistics
    rows = Inputs(x_test, [prep], pad=False).take(torch.arange(len(x_test)), 0).numpy()
    np.testing.assert_allclose(rows, want, rtol=1e-5, atol=1e-5)


def test_a_pca_to_more_dimensions_than_the_rows_or_the_width_give_is_an_error_as_in_sklearn():
    """A PCA target above the embedding width or the training rows was silently capped to the smaller one (the probe
    trained on fewer dimensions than written); scikit-learn's PCA (mir_ref's) refuses it, and so does repeval."""
    x = np.random.default_rng(0).normal(0, 1, (6, 10)).astype(np.float32)
    for rows, k, most in ((x, 8, 6), (x.T.copy(), 8, 6)):  # 6 rows of 10 dimensions; 10 rows of 6
        with pytest.raises(ValueError):
            PCA(n_components=k).fit(rows)
        with pytest.raises(ValueError, match=rf"PCA to {k} dimensions .* set it to at most {most}, or remove the PCA"):
            Preprocess(rows, False, k)
        assert Preprocess(rows, False, most).output_dim == PCA(n_components=most).fit(rows).n_components_ == most


def test_a_large_training_split_is_standardised_as_sklearn_does_it():
    """numpy sums float32 rows in float32: over 300,000 training rows (a split of frames) of values ~3 ± 0.01 the mean
    drifted by half a standard deviation and the std by 11%. StandardScaler (Jukemir's) sums in float64."""
    rng = np.random.default_rng(0)
    x = (rng.normal(0.0, 0.01, (300_000, 8)) + 3.0 + rng.normal(0.0, 1.0, 8)).astype(np.float32)
    scaler = StandardScaler().fit(x)
    prep = Preprocess(x, True, None)
    np.testing.assert_allclose(prep.mean, scaler.mean_, rtol=0, atol=1e-3 * scaler.scale_.min())
    np.testing.assert_allclose(prep.std, scaler.scale_, rtol=1e-4)
    np.testing.assert_allclose(prep(x[:1000]), scaler.transform(x[:1000]), rtol=0, atol=1e-2)
    # a PCA centres on the same float64 mean
    centred = Preprocess(x, False, 2)
    np.testing.assert_allclose(centred.mean, scaler.mean_, rtol=0, atol=1e-3 * scaler.scale_.min())


def test_a_column_constant_over_many_chunks_keeps_scale_1_and_standardises_to_exactly_0():
    """Constant is told from the float64 statistics themselves (a std of exactly 0), over as many chunks as a split of
    frames spans; a column differing in one row by one float32 step is not constant."""
    from repeval.probes.inputs import stats_chunk_rows

    n = 3 * stats_chunk_rows(4) + 5
    x = np.random.default_rng(1).normal(0.0, 1.0, (n, 4)).astype(np.float32)
    x[:, 1], x[:, 2] = np.float32(0.3), np.float32(-7e5)
    x[:, 3] = np.float32(2.5)
    x[-1, 3] = np.nextafter(np.float32(2.5), np.float32(3))
    prep = Preprocess(x, True, None)
    assert prep.std[1] == prep.std[2] == 1 and prep.std[3] < 1e-6
    assert (prep(x)[:, 1:3] == 0).all() and prep(x)[-1, 3] > 1  # the row that differs stands out
