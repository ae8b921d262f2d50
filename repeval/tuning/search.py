"""Probe grids and Tune search spaces from YAML (plain values only), and their expansion.

A ``downstream_models`` entry is a *probe spec*. A plain entry is one configuration; an entry
with ``preset:`` and/or ``search:`` expands into many::

    - preset: jukemir            # 216 configurations, best by validation
      epochs: 50                 # a key next to the preset overrides it (and fixes that grid axis)
    - name: tuned
      hidden_units: [512]
      search:
        grid:                    # cartesian product, every value a plain YAML value
          learning_rate: [1.0e-4, 1.0e-3]
        space:                   # sampled by Ray Tune, num_samples times per grid point
          dropout: {uniform: [0.1, 0.6]}
          weight_decay: {loguniform: [1.0e-6, 1.0e-3]}
          batch_size: {choice: [64, 256]}
        num_samples: 8
        scheduler: asha          # or {type: asha, grace_period: 10, reduction_factor: 3}
        select: best             # best (one test run of the best) or all (every configuration reported)

Grids without ``space`` train vectorised (many configurations per trial); with ``space`` every
configuration is its own Tune trial (all seeds trained together in it). ``scheduler: asha`` on a
grid stops weaker configurations inside each vectorised stack (successive halving at Tune's ASHA
rungs, :class:`repeval.probes.schedule.Halving`); with a ``space``, or with ``brackets`` > 1, Tune's
own ASHA scheduler runs one trial per configuration.

Validation (:func:`repeval.tuning.space_checks.check_expansion`) builds every grid point, and the probes a space's values make — each value a
sampler can reach alone on every grid point, then with the other keys' values — so that a value no probe takes is
said by ``repeval validate``, not by every trial that draws it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repeval.registry import closest

if TYPE_CHECKING:
    from repeval.probes.schedule import Halving

SEARCH_KEYS = ("grid", "space", "num_samples", "scheduler", "select")
SPACE_TYPES = {
    "uniform": 2,
    "loguniform": 2,
    "quniform": 3,
    "qloguniform": 3,
    "randint": 2,
    "lograndint": 2,
    "choice": None,
}
ASHA_KEYS = ("type", "grace_period", "reduction_factor", "max_t", "brackets")
#: the ASHA settings a ``scheduler`` takes where it does not set them
ASHA_DEFAULTS: dict[str, Any] = {"grace_period": 10, "reduction_factor": 3, "max_t": None, "brackets": 1}
#: keys of a probe spec that are not configuration values
SPEC_KEYS = ("name", "preset", "search")


def _probe_keys() -> list[str]:
    from repeval.config.probe import ProbeConfig

    return [k for k in ProbeConfig.model_fields if k not in SPEC_KEYS]


def _key_error(where: str, key: str, valid: list[str]) -> ValueError:
    hint = closest(key, valid)
    prefix = f"{where}: " if where else ""
    return ValueError(
        f"{prefix}unknown key '{key}'" + (f" — did you mean '{hint}'?" if hint else f" (valid: {', '.join(valid)})")
    )


#: a number as YAML 1.2 writes it but YAML 1.1 (PyYAML's ``safe_load``) reads as a string: an exponent without a dot
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)  # 1e-5 (YAML 1.1's string) as the number it reads as everywhere else in a config
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    raise ValueError(
        f"{where}: grid values must be plain YAML values (numbers, strings, lists), got {type(value).__name__}"
    )


def _check_on_grid(where: str, low: float, high: float, q: float) -> None:
    """Ray Tune's rule for ``quniform`` / ``qloguniform``, said at validation: both bounds are multiples of ``q``
    (Tune raises building the space, when training starts)."""
    off = [b for b in (low, high) if not math.isclose(b / q, round(b / q))]
    if off:
        lo, hi = math.ceil(low / q - 1e-9) * q, math.floor(high / q + 1e-9) * q
        fix = (
            f"write [{lo:g}, {hi:g}, {q:g}]"
            if lo < hi
            else f"no two multiples of {q:g} lie within [{low:g}, {high:g}]: write a smaller q or wider bounds"
        )
        raise ValueError(
            f"{where}: the bounds must be multiples of the step q ({q:g}), as Ray Tune requires, but {off[0]:g} is "
            f"not: {fix}"
        )


def _check_whole(where: str, low: float, high: float) -> None:
    """``randint`` / ``lograndint`` bounds are whole numbers: Ray Tune truncates them (``[0.5, 4]`` drew from 0, and
    ``lograndint`` refused its lower bound 0 when the space was built, stopping the train stage)."""
    if float(low).is_integer() and float(high).is_integer():
        return
    lo, hi = math.ceil(low), math.ceil(high)
    fix = f"write [{lo}, {hi}]" if lo < hi else f"no whole number lies within [{low:g}, {high:g}]: widen the bounds"
    raise ValueError(
        f"{where}: the bounds must be whole numbers (Ray Tune truncates them), got [{low:g}, {high:g}]: {fix}"
    )


def validate_search(v: Any) -> dict[str, Any]:
    """Check a ``search:`` block and return it normalised (every key present)."""
    if not isinstance(v, dict):
        raise ValueError("search must be a mapping with keys " + ", ".join(SEARCH_KEYS))
    for key in v:
        if key not in SEARCH_KEYS:
            raise _key_error("", str(key), list(SEARCH_KEYS))
    for part, example in (("grid", "{learning_rate: [1.0e-4, 1.0e-3]}"), ("space", "{dropout: {uniform: [0.1, 0.5]}}")):
        if v.get(part) is not None and not isinstance(v[part], dict):
            raise ValueError(
                f"{part}: must be a mapping of probe keys, e.g. {part}: {example}; got {type(v[part]).__name__} "
                f"{v[part]!r}"
            )
    probe_keys = _probe_keys()
    grid: dict[str, list[Any]] = {}
    for key, values in (v.get("grid") or {}).items():
        if key not in probe_keys:
            raise _key_error("grid", key, probe_keys)
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid.{key}: must be a non-empty list of values")
        grid[key] = _plain(list(values), f"grid.{key}")
    space: dict[str, dict[str, Any]] = {}
    for key, spec in (v.get("space") or {}).items():
        if key not in probe_keys:
            raise _key_error("space", key, probe_keys)
        if key in grid:
            raise ValueError(f"space.{key}: already a grid axis; keep one")
        if isinstance(spec, dict) and set(spec) == {"type", "args"}:  # the normalised form this returns
            spec = {spec["type"]: spec["args"]}
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ValueError(
                f"space.{key}: write one sampler, e.g. {{uniform: [0.1, 0.5]}}; samplers: {', '.join(SPACE_TYPES)}"
            )
        ((kind, args),) = spec.items()
        if kind not in SPACE_TYPES:
            raise _key_error(f"space.{key}", kind, list(SPACE_TYPES))
        if not isinstance(args, list | tuple) or not args:
            raise ValueError(f"space.{key}.{kind}: needs a list of arguments")
        args = _plain(list(args), f"space.{key}")
        want = SPACE_TYPES[kind]
        if want is not None and len(args) != want:
            raise ValueError(f"space.{key}.{kind}: takes {want} numbers, got {list(args)}")
        if want is not None:
            if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args) or args[0] >= args[1]:
                raise ValueError(
                    f"space.{key}.{kind}: needs numbers [low, high(, q)] with low < high, got {list(args)}"
                )
            if kind.startswith(("log", "qlog")) and args[0] <= 0:
                raise ValueError(f"space.{key}.{kind}: a log scale needs low > 0, got {args[0]}")
            if kind.startswith("q") and not args[2] > 0:
                raise ValueError(f"space.{key}.{kind}: the step q (third number) must be > 0, got {args[2]}")
            if kind.startswith("q"):
                _check_on_grid(f"space.{key}.{kind}", *args)
            if kind.endswith("randint"):
                _check_whole(f"space.{key}.{kind}", *args)
        space[key] = {"type": kind, "args": args}
    num_samples = v.get("num_samples", 1)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: must be a positive integer, got {num_samples!r}")
    scheduler = v.get("scheduler")
    if scheduler in (None, "none", "fifo", False):
        scheduler = None
    elif scheduler == "asha":
        scheduler = {"type": "asha"}
    if scheduler is not None:
        if not isinstance(scheduler, dict):
            raise ValueError(f"scheduler: 'asha', 'none' or a mapping {{type: asha, ...}}, got {scheduler!r}")
        for key in scheduler:
            if key not in ASHA_KEYS:
                raise _key_error("scheduler", str(key), list(ASHA_KEYS))
        if scheduler.get("type", "asha") != "asha":
            raise ValueError(f"scheduler.type: only 'asha' is supported, got {scheduler.get('type')!r}")
        normalised: dict[str, Any] = {"type": "asha"}
        for key, cast, least in (
            ("grace_period", int, "≥ 1 (epochs)"),
            ("reduction_factor", float, "> 1"),
            ("max_t", int, "≥ 1 (epochs), or left out for the probes' epochs"),
            ("brackets", int, "≥ 1"),
        ):
            default = ASHA_DEFAULTS[key]
            value = scheduler.get(key, default)
            if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
                value = float(value)  # grace_period: 1e1 (YAML 1.1's string), read as in the search space
            if value is None and default is None:
                normalised[key] = None
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (cast is int and not float(value).is_integer())
                or not (value > 1 if key == "reduction_factor" else value >= 1)
            ):
                what = "an integer" if cast is int else "a number"
                raise ValueError(f"scheduler.{key}: must be {what} {least}, got {value!r}")
            normalised[key] = cast(value)
        scheduler = normalised
    select = v.get("select")
    if select not in (None, "all", "best"):
        raise ValueError(f"select: 'all' or 'best', got {select!r}")
    if space and select == "all" and num_samples > 50:
        raise ValueError("select: all with a sampled space reports every sample; use select: best")
    return {"grid": grid, "space": space, "num_samples": num_samples, "scheduler": scheduler, "select": select}


# ------------------------------------------------------------------------ expansion


@dataclass
class ProbePoint:
    #: the name results are reported under (select: all) or the point's id (select: best)
    name: str
    config: Any  # ProbeConfig
    #: the values that distinguish this point from the spec's other points
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProbeSpec:
    """One ``downstream_models`` entry, expanded."""

    name: str
    select: str
    points: list[ProbePoint]
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    num_samples: int = 1
    scheduler: dict[str, Any] | None = None

    @property
    def tune_mode(self) -> bool:
        """One configuration per trial: a sampled space, or ASHA with several brackets, needs Tune's
        trial scheduler; a grid with one ASHA bracket halves inside its stacks (:meth:`halving`)."""
        return bool(self.space) or (self.scheduler is not None and self.scheduler["brackets"] > 1)

    def halving(self, spec_index: int, point: int) -> Halving | None:
        """The :class:`repeval.probes.schedule.Halving` of a grid-mode point (None without a scheduler)."""
        from repeval.probes.schedule import Halving

        if self.scheduler is None or self.tune_mode:
            return None
        s = self.scheduler
        max_t = int(s["max_t"]) if s.get("max_t") else None
        return Halving(spec_index, point, int(s["grace_period"]), float(s["reduction_factor"]), max_t)

    @property
    def size(self) -> int:
        return len(self.points) * (self.num_samples if self.space else 1)


def probe_config(values: dict[str, Any], where: str) -> Any:
    """A ``ProbeConfig`` of ``values``, its first validation error said after ``where`` (``where key: message``)."""
    from pydantic import ValidationError

    from repeval.config.probe import ProbeConfig

    try:
        return ProbeConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{where}{(' ' + loc) if loc else ''}: {msg}") from None


def expand_probe(p: Any, index: int, task_type: str | None = None) -> ProbeSpec:
    """Expand a probe spec (a ``ProbeConfig`` with ``preset`` / ``search``) into its configurations.

    With the experiment's (effective) ``task_type``, a preset's configurations carry its source's validation
    criterion for that type (:attr:`repeval.tuning.presets.Preset.criteria`) unless the spec sets ``save_criterion``.
    """
    from repeval.tuning.presets import get_preset

    preset = get_preset(p.preset) if p.preset else None
    search = p.search or {"grid": {}, "space": {}, "num_samples": 1, "scheduler": None, "select": None}
    overrides = {k: getattr(p, k) for k in p.model_fields_set if k not in SPEC_KEYS}
    base: dict[str, Any] = dict(preset.base) if preset else {}
    criterion = preset.criterion(task_type) if preset else None
    if criterion:
        base["save_criterion"] = criterion
    base.update(overrides)
    points: list[tuple[str, dict[str, Any]]] = list(preset.points) if preset and preset.points else [("", {})]
    if preset and preset.points:
        # a key every named point sets is what tells them apart: replaced by one value (or by a search axis) it
        # would make M1–M5 one probe five times, each reported under a name that says otherwise
        defining = set.intersection(*(set(pv) for _, pv in preset.points))
        for key in sorted(defining & (set(overrides) | set(search["grid"]) | set(search["space"]))):
            raise ValueError(
                f"{key} is what tells preset {p.preset}'s probes apart ({', '.join(n for n, _ in preset.points)}); "
                f"setting it would train one probe {len(preset.points)} times under their names — write a probe "
                f"without the preset for other {key}"
            )
    axes: dict[str, list[Any]] = dict(preset.grid) if preset else {}
    for key in overrides:  # an explicit key fixes that axis
        axes.pop(key, None)
        points = [(n, {k: v for k, v in pv.items() if k != key}) for n, pv in points]
    axes.update(search["grid"])
    for key in search["space"]:
        axes.pop(key, None)
    name = p.name or (p.preset if preset else f"M{index + 1}")
    select = search["select"] or (preset.select if preset else ("best" if (axes or search["space"]) else "all"))
    searched_criterion = "save_criterion" in axes or "save_criterion" in search["space"]
    if searched_criterion and (select == "best" or search["scheduler"] is not None):
        raise ValueError(
            f"probe '{name}': save_criterion is a search axis, but "
            + ("select: best picks" if select == "best" else "the asha scheduler stops")
            + " configurations by comparing their validation values, which different criteria (a loss and an accuracy) "
            "do not allow; set one save_criterion for the probe, or report each configuration (select: all, no "
            "scheduler)"
        )
    combos = list(itertools.product(*axes.values())) if axes else [()]
    width = len(str(max(0, len(combos) - 1)))
    out: list[ProbePoint] = []
    for pname, pvals in points:
        for ci, combo in enumerate(combos):
            grid_vals = dict(zip(axes, combo, strict=True))
            params = {**pvals, **grid_vals}
            suffix = "-".join(s for s in (pname, f"{ci:0{width}d}" if axes else "") if s)
            if not suffix:
                point_name = name
            elif preset is not None and preset.bare_names and not axes and p.name is None:
                point_name = suffix
            else:
                point_name = f"{name}-{suffix}"
            cfg = probe_config({**base, **params}, f"probe '{point_name}'")
            out.append(ProbePoint(point_name, cfg, params))
    return ProbeSpec(name, select, out, dict(search["space"]), search["num_samples"], search["scheduler"])


def expand_all(downstream_models: Any, task_type: str | None = None) -> list[ProbeSpec]:
    specs = [expand_probe(p, i, task_type) for i, p in enumerate(downstream_models)]
    names: list[str] = []
    owner: dict[str, list[int]] = {}  # a reported name → the downstream_models entries reporting it
    for i, s in enumerate(specs):
        for n in [s.name] if s.select == "best" else [pt.name for pt in s.points]:
            names.append(n)
            owner.setdefault(n, []).append(i)
    bad = sorted({n for n in names if "__" in n or "/" in n})
    if bad:
        raise ValueError(f"probe names may not contain '__' or '/': {bad}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        where = " and ".join(f"downstream_models[{i}]" for i in sorted(set(owner[dup[0]])))
        raise ValueError(
            f"probe names are used twice: {dup} ({dup[0]!r}: {where}) — give the downstream_models entries distinct "
            "names"
        )
    return specs


def sampled_config(point: ProbePoint, sampled: dict[str, Any]) -> Any:
    """A point's configuration with values drawn from the search space."""
    if not sampled:
        return point.config
    return probe_config({**point.config.model_dump(), **sampled}, f"probe '{point.name}'")


def tune_space(spec: ProbeSpec) -> dict[str, Any]:
    """The spec's search space as Ray Tune sampling objects (built from the plain YAML)."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, s in spec.space.items():
        a = s["args"]
        kind = s["type"]
        if kind == "uniform":
            out[key] = tune.uniform(a[0], a[1])
        elif kind == "loguniform":
            out[key] = tune.loguniform(a[0], a[1])
        elif kind == "quniform":
            out[key] = tune.quniform(a[0], a[1], a[2])
        elif kind == "qloguniform":
            out[key] = tune.qloguniform(a[0], a[1], a[2])
        elif kind == "randint":
            out[key] = tune.randint(int(a[0]), int(a[1]))
        elif kind == "lograndint":
            out[key] = tune.lograndint(int(a[0]), int(a[1]))
        else:
            out[key] = tune.choice(a)
    return out


def expanded_count(downstream_models: Any) -> int:
    """How many probe configurations a list of specs trains (for plans)."""
    return sum(s.size for s in (expand_probe(p, i) for i, p in enumerate(downstream_models)))


__all__ = [
    "ProbePoint",
    "ProbeSpec",
    "expand_all",
    "expand_probe",
    "expanded_count",
    "probe_config",
    "sampled_config",
    "tune_space",
    "validate_search",
]
