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


def _is_flag(key: str) -> bool:
    """Whether probe key ``key`` is a flag (``standardize``): true or false, not a number to sample."""
    from repeval.config.probe import ProbeConfig

    field = ProbeConfig.model_fields.get(key)
    return field is not None and field.annotation is bool


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
                fix = (
                    "sample it with choice: [true, false]"
                    if _is_flag(key)
                    else "sample it with randint or lograndint (the upper bound excluded), or choice"
                )
                raise ValueError(
                    f"space.{key}.{kind}: samples fractions such as {frac:.4g}, which {key} does not take "
                    f"({str(exc).lstrip(': ')}): {fix}"
                ) from None
    if len(values) > 1:
        pairs = itertools.product(range(len(spec.points)), itertools.product(*values.values()))
        for i, combo in itertools.islice(pairs, JOINT_CHECKS):
            _check_drawn(spec, spec.points[i], dumped[i], dict(zip(values, combo, strict=True)))
    _check_scheduler(spec)


def _check_scheduler(spec: ProbeSpec) -> None:
    """An ASHA scheduler that would stop nothing (:func:`asha_idle`) is refused: the user asked for it to stop
    some. ``run.max_epochs`` is not known here (a probe entry is read alone): the plan says what it leaves ASHA, and
    the run makes no scheduler then."""
    idle = asha_idle(spec)
    if idle is not None:
        raise ValueError(f"{idle[0]} — {idle[1]}")


def _drawn(spec: ProbeSpec) -> dict[str, list[Any]]:
    return {key: _extremes(s["type"], s["args"]) for key, s in spec.space.items() if key in ("epochs", "val_every")}


def asha_budget(spec: ProbeSpec, max_epochs: int | None = None) -> int:
    """The epochs ASHA's rungs lie below: the most a probe of ``spec`` trains (its ``epochs``, the largest a search
    space may draw; ``run.max_epochs`` if lower) or the scheduler's ``max_t`` if lower still."""
    values = _drawn(spec).get("epochs") or [p.config.epochs for p in spec.points]
    end = max(int(float(v)) for v in values)
    if max_epochs:
        end = min(end, max_epochs)
    max_t = spec.scheduler["max_t"] if spec.scheduler is not None else None
    return min(end, int(max_t)) if max_t else end


def asha_idle(spec: ProbeSpec, max_epochs: int | None = None) -> tuple[str, str] | None:
    """``(why, fix)`` when ``spec``'s ASHA scheduler would stop nothing, else ``None`` (also without a scheduler) —
    the one rule ``repeval validate``, ``repeval plan`` and the run apply. Training ends at the probes' ``epochs``
    (the largest a search space may draw), or ``run.max_epochs`` (``max_epochs``) if lower. ASHA stops nothing if its
    first rung (``grace_period`` epochs) is not below that end (or ``max_t``): Tune's and the grid's halving skip it.
    Nor if the first validation (every ``val_every`` epochs) at or past the rung is the last: ASHA would judge a
    trial only once it had trained its whole budget (Tune's ASHA then stopped it, losing the checkpoint it
    trained). Nor if the entry trains one configuration: ASHA ranks them (Tune's on one trial, the grid's halving on
    one point), and one never ranks below the rest."""
    if spec.scheduler is None:
        return None
    drawn = _drawn(spec)
    epochs = max(int(float(v)) for v in (drawn.get("epochs") or [p.config.epochs for p in spec.points]))
    capped = max_epochs is not None and max_epochs < epochs
    end = max_epochs if capped and max_epochs is not None else epochs
    max_t = spec.scheduler["max_t"]
    budget = asha_budget(spec, max_epochs)
    grace = spec.scheduler["grace_period"]
    if max_t and max_t < end:
        limit, raise_ = f"max_t ({max_t})", "max_t"
    elif capped:
        limit, raise_ = f"run.max_epochs ({max_epochs})", "run.max_epochs"
    else:
        limit, raise_ = f"the probes' epochs ({epochs})", "epochs"
    if grace >= budget:
        return (
            f"scheduler.grace_period ({grace}) is not below {limit}: ASHA's first rung would come after training "
            "ends, so it would stop nothing",
            f"set grace_period below {budget}, raise {raise_}, or remove the scheduler",
        )
    every = min(int(float(v)) for v in (drawn.get("val_every") or [p.config.val_every for p in spec.points]))
    # the first validation at or past the rung is the last (training ends; a max_t below it judges trials that go on)
    if budget == end and -(-grace // every) * every >= end:
        last = (end - 1) // every * every  # the last validation before the end
        fix = f"set grace_period to {last} or less" if last >= 1 else "lower val_every"
        return (
            f"scheduler.grace_period ({grace}): with val_every {every} no validation falls from epoch {grace} to "
            f"before the end of training (epoch {end}{', run.max_epochs' if capped else ''}), so ASHA would judge a "
            "trial only at its last validation and stop none early",
            f"{fix}{', raise run.max_epochs' if capped else ''}, or remove the scheduler",
        )
    if spec.size < 2:  # ASHA ranks configurations (a trial's seeds train together): one is never below the rest
        return (
            "search.scheduler: ASHA stops the configurations that rank below the others at its rungs, and this entry "
            "trains one, so it would stop nothing",
            "give search.grid more values or search.num_samples more than 1, or remove the scheduler",
        )
    apart = [] if spec.tune_mode else _stacks_of_one(spec.points)
    if apart:
        return (
            "search.scheduler: on a grid, ASHA ranks the configurations trained together in one stack, and the "
            f"{len(spec.points)} of this grid each train in a stack of their own (probes of another "
            f"{' or '.join(apart)} never share one), so it would stop nothing",
            "add a search.grid axis they share (learning_rate, dropout, weight_decay, …), or remove the scheduler",
        )
    return None


#: the names of :attr:`~repeval.config.probe.ProbeConfig.stack_settings`, in its order
_STACK_SETTINGS = ("batch_size", "optimizer", "pca_dim", "hidden_norm", "val_every", "train_sampling", "precision")


def _stacks_of_one(points: list[ProbePoint]) -> list[str]:
    """The settings that put each of ``points`` (a grid) in a stack of its own (:func:`repeval.probes.train.group_key`)
    — known without the data: layer sizes only when all are numbers (``infer`` sizes follow the data) — or ``[]``
    when two may share one."""
    hidden = [tuple(p.config.hidden_units) for p in points]
    known = all(isinstance(u, int) for h in hidden for u in h)
    keys = [(h if known else (), *p.config.stack_settings) for h, p in zip(hidden, points, strict=True)]
    if len(set(keys)) < len(keys):
        return []
    names = ("hidden_units", *_STACK_SETTINGS)
    return [name for i, name in enumerate(names) if len({k[i] for k in keys}) > 1]


__all__ = ["JOINT_CHECKS", "asha_budget", "asha_idle", "check_expansion"]
