"""What a probe preset's departures (:attr:`repeval.tuning.presets.Preset.differs`) say of how an entry trains:
``{epochs}``, ``{patience}``, ``{early_stopping}``… (:data:`SAID`) — the entry's own values, as training uses them
(:mod:`repeval.probes.train`), not the preset's."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from repeval.words import counted


class _Space:
    """A key that a Tune search ``space`` samples next to a preset: the text names the space, not a value."""

    def __repr__(self) -> str:
        return "SPACE"


#: the value of a key a search ``space`` samples (:meth:`repeval.tuning.presets.Preset.departures`)
SPACE = _Space()

#: the keys of an entry that say how long and how it trains, which a preset's :attr:`~repeval.tuning.presets.Preset.differs` speaks of
#: (:data:`SAID`): the entry's own values — set next to the preset, a grid's, a search space's, the epochs capped by
#: ``run.max_epochs`` — not the preset's
TRAINING_KEYS = (
    "epochs",
    "patience",
    "val_every",
    "lr_decay_patience",
    "lr_decay_factor",
    "max_steps",
    "dropout",
    "batch_size",
    "precision",
    "optimizer",
    "weight_decay",
    "train_sampling",
)


def trained_with(
    base: Mapping[str, Any],
    values: Mapping[str, Any],
    max_epochs: int | None,
    grid: Mapping[str, list[Any]] | None = None,
    aggregation: str | None = None,
) -> dict[str, Any]:
    """The :data:`TRAINING_KEYS` an entry trains with: ``values`` (set next to the preset), else the preset's ``grid``
    (its axes, and the values its named points take: each value trained, a list said ``a or b``), else its ``base``,
    else the probe's default; the epochs capped by ``max_epochs`` (a grid's values that the cap makes alike said
    once), ``preset_epochs``, ``max_epochs``, to say a length that is not the preset's, and ``aggregation``, the task's
    ``embedding_aggregation`` (``prediction``: the rows trained on are frames; ``None``: not known)."""
    from repeval.config.probe import ProbeConfig

    preset = {**base, **{k: _one(list(g)) for k, g in (grid or {}).items()}}
    v = {k: values.get(k, preset.get(k, ProbeConfig.model_fields[k].default)) for k in TRAINING_KEYS}
    v["preset_epochs"], v["max_epochs"] = preset.get("epochs", ProbeConfig.model_fields["epochs"].default), max_epochs
    v["aggregation"] = aggregation
    if max_epochs and v["epochs"] is not SPACE:
        v["epochs"] = (
            min(v["epochs"], max_epochs)
            if isinstance(v["epochs"], int)
            else list(dict.fromkeys(min(e, max_epochs) for e in v["epochs"]))
        )
    return v


def _one(values: list[Any]) -> Any:
    """A grid axis's values, each once: the one value where they are alike (a list otherwise)."""
    once = [x for i, x in enumerate(values) if x not in values[:i]]
    return once[0] if len(once) == 1 else once


def _each(value: Any, words: Callable[[Any], str]) -> str:
    """``words`` of one value, or of each of a grid's values, each said once (``a or b``)."""
    return " or ".join(dict.fromkeys(map(words, value))) if isinstance(value, list) else words(value)


def _counts(value: Any, noun: str) -> str:
    """A count of ``noun``, or a grid's counts said once: ``5 or 20 validations``."""
    ns = list(dict.fromkeys(value)) if isinstance(value, list) else [value]
    return " or ".join([f"{n:,}" for n in ns[:-1]] + [counted(ns[-1], noun)])


def _most_validations(v: Mapping[str, Any]) -> float:
    """The most validations an entry of training values ``v`` can make (``inf``: its epochs from a search space, not
    capped): every ``val_every`` epochs and at the last, at most its epochs (a grid's most, 1 for a sampled
    ``val_every``: as many as can be)."""
    epochs = v["epochs"] if v["epochs"] is not SPACE else v["max_epochs"]
    if not epochs:
        return math.inf
    every = v["val_every"] if isinstance(v["val_every"], int) else 1
    return -(-max(epochs if isinstance(epochs, list) else [epochs]) // every)


def _early_stopping(v: Mapping[str, Any]) -> str:
    """Whether the entry stops early, as training does (:func:`repeval.probes.train._train_stack`): after ``patience``
    validations without improvement — ``no early stopping`` where that cannot come before its last validation."""
    if v["patience"] is SPACE:
        return "early stopping after a patience from the search space"
    most = _most_validations(v)
    patiences = v["patience"] if isinstance(v["patience"], list) else [v["patience"]]
    stops = [n for n in patiences if n + 1 < most]
    said = [f"early stopping after {_counts(stops, 'validation')} without improvement"] if stops else []
    return " or ".join(said + ["no early stopping"] * (len(stops) < len(patiences)))


def _lr_decay(v: Mapping[str, Any]) -> str:
    """The entry's ReduceLROnPlateau (:func:`repeval.probes.schedule._plateau_step`): the rate times
    ``lr_decay_factor`` after more than ``lr_decay_patience`` validations without improvement — none where that cannot
    come before its last validation (the first always improves)."""
    factor = v["lr_decay_factor"]
    if factor is SPACE:
        by = "the learning rate multiplied by a factor from the search space"
    else:
        by = _each(factor, lambda f: "learning-rate halving" if f == 0.5 else f"the learning rate multiplied by {f:g}")
    if v["lr_decay_patience"] is SPACE:
        return f"{by} after a patience from the search space"
    most = _most_validations(v)
    return _each(
        v["lr_decay_patience"],
        lambda n: "no learning-rate decay" if n is None or n + 2 >= most else f"{by} after {n:,}",
    )


def _length(v: Mapping[str, Any]) -> str:
    """How long the entry trains: its ``max_steps``, and its epochs too where they are not the preset's (set next to
    it, or capped by ``run.max_epochs``): training ends at whichever comes first."""
    most = v["max_steps"]
    if most is SPACE:
        steps = "max_steps from the search space"
    elif None in (most if isinstance(most, list) else [most]):  # null next to the preset: no step budget
        steps = _each(most, lambda n: "no step limit" if n is None else counted(n, "step"))
    else:
        steps = _counts(most, "step")
    if v["epochs"] == v["preset_epochs"]:
        return steps
    if steps == "no step limit":
        return f"no step limit, at most {_epochs(v)}"
    return f"{steps} or {_epochs(v)}, whichever ends first"


def _plain(value: Any, key: str, words: Mapping[Any, str] | None = None) -> str:
    """A value as written (``0.5``; a grid's ``0.3 or 0.5``; ``dropout from the search space``), or in ``words``."""
    if value is SPACE:
        return f"{key} from the search space"
    said = dict(words or {})
    return _each(value, lambda x: said[x] if x in said else f"{x:g}" if isinstance(x, float) else f"{x:,}")


def _num(x: float) -> str:
    """A number as the source writes it: ``1e-5``, not Python's ``1e-05``."""
    return re.sub(r"e([+-])0(\d)", r"e\1\2", f"{x:g}")


def _l2(v: Mapping[str, Any]) -> str:
    """The entry's weight decay as its optimizer applies it (:class:`repeval.probes.stacked.StackedOptimizer`): an L2
    term added to the gradient (``adam``, ``sgd``), decoupled from it (``adamw``)."""
    if v["weight_decay"] is SPACE or v["optimizer"] is SPACE:
        return "weight_decay from the search space"
    kinds = v["optimizer"] if isinstance(v["optimizer"], list) else [v["optimizer"]]
    decays = v["weight_decay"] if isinstance(v["weight_decay"], list) else [v["weight_decay"]]
    said = [
        "no L2"
        if wd == 0
        else f"AdamW's decoupled weight decay {_num(wd)}"
        if kind == "adamw"
        else f"L2 {_num(wd)} as PyTorch weight_decay"
        for kind in kinds
        for wd in decays
    ]
    return " or ".join(dict.fromkeys(said))


def _optimizer(v: Mapping[str, Any]) -> str:
    """The entry's optimizer, said against Adam's (the source's): its ε where it has one."""
    words = {
        "adam": "Adam ε 1e-8 (Keras 1e-7)",
        "adamw": "AdamW ε 1e-8 (MULE: Adam, Keras ε 1e-7)",
        "sgd": "SGD (MULE: Adam)",
    }
    return _plain(v["optimizer"], "optimizer", words)


def _sampling(v: Mapping[str, Any]) -> str:
    """How the entry's batches are drawn (:func:`repeval.probes.data.training_weights`): with ``embedding_aggregation:
    prediction`` the rows are frames, and on tracks of unequal numbers of frames (known when the data is read, not
    here) each is drawn with replacement, its track's weight shared among its frames — not an epoch permutation."""
    words = {
        "random": "batches are epoch permutations",
        "balanced": "batches are drawn class-balanced, with replacement",
    }
    if v["aggregation"] == "prediction":
        words = {
            "random": (
                "batches are epoch permutations of the frames, or, where tracks have unequal numbers of frames, "
                "frames drawn with replacement, each track weighing alike"
            ),
            "balanced": (
                "batches are drawn class-balanced, with replacement, each track's weight shared among its frames"
            ),
        }
    return _plain(v["train_sampling"], "train_sampling", words)


def _epochs(v: Mapping[str, Any]) -> str:
    if v["epochs"] is not SPACE:
        return _counts(v["epochs"], "epoch")
    cap = f", {v['max_epochs']:,} at most (run.max_epochs)" if v["max_epochs"] else ""
    return f"the epochs from the search space{cap}"


#: what ``{epochs}``, ``{patience}``… in a preset's :attr:`~repeval.tuning.presets.Preset.differs` say of the entry's training values
#: (:func:`trained_with`; ``null`` set next to the preset turns its learning-rate decay or its step budget off)
SAID: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "epochs": _epochs,
    "patience": lambda v: (
        "patience from the search space"
        if v["patience"] is SPACE
        else f"patience {_counts(v['patience'], 'validation')}"
    ),
    "validated": lambda v: (
        "validated every val_every epochs from the search space"
        if v["val_every"] is SPACE
        else _each(v["val_every"], lambda n: "validated once per epoch" if n == 1 else f"validated every {n:,} epochs")
    ),
    "early_stopping": _early_stopping,
    "dropout": lambda v: (
        "dropout from the search space" if v["dropout"] is SPACE else f"dropout {_plain(v['dropout'], 'dropout')}"
    ),
    "batch_size": lambda v: _plain(v["batch_size"], "batch_size"),
    "precision": lambda v: _plain(v["precision"], "precision", {"fp32": "float32", "bf16": "bfloat16 products"}),
    "lr_decay": _lr_decay,
    "length": _length,
    "l2": _l2,
    "l2_as": lambda v: _plain(
        v["optimizer"],
        "optimizer",
        dict.fromkeys(("adam", "sgd"), "L2 as weight_decay 2λ") | {"adamw": "AdamW's decoupled weight decay, not L2"},
    ),
    "optimizer": _optimizer,
    "sampling": _sampling,
}
