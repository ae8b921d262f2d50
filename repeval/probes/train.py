"""Probe training: one criterion for early stopping *and* checkpoint selection, many probes at once.

mir_ref stopped on ``val_loss`` but kept the best ``val_auc`` model; here the configured
criterion (default per task type) decides both. The last partial batch is never dropped.

:func:`train_probes` trains a list of (configuration, seed) members. Members that share a
:func:`group_key` (layer sizes, batch size, optimiser kind, PCA, normalisation, validation
schedule, sampling, precision) are trained together in one :class:`~repeval.probes.stacked.StackedMLP`;
everything else (learning rate and its schedule, weight decay, dropout, standardisation, epochs,
patience, criterion, seed) may differ inside a stack. A member follows the same trajectory in a stack as
alone — :func:`train_probe` is the one-member case — up to floating-point rounding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from repeval.probes.data import (
    ProbeData,
    _targets,
    draw_rows,
    heads_of,
    input_dim_of,
    target_scale,
    training_weights,
    unscaled,
)
from repeval.probes.inputs import Inputs, Preprocess, Segments, _forward_all, _forward_pooled, _pooled
from repeval.probes.losses import (
    aggregate_scores,
    aggregated_losses,
    criterion_of,
    criterion_value,
    is_single_label,
    member_losses,
    never_finite,
    scores_of,
    split_mask,
)
from repeval.probes.model import native_bf16, resolve_hidden_units
from repeval.probes.schedule import Halving, _halve, _plateau_step, scheduled_lr
from repeval.probes.stacked import StackedMLP, StackedOptimizer
from repeval.warn import warn_once


@dataclass
class TrainResult:
    best_epoch: int
    best_criterion: float
    history: list[dict[str, float]]
    state_dict: dict[str, Any]
    #: scenario → (n, C) scores (probabilities, or predictions for regression)
    test_scores: dict[str, np.ndarray]
    failed: str | None = None
    epochs: int = 0
    steps: int = 0
    #: seconds of the stack this member trained in, divided by the stack's size
    train_seconds: float = 0.0
    #: why it stopped before early stopping or its budget did (successive halving), if it did
    stopped: str | None = None


def group_key(cfg: Any, data: ProbeData) -> tuple:
    """Members with equal keys can share one stack."""
    d = input_dim_of(cfg, data)
    hidden = tuple(resolve_hidden_units(cfg.hidden_units, d, data.n_outputs))
    return (hidden, *cfg.stack_settings, heads_of(cfg, data))


# ------------------------------------------------------------------------------ training

#: called after each validation with ``[(member index, record), ...]`` of the members validated
ValidationCallback = Callable[[int, list[tuple[int, dict[str, float]]]], None]


def train_probes(
    members: Sequence[tuple[Any, int]],
    data: ProbeData,
    *,
    max_epochs: int | None = None,
    evaluate_tests: bool = True,
    on_validation: ValidationCallback | None = None,
    device: str = "cpu",
    halving: Sequence[Halving | None] | None = None,
) -> list[TrainResult]:
    """Train every ``(config, seed)`` member; stacks are formed by :func:`group_key`.

    ``device`` ``cuda`` trains the stacks on a GPU (initial weights and data order are still
    drawn on the CPU; dropout masks then come from per-probe CUDA generators). ``halving`` (one
    entry per member) stops the weaker configurations of a stack early, see :class:`Halving`.
    """
    groups: dict[tuple, list[int]] = {}
    for i, (cfg, _) in enumerate(members):
        groups.setdefault(group_key(cfg, data), []).append(i)
    for idx in groups.values():  # probes sharing (lr, weight decay) side by side: one optimiser call per run
        idx.sort(
            key=lambda i: (members[i][0].learning_rate, members[i][0].weight_decay, bool(members[i][0].standardize))
        )
    results: list[TrainResult | None] = [None] * len(members)
    for idx in groups.values():
        hv = [halving[i] for i in idx] if halving is not None else None
        out = _train_stack([members[i] for i in idx], data, max_epochs, evaluate_tests, on_validation, idx, device, hv)
        for i, r in zip(idx, out, strict=True):
            results[i] = r
    return results  # type: ignore[return-value]


def train_probe(
    cfg: Any,
    data: ProbeData,
    seed: int,
    report: Callable[[dict[str, float]], None] | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Train one probe configuration; returns the selected checkpoint's test scores."""

    def cb(_: int, recs: list[tuple[int, dict[str, float]]]) -> None:
        if report is not None:
            for _, rec in recs:
                report(rec)

    return train_probes([(cfg, seed)], data, on_validation=cb, device=device)[0]


def _warn_emulated_bf16(device: str) -> None:
    """Once per process and device: ``precision: bf16`` where bf16 products are emulated (slower than fp32)."""
    if native_bf16(device):
        return
    warn_once(
        RuntimeWarning,
        ("emulated bf16", device),
        f"precision: bf16 — this {device.upper()} has no bf16 units (on a CPU: AVX512-BF16 or AMX), so the "
        "probes' products are emulated and train slower than with fp32; set precision: fp32 (the default) here",
        stacklevel=3,
    )


def _train_stack(
    members: list[tuple[Any, int]],
    data: ProbeData,
    max_epochs: int | None,
    evaluate_tests: bool,
    on_validation: ValidationCallback | None,
    ids: list[int],
    device: str = "cpu",
    halving: list[Halving | None] | None = None,
) -> list[TrainResult]:
    t0 = time.perf_counter()
    task = data.task_type
    cfgs = [c for c, _ in members]
    if cfgs[0].precision == "bf16":
        _warn_emulated_bf16(device)
    seeds = [int(s) for _, s in members]
    n_members = len(members)
    c0 = cfgs[0]
    pca = c0.effective_pca_dim
    # each split under each standardisation setting in the stack, standardised batch by batch (Inputs)
    variants = sorted({bool(c.standardize) for c in cfgs})
    preps = {v: Preprocess(data.x_train, v, pca) for v in variants}
    var_idx = torch.tensor([variants.index(bool(c.standardize)) for c in cfgs], device=device)
    # attention pooling: rows are frames, a track is a run of them (Segments), the stack pools each batch's tracks
    att = data.attention
    plist = [preps[v] for v in variants]
    xtr, xva = Inputs(data.x_train, plist, att, device), Inputs(data.x_val, plist, att, device)
    scale = target_scale(data)  # regression: probes fit standardised targets
    ytr, yva = _targets(data.y_train, task, scale), _targets(data.y_val, task, scale)
    seg_tr = seg_va = None
    if att:
        seg_tr, seg_va = Segments(data.train_counts, device), Segments(data.val_counts, device)  # type: ignore[arg-type]
    ytr, yva = ytr.to(device), yva.to(device)
    # a multilabel data set annotating some labels per track: losses over the annotated pairs only
    mtr = mva = None
    if task == "multilabel_classification":
        (ytr, mtr), (yva, mva) = split_mask(ytr), split_mask(yva)
    # prediction-level aggregation: validation rows are frames, judged per track on their mean scores
    vgroups = None if data.val_groups is None else torch.from_numpy(np.array(data.val_groups)).to(device)
    n, d = (len(seg_tr) if seg_tr is not None else xtr.shape[1]), xtr.shape[2]
    n_out = data.n_outputs
    heads = heads_of(c0, data)
    width = d * max(1, heads)  # the first layer's input: the pooled heads side by side
    hidden = resolve_hidden_units(c0.hidden_units, width, n_out)
    batch = int(c0.batch_size)
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # weights and dropout masks
    model = StackedMLP(
        [width, *hidden, n_out],
        gens,
        dropout=[c.dropout for c in cfgs],
        input_dropout=[c.effective_input_dropout for c in cfgs],
        hidden_norm=c0.hidden_norm,
        init=[c.init for c in cfgs],
        device=device,
        precision=c0.precision,
        attention=heads,
    )
    opt = StackedOptimizer(
        c0.optimizer, model.parameters(), [c.learning_rate for c in cfgs], [c.weight_decay for c in cfgs]
    )
    order_gens = {s: torch.Generator().manual_seed(s) for s in sorted(set(seeds))}  # data order
    weights = training_weights(data, c0.train_sampling == "balanced")  # None: a random order of every row
    crit = [criterion_of(c, task) for c in cfgs]
    epochs = [min(c.epochs, max_epochs) if max_epochs else c.epochs for c in cfgs]
    max_steps = [c.max_steps or math.inf for c in cfgs]
    # some member may stop inside an epoch (its step budget, max_steps): the per-step bookkeeping of who trains
    budgeted = any(math.isfinite(v) for v in max_steps)
    val_every = int(c0.val_every)
    # lr_schedule / warmup_steps: each member's rate is set before every step, over its own budget of steps
    per_epoch = math.ceil(n / batch)
    budgets = [
        int(min(max_steps[m], epochs[m] * per_epoch)) if c.lr_schedule != "constant" or c.warmup_steps else None
        for m, c in enumerate(cfgs)
    ]
    scheduled = any(b is not None for b in budgets)  # no per-step work for stacks without a schedule

    best = [(-math.inf if mode == "max" else math.inf) for _, mode in crit]
    best_epoch = [0] * n_members
    best_state: list[list[torch.Tensor] | None] = [None] * n_members
    since = [0] * n_members
    # ReduceLROnPlateau (lr_decay_patience): its own best (a relative improvement of 1e-4 counts) and bad validations
    plateau = [(-math.inf if mode == "max" else math.inf) for _, mode in crit]
    bad = [0] * n_members
    history: list[list[dict[str, float]]] = [[] for _ in range(n_members)]
    failed: list[str | None] = [None] * n_members
    stopped: list[str | None] = [None] * n_members
    latest: dict[int, float] = {}  # member → this validation's criterion (successive halving ranks by it)
    next_rung: dict[int, int] = {}  # halving group → index k of its next rung
    done_epochs = [0] * n_members
    done_steps = [0] * n_members
    active = list(range(n_members))  # stack position → member
    frozen: set[int] = set()  # members that reached their step budget inside an epoch
    steps = 0
    epoch = 0
    while active:
        epoch += 1
        act_seeds = [seeds[m] for m in active]
        orders = {}
        for s in sorted(set(act_seeds)):
            g = order_gens[s]
            orders[s] = draw_rows(weights, n, g) if weights is not None else torch.randperm(n, generator=g)
        perm = torch.stack([orders[s] for s in act_seeds]).to(device)
        vidx = var_idx[active]
        # one seed in the stack: every probe sees the same rows, gathered once per preprocessing variant
        one_order = len(set(act_seeds)) == 1
        loss_sum = torch.zeros(len(active), device=device)
        # 1 while a member trains, 0 once it reached its step budget: its loss and rows stop counting there
        live = torch.ones(len(active), device=device)
        rows = torch.zeros(len(active), device=device)
        at_budget: dict[int, list[torch.Tensor]] = {}  # stack position → its batchnorm statistics at its budget
        for start in range(0, n, batch):  # the last partial batch is kept
            ib = perm[:, start : start + batch]
            if seg_tr is not None:
                pooled = _pooled(model, xtr, seg_tr, ib, act_seeds, vidx.tolist())
                logits = model.forward(pooled, train=True)
            elif one_order:
                logits = model.forward(xtr.every_variant(ib[0]), train=True, shared=vidx)
            else:
                logits = model.forward(xtr.take(ib, 0) if len(variants) == 1 else xtr.take(ib, vidx), train=True)
            losses = member_losses(logits, ytr[ib], task, None if mtr is None else mtr[ib])
            losses.sum().backward()
            for pos, m in enumerate(active) if scheduled else ():
                if budgets[m] is not None and m not in frozen:
                    opt.lr[pos] = scheduled_lr(cfgs[m], steps, budgets[m])  # type: ignore[arg-type]
            opt.step(model.parameters())
            steps += 1
            # the epoch's mean loss: over its rows, or (masked) over its annotated pairs
            count = ib.shape[1] if mtr is None else mtr[ib].sum((1, 2)).to(loss_sum.dtype)
            if not budgeted:  # every member trains the whole epoch: live stays 1 (x * 1 == x, bit for bit)
                loss_sum += losses.detach() * count
                rows += count
                continue
            loss_sum += losses.detach() * count * live
            rows += count * live
            for pos, m in enumerate(active):
                if m not in frozen and steps >= max_steps[m]:
                    frozen.add(m)  # no further updates: lr 0 leaves Adam, AdamW and SGD parameters unchanged
                    opt.lr[pos] = 0.0
                    live[pos] = 0.0
                    at_budget[pos] = [t[pos].clone() for t in model.buffers()]
            if not live.any():  # every member reached its budget: the rest of the epoch would change nothing
                break
        for pos, saved in at_budget.items():  # batches after its budget must not move a member's running statistics
            for t, v in zip(model.buffers(), saved, strict=True):
                t[pos] = v
        train_loss = (loss_sum / rows).tolist()
        due = [pos for pos, m in enumerate(active) if epoch % val_every == 0 or epoch >= epochs[m] or m in frozen]
        finished: list[int] = []
        if due:
            logits = _forward_pooled(model, xva, seg_va, vidx) if seg_va is not None else _forward_all(model, xva, vidx)
            scores = None
            if vgroups is None:
                yv = yva.unsqueeze(0).expand(len(active), *yva.shape)
                vloss = member_losses(logits, yv, task, None if mva is None else mva.unsqueeze(0)).tolist()
            else:
                agg = aggregate_scores(scores_of(logits, task), vgroups, len(yva))
                vloss = aggregated_losses(agg, yva, task, mva).tolist()
                logits, scores = agg, agg.cpu().numpy()  # argmax of mean probabilities, below
            acc = (logits.argmax(-1) == yva).float().mean(1).tolist() if is_single_label(task) else None
            recs = []
            for pos in due:
                m = active[pos]
                name, mode = crit[m]
                if not (math.isfinite(train_loss[pos]) and math.isfinite(vloss[pos])):
                    failed[m] = (
                        f"non-finite loss at epoch {epoch}: the training diverged — lower learning_rate, or set "
                        "standardize: true for embeddings of large values"
                    )
                    finished.append(pos)
                    continue
                if name == "val_loss":
                    value = vloss[pos]
                elif name == "val_accuracy" and acc is not None:
                    value = acc[pos]
                else:
                    if scores is None:
                        scores = scores_of(logits, task).cpu().numpy()
                    value = criterion_value(
                        name, task, data.y_val, unscaled(scores[pos], scale), vloss[pos], data.classes
                    )
                rec = {"epoch": epoch, "train_loss": train_loss[pos], "val_loss": vloss[pos], "val_criterion": value}
                latest[m] = value
                improved = value > best[m] if mode == "max" else value < best[m]
                if improved:
                    best[m], best_epoch[m], since[m] = value, epoch, 0
                    best_state[m] = model.snapshot(torch.tensor([pos], device=device))
                else:
                    since[m] += 1
                if cfgs[m].lr_decay_patience is not None:
                    _plateau_step(opt, pos, m, value, mode, cfgs[m], plateau, bad)
                rec["best_criterion"] = best[m]
                history[m].append(rec)
                recs.append((ids[m], rec))
                # Keras' and Lightning's rule: a validation that improved never stops a probe (patience 0 stops at
                # the first one that does not improve, not after the first validation)
                if (not improved and since[m] >= cfgs[m].patience) or epoch >= epochs[m] or m in frozen:
                    finished.append(pos)
            if halving is not None:
                _halve(epoch, active, due, finished, halving, crit, latest, next_rung, epochs, stopped)
            if on_validation is not None and recs:
                on_validation(epoch, recs)
        for m in active:
            done_epochs[m] = epoch
            done_steps[m] = int(min(steps, max_steps[m]))
        if finished:
            keep = [pos for pos in range(len(active)) if pos not in set(finished)]
            active = [active[pos] for pos in keep]
            if active:
                kt = torch.tensor(keep, device=device)
                model.select(kt)
                opt.select(kt)

    seconds = (time.perf_counter() - t0) / n_members
    results: list[TrainResult] = []
    for m in range(n_members):
        if failed[m] is None and (best_state[m] is None or not math.isfinite(best[m])):  # ±inf improves on ±inf
            failed[m] = never_finite(crit[m][0], [float(h["val_criterion"]) for h in history[m]])
        state: dict[str, Any] = {}
        if best_state[m] is not None:
            c = cfgs[m]
            state = model.export(0, best_state[m], dropout=c.dropout, input_dropout=c.effective_input_dropout)
        results.append(
            TrainResult(
                best_epoch[m], best[m], history[m], state, {}, failed[m], done_epochs[m], done_steps[m], seconds,
                stopped[m],  # a member ASHA stopped had finished: it cannot fail afterwards
            )
        )  # fmt: skip
    if evaluate_tests and data.tests:
        ok = [m for m in range(n_members) if failed[m] is None]
        if ok:
            snaps = [best_state[m] for m in ok]
            model.load_snapshot([torch.cat(parts) for parts in zip(*snaps, strict=True)])  # type: ignore[misc]
            vsel = var_idx[ok]
            for sid, (x, _, _) in data.tests.items():
                xs = Inputs(x, plist, att, device)
                if att:
                    logits = _forward_pooled(model, xs, Segments(data.test_counts[sid], device), vsel)
                else:
                    logits = _forward_all(model, xs, vsel)
                sc = data.track_scores(sid, unscaled(scores_of(logits, task).cpu().numpy(), scale))
                for pos, m in enumerate(ok):
                    results[m].test_scores[sid] = sc[pos]
    return results
