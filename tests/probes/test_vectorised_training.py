"""What a stack of probes does while it trains: HEAR-style batchnorm and validation, a non-finite loss or metric,
step budgets, patience, balanced sampling, PCA on train only, hidden sizes, dropout and its masks, a class without
validation example."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from repeval.config.probe import ProbeConfig
from repeval.probes import predict, resolve_hidden_units, train_probe, train_probes
from repeval.probes.inputs import Preprocess
from repeval.probes.model import Dropout, MaskStream
from repeval.probes.stacked import StackedMLP
from repeval.probes.synthetic import gaussian_probe_data as gaussian_data
from repeval.warn import reset_warned


def test_hear_style_probes_batchnorm_xavier_val_every(mc_data):
    cfgs = [
        ProbeConfig(
            hidden_units=[16, 16],
            hidden_norm="batchnorm",
            init=init,
            dropout=0.1,
            learning_rate=lr,
            batch_size=50,
            epochs=6,
            val_every=3,
            patience=2,
        )
        for init in ("xavier_uniform", "xavier_normal")
        for lr in (1e-3, 3e-3)
    ]
    together = train_probes([(c, 0) for c in cfgs], mc_data)
    for cfg, r in zip(cfgs, together, strict=True):
        alone = train_probe(cfg, mc_data, 0)
        assert [h["epoch"] for h in r.history] == [3, 6]
        assert r.best_epoch == alone.best_epoch
        np.testing.assert_allclose(r.test_scores["clean"], alone.test_scores["clean"], atol=1e-5)
        # the exported checkpoint is a plain Probe state dict that reproduces the test scores
        np.testing.assert_allclose(
            predict(cfg, mc_data, r.state_dict, mc_data.tests["clean"][0]), r.test_scores["clean"], atol=1e-5
        )


def test_non_finite_loss_fails_one_member_only(mc_data):
    good = ProbeConfig(hidden_units=[8], batch_size=32, epochs=6, patience=10)
    bad = good.model_copy(update={"optimizer": "sgd", "learning_rate": 1e30})
    together = train_probes(
        [(good.model_copy(update={"optimizer": "sgd", "learning_rate": 0.05}), 0), (bad, 0)], mc_data
    )
    assert together[1].failed is not None and "non-finite" in together[1].failed
    assert together[0].failed is None and together[0].test_scores
    alone = train_probe(good.model_copy(update={"optimizer": "sgd", "learning_rate": 0.05}), mc_data, 0)
    assert together[0].best_epoch == alone.best_epoch


def test_a_validation_metric_never_finite_fails_the_probe_naming_the_metric_and_the_fix():
    """A constant validation target makes R² NaN at every validation: the probe has no best epoch, so no checkpoint —
    a failure whose reason (failed.parquet, the training summary) says which metric, how often, and what to set;
    it said "no validation score was ever finite"."""
    data = gaussian_data("regression", n=60, d=6, scenarios=False)
    data.y_val = np.ones_like(data.y_val)
    cfg = ProbeConfig(hidden_units=[4], batch_size=32, epochs=4, val_every=2, save_criterion="val_r2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the metric's own warning that the target is constant
        (r,) = train_probes([(cfg, 0)], data)
    assert r.failed == (
        "non-finite validation metric: val_r2 was NaN at 2 of its 2 validations, so no checkpoint was kept (R² is "
        "undefined where the validation target is constant) — set save_criterion: val_loss"
    )
    assert not r.state_dict and not r.test_scores


def test_last_partial_batch_is_kept_and_budgets(mc_data):
    cfg = ProbeConfig(batch_size=50, epochs=3, patience=10)  # 160 rows: 50 + 50 + 50 + 10
    r = train_probe(cfg, mc_data, 0)
    assert r.epochs == 3 and r.steps == 3 * 4
    capped = train_probes([(cfg, 0)], mc_data, max_epochs=2)[0]
    assert capped.epochs == 2
    by_steps = train_probe(cfg.model_copy(update={"max_steps": 5}), mc_data, 0)
    assert by_steps.epochs == 2 and by_steps.steps == 5


def test_a_step_budget_inside_an_epoch_keeps_the_batchnorm_statistics_of_its_last_step(mc_data, monkeypatch):
    """``max_steps`` 5 of 4 steps per epoch: the checkpoint's batchnorm statistics are those after step 5, alone and in a
    stack (the rest of epoch 2, at learning rate 0, used to move them on), and a stack reports the same curves."""
    budget = ProbeConfig(hidden_units=[8], hidden_norm="batchnorm", learning_rate=1e-3, batch_size=50, epochs=5,
                         patience=10, max_steps=5)  # fmt: skip
    other = budget.model_copy(update={"learning_rate": 3e-3, "max_steps": None})
    seen: list[torch.Tensor] = []
    forward = StackedMLP.forward

    def spy(self, x, train, shared=None):
        out = forward(self, x, train, shared)
        if train:
            seen.append(self.running_mean[0][0, 0].clone())  # stack position 0: the lower learning rate
        return out

    monkeypatch.setattr(StackedMLP, "forward", spy)
    alone = train_probe(budget, mc_data, 0)
    assert alone.steps == 5 and len(seen) == 5  # nothing trained after the budget
    at_budget, seen[:] = seen[4], []
    stacked = train_probes([(budget, 0), (other, 0)], mc_data)[0]
    assert stacked.steps == 5 and stacked.best_epoch == alone.best_epoch
    for r in (alone, stacked):
        assert torch.equal(r.state_dict["net.1.running_mean"], at_budget)
        assert [h["train_loss"] for h in r.history] == [h["train_loss"] for h in alone.history]


def test_patience_counts_validations_without_improvement(mc_data):
    # a learning rate this small cannot change the predictions: no improvement after epoch 1
    cfg = ProbeConfig(learning_rate=1e-12, epochs=50, patience=3, batch_size=80)
    r = train_probe(cfg, mc_data, 0)
    assert r.best_epoch == 1 and r.epochs == 4


def test_patience_zero_stops_at_the_first_validation_that_does_not_improve(mc_data):
    """Keras' rule (mir_ref's probes): with patience 0 a probe trains while every validation improves — it used to
    stop after its first validation whatever it scored."""
    cfg = ProbeConfig(hidden_units=[16], learning_rate=3e-3, batch_size=32, epochs=30, patience=0)
    r = train_probe(cfg, mc_data, 0)
    crit = [h["val_criterion"] for h in r.history]
    assert r.epochs == len(crit) > 1
    assert all(b > a for a, b in itertools.pairwise(crit[:-1]))  # every validation before the last improved
    assert crit[-1] <= max(crit[:-1]) and r.best_epoch == r.epochs - 1


def test_balanced_sampling_and_criteria(mc_data):
    cfg = ProbeConfig(train_sampling="balanced", save_criterion="val_f1_macro", epochs=4, batch_size=40)
    r = train_probe(cfg, mc_data, 0)
    assert r.failed is None and 0 <= r.best_criterion <= 1
    loss_cfg = ProbeConfig(save_criterion="val_loss", epochs=4, batch_size=40)
    r2 = train_probe(loss_cfg, mc_data, 0)
    assert r2.best_criterion == pytest.approx(min(h["val_loss"] for h in r2.history))


def test_pca_is_fitted_on_train_only(mc_data):
    cfg = ProbeConfig(pca_dim=5, epochs=3, batch_size=40)
    r = train_probe(cfg, mc_data, 0)
    assert r.state_dict["net.0.weight"].shape == (4, 5)
    prep = Preprocess(mc_data.x_train, False, 5)
    z = prep(mc_data.x_train)
    assert abs(float(z.mean())) < 1e-4  # centred with the training mean


def test_infer_sizes_follow_the_thesis():
    assert resolve_hidden_units(["infer"], 512, 10) == [262]
    assert resolve_hidden_units(["infer", "infer"], 512, 10) == [346, 178]
    assert resolve_hidden_units([128, "infer"], 512, 10) == [128, 178]


def _mir_ref_power_infer(n: int, d: int, c: int) -> list[int]:
    """mir_ref's ``power_infer`` as its probe builder computes it (truncate, then bump an odd size)."""
    alpha = (d - c) / (n + 1)
    sizes = [int(alpha * ((i + 1) ** 2) + c) for i in range(n)]
    return [h + 1 if h % 2 else h for h in sizes]


def test_power_infer_sizes_are_mir_refs_power_regression():
    assert resolve_hidden_units(["power_infer"], 512, 10) == [262]  # one layer: (d + c) / 2, as infer
    assert resolve_hidden_units(["power_infer", "power_infer"], 512, 10) == [178, 680]
    assert resolve_hidden_units(["power_infer"] * 3, 1728, 50) == [470, 1728, 3826]
    for d, c in [(512, 10), (1728, 50), (200, 87), (768, 2), (1024, 527)]:
        for n in (1, 2, 3):
            ours, theirs = resolve_hidden_units(["power_infer"] * n, d, c), _mir_ref_power_infer(n, d, c)
            # rounded up to even (DESIGN.md) where mir_ref truncates first: equal, or 2 more
            assert all(a - b in (0, 2) for a, b in zip(ours, theirs, strict=True)), (d, c, n, ours, theirs)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.75])
def test_dropout_has_nn_dropout_distribution(p):
    """Keep rate 1 − p, kept values scaled by 1/(1 − p) (expectation preserved), identity in eval mode."""
    torch.manual_seed(0)
    d = Dropout(p)
    x = torch.ones(400, 500)
    y = d(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # 200k Bernoulli draws: σ ≈ 0.001
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.02
    d.eval()
    assert torch.equal(d(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


@pytest.mark.parametrize("p", [0.25, 0.2])
def test_mask_stream_follows_its_documented_rule(p):
    """8-bit words when 256·p is an integer (0.25), 16-bit words otherwise (0.2), from PCG64(seed, "mask")
    read little-endian: recomputed here with numpy alone, element for element, two draws in a row."""
    stream = MaskStream(7)
    bits = np.random.PCG64([7, 0x6D61736B])
    for shape in [(3, 5), (4, 9)]:  # odd sizes: words are not shared between draws
        got = stream.keep_(torch.empty(shape), p)
        n = int(np.prod(shape))
        if p == 0.25:
            words = bits.random_raw(-(-n // 8)).astype("<u8").view(np.uint8)[:n]
            want = words >= 64
        else:
            words = bits.random_raw(-(-n // 4)).astype("<u8").view("<i2")[:n]
            want = words >= round(0.2 * 65536) - 32768
        assert got.dtype == torch.float32 and got.shape == shape
        assert np.array_equal(got.numpy().ravel(), want.astype(np.float32))


def test_a_class_without_validation_example_is_warned_about_once_not_at_every_validation():
    """A metric criterion scored at every validation re-issued the absent-class warning each time — in several
    wordings, as its F1 part described that epoch's predictions — and called the validation tracks "test" ones. It
    now warns once per validation set and criterion, in words that hold for every validation."""
    from repeval.metrics import MetricWarning

    reset_warned()  # this process may have warned already
    data = gaussian_data(n=120, d=8, c=4)
    keep = data.y_val != 3  # class c3 has no validation example
    data.x_val, data.y_val = data.x_val[keep], data.y_val[keep]
    f1 = [ProbeConfig(save_criterion="val_f1_macro", epochs=6, batch_size=40, learning_rate=lr) for lr in (1e-3, 3e-2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning given is seen: the once is the code's own
        train_probes([(c, s) for c in f1 for s in (0, 1)], data, evaluate_tests=False)
        train_probe(ProbeConfig(save_criterion="val_f1_macro", epochs=3, hidden_units=[8]), data, 2)  # another stack
        train_probe(ProbeConfig(save_criterion="val_roc_auc_macro", epochs=3), data, 0)  # another criterion
    said = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    assert len(said) == 2, said
    assert said[0].startswith("val_f1_macro (said once, for every validation): 1 of 4 classes have no validation ")
    assert said[1].startswith("val_roc_auc_macro (said once, for every validation): 1 of 4 classes")
    assert "f1_macro counts one with F1 0 while some track is predicted as it" in said[0]
    # each names what its own criterion does with the class (not the other metrics')
    assert "left out of roc_auc_macro" in said[1] and "f1_macro" not in said[1].split(": ", 1)[1]
