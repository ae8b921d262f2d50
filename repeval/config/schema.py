"""Typed configuration models.

The schema is the mir_ref thesis' (Appendix A): ``experiments:`` is a list of
``task``, ``datasets``, ``deformations``, ``embedding_models``, ``downstream_models`` and
``metrics``. The public mir_ref repository's spellings are accepted as aliases
(``features`` → ``embedding_models``, ``probes`` → ``downstream_models``, ``deformations``
nested under a dataset). repeval's own extensions live in a top-level ``run:`` block and in
clearly named optional keys.

Unknown keys are errors that name the key and suggest the closest valid one.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from repeval.deformations import WHOLE_TRACK_MAX_S
from repeval.registry import closest
from repeval.tasks import CRITERION_ALIASES, TASK_TYPES, effective_task_type


# --- reliability (issue 9): names end up in store and run-directory paths ---------------------------
def _file_name(v: str) -> str:
    if any(c in v for c in "/\\\0") or not v.strip("."):
        raise ValueError(
            f"{v!r} cannot name a file (it is part of store and run paths): no '/', '\\' or NUL, not only dots"
        )
    return v


FileName = Annotated[str, AfterValidator(_file_name)]
# --- end reliability --------------------------------------------------------------------------------


class Strict(BaseModel):
    """Base model: frozen, and unknown keys are errors with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: alternative spellings accepted on input: {alias: canonical field}
    key_aliases: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        aliases = cls.key_aliases
        out: dict[str, Any] = {}
        valid = set(cls.model_fields)
        for key, value in data.items():
            if not isinstance(key, str):
                raise ValueError(f"keys must be strings, got {key!r}")
            canonical = aliases.get(key, key)
            if canonical not in valid:
                hint = closest(key, sorted(valid | set(aliases)))
                msg = f"unknown key '{key}'"
                if hint:
                    msg += f" — did you mean '{hint}'?"
                else:
                    msg += f" (valid keys: {', '.join(sorted(valid))})"
                raise ValueError(msg)
            if canonical in out:
                raise ValueError(f"'{key}' and '{canonical}' both given; keep one")
            out[canonical] = value
        return out


# --------------------------------------------------------------------------- task


class TaskConfig(Strict):
    key_aliases = {"aggregation": "embedding_aggregation"}

    #: the task's name (in results and run file names); the dataset's label of this name is the one predicted
    #: unless ``label`` is set; ``key_estimation`` or ``key`` with ``multiclass_classification`` is key estimation
    name: FileName
    #: what the probes predict: one class per track, a set of tags, a number, or one of the 24 keys
    #: (scored with mir_eval's weighted key score)
    type: Literal[
        "multiclass_classification",
        "multilabel_classification",
        "regression",
        "key_estimation",
    ]
    #: ``mean`` (mir_ref's ``embedding_mean``): probes see one embedding per track, the mean over its frames;
    #: ``prediction``: probes train on frame-level embeddings (each frame labelled with its track's label) and a
    #: track's prediction is the mean of its frames' predictions (validation and test are per track);
    #: ``attention``: probes pool each track's frame-level embeddings with learned attention weights (a query per
    #: probe, starting at mean pooling) and predict once per track
    embedding_aggregation: Literal["mean", "embedding_mean", "prediction", "attention"] = "mean"
    #: which label of the dataset the task predicts (default: the dataset's label for the task name)
    label: str | None = None

    @property
    def aggregation(self) -> str:
        """``mean`` (mir_ref's ``embedding_mean`` too), ``prediction`` or ``attention``."""
        return "mean" if self.embedding_aggregation == "embedding_mean" else self.embedding_aggregation

    @property
    def effective_type(self) -> str:
        return effective_task_type(self.type, self.name)

    def canonical(self) -> TaskConfig:
        """The task with equivalent spellings made one — mir_ref's ``embedding_mean`` is ``mean``, and key estimation
        may be written as a ``multiclass_classification`` named ``key_estimation``: two definitions of a task mean
        the same when their canonical forms are equal."""
        return self.model_copy(update={"embedding_aggregation": self.aggregation, "type": self.effective_type})


# ------------------------------------------------------------------- deformations


class DeformationStep(Strict):
    """One audiomentations transform: ``type`` is its class name, ``params`` its kwargs."""

    #: the audiomentations transform's class name (e.g. ``Gain``, ``AddGaussianSNR``, ``Mp3Compression``)
    type: str
    #: the transform's keyword arguments (e.g. ``{min_gain_db: -6, max_gain_db: -6, p: 1}``)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_transform(self) -> DeformationStep:
        from repeval.deformations import validate_step

        validate_step(self.type, self.params)
        return self


class DeformationScenario(Strict):
    """An ordered list of transforms applied together (mir_ref: a list inside the list)."""

    #: the scenario's id: its store partition and results column (default: D1, D2, … by position;
    #: ``clean`` is reserved)
    name: FileName | None = None
    #: the transforms, applied in order
    steps: tuple[DeformationStep, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"steps": data}
        if isinstance(data, dict) and "type" in data:
            # a single transform written without the inner list
            return {"steps": [data]}
        return data

    @field_validator("steps")
    @classmethod
    def _non_empty(cls, v: tuple[DeformationStep, ...]) -> tuple[DeformationStep, ...]:
        if not v:
            raise ValueError("a deformation scenario needs at least one transform")
        return v


def scenario_ids(scenarios: tuple[DeformationScenario, ...]) -> list[str]:
    """Each scenario's id: its name, or D1, D2, … by position."""
    return [sc.name or f"D{i + 1}" for i, sc in enumerate(scenarios)]


def _check_scenario_ids(where: str, scenarios: tuple[DeformationScenario, ...]) -> None:
    """Each scenario's id (its name, or D1, D2, … by position) names one store partition and one results column:
    two scenarios with one id would share a partition (one silently lost), and ``clean`` is the undeformed audio."""
    seen: dict[str, tuple[int, bool]] = {}
    for i, (sid, sc) in enumerate(zip(scenario_ids(scenarios), scenarios, strict=True)):
        if sid == "clean":
            raise ValueError(f"{where}[{i}].name: 'clean' names the undeformed audio; give the scenario another name")
        if sid in seen:
            j, named = seen[sid]
            how = "its name" if named else "its position: unnamed scenarios are D1, D2, … in order"
            raise ValueError(
                f"{where}[{i}]: scenario id {sid!r} is already {where}[{j}]'s ({how}) — each scenario names its own "
                "store partition and results column: give one of them another name"
            )
        seen[sid] = (i, sc.name is not None)


# ----------------------------------------------------------------------- datasets


class DatasetConfig(Strict):
    #: the data set: a registered loader's name (``repeval datasets``) for ``mirdata``/``custom``, any
    #: name for a ``catalog``; it names the dataset's store folder
    name: FileName
    #: ``mirdata`` | ``custom`` (repeval loaders) | ``catalog`` (a manifest)
    type: Literal["mirdata", "custom", "catalog"] = "custom"
    #: the data set's root directory (a catalog's audio paths are relative to it; default: the
    #: manifest's folder)
    dir: str | None = None
    #: ``single`` (one split) or ``all`` (k folds: val = fold i, test = fold i+1)
    split_type: Literal["single", "all"] = "single"
    #: mirdata index file (mirdata ships none; needed offline)
    index_path: str | None = None
    #: catalog manifest (CSV/Parquet; a path or pyarrow filesystem URI)
    manifest: str | None = None
    #: catalog manifest column of track ids
    track_id_column: str = "track_id"
    #: catalog manifest column of audio file paths (relative to ``dir``)
    audio_column: str = "audio_path"
    #: catalog manifest column of labels (multi-label cells split at ``label_separator``)
    label_column: str | None = None
    #: catalog manifest column of official splits (train / validation / test; empty: drawn from
    #: ``split_ratios``)
    split_column: str | None = None
    #: group column for leakage-free splits (artist, singer, album); for mirdata data sets a track attribute
    group_column: str | None = None
    #: separator for multi-label cells in a catalog label column
    label_separator: str = Field(default=",", min_length=1)
    #: catalog manifest column of the labels annotated for each track (multilabel; cells split at
    #: ``label_separator``): a label not listed there nor in the track's labels is unannotated — with
    #: ``unannotated: mask`` neither present nor absent, as in OpenMIC-2018; an empty cell annotates every label
    annotated_column: str | None = None
    #: split_type single: train, validation and test fractions of the tracks without an official
    #: split (a seeded, stratified, group-aware split)
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: split_type all: the number of folds (at least 3)
    n_folds: int = Field(default=5, ge=2)
    #: seed of the drawn split or folds (and of the ``max_tracks`` subset)
    split_seed: int = 0
    #: mir_ref repository spelling: deformations nested under a dataset
    deformations: tuple[DeformationScenario, ...] | None = None
    #: cap the number of tracks (debugging / smoke tests): a seeded subset keeping each split's classes in proportion
    max_tracks: int | None = Field(default=None, ge=1)
    #: subset of a multi-subset data set (MTG-Jamendo: genre, instrument, moodtheme, top50tags)
    subset: str | None = None
    #: which fold / official split to use (split_type all: val = fold, test = fold + 1; MTG-Jamendo split-k)
    fold: int = Field(default=0, ge=0)
    #: check that every audio file exists while loading (turn off for remote catalogs)
    check_files: bool = True
    #: allowed labels; others are reported with their row (and dropped)
    classes: tuple[str, ...] | None = None
    #: a multilabel data set that annotates only some labels per track (openmic2018, a catalog with
    #: ``annotated_column``): ``mask`` (OpenMIC-2018's official
    #: protocol) trains each label's output and scores each label on the tracks that annotate it, and micro
    #: averages pool the annotated (track, label) pairs only; ``absent`` counts every unannotated pair as absent
    unannotated: Literal["mask", "absent"] = "mask"

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0 or v[2] <= 0:
            raise ValueError(
                f"split_ratios must be three non-negative numbers summing to 1 with train and test > 0, got {list(v)}"
            )
        return v

    @model_validator(mode="after")
    def _needs(self) -> DatasetConfig:
        if self.type == "catalog" and not self.manifest:
            raise ValueError("a 'catalog' dataset needs 'manifest' (a CSV or Parquet file)")
        if self.split_type == "all" and self.n_folds < 3:
            raise ValueError(
                "split_type: all needs n_folds ≥ 3 (validation = fold i, test = fold i+1, train = the rest)"
            )
        if self.split_type == "all" and self.fold >= self.n_folds:
            raise ValueError(f"fold {self.fold} is out of range for n_folds {self.n_folds}")
        return self

    def keys_given(self) -> set[str]:
        """The keys set to something other than their default: a key left at its default (a dumped config writes
        every key) asks for nothing."""
        return {k for k in self.model_fields_set if getattr(self, k) != type(self).model_fields[k].default}

    @model_validator(mode="after")
    def _known_loader(self) -> DatasetConfig:
        from repeval.datasets.cli_support import check_dataset_keys, check_dataset_name
        from repeval.datasets.load import has_official_folds

        check_dataset_name(self.name, self.type, self.subset)
        given = self.keys_given()
        check_dataset_keys(self.name, self.type, given)
        # split keys of the other split_type: each would be silently ignored
        if self.split_type == "single" and "n_folds" in given:
            raise ValueError(
                f"n_folds is the number of folds of split_type: all, but split_type is single (the default), which "
                f"makes one split and ignores n_folds: set split_type: all for {self.n_folds} folds, or remove n_folds"
            )
        if self.split_type == "single" and "fold" in given and not has_official_folds(self):
            raise ValueError(
                f"fold picks a fold of split_type: all (or an official fold of a data set that has them, which "
                f"{self.type} dataset '{self.name}' has not), but split_type is single (the default), which ignores "
                "it: set split_type: all (and n_folds), or remove fold"
            )
        if self.split_type == "all" and "split_ratios" in given:
            raise ValueError(
                "split_ratios are the sizes of split_type: single's one split, but split_type is all, which makes "
                "n_folds equal folds (validation = fold i, test = fold i+1) and ignores them: remove split_ratios, or "
                "set split_type: single"
            )
        return self


# ------------------------------------------------------------------------ models


class EmbeddingModelConfig(Strict):
    """An embedding model: a registered id, or an inline definition with parameters."""

    #: the name results are stored under (defaults to ``type`` when only a type is given)
    id: FileName
    #: registered model family to build (defaults to the id)
    type: str | None = None
    #: the model's constructor parameters (``repeval models``)
    params: dict[str, Any] = Field(default_factory=dict)
    #: tracks per inference batch (default: the model's)
    batch_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"id": data}
        if isinstance(data, dict) and "id" not in data and "name" in data:
            data = dict(data)
            data["id"] = data.pop("name")
        if isinstance(data, dict) and "id" not in data and "type" in data:
            data = dict(data)
            data["id"] = data["type"]
        return data

    @model_validator(mode="after")
    def _known(self) -> EmbeddingModelConfig:
        from repeval.models.base import check_params

        check_params(self)  # unknown model (the closest known), unknown params, values of the wrong kind
        return self


# ------------------------------------------------------------------------ probes

HiddenUnit = int | Literal["infer", "power_infer"]


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
    #: mir_ref's final activation; repeval derives the head from the task type, so it is only checked against it
    output_activation: Literal["softmax", "sigmoid", "linear"] | None = None
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
    #: the one validation criterion for early stopping and checkpoint selection
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

    @field_validator("hidden_units", mode="before")
    @classmethod
    def _units(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, list | tuple):
            for u in v:
                if isinstance(u, bool) or (isinstance(u, int) and u < 1):
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
            from repeval.tuning.search import check_expansion

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
    def effective_input_dropout(self) -> float:
        return self.dropout if self.dropout_input else self.input_dropout


# ---------------------------------------------------------------------- experiment


class ExperimentConfig(Strict):
    key_aliases = {"features": "embedding_models", "probes": "downstream_models"}

    #: the task: its name, type and how a track's frames are aggregated
    task: TaskConfig
    #: the data sets the task is evaluated on
    datasets: tuple[DatasetConfig, ...]
    #: deformation scenarios: each a list of audiomentations transforms applied together
    #: (to ``run.deform_splits``)
    deformations: tuple[DeformationScenario, ...] = ()
    #: embedding models (mir_ref's ``features``): registered ids (``repeval models``) or
    #: ``{id, type, params}``
    embedding_models: tuple[EmbeddingModelConfig, ...]
    #: probes (mir_ref's ``probes``) trained on every model's embeddings
    downstream_models: tuple[ProbeConfig, ...]
    #: metric names (default: the task type's). F1, precision and recall of a multilabel task predict a tag where
    #: its score is at least 0.5, or the decision threshold written after ``@``: ``f1_macro@0.3`` (results and tables
    #: name the metric so); list one metric at several thresholds to compare them
    metrics: tuple[str, ...] | None = None
    #: augmentation: deformation scenarios (ids, or ``all``) whose deformed training tracks are added to the
    #: probes' training data (the embed stage deforms them); validation and test are unchanged
    augment: tuple[str, ...] = ()

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_list(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str):
            return (v,)
        return v

    @field_validator("datasets", "embedding_models", "downstream_models")
    @classmethod
    def _non_empty(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if not v:
            raise ValueError("must list at least one entry")
        return v

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_names(cls, v: Any) -> Any:
        if v is None:
            return None
        from repeval.metrics import canonical_metric_name

        if not isinstance(v, list | tuple):
            raise ValueError("metrics must be a list of metric names")
        if not v:
            raise ValueError("metrics is empty: remove the key to use the task's defaults")
        return tuple(canonical_metric_name(str(m)) for m in v)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        from repeval.metrics import check_metric_for_task

        ttype = self.task.effective_type
        for m in self.metric_names:
            check_metric_for_task(m, ttype)
        head = TASK_TYPES[ttype].head
        for i, p in enumerate(self.downstream_models):
            if p.output_activation is not None and p.output_activation != head:
                raise ValueError(
                    f"downstream_models[{i}].output_activation: {p.output_activation} does not fit a {ttype} task, "
                    f"whose probes end in {head} (the head and loss follow the task type); set output_activation: "
                    f"{head} or remove it"
                )
            searched = {k for part in ("grid", "space") for k in ((p.search or {}).get(part) or {})}
            if self.task.aggregation != "attention" and (p.attention_heads > 1 or "attention_heads" in searched):
                raise ValueError(
                    f"downstream_models[{i}].attention_heads: only a task with embedding_aggregation: attention pools "
                    f"frames with learned queries (this one: {self.task.aggregation}); set "
                    "embedding_aggregation: attention or remove attention_heads"
                )
            if ttype == "regression" and (p.train_sampling == "balanced" or "train_sampling" in searched):
                raise ValueError(
                    f"downstream_models[{i}].train_sampling: balanced sampling draws tracks by the inverse frequency of "
                    "their labels, which a regression target has not; remove train_sampling (random is the default)"
                )
            if p.type == "regressor" and ttype != "regression":
                raise ValueError(
                    f"downstream_models[{i}].type: a regressor does not fit a {ttype} task; use type: classifier "
                    "(or mlp / linear, which fit any task: the head follows the task type)"
                )
            crit = p.save_criterion
            if crit is not None and crit != "val_loss":
                name = crit.removeprefix("val_")
                try:
                    check_metric_for_task(name, ttype)
                except ValueError as exc:
                    raise ValueError(f"downstream_models[{i}].save_criterion: {exc}") from None
        _check_scenario_ids("deformations", self.deformations)
        for j, ds in enumerate(self.datasets):
            _check_scenario_ids(f"datasets[{j}].deformations", ds.deformations or ())
            label = self.task.label
            if ds.type == "catalog" and ds.label_column and label is not None and label != ds.label_column:
                # the catalog reads label_column; task.label would be silently ignored
                raise ValueError(
                    f"datasets[{j}].label_column: {ds.label_column!r}, but task.label is {label!r} — a catalog "
                    "dataset's labels are one manifest column, label_column's: remove task.label, or make the two the same"
                )
            if ds.type == "catalog" and ds.annotated_column and self.task.effective_type != "multilabel_classification":
                raise ValueError(
                    f"datasets[{j}].annotated_column: {ds.annotated_column!r} names the labels each track annotates, "
                    f"which only a multilabel_classification task reads (this task is {self.task.effective_type}): "
                    "remove annotated_column"
                )
        for ds in self.datasets if self.augment else ():
            known = list(self.scenarios_for(ds))
            for sid in self.augment:
                if sid != "all" and sid not in known:
                    hint = f"its scenarios: {', '.join(known)}" if known else "it has no deformation scenarios"
                    raise ValueError(f"augment: no deformation scenario {sid!r} for dataset {ds.name!r} ({hint})")
        ids = [m.id for m in self.embedding_models]
        dup = {x for x in ids if ids.count(x) > 1}
        if dup:
            raise ValueError(f"embedding model ids listed twice: {sorted(dup)}")
        from repeval.tuning.search import expand_all

        expand_all(self.downstream_models)  # the names results are reported under: distinct, usable in file names
        return self

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.metrics:
            return self.metrics
        return TASK_TYPES[self.task.effective_type].default_metrics

    def scenarios_for(self, dataset: DatasetConfig) -> dict[str, DeformationScenario]:
        """Deformation scenarios for a dataset, keyed by scenario id (D1, D2, ... or their name)."""
        scen = dataset.deformations if dataset.deformations is not None else self.deformations
        return dict(zip(scenario_ids(scen), scen, strict=True))

    def augment_for(self, dataset: DatasetConfig) -> list[str]:
        """The scenario ids whose training-split embeddings augment the probes' training data on ``dataset``."""
        known = list(self.scenarios_for(dataset))
        return known if "all" in self.augment else [s for s in known if s in self.augment]

    def probe_names(self) -> list[str]:
        return [p.name or f"M{i + 1}" for i, p in enumerate(self.downstream_models)]


# ---------------------------------------------------------------------------- run


class ResourcesConfig(Strict):
    #: CPUs for each embedding actor (fractional allowed)
    embed_num_cpus: float = Field(default=1.0, gt=0)
    #: GPU fraction per embedding actor when GPUs are used (see ``use_gpu``)
    embed_num_gpus: float = Field(default=1.0, ge=0)
    #: when GPU-capable embedding models and probe trials request GPUs: ``auto`` — when Ray reports GPUs as
    #: the stage starts; ``always`` — even before any GPU node is up (an autoscaling cluster whose GPU group
    #: starts at zero nodes adds them; without an autoscaler the stage waits for GPUs); ``never`` — CPUs only
    use_gpu: Literal["auto", "always", "never"] = "auto"
    #: CPUs per decode task
    decode_num_cpus: float = Field(default=0.5, gt=0)
    #: decode tasks running at once (default on one node: the CPUs the embedding actors leave free, rounded up, at
    #: least one; on a multi-node cluster: as many as Ray Data places). Raise it when decoding waits on slow storage
    decode_max_tasks: int | None = Field(default=None, ge=1)
    #: size of each model's actor pool (default: what the cluster's resources allow)
    embed_actors: int | None = Field(default=None, ge=1)
    #: where a model runs: ``auto`` — light models (handcrafted features: no weights, cheap to build) run inside
    #: the decode tasks, one stage on every CPU, and every other model in its actor pool; ``always`` — every
    #: model inside the decode tasks (built once per worker process); ``never`` — always an actor pool. ``auto``
    #: keeps the actor pool when ``embed_actors`` or ``embed_resources`` is set or the model takes a GPU
    embed_in_decode: Literal["auto", "always", "never"] = "auto"
    #: CPUs / GPUs for each probe trial
    trial_num_cpus: float = Field(default=1.0, gt=0)
    #: GPU fraction per probe trial
    trial_num_gpus: float = Field(default=0.0, ge=0)
    #: concurrent probe trials (default: what the cluster allows)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    #: custom Ray resources each embedding actor requests (issue 8), e.g. ``{embed: 1}`` pins the actors
    #: to the nodes started with ``--resources='{"embed": N}'``; the pool is capped at what the cluster offers
    embed_resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("embed_resources")
    @classmethod
    def _positive_resources(cls, v: dict[str, float]) -> dict[str, float]:
        reserved = {"CPU", "GPU", "memory", "object_store_memory"}
        for name, amount in v.items():
            if name in reserved:
                raise ValueError(f"{name!r} is set with embed_num_cpus / embed_num_gpus, not embed_resources")
            if not amount > 0:
                raise ValueError(f"embed_resources.{name} must be > 0, got {amount}")
        return v


class RunConfig(Strict):
    #: the run directory's name (letters, digits, ``.``, ``_``, ``-``; default: run-<date>-<time>)
    run_id: str | None = None
    #: embedding store root (path or pyarrow filesystem URI)
    store: str = "store"
    #: runs directory (results, Tune experiments, reports)
    runs_dir: str = "runs"
    #: the run's seed: deformation sampling and probe seeds derive from it
    seed: int = Field(default=0, ge=0)
    #: number of probe seeds per configuration (mean ± std over them)
    seeds: int = Field(default=1, ge=1)
    #: splits that are deformed (thesis protocol: test only)
    deform_splits: tuple[Literal["train", "validation", "test"], ...] = ("test",)
    #: a scenario with a step that acts on the track as a whole (Reverse, Shift, LoudnessNormalization, an SNR, …:
    #: repeval.deformations.TRACK_LEVEL) deforms each track whole, decoded up to this many seconds; a longer track
    #: is an error record in that scenario (null: no limit — a decode task then holds the whole track and its
    #: deformed copies). Scenarios of window-by-window steps (gain, filters, MP3, …) stream, whatever the length
    deform_whole_track_max_s: float | None = Field(default=WHOLE_TRACK_MAX_S, gt=0)
    #: audio sample rate used when a model does not declare one
    sample_rate_hz: int = Field(default=22050, ge=1000)
    #: store frame-level embeddings in every partition of the run. Without it, a (dataset, model)'s partitions keep
    #: them when a task that reads that dataset with that model has ``embedding_aggregation: prediction`` or
    #: ``attention`` (and a partition an earlier run stored with frames is completed with them); the others do not
    keep_frames: bool = False
    #: rows per Parquet part file in the embedding store
    part_rows: int = Field(default=256, ge=1)
    #: CPUs, GPUs and actors for each stage
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    #: cap on every probe's epochs (and ASHA's max_t); None keeps each probe's own ``epochs``
    max_epochs: int | None = Field(default=None, ge=1)
    #: most probe configurations trained together (vectorised) in one Tune trial; 1 turns it off
    vectorize: int = Field(default=64, ge=1)
    #: Ray Tune ``reuse_actors`` (cuts per-trial start-up from ~2.4 s to ~0.3 s)
    reuse_actors: bool = True
    #: pack probe stacks too small to be worth a Tune trial of their own into shared trials (at least one
    #: trial per slot; see repeval.tuning.units.MIN_UNIT_COST). false: one trial per stack, so an exception in
    #: one trial never takes another stack's probes with it
    pack_trials: bool = True
    #: the probe grids of several groups (task, dataset, model[, fold]) run as one Tune experiment, their trial
    #: actors reused from group to group, while the groups' embeddings fit in this many MiB; 0: one experiment
    #: per group
    train_batch_mb: float = Field(default=1024, ge=0)
    #: bootstrap resamples over test tracks for ci_low / ci_high (0: no intervals)
    bootstrap_resamples: int = Field(default=1000, ge=0)
    #: the intervals' level is 1 - ci_alpha
    ci_alpha: float = Field(default=0.05, gt=0, lt=1)

    @field_validator("run_id")
    @classmethod
    def _safe_id(cls, v: str | None) -> str | None:
        if v is not None:
            import re

            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", v):
                raise ValueError("run_id may use letters, digits, '.', '_' and '-' only")
        return v


def _differences(there: BaseModel, here: BaseModel, prefix: str) -> list[str]:
    """``key: A there, B here`` for each key whose value differs between two configurations of one kind."""
    import json

    def show(v: Any) -> str:
        text = json.dumps(v, default=str) if not isinstance(v, BaseModel | tuple) else json.dumps(_plain(v))
        return text if len(text) <= 60 else text[:57] + "..."

    return [
        f"{prefix}{k}: {show(getattr(there, k))} there, {show(getattr(here, k))} here"
        for k in type(there).model_fields
        if getattr(there, k) != getattr(here, k)
    ]


def _plain(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json", exclude_defaults=True)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _one_run_file(
    seen: dict[str, tuple[str, tuple[str, ...]]], folder: str, names: dict[str, str], where: str, harm: str
) -> None:
    """``names`` (kind → name) name the run's file ``<folder>/<name>__<name>….parquet``; refuse them when other names
    already named it in ``seen`` (joined otherwise, ``a__b`` + ``c`` vs ``a`` + ``b__c``, or differing only in case:
    one file on a case-insensitive filesystem), saying what ``harm`` it would do."""
    values = tuple(names.values())
    file = f"{folder}/{'__'.join(values)}.parquet"
    first, old = seen.setdefault(file.casefold(), (where, values))
    if old != values:

        def spell(vals: tuple[str, ...]) -> str:
            parts = [f"{kind} {v!r}" for kind, v in zip(names, vals, strict=True)]
            return ", ".join(parts[:-1]) + f" and {parts[-1]}"

        raise ValueError(
            f"{where}: {spell(values)} name the run's file {file}, as {spell(old)} ({first}) do (on a case-insensitive "
            f"filesystem if only the case differs) — {harm}: rename one"
        )


class Config(Strict):
    """The whole file. Top-level keys starting with ``x-`` are ignored (a place for YAML anchors)."""

    #: the experiments: a task, its data sets, deformations, embedding models and probes
    experiments: tuple[ExperimentConfig, ...]
    #: repeval's run settings (all optional)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    @field_validator("experiments")
    @classmethod
    def _non_empty(cls, v: tuple[ExperimentConfig, ...]) -> tuple[ExperimentConfig, ...]:
        if not v:
            raise ValueError("experiments is empty: list at least one experiment")
        return v

    @model_validator(mode="after")
    def _distinct_groups(self) -> Config:
        """A run keeps one probe grid, one set of results per (task, dataset, model): a second experiment (or a
        dataset listed twice) with the same three would silently replace the first one's results."""
        seen: dict[tuple[str, str, str], str] = {}
        for ei, exp in enumerate(self.experiments):
            for di, ds in enumerate(exp.datasets):
                for m in exp.embedding_models:
                    where = f"experiments[{ei}].datasets[{di}]"
                    first = seen.setdefault((exp.task.name, ds.name, m.id), where)
                    if first != where:
                        raise ValueError(
                            f"{where}: task {exp.task.name!r} on dataset {ds.name!r} with model {m.id!r} is already "
                            f"{first}'s — a run keeps one set of probes and results per task, dataset and model, so "
                            "one would silently replace the other: give the task another name (task.name), or list "
                            "all its probes in one experiment"
                        )
        return self

    @model_validator(mode="after")
    def _distinct_folders(self) -> Config:
        """Names become folder and file names: a dataset, model or scenario in ``store/<dataset>/<model>/<scenario>/``
        (characters other than letters, digits and ``-_.=`` replaced by ``_``), a task, dataset and model in the run's
        ``groups/<task>__<dataset>__<model>.parquet``. Two names that differ but land in one folder or file (``my
        notes`` and ``my_notes``; or only in case, one folder on a case-insensitive filesystem such as macOS' or
        Windows') would mix their rows or replace each other's results."""
        from repeval.store.store import stored_name

        partitions: dict[tuple[str, ...], tuple[str, tuple[str, str, str]]] = {}
        groups: dict[str, tuple[str, tuple[str, ...]]] = {}
        for ei, exp in enumerate(self.experiments):
            for di, ds in enumerate(exp.datasets):
                where = f"experiments[{ei}].datasets[{di}]"
                for m in exp.embedding_models:
                    for sid in ("clean", *exp.scenarios_for(ds)):
                        names = (ds.name, m.id, sid)
                        key = tuple(stored_name(n).casefold() for n in names)
                        first, seen = partitions.setdefault(key, (where, names))
                        if seen != names:
                            i = next(i for i in range(3) if seen[i] != names[i])
                            kind = ("dataset", "embedding model", "deformation scenario")[i]
                            a, b = stored_name(seen[i]), stored_name(names[i])
                            folder = (
                                f"folder {a!r}"
                                if a == b
                                else f"folders {a!r} and {b!r}, one folder on a case-insensitive filesystem (macOS, "
                                "Windows)"
                            )
                            raise ValueError(
                                f"{where}: {kind} {names[i]!r} and {kind} {seen[i]!r} ({first}) are both stored in "
                                f"the store's {folder} — their embeddings would mix in one partition: rename one"
                            )
                    _one_run_file(
                        groups, "groups", {"task": exp.task.name, "dataset": ds.name, "model": m.id}, where,
                        "one grid's results would replace the other's",
                    )  # fmt: skip
        return self

    @model_validator(mode="after")
    def _one_definition_per_name(self) -> Config:
        """One name, one meaning. A run keeps one set of splits, one load report entry and one results table per task
        and dataset (``splits/<task>__<dataset>.parquet``): every experiment that lists a dataset for a task (with
        other models) must define the task and the dataset alike, or the models would be compared on different data
        and the second experiment's splits would replace the first one's. And the store keeps one partition per
        dataset, model and scenario: a scenario id names one deformation of a dataset throughout the file.

        A dataset defined differently for *other* tasks (another manifest, label column or split settings) still
        shares its partitions, as one defined alike does: a track's embeddings do not depend on a task's splits, and
        the run checks when it loads the rows that a track id names one audio file in every definition
        (:func:`repeval.runner.check_shared_tracks`)."""
        pairs: dict[tuple[str, str], tuple[str, TaskConfig, DatasetConfig]] = {}
        files: dict[str, tuple[str, tuple[str, ...]]] = {}
        scenarios: dict[tuple[str, str], tuple[str, DeformationScenario]] = {}
        for ei, exp in enumerate(self.experiments):
            for di, ds in enumerate(exp.datasets):
                where = f"experiments[{ei}].datasets[{di}]"
                task, name = exp.task.name, ds.name
                # the run's per-(task, dataset) files: splits/<task>__<dataset>.parquet, load_report.json's key
                _one_run_file(
                    files, "splits", {"task": task, "dataset": name}, where, "one's splits would replace the other's"
                )
                first, t0, d0 = pairs.setdefault((task, name), (where, exp.task.canonical(), ds))
                if t0 != exp.task.canonical() or d0 != ds:
                    diff = _differences(t0, exp.task.canonical(), "task.") + _differences(d0, ds, "")
                    raise ValueError(
                        f"{where}: task {task!r} on dataset {name!r} is defined differently in {first} "
                        f"({'; '.join(diff)}) — a run keeps one set of splits, one load report and one results table "
                        "per task and dataset, so the models would be compared on different data and one definition's "
                        "splits would replace the other's: define them alike (a YAML anchor keeps them so), or give "
                        "one of them another name — another task.name (tasks on one dataset still share its "
                        "embeddings), or another dataset name"
                    )
                own = ds.deformations is not None
                for i, (sid, sc) in enumerate(exp.scenarios_for(ds).items()):
                    here = f"{where}.deformations[{i}]" if own else f"experiments[{ei}].deformations[{i}]"
                    there, sc0 = scenarios.setdefault((name, sid), (here, sc))
                    if sc0 != sc:
                        how = (
                            "other transforms or parameters"
                            if sc0.steps != sc.steps
                            else "the same transforms, but one is named and the other is D1, D2, … by position"
                        )
                        raise ValueError(
                            f"{here}: scenario {sid!r} of dataset {name!r} is not {there}'s scenario {sid!r} ({how}) — "
                            "the store keeps one partition per dataset, model and scenario, and results compare "
                            f"scenarios by name: give one of them another name (name: …), or define {sid!r} alike"
                        )
        return self

    @model_validator(mode="after")
    def _deformed_tests(self) -> Config:
        """Every deformation scenario is tested on deformed test tracks: ``run.deform_splits`` must deform them
        (with k folds, every track is a test track of some fold, so any split will do)."""
        splits = self.run.deform_splits
        for ei, exp in enumerate(self.experiments):
            for di, ds in enumerate(exp.datasets):
                scenarios = list(exp.scenarios_for(ds))
                if scenarios and ("test" not in splits if ds.split_type == "single" else not splits):
                    raise ValueError(
                        f"run.deform_splits: {list(splits)} leaves the test tracks undeformed, but "
                        f"experiments[{ei}].datasets[{di}] ({ds.name!r}) is tested under deformation scenarios "
                        f"({', '.join(scenarios)}): include test (the default is [test]), or remove the scenarios"
                    )
        return self

    @model_validator(mode="after")
    def _frames_for_prediction(self) -> Config:
        """A task that aggregates predictions trains and tests on frame-level embeddings, which the store keeps for
        the partitions it reads (:meth:`keeps_frames`): ``run.keep_frames: false`` set with such a task is an
        error."""
        tasks = [e.task for e in self.experiments if e.task.aggregation != "mean"]
        if tasks and not self.run.keep_frames and "keep_frames" in self.run.model_fields_set:
            how = {
                "prediction": "average their predictions per track",
                "attention": "pool each track's frames with learned attention",
            }[tasks[0].aggregation]
            raise ValueError(
                f"task {tasks[0].name!r} has embedding_aggregation: {tasks[0].aggregation} — its probes "
                f"train on frame-level embeddings and {how}, so the store must keep frames: remove "
                "run.keep_frames: false (the partitions such a task reads then keep frames) or use "
                "embedding_aggregation: mean"
            )
        return self

    def keeps_frames(self, dataset: str, model: str) -> bool:
        """Whether the run stores frame-level embeddings in the partitions of ``dataset`` embedded by ``model`` (id):
        all of them with ``run.keep_frames: true``, else those a task with ``embedding_aggregation: prediction`` or
        ``attention`` reads — a dataset used with a model only by mean tasks gets none (frames multiply a partition's
        size by its frames per track), whatever the run's other datasets need."""
        return self.run.keep_frames or any(
            e.task.aggregation != "mean"
            and any(d.name == dataset for d in e.datasets)
            and any(m.id == model for m in e.embedding_models)
            for e in self.experiments
        )
