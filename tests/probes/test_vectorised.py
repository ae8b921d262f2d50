"""Vectorised probe training: a stack of probes must train exactly as each probe alone.

Three references: repeval's own one-probe path (``train_probe``), and a plain PyTorch loop
(``nn.Sequential`` + dropout + ``torch.optim.Adam`` after ``torch.manual_seed``; the dropout is
:class:`repeval.probes.model.Dropout`, ``nn.Dropout``'s distribution drawn from the probe's
:class:`repeval.probes.model.MaskStream`).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from repeval.config.probe import ProbeConfig
from repeval.probes import ProbeData, group_key, predict, resolve_hidden_units, train_probe, train_probes
from repeval.probes.inputs import Preprocess
from repeval.probes.model import Dropout, MaskStream
from repeval.probes.schedule import scheduled_lr
from repeval.probes.stacked import StackedMLP
from repeval.probes.synthetic import gaussian_probe_data as gaussian_data
from repeval.warn import reset_warned


def plain_loop(cfg: ProbeConfig, data: ProbeData, seed: int) -> tuple[int, list[float]]:
    """The textbook loop (fused Adam): best epoch and the validation accuracy after every epoch."""
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    prep = Preprocess(data.x_train, cfg.standardize, None)
    xt, xv = torch.from_numpy(prep(data.x_train)), torch.from_numpy(prep(data.x_val))
    yt, yv = torch.from_numpy(data.y_train.astype(np.int64)), torch.from_numpy(data.y_val.astype(np.int64))
    masks = MaskStream(seed)  # one stream for all the probe's dropout layers, drawn in forward order
    layers: list[nn.Module] = [Dropout(cfg.effective_input_dropout, masks)] if cfg.effective_input_dropout else []
    prev = xt.shape[1]
    for h in cfg.hidden_units:
        layers += [nn.Linear(prev, int(h)), nn.ReLU()] + ([Dropout(cfg.dropout, masks)] if cfg.dropout else [])
        prev = int(h)
    model = nn.Sequential(*layers, nn.Linear(prev, len(data.classes)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    schedule = None
    if cfg.lr_schedule != "constant" or cfg.warmup_steps:  # stepped after every batch: step k trains at lr × factor(k)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, keras_schedule(cfg, len(xt)))
    plateau = None
    if cfg.lr_decay_patience is not None:  # MARBLE's schedule, stepped on the monitored metric
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.lr_decay_factor, patience=cfg.lr_decay_patience
        )
    best, best_epoch, since, accs = -1.0, 0, 0, []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=order)
        for s in range(0, len(xt), cfg.batch_size):
            i = perm[s : s + cfg.batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()
            if schedule is not None:
                schedule.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        accs.append(acc)
        if plateau is not None:
            plateau.step(acc)
        if acc > best:
            best, best_epoch, since = acc, epoch, 0
        else:
            since += 1
        if since >= cfg.patience:
            break
    return best_epoch, accs


def keras_schedule(cfg: ProbeConfig, n: int) -> Callable[[int], float]:
    """MULE's WarmupSchedule written out (music-audio-representations mule/models/optimizers/schedules/
    warmup_schedule.py) as a factor of ``learning_rate``: Keras' ``PolynomialDecay(0 → 1, warmup_steps)`` below
    ``warmup_steps``, then ``CosineDecay(1, decay_steps, alpha=0)`` of the steps after it (or 1: ``constant``), where
    ``decay_steps`` is what the probe's budget leaves after the warm-up."""
    budget = min(cfg.max_steps or math.inf, cfg.epochs * math.ceil(n / cfg.batch_size))
    warm, decay = cfg.warmup_steps, budget - cfg.warmup_steps

    def factor(step: int) -> float:
        if step < warm:  # PolynomialDecay, power 1: (initial - end) · (1 - step / steps) + end, from 0 to 1
            return (0.0 - 1.0) * (1 - step / warm) + 1.0
        if cfg.lr_schedule == "constant":
            return 1.0
        t = min(step - warm, decay)  # CosineDecay clamps the step at decay_steps
        return (1 - 0.0) * 0.5 * (1 + math.cos(math.pi * t / decay)) + 0.0

    return factor


GRID = [
    ProbeConfig(
        hidden_units=h,
        learning_rate=3e-3,
        dropout=p,
        dropout_input=True,
        weight_decay=1e-3,
        standardize=st,
        batch_size=32,
        epochs=6,
        patience=3,
    )
    for h in ([], [16])
    for p in (0.0, 0.5, 0.1)  # no dropout, 8-bit and 16-bit masks in one stack
    for st in (False, True)
]


def test_stack_matches_plain_pytorch_loop(mc_data):
    """Same seeds → the same dropout masks, data order and weights: identical validation curves."""
    stacked = train_probes([(c, 7) for c in GRID], mc_data)
    for cfg, r in zip(GRID, stacked, strict=True):
        best_epoch, accs = plain_loop(cfg, mc_data, 7)
        assert r.failed is None
        assert r.best_epoch == best_epoch
        assert [h["val_criterion"] for h in r.history] == pytest.approx(accs, abs=1e-9)


def test_learning_rate_decay_on_plateau_is_pytorchs_reduce_lr_on_plateau(mc_data):
    """``lr_decay_patience`` (MARBLE's probes halve the learning rate when their metric stalls): each member of a stack
    follows a plain loop stepping ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on its validation accuracy."""
    cfgs = [
        ProbeConfig(hidden_units=h, learning_rate=3e-2, batch_size=32, epochs=10, patience=10, **decay)
        for h in ([], [16])
        for decay in ({}, {"lr_decay_patience": 0}, {"lr_decay_patience": 1, "lr_decay_factor": 0.2})
    ]
    stacked = train_probes([(c, 5) for c in cfgs], mc_data)
    curves = []
    for cfg, r in zip(cfgs, stacked, strict=True):
        best_epoch, accs = plain_loop(cfg, mc_data, 5)
        assert r.best_epoch == best_epoch
        assert [h["val_criterion"] for h in r.history] == pytest.approx(accs, abs=1e-9)
        curves.append(accs)
    assert curves[0] != curves[1] and curves[3] != curves[4]  # the decay changed the training


def test_warmup_and_cosine_schedule_is_mules_keras_schedule_step_by_step():
    """``warmup_steps`` + ``lr_schedule: cosine`` is MULE's WarmupSchedule (linear from 0 over 1,000 steps, then Keras'
    CosineDecay to 0): the rate of every step of a 30,000-step budget, at MULE's values (MTT: lr 5e-5, decay_steps
    29,000); a warm-up before a constant rate, and a cosine without a warm-up, the same way."""
    cfg = ProbeConfig(learning_rate=5e-5, lr_schedule="cosine", warmup_steps=1000, max_steps=30000, epochs=10**6)
    want = keras_schedule(cfg, 100)
    got = [scheduled_lr(cfg, k, 30000) for k in range(30000)]
    assert got == pytest.approx([5e-5 * want(k) for k in range(30000)], rel=1e-12, abs=1e-20)
    assert got[0] == 0.0 and got[500] == pytest.approx(2.5e-5) and got[1000] == 5e-5  # warm at step 1,000
    assert got[1000 + 14500] == pytest.approx(2.5e-5)
    assert got[-1] == pytest.approx(5e-5 * (1 - math.cos(math.pi / 29000)) / 2)
    assert all(a >= b for a, b in itertools.pairwise(got[1000:]))  # decays monotonically to 0
    flat = cfg.model_copy(update={"lr_schedule": "constant", "warmup_steps": 4})
    assert [scheduled_lr(flat, k, 10) for k in range(10)] == pytest.approx([0, 1.25e-5, 2.5e-5, 3.75e-5] + [5e-5] * 6)
    bare = cfg.model_copy(update={"warmup_steps": 0})
    assert [scheduled_lr(bare, k, 4) for k in range(5)] == pytest.approx(
        [5e-5, 4.2677669e-5, 2.5e-5, 7.3223305e-6, 0.0]
    )


def test_scheduled_probes_stack_like_a_plain_loop_with_the_schedule_and_one_by_one(mc_data):
    """Each member of a stack follows its own warm-up / cosine schedule (over its own budget of steps), exactly as a
    plain PyTorch loop stepping ``LambdaLR`` with the Keras formula after every batch, and as it trains alone."""
    base = {"learning_rate": 3e-2, "batch_size": 32, "epochs": 6, "patience": 10}
    cfgs = [
        ProbeConfig(hidden_units=h, **{**base, **sched})
        for h in ([], [16])
        for sched in (
            {},
            {"lr_schedule": "cosine", "warmup_steps": 5},
            {"lr_schedule": "cosine"},
            {"warmup_steps": 8},
            {"lr_schedule": "cosine", "warmup_steps": 3, "epochs": 4},  # a shorter budget: its own cosine
        )
    ]
    stacked = train_probes([(c, 5) for c in cfgs], mc_data)
    curves = []
    for cfg, r in zip(cfgs, stacked, strict=True):
        best_epoch, accs = plain_loop(cfg, mc_data, 5)
        assert r.failed is None and r.best_epoch == best_epoch
        assert [h["val_criterion"] for h in r.history] == pytest.approx(accs, abs=1e-9)
        curves.append(accs)
    assert len({tuple(c) for c in curves[:4]}) == 4 and len({tuple(c) for c in curves[5:9]}) == 4  # schedules differ
    capped = [c.model_copy(update={"max_steps": 17}) for c in (cfgs[6], cfgs[9])]  # a budget ends inside an epoch
    together = train_probes([(c, s) for c in capped for s in (0, 1)], mc_data)
    for (cfg, seed), r in zip([(c, s) for c in capped for s in (0, 1)], together, strict=True):
        alone = train_probe(cfg, mc_data, seed)
        assert r.steps == alone.steps == 17 and r.best_epoch == alone.best_epoch
        assert [h["val_loss"] for h in r.history] == pytest.approx([h["val_loss"] for h in alone.history], rel=1e-6)
        np.testing.assert_allclose(r.test_scores["clean"], alone.test_scores["clean"], atol=1e-6)


def test_a_schedule_excludes_plateau_decay_and_a_warmup_longer_than_training():
    with pytest.raises(ValueError, match="lr_decay_patience lowers the learning rate"):
        ProbeConfig(lr_schedule="cosine", lr_decay_patience=3)
    with pytest.raises(ValueError, match="lr_decay_patience"):
        ProbeConfig(warmup_steps=10, lr_decay_patience=3)
    with pytest.raises(ValueError, match=r"warmup_steps \(100\) must be fewer than max_steps \(100\)"):
        ProbeConfig(warmup_steps=100, max_steps=100)
    with pytest.raises(ValueError, match="lr_schedule"):
        ProbeConfig(lr_schedule="linear")


def test_stack_matches_one_by_one(mc_data):
    members = [(c, s) for c in GRID[::3] for s in (0, 1)]  # 3 configurations × 2 seeds
    together = train_probes(members, mc_data)
    assert len({group_key(c, mc_data) for c, _ in members}) == 2  # linear and [16] stacks
    for (cfg, seed), r in zip(members, together, strict=True):
        alone = train_probe(cfg, mc_data, seed)
        assert r.best_epoch == alone.best_epoch
        assert r.best_criterion == pytest.approx(alone.best_criterion, abs=1e-9)
        assert [h["val_loss"] for h in r.history] == pytest.approx([h["val_loss"] for h in alone.history], rel=1e-5)
        for sid in ("clean", "D1"):
            np.testing.assert_allclose(r.test_scores[sid], alone.test_scores[sid], atol=1e-5)


def masked(data: ProbeData, seed: int = 5) -> ProbeData:
    """``data`` with about a third of its (track, label) pairs unannotated (NaN) in every split."""
    rng = np.random.default_rng(seed)

    def hide(y: np.ndarray) -> np.ndarray:
        return np.where(rng.random(y.shape) < 0.35, np.float32(np.nan), y).astype(np.float32)

    tests = {sid: (x, hide(y), ids) for sid, (x, y, ids) in data.tests.items()}
    return ProbeData(
        data.task_type, data.classes, data.x_train, hide(data.y_train), data.x_val, hide(data.y_val), tests
    )


@pytest.mark.parametrize("task_type", ["multilabel_classification", "regression", "masked_multilabel_classification"])
def test_other_heads_match_one_by_one(task_type):
    data = gaussian_data(task_type.removeprefix("masked_"), n=120)
    if task_type.startswith("masked"):  # unannotated pairs: losses and criteria over the annotated ones
        data = masked(data)
    cfgs = [
        ProbeConfig(hidden_units=[8], learning_rate=lr, batch_size=32, epochs=8, patience=3, standardize=True)
        for lr in (3e-3, 1e-2)
    ]
    together = train_probes([(c, 3) for c in cfgs], data)
    for cfg, r in zip(cfgs, together, strict=True):
        alone = train_probe(cfg, data, 3)
        assert r.failed is None and np.isfinite(r.best_criterion)
        assert r.best_epoch == alone.best_epoch
        assert r.best_criterion == pytest.approx(alone.best_criterion, rel=1e-5)
        assert [h["val_loss"] for h in r.history] == pytest.approx([h["val_loss"] for h in alone.history], rel=1e-5)
        np.testing.assert_allclose(r.test_scores["clean"], alone.test_scores["clean"], atol=1e-5)


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


def test_probes_sharing_lr_and_weight_decay_update_together_yet_match_alone_bit_for_bit(mc_data):
    """A stack orders its probes by (lr, weight decay) and updates each run of them in one fused Adam call.
    The kernel rounds a tensor's last numel % (vector width) elements differently, so a layer whose
    per-probe size is not a multiple of the block (the 4-class bias here, 16-unit norms) must still be
    updated probe by probe: every probe's trajectory equals its own, bit for bit."""
    cfgs = [
        ProbeConfig(
            hidden_units=hidden,
            hidden_norm="batchnorm" if hidden else "none",
            init=init,
            dropout=0.1,
            learning_rate=lr,
            weight_decay=wd,
            batch_size=50,
            epochs=5,
            patience=5,
        )
        for hidden in ([], [16, 16])
        for init in ("xavier_uniform", "xavier_normal")
        for lr, wd in ((1e-3, 0.0), (3e-3, 1e-4), (1e-3, 0.0))
    ]
    together = train_probes([(c, 0) for c in cfgs], mc_data)
    for cfg, r in zip(cfgs, together, strict=True):
        alone = train_probe(cfg, mc_data, 0)
        assert r.best_epoch == alone.best_epoch
        np.testing.assert_array_equal(r.test_scores["clean"], alone.test_scores["clean"])
        for k, v in alone.state_dict.items():
            assert torch.equal(r.state_dict[k], v), k


def test_bf16_stack_runs_its_products_in_bfloat16_and_float32_around_them(mc_data):
    """``precision: bf16``: each layer's product (bias included) in bfloat16, its output back in float32;
    parameters stay float32 and receive float32 gradients."""
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    model = StackedMLP([12, 16, 4], gens, dropout=[0.0, 0.0], input_dropout=[0.0, 0.0], precision="bf16")
    x = torch.randn(2, 5, 12)
    out = model.forward(x, train=True)
    bf = torch.bfloat16
    h = torch.relu(torch.baddbmm(model.biases[0].to(bf), x.to(bf), model.weights[0].to(bf)).float())
    expected = torch.baddbmm(model.biases[1].to(bf), h.to(bf), model.weights[1].to(bf)).float()
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)
    exact = torch.baddbmm(
        model.biases[1], torch.relu(torch.baddbmm(model.biases[0], x, model.weights[0])), model.weights[1]
    )
    assert not torch.equal(out, exact)  # bf16 rounding is there to see …
    torch.testing.assert_close(out, exact, rtol=0.05, atol=0.05)  # … and only rounding
    out.sum().backward()
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters()
    )


def test_bf16_probes_stack_like_one_by_one_and_stay_near_fp32(mc_data):
    grid = [c.model_copy(update={"precision": "bf16"}) for c in GRID]
    members = [(c, s) for c in grid[::3] for s in (0, 1)]
    together = train_probes(members, mc_data)
    assert {group_key(c, mc_data) for c, _ in members}.isdisjoint({group_key(c, mc_data) for c in GRID})
    for (cfg, seed), r in zip(members, together, strict=True):
        alone = train_probe(cfg, mc_data, seed)
        assert r.failed is None and r.best_epoch == alone.best_epoch
        assert [h["val_loss"] for h in r.history] == pytest.approx([h["val_loss"] for h in alone.history], rel=1e-5)
        np.testing.assert_allclose(r.test_scores["clean"], alone.test_scores["clean"], atol=1e-5)
        # a checkpoint re-scored from its state dict (the resume path) runs in bf16 too
        again = predict(cfg, mc_data, r.state_dict, mc_data.tests["clean"][0])
        np.testing.assert_allclose(again, r.test_scores["clean"], atol=1e-3)
        fp32 = train_probe(cfg.model_copy(update={"precision": "fp32"}), mc_data, seed)
        first = r.history[0]["val_loss"], fp32.history[0]["val_loss"]
        assert first[0] != first[1] and first[0] == pytest.approx(first[1], rel=0.02)
        assert abs(r.best_criterion - fp32.best_criterion) <= 0.1


def test_bf16_on_a_cpu_without_bf16_units_warns_once_naming_the_fix(mc_data, monkeypatch):

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    reset_warned()  # this process may have warned already
    cfg = GRID[0].model_copy(update={"precision": "bf16", "epochs": 1})
    with pytest.warns(RuntimeWarning, match="precision: fp32") as record:
        train_probe(cfg, mc_data, 0)
        train_probe(cfg, mc_data, 1)
    assert len([w for w in record if "bf16" in str(w.message)]) == 1
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)  # AMX alone is enough
    reset_warned()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        train_probe(cfg, mc_data, 0)


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
