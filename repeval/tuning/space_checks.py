"""What :mod:`repeval.tuning.search` checks of a spec's expansion when a config is read (``repeval validate``): every
grid point, the probes its search space can draw — each value alone on every grid point, then the values together —
and an ASHA scheduler that would stop nothing."""

from __future__ import annotations

import itertools
from typing import Any

from repeval.tuning.search import ProbePoint, ProbeSpec, expand_probe, probe_config

#: at most this many (grid point, sampled values) pairs are validated together when a spec is read (each sampled value
#: is validated alone on every grid point first, whatever their number)
JOINT_CHECKS = 2000


def _extremes(kind: str, args: list[Any]) -> list[Any]:
    """The values of a sampler most likely to make an invalid probe: every ``choice``, else the bounds it can reach
    (``randint`` / ``lograndint`` exclude their upper bound, as Ray Tune's do)."""
    if kind == "choice":
        return list(args)
    if kind.endswith("randint"):
        return [int(args[0]), int(args[1]) - 1]
    return [args[0], args[1]]


def _fraction(kind: str, args: list[Any]) -> float | None:
    """A value a sampler of fractions gives that is no whole number (``None`` for samplers of whole numbers): a key
    that takes whole numbers (``batch_size``) or a flag is accepted at both bounds, then fails in every trial."""
    if kind in ("uniform", "loguniform"):
        return args[0] + (args[1] - args[0]) * 0.3137
    if kind in ("quniform", "qloguniform") and not float(args[2]).is_integer() and args[0] + args[2] <= args[1]:
        return args[0] + args[2]
    return None


def _check_drawn(spec: ProbeSpec, point: ProbePoint, dumped: dict[str, Any], drawn: dict[str, Any]) -> None:
    """That ``drawn`` (space values, as a trial gets them) on ``point`` (its configuration ``dumped``) make a probe,
    else say which values, where."""
    try:
        probe_config({**dumped, **drawn}, "")
    except ValueError as exc:
        said = ", ".join(f"{k}={v!r}" for k, v in drawn.items())
        at = f" on grid point '{point.name}'" if len(spec.points) > 1 else ""
        what = "space value" if len(drawn) == 1 else "space values"
        raise ValueError(
            f"{what} {said}{at} {'makes' if len(drawn) == 1 else 'make'} no probe: {str(exc).lstrip(': ')}"
        ) from None


def check_expansion(p: Any) -> None:
    """Validate every configuration a spec expands into (called by the config schema): each grid point (built by
    :func:`expand_probe`), each value a search space may sample — alone on every grid point, then together with the
    other keys' values, as trials will get them (up to :data:`JOINT_CHECKS` pairs) — and an ASHA scheduler that
    would stop nothing."""
    spec = expand_probe(p, 0)
    dumped = [pt.config.model_dump() for pt in spec.points]
    first = dumped[0]
    values = {key: _extremes(s["type"], s["args"]) for key, s in spec.space.items()}
    # every value alone on every grid point (a grid point's value may refuse it: lr_schedule: cosine on one point
    # with a sampled lr_decay_patience), then a value between the bounds, then the values together (as many pairs
    # as JOINT_CHECKS allows)
    for point, config in zip(spec.points, dumped, strict=True):
        for key, vs in values.items():
            for v in vs:
                _check_drawn(spec, point, config, {key: v})
    for key, s in spec.space.items():
        kind, args = s["type"], s["args"]
        frac = _fraction(kind, args)
        if frac is not None:
            try:
                probe_config({**first, key: frac}, "")
            except ValueError as exc:
                raise ValueError(
                    f"space.{key}.{kind}: samples fractions such as {frac:.4g}, which {key} does not take "
                    f"({str(exc).lstrip(': ')}): sample it with randint or lograndint (the upper bound excluded), "
                    "or choice"
                ) from None
    if len(values) > 1:
        pairs = itertools.product(range(len(spec.points)), itertools.product(*values.values()))
        for i, combo in itertools.islice(pairs, JOINT_CHECKS):
            _check_drawn(spec, spec.points[i], dumped[i], dict(zip(values, combo, strict=True)))
    _check_scheduler(spec, values.get("epochs"), values.get("val_every"))


def _check_scheduler(spec: ProbeSpec, sampled_epochs: list[Any] | None, sampled_val_every: list[Any] | None) -> None:
    """An ASHA scheduler whose first rung (``grace_period`` epochs) is not below the epochs the probes train: it
    would stop nothing (Tune's and the grid's halving skip it), which the user asked for it to do. Nor may the first
    validation at or past the rung (every ``val_every`` epochs) be the last: ASHA would judge a trial only once it
    had trained its whole budget (Tune's ASHA then stopped it, losing the checkpoint it trained)."""
    if spec.scheduler is None:
        return
    epochs = max(int(float(v)) for v in (sampled_epochs or [p.config.epochs for p in spec.points]))
    max_t = spec.scheduler["max_t"]
    budget = min(epochs, max_t) if max_t else epochs
    grace = spec.scheduler["grace_period"]
    limit = f"max_t ({max_t})" if max_t and max_t < epochs else f"the probes' epochs ({epochs})"
    if grace >= budget:
        raise ValueError(
            f"scheduler.grace_period ({grace}) is not below {limit}: ASHA's first rung would come after training "
            f"ends, so it would stop nothing — set grace_period below {budget}"
            + (", raise max_t" if max_t and max_t < epochs else ", raise epochs")
            + ", or remove the scheduler"
        )
    every = min(int(float(v)) for v in (sampled_val_every or [p.config.val_every for p in spec.points]))
    # the first validation at or past the rung is the last (training ends; a max_t below it judges trials that go on)
    if budget == epochs and -(-grace // every) * every >= epochs:
        last = (epochs - 1) // every * every  # the last validation before the end
        fix = f"set grace_period to {last} or less" if last >= 1 else "lower val_every"
        raise ValueError(
            f"scheduler.grace_period ({grace}): with val_every {every} no validation falls from epoch {grace} to "
            f"before the end of training (epoch {epochs}), so ASHA would judge a trial only at its last validation "
            f"and stop none early — {fix}, or remove the scheduler"
        )


__all__ = ["JOINT_CHECKS", "check_expansion"]
