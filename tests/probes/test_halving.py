"""Successive halving inside a stack (``scheduler: asha`` on a grid): who stops, when, and that the rest is untouched."""

from __future__ import annotations

import math

import numpy as np

from repeval.config.probe import ProbeConfig
from repeval.probes import Halving, train_probes
from repeval.probes.losses import criterion_of

LRS = [1e-4, 3e-2, 1e-3, 1e-2]  # four configurations, two seeds each


def members(epochs: int = 6) -> list[tuple[ProbeConfig, int]]:
    return [
        (ProbeConfig(hidden_units=[8], learning_rate=lr, batch_size=32, epochs=epochs, patience=100), seed)
        for lr in LRS
        for seed in (0, 1)
    ]


def test_halving_keeps_the_best_configurations_at_each_rung(mc_data):
    ms = members()
    halving = [Halving(group=0, point=i // 2, grace=1, eta=2.0) for i in range(len(ms))]
    res = train_probes(ms, mc_data, halving=halving, evaluate_tests=False)

    sign = 1.0 if criterion_of(ms[0][0], mc_data.task_type)[1] == "max" else -1.0

    def at(point: int, epoch: int) -> float:  # a configuration's mean criterion over its seeds (higher: better)
        return sign * float(np.mean([res[2 * point + s].history[epoch - 1]["val_criterion"] for s in (0, 1)]))

    epochs = {p: {res[2 * p + s].epochs for s in (0, 1)} for p in range(4)}
    assert all(len(e) == 1 for e in epochs.values()), epochs  # the seeds of a configuration stop together
    trained = {p: e.pop() for p, e in epochs.items()}
    # rungs at 1, 2, 4 epochs (below the budget of 6): 4 configurations → 2 → 1 (→ 1)
    assert sorted(trained.values()) == [1, 1, 2, 6]
    first = [p for p in range(4) if trained[p] > 1]
    assert min(at(p, 1) for p in first) >= max(at(p, 1) for p in range(4) if p not in first)
    (last,) = [p for p in range(4) if trained[p] == 6]
    assert at(last, 2) >= max(at(p, 2) for p in first)
    for i, r in enumerate(res):
        p = i // 2
        assert r.failed is None
        assert r.stopped == (None if p == last else f"stopped by ASHA at epoch {trained[p]}")
        assert r.state_dict and math.isfinite(r.best_criterion)  # a stopped member keeps its best checkpoint


def test_members_that_continue_train_exactly_as_without_halving(mc_data):
    ms = members()
    halving = [Halving(group=0, point=i // 2, grace=1, eta=2.0) for i in range(len(ms))]
    halved = train_probes(ms, mc_data, halving=halving, evaluate_tests=True)
    full = train_probes(ms, mc_data, evaluate_tests=True)
    for h, f in zip(halved, full, strict=True):
        assert h.history == f.history[: h.epochs]  # every epoch trained is the one it trains alone
        if h.stopped is None:
            assert h.best_criterion == f.best_criterion and h.best_epoch == f.best_epoch
            assert all(np.array_equal(h.test_scores[k], f.test_scores[k]) for k in f.test_scores)


def test_rungs_follow_grace_period_reduction_factor_and_max_t(mc_data):
    ms = members(epochs=12)
    # grace 2, eta 3: rungs at 2 and 6; max_t 5 leaves only the rung at 2: 4 configurations → 2 continue
    halving = [Halving(group=0, point=i // 2, grace=2, eta=3.0, max_t=5) for i in range(len(ms))]
    res = train_probes(ms, mc_data, halving=halving, evaluate_tests=False)
    assert sorted({r.epochs for r in res}) == [2, 12]
    assert sum(r.epochs == 12 for r in res) == 4  # ceil(4 / 3) = 2 configurations × 2 seeds
    assert [Halving(0, 0, 2, 3.0).rung(k) for k in range(3)] == [2, 6, 18]
    # two groups in one stack are ranked apart: each keeps its own best
    halving = [Halving(group=i // 4, point=i // 2, grace=1, eta=4.0) for i in range(len(ms))]
    res = train_probes(ms, mc_data, halving=halving, evaluate_tests=False)
    assert [sum(r.epochs == 12 for r in res[g * 4 : g * 4 + 4]) for g in (0, 1)] == [2, 2]
