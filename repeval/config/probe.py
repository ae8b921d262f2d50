"""A downstream model (probe): its layers, training, and the preset or search grid it expands into
(``downstream_models:``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from repeval.config.base import Fault, FileName, Strict, raise_faults
from repeval.tasks import ACTIVATIONS, CRITERION_ALIASES, Activation

HiddenUnit = int | Literal["infer", "power_infer"]


def _alternatives(value: Any) -> list[str] | None:
    """The alternatives of a value Appendix A of the mir_ref thesis writes "depending on task" (``softmax / sigmoid``),
    ``None`` for a plain value."""
    if not isinstance(value, str) or "/" not in value:
        return None
    return [part.strip() for part in value.split("/")]


def set_aside_per_task_values(probe: dict[str, Any]) -> dict[str, Any]:
    """A probe entry whose task type is not known (the task missing, misspelled or of an unknown type: its own error
    says so) without Appendix A's ``output_activation: softmax / sigmoid``: which one fits is the task's to say, so
    the pair is not judged as a value of its own (a second, wrong problem). Alternatives that are no activation are
    kept, for the probe's own check to name."""
    activations = _alternatives(probe.get("output_activation"))
    if activations is None or any(a not in ACTIVATIONS for a in activations):
        return probe
    return {k: v for k, v in probe.items() if k != "output_activation"}


class PerTaskFault(ValueError):
    """A "depending on task" value of a probe entry that fits not its task: ``key`` and what to write. The experiment
    hands it to :class:`ProbeConfig` in place of the entry, which says it at ``<probe>.<key>`` — so the experiment's
    other problems are said with it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


def resolve_per_task_values(probe: dict[str, Any], task_type: str) -> dict[str, Any]:
    """A probe entry with Appendix A's "depending on task" values — ``output_activation: softmax / sigmoid`` and
    ``save_criterion: val_categorical_accuracy / val_auc`` — with the alternative that fits ``task_type`` chosen.

    The activation is the task's head (softmax for one label per track, sigmoid for tags, linear for regression);
    the criterion is the one at the same position as that head among the activation's alternatives (Appendix A
    writes both pairs in one order: softmax with categorical accuracy, sigmoid with AUC), or, without them, the one
    alternative whose metric applies to the task. Anything else is a :class:`PerTaskFault` naming the values to write."""
    from repeval.tasks import TASK_TYPES

    activations = _alternatives(probe.get("output_activation"))
    criteria = _alternatives(probe.get("save_criterion"))
    if activations is None and criteria is None:
        return probe
    out = dict(probe)
    head = TASK_TYPES[task_type].head
    position = None
    if activations is not None:
        if unknown := [a for a in activations if a not in ACTIVATIONS]:
            raise PerTaskFault(
                "output_activation",
                f"{unknown[0]!r} is not an activation; write softmax, sigmoid or linear "
                "(or alternatives such as softmax / sigmoid, read as the one that fits the task)",
            )
        if head not in activations:
            raise PerTaskFault(
                "output_activation",
                f"none of {' / '.join(activations)} fits a {task_type} task, whose "
                f"probes end in {head}; set output_activation: {head} or remove it",
            )
        out["output_activation"] = head
        position = activations.index(head)
    if criteria is not None:
        if position is not None and len(criteria) == len(activations or ()):
            out["save_criterion"] = criteria[position]
        else:
            fitting = [c for c in criteria if _criterion_fits(c, task_type)]
            if len(fitting) != 1:
                raise PerTaskFault(
                    "save_criterion",
                    f"{' / '.join(criteria)} leaves the choice to the task (mir_ref's "
                    f"'depending on task'), and {len(fitting) or 'none'} of them fit a {task_type} task: write "
                    f"the one to select on ({' or '.join(fitting) if fitting else 'e.g. val_loss'})",
                )
            out["save_criterion"] = fitting[0]
    return out


def _criterion_fits(criterion: str, task_type: str) -> bool:
    from repeval.metrics import check_metric_for_task
    from repeval.tasks import resolve_criterion

    name, _ = resolve_criterion(criterion, task_type)
    if name == "val_loss":
        return True
    try:
        check_metric_for_task(name.removeprefix("val_"), task_type)
    except ValueError:
        return False
    return True


class ProbeConfig(Strict):
    """A downstream model (probe), in mir_ref's keys plus repeval's extensions."""

    #: the name results are reported under (default: M1, M2, … by position)
    name: FileName | None = None
    #: ``classifier`` (mir_ref's), ``mlp`` and ``regressor`` (a regression task only) are the layers of ``hidden_units``;
    #: ``linear`` is a probe without hidden layers. The head and loss follow the task type
    type: Literal["classifier", "regressor", "mlp", "linear"] = "classifier"
    #: ``False``/``None`` or ``PCA`` (to ``emb_shape`` dimensions, or ``pca_dim``)
    emb_dim_reduction: Literal["PCA", "pca", False] | None = False
    #: mir_ref's probe input width: ``infer`` (the embedding's), or an integer — the PCA target with
    #: ``emb_dim_reduction: PCA``, else the embedding width the probe expects (training stops when it differs)
    emb_shape: Literal["infer"] | int = "infer"
    #: hidden layer widths: integers, or mir_ref's ``infer`` (a linear ramp from the input width down to the output
    #: count) and ``power_infer`` (its quadratic ramp); empty: a linear probe
    hidden_units: tuple[HiddenUnit, ...] = ()
    #: mir_ref's final activation; repeval derives the head from the task type, so it is only checked against it.
    #: Appendix A's ``softmax / sigmoid`` ("depending on task") is read as the one that fits the task
    output_activation: Activation | None = None
    #: weight decay (PyTorch's: L2 for adam and sgd, decoupled for adamw)
    weight_decay: float = Field(default=1e-5, ge=0)
    #: the optimiser (PyTorch's Adam, AdamW, or SGD without momentum)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    #: the optimiser's learning rate
    learning_rate: float = Field(default=1e-3, gt=0)
    #: training tracks (or frames) per optimiser step
    batch_size: int = Field(default=100, ge=1)
    #: most passes over the training data (``run.max_epochs`` caps it)
    epochs: int = Field(default=100, ge=1)
    #: stop after this many validations without the ``save_criterion`` improving
    patience: int = Field(default=10, ge=0)
    #: ``random``: shuffled batches; ``balanced``: tracks drawn by the inverse frequency of
    #: their rarest label (classification only)
    train_sampling: Literal["random", "balanced"] = "random"
    #: the one validation criterion for early stopping and checkpoint selection. Appendix A's
    #: ``val_categorical_accuracy / val_auc`` ("depending on task") is read as the one that fits the task
    save_criterion: str | None = None
    #: dropout after each hidden layer's activation
    dropout: float = Field(default=0.0, ge=0, lt=1)
    #: dropout on the probe's input
    input_dropout: float = Field(default=0.0, ge=0, lt=1)
    #: Jukemir's ``dropout_input``: apply ``dropout`` to the input too (instead of ``input_dropout``)
    dropout_input: bool = False
    #: standardise each embedding dimension with the training split's mean and std
    #: (scikit-learn's ``StandardScaler``)
    standardize: bool = False
    #: PCA (fitted on the training split) to this many dimensions; shorthand for ``emb_dim_reduction: PCA``. At
    #: most the embedding width and the training rows (tracks, or frames): more is an error, as in scikit-learn
    pca_dim: int | None = Field(default=None, ge=1)
    #: normalisation after each hidden linear layer (HEAR uses ``batchnorm``)
    hidden_norm: Literal["none", "batchnorm", "layernorm"] = "none"
    #: weight initialisation: PyTorch's ``nn.Linear`` default, or Xavier (HEAR)
    init: Literal["default", "xavier_uniform", "xavier_normal"] = "default"
    #: validate every N epochs (HEAR: 3); ``patience`` counts validations
    val_every: int = Field(default=1, ge=1)
    #: stop after this many optimiser steps (an extra budget next to ``epochs``)
    max_steps: int | None = Field(default=None, ge=1)
    #: multiply the learning rate by ``lr_decay_factor`` after more than this many validations without the
    #: criterion improving — PyTorch's ``ReduceLROnPlateau`` (relative threshold 1e-4), which MARBLE's probes step
    #: on their monitored metric; ``None``: a constant learning rate
    lr_decay_patience: int | None = Field(default=None, ge=0)
    #: the factor ``lr_decay_patience`` multiplies the learning rate by
    lr_decay_factor: float = Field(default=0.5, gt=0, lt=1)
    #: the learning rate along the optimiser steps: ``constant``, or ``cosine`` — from ``learning_rate`` down to 0
    #: along a half cosine (Keras' ``CosineDecay``, alpha 0) that reaches 0 at the probe's last step: ``max_steps``, or
    #: ``epochs`` × batches per epoch where that is fewer (after ``warmup_steps``, when set). MULE's probes: cosine
    lr_schedule: Literal["constant", "cosine"] = "constant"
    #: a linear warm-up before ``lr_schedule``: step s (counted from 0) of the first ``warmup_steps`` trains at
    #: ``learning_rate`` × s / ``warmup_steps`` (MULE's ``WarmupSchedule`` from 0, 1000 steps); 0: none
    warmup_steps: int = Field(default=0, ge=0)
    #: arithmetic of the layer products: ``fp32``, or ``bf16`` (bfloat16 products; parameters, optimiser
    #: state, activations and the loss stay float32), for GPUs with bf16 units and CPUs with AMX. On an
    #: AVX512-BF16 CPU it measured 1.1-1.45x faster per stack but no faster over a whole grid (see
    #: docs/benchmarks.md); where bf16 is emulated it is slower (training warns)
    precision: Literal["fp32", "bf16"] = "fp32"
    #: with ``embedding_aggregation: attention``: learned queries per probe, each pooling a track's frames with its
    #: own weights; the pooled vectors are concatenated (the layers' input is ``attention_heads`` × the embedding
    #: width, and ``infer`` sizes follow it)
    attention_heads: int = Field(default=1, ge=1, le=64)
    #: a named probe protocol expanded into one or more configurations: ``mir_ref_thesis`` (M1-M5),
    #: ``jukemir`` (216-config grid, best by validation), ``marble`` (6 learning rates, best by validation),
    #: ``hear`` (16 points), ``mule`` (80 points, warm-up then cosine decay); keys set next to it override the
    #: preset's values (and fix that grid axis); :mod:`repeval.tuning.presets` gives each one's source and departures
    preset: str | None = None
    #: a grid and/or a Ray Tune search space over probe keys, plain values only, e.g.
    #: ``{grid: {learning_rate: [1e-4, 1e-3]}, space: {dropout: {uniform: [0.1, 0.5]}}, num_samples: 8,
    #: scheduler: asha, select: best}`` — see :mod:`repeval.tuning.search`
    search: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _per_task_fault(cls, data: Any) -> Any:
        """An entry whose "depending on task" value fits not its task (:class:`PerTaskFault`) said at its key."""
        if isinstance(data, PerTaskFault):
            raise_faults(cls.__name__, [Fault("per_task", data.message, (data.key,), data.key)])
        return data

    @field_validator("hidden_units", mode="before")
    @classmethod
    def _units(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, list | tuple):
            for u in v:
                if (
                    isinstance(u, bool)
                    or (isinstance(u, int) and u < 1)
                    or (isinstance(u, str) and u not in ("infer", "power_infer") and not u.strip().isdigit())
                ):  # a word of its own is said once, not as "not an integer" and "not infer" both
                    raise ValueError(
                        f"hidden unit sizes must be positive integers, 'infer' or 'power_infer'; got {u!r}"
                    )
        return v

    @field_validator("save_criterion")
    @classmethod
    def _criterion(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        return CRITERION_ALIASES.get(v, v)

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        if v is not None:
            from repeval.tuning.presets import get_preset

            get_preset(v)  # ValueError listing the valid presets
        return v

    @classmethod
    def _home_of(cls, key: str) -> str | None:
        """A key of ``search:`` written on the entry itself (``select: best``, ``space:``; a scheduler's
        ``grace_period``) belongs under ``search``: said so, not as the probe key it is spelled like (``space`` →
        ``patience``)."""
        from repeval.tuning.search import ASHA_KEYS, SEARCH_KEYS

        if key in SEARCH_KEYS:
            return f"'search': write it under search, as search.{key}"
        if key in ASHA_KEYS and key not in cls.model_fields:
            return f"'search.scheduler': write it under search, as search.scheduler.{key}"
        return super()._home_of(key)

    @field_validator("search", mode="before")
    @classmethod
    def _search(cls, v: Any) -> Any:
        if v is None:
            return None
        from repeval.tuning.search import validate_search

        return validate_search(v)  # errors name the key: "search.grid.learning_rate: ..."

    @model_validator(mode="after")
    def _pca(self) -> ProbeConfig:
        if isinstance(self.emb_shape, int) and self.emb_shape < 1:  # reliability (issue 9)
            raise ValueError(f"emb_shape must be a positive integer (PCA dimension) or 'infer', got {self.emb_shape}")
        if self.emb_dim_reduction and self.emb_shape == "infer" and self.pca_dim is None:
            raise ValueError("emb_dim_reduction: PCA needs emb_shape set to the target dimension (an integer)")
        if self.pca_dim is not None and isinstance(self.emb_shape, int) and self.emb_shape != self.pca_dim:
            raise ValueError(f"pca_dim ({self.pca_dim}) and emb_shape ({self.emb_shape}) disagree; keep one")
        if self.lr_decay_patience is not None and (self.lr_schedule != "constant" or self.warmup_steps):
            raise ValueError(
                "lr_decay_patience lowers the learning rate when validation stalls, but lr_schedule / warmup_steps "
                "set it at every step: keep one (remove lr_decay_patience, or lr_schedule and warmup_steps)"
            )
        if self.max_steps is not None and self.warmup_steps >= self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be fewer than max_steps ({self.max_steps}), the steps the "
                "probe trains: its learning rate would never reach learning_rate"
            )
        if self.dropout_input and self.input_dropout > 0:
            raise ValueError("dropout_input applies 'dropout' to the input; do not also set input_dropout")
        if self.type == "linear" and self.hidden_units:
            raise ValueError(
                f"type: linear is a probe without hidden layers, but hidden_units is {list(self.hidden_units)}: "
                "remove hidden_units (or write []), or use type: mlp / classifier for hidden layers"
            )
        for part in ("grid", "space"):
            both = sorted(set((self.search or {}).get(part) or {}) & self.model_fields_set)
            if both:  # the search axis would silently replace the value written next to it
                key = both[0]
                value = getattr(self, key)
                raise ValueError(
                    f"{key} is set ({list(value) if isinstance(value, tuple) else value!r}) and is also a search.{part} axis, whose values replace "
                    f"it: keep one (remove {key}, or remove it from search.{part})"
                )
        if self.preset is not None or self.search is not None:
            from repeval.tuning.space_checks import check_expansion

            check_expansion(self)  # every grid point must be a valid probe; errors name the key
        return self

    @property
    def effective_pca_dim(self) -> int | None:
        if self.pca_dim is not None:
            return self.pca_dim
        if self.emb_dim_reduction and isinstance(self.emb_shape, int):
            return self.emb_shape
        return None

    @property
    def stack_settings(self) -> tuple[Any, ...]:
        """What probes trained as one stack share, but for their layer sizes and attention heads (which the data
        decide): :func:`repeval.probes.train.group_key`; probes of other settings never share a stack."""
        return (
            self.batch_size,
            self.optimizer,
            self.effective_pca_dim,
            self.hidden_norm,
            self.val_every,
            self.train_sampling,
            self.precision,
        )

    @property
    def effective_input_dropout(self) -> float:
        return self.dropout if self.dropout_input else self.input_dropout
