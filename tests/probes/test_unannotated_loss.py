"""The binary cross-entropy of a multilabel probe whose data set annotates only some labels per track: averaged
over the annotated (track, label) pairs only, in training and validation, and for frame-averaged predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repeval.probes.losses import aggregated_losses, member_losses, split_mask

ML = "multilabel_classification"


def test_masked_bce_is_the_mean_over_annotated_pairs_by_hand():
    # (K=2 probes, B=2 tracks, C=3 labels)
    logits = torch.tensor([[[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], [[-1.0, 1.0, 1.0], [4.0, -4.0, 0.3]]])
    y = torch.tensor([[1.0, float("nan"), 0.0], [float("nan"), 1.0, float("nan")]])
    targets, mask = split_mask(y)
    assert mask is not None and mask.tolist() == [[True, False, True], [False, True, False]]
    loss = member_losses(logits, targets.expand(2, -1, -1), ML, mask.expand(2, -1, -1))
    for k in range(2):
        z = logits[k].double().numpy()
        p = 1 / (1 + np.exp(-z))
        pairs = [(0, 0, 1), (0, 2, 0), (1, 1, 1)]  # (track, label, target) of the annotated pairs
        by_hand = np.mean([-(t * np.log(p[i, j]) + (1 - t) * np.log(1 - p[i, j])) for i, j, t in pairs])
        assert float(loss[k]) == pytest.approx(by_hand, rel=1e-6)
    # the targets under a mask do not matter; without NaN there is no mask and the plain mean is unchanged
    other = member_losses(logits, targets.masked_fill(~mask, 1.0).expand(2, -1, -1), ML, mask.expand(2, -1, -1))
    torch.testing.assert_close(other, loss)
    full = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert split_mask(full)[1] is None
    torch.testing.assert_close(
        member_losses(logits, full.expand(2, -1, -1), ML),
        torch.nn.functional.binary_cross_entropy_with_logits(logits, full.expand(2, -1, -1), reduction="none").mean(
            (1, 2)
        ),
    )
    # prediction-level aggregation: the loss of mean probabilities, over the annotated pairs alike
    agg = aggregated_losses(torch.sigmoid(logits), targets, ML, mask)
    torch.testing.assert_close(agg, loss, rtol=1e-5, atol=1e-6)
