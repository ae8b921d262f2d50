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
from repeval.probes import ProbeData, group_key, predict, train_probe, train_probes
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
