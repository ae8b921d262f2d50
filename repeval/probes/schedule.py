"""What changes while a stack trains: each member's learning rate (warm-up and cosine decay,
:func:`scheduled_lr`; ReduceLROnPlateau, :func:`_plateau_step`) and which members go on (successive halving,
:class:`Halving`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from repeval.probes.stacked import StackedOptimizer


@dataclass(frozen=True)
class Halving:
    """Successive halving inside a stack (``scheduler: asha`` on a grid without a sampled space).

    At the rungs ``grace · eta^k`` epochs below ``max_t`` (or the members' epoch budget), the
    configurations of ``group`` (a probe spec) that reached the rung are ranked by their latest
    validation criterion (the mean over their seeds); the best ``ceil(n / eta)`` continue and the
    others stop there with the best checkpoint they had — Ray Tune's ASHA rule, applied
    synchronously to the configurations that train together. Members that continue follow exactly
    the trajectory they would alone."""

    group: int
    point: int
    grace: int
    eta: float
    max_t: int | None = None

    def rung(self, k: int) -> int:
        return max(1, round(self.grace * self.eta**k))


def scheduled_lr(cfg: Any, step: int, budget: int) -> float:
    """The learning rate of optimiser step ``step`` (counted from 0, as Keras counts ``iterations``) of a probe that
    trains ``budget`` steps: ``warmup_steps`` of linear warm-up from 0 (MULE's ``WarmupSchedule``, Keras'
    ``PolynomialDecay`` from 0 to ``learning_rate``), then ``learning_rate`` (``constant``) or Keras'
    ``CosineDecay(learning_rate, budget - warmup_steps, alpha=0)`` of ``step - warmup_steps`` (``cosine``)."""
    lr, warm = float(cfg.learning_rate), int(cfg.warmup_steps)
    if step < warm:
        return lr * step / warm
    decay = budget - warm
    if cfg.lr_schedule == "cosine" and decay > 0:
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(step - warm, decay) / decay))
    return lr


#: ReduceLROnPlateau's defaults: a relative improvement threshold, and the smallest change of learning rate applied
PLATEAU_THRESHOLD, PLATEAU_EPS = 1e-4, 1e-8


def _plateau_step(
    opt: StackedOptimizer, pos: int, m: int, value: float, mode: str, cfg: Any, best: list[float], bad: list[int]
) -> None:
    """One ``torch.optim.lr_scheduler.ReduceLROnPlateau.step(value)`` for member ``m`` (stack position ``pos``):
    ``threshold_mode="rel"``, no cooldown, no minimum learning rate."""
    better = value > best[m] * (1 + PLATEAU_THRESHOLD) if mode == "max" else value < best[m] * (1 - PLATEAU_THRESHOLD)
    if better:
        best[m], bad[m] = value, 0
    else:
        bad[m] += 1
    if bad[m] > cfg.lr_decay_patience:
        old = float(opt.lr[pos])
        new = old * cfg.lr_decay_factor
        if old - new > PLATEAU_EPS:
            opt.lr[pos] = new
        bad[m] = 0


def _halve(
    epoch: int,
    active: list[int],
    due: list[int],
    finished: list[int],
    halving: list[Halving | None],
    crit: list[tuple[str, str]],
    latest: dict[int, float],
    next_rung: dict[int, int],
    epochs: list[int],
    stopped: list[str | None],
) -> None:
    """Apply :class:`Halving` after a validation: append the stack positions it stops to ``finished``."""
    done = set(finished)
    groups: dict[int, list[tuple[int, Halving]]] = {}  # group → (stack position, its Halving)
    for pos in due:
        hp = halving[active[pos]]
        if hp is not None and pos not in done:
            groups.setdefault(hp.group, []).append((pos, hp))
    for group, entries in groups.items():
        h = entries[0][1]
        positions = [pos for pos, _ in entries]
        limit = min(h.max_t or math.inf, max(epochs[active[p]] for p in positions))
        k = next_rung.get(group, 0)
        if epoch < h.rung(k) or h.rung(k) >= limit:
            continue
        while h.rung(k) <= epoch:  # a validation every few epochs may pass several rungs at once
            k += 1
        next_rung[group] = k
        by_point: dict[int, list[int]] = {}
        for pos, hp in entries:
            by_point.setdefault(hp.point, []).append(pos)
        sign = 1.0 if crit[active[positions[0]]][1] == "max" else -1.0
        scores = {}
        for point, pos_list in by_point.items():
            vals = [sign * latest[active[p]] for p in pos_list]
            scores[point] = float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else -math.inf
        ranked = sorted(by_point, key=lambda pt: (-scores[pt], pt))
        for point in ranked[math.ceil(len(ranked) / h.eta) :]:
            for pos in by_point[point]:
                finished.append(pos)
                stopped[active[pos]] = f"stopped by ASHA at epoch {epoch}"
