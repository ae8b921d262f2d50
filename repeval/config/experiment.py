"""One experiment: a task, its data sets, deformations, embedding models, probes and metrics (an entry of
``experiments:``), and the rules that tie them together."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator, model_validator

from repeval.config.base import Fault, Strict, raise_faults
from repeval.config.data import DatasetConfig, TaskConfig
from repeval.config.embed import DeformationScenario, EmbeddingModelConfig, scenario_ids
from repeval.config.probe import PerTaskFault, ProbeConfig, resolve_per_task_values, set_aside_per_task_values
from repeval.tasks import TASK_TYPES, given_task_type


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


def _per_task(probe: dict[str, Any], task_type: str | None) -> Any:
    """A probe entry with its "depending on task" values resolved for ``task_type`` (``None``: not known, they wait);
    one that fits not the task is handed on as its :class:`PerTaskFault`, which the probe's check says at its key."""
    if task_type is None:
        return set_aside_per_task_values(probe)
    try:
        return resolve_per_task_values(probe, task_type)
    except PerTaskFault as fault:
        return fault


class ExperimentConfig(Strict):
    key_aliases: ClassVar[dict[str, str]] = {"features": "embedding_models", "probes": "downstream_models"}

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

    @model_validator(mode="before")
    @classmethod
    def _per_task_values(cls, data: Any) -> Any:
        """Appendix A's "depending on task" probe values (``softmax / sigmoid``) made the task's own."""
        if not isinstance(data, dict):
            return data
        task = data.get("task")
        # a task of no known type: its own validation names the problem; the pairs wait for a task type
        ttype = task.effective_type if isinstance(task, TaskConfig) else given_task_type(task)
        out = dict(data)
        for key in ("downstream_models", "probes"):
            probes = out.get(key)
            if isinstance(probes, list | tuple):
                out[key] = [_per_task(p, ttype) if isinstance(p, dict) else p for p in probes]
        return out

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
            raise ValueError(f"metrics must be a list of metric names, got {v!r}: write it as a list, [{v}]")
        if not v:
            raise ValueError("metrics is empty: remove the key to use the task's defaults")
        names, faults = [], []
        for i, m in enumerate(v):  # every unknown name said at its own index, not the first alone
            try:
                names.append(canonical_metric_name(str(m)))
            except ValueError as exc:
                faults.append(Fault("metric", str(exc), (i,), m))
        if faults:
            raise_faults("metrics", faults)
        return tuple(names)

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
            if ds.split_type == "all" and (fixed := _fixed_official_split(ds, self.task)):
                raise ValueError(
                    f"datasets[{j}].split_type: all, but {fixed}, so the {ds.n_folds} folds cannot rotate (each would "
                    "train and test the same tracks): use split_type: single (the official split), or a task.label "
                    f"without one (`repeval datasets {ds.name}` lists them)"
                )
            if (official := _official_fold_count(ds, self.task)) is not None:
                n, how = official
                if ds.split_type == "single" and ds.fold >= n:
                    raise ValueError(
                        f"datasets[{j}].fold: {ds.fold}, but {ds.name} has {n} official folds (0..{n - 1}) for this "
                        f"task's label, and fold picks one of them: set fold to 0..{n - 1}"
                    )
                if ds.split_type == "all" and ds.n_folds > n:
                    raise ValueError(
                        f"datasets[{j}].n_folds: {ds.n_folds}, but {ds.name} has {n} official folds for this task's "
                        f"label, and split_type: all {how}, so fold {n} has none: set n_folds to {n} (or fewer)"
                    )
            if ds.type == "catalog" and ds.annotated_column and self.task.effective_type != "multilabel_classification":
                raise ValueError(
                    f"datasets[{j}].annotated_column: {ds.annotated_column!r} names the labels each track annotates, "
                    f"which only a multilabel_classification task reads (this task is {self.task.effective_type}): "
                    "remove annotated_column"
                )
            if ds.type == "catalog" and ds.decimal != "." and self.task.effective_type != "regression":
                raise ValueError(
                    f"datasets[{j}].decimal: {ds.decimal!r} is the decimal mark of regression targets, which only a "
                    f"regression task reads (this task is {self.task.effective_type}, whose labels are read as "
                    "written): remove decimal"
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


def _mirdata_label(ds: DatasetConfig, task: TaskConfig) -> tuple[Any, str] | None:
    """``(wired mirdata spec, label name)`` of the task on ``ds``; None for another loader, and for a label the loader
    lacks (its load names that)."""
    from repeval.datasets.labels import task_label_name
    from repeval.datasets.load import loader_name
    from repeval.datasets.mirdata_loader import SPECS

    spec = SPECS.get(loader_name(ds)) if ds.type == "mirdata" else None
    if spec is None:
        return None
    try:
        return spec, task_label_name(task, spec.info())
    except ValueError:
        return None


#: what ``split_type: all`` does with a data set's official splits that ``dataset.fold`` picks (MTG-Jamendo's split-k)
_OWN_SPLIT = "runs fold i on its official split i"


def _official_fold_count(ds: DatasetConfig, task: TaskConfig) -> tuple[int, str] | None:
    """How many official folds ``ds``'s loader has for the task's label when it declares the count — a wired mirdata
    data set per label (:meth:`~repeval.datasets.mirdata_loader.MirdataSpec.official_fold_count`), another loader for
    every label (:attr:`~repeval.datasets.base.DatasetInfo.official_fold_count`: MTG-Jamendo's own) — and what
    ``split_type: all`` does with them; None otherwise."""
    found = _mirdata_label(ds, task)
    if found is not None:
        n = found[0].official_fold_count(found[1])
        if n is None:
            return None
        # official split files (MTG-Jamendo's split-k) give each fold its own splits; official fold numbers rotate
        if found[0].split_map is not None:
            return n, _OWN_SPLIT
        return n, "rotates over them (validation = fold i, test = fold i+1)"
    from repeval.datasets.base import DATASET_INFO
    from repeval.datasets.load import loader_name

    info = DATASET_INFO.get(loader_name(ds))
    if info is None or info.official_fold_count is None:
        return None
    return info.official_fold_count, _OWN_SPLIT


def _fixed_official_split(ds: DatasetConfig, task: TaskConfig) -> str | None:
    """What fixes every track's split when ``ds``'s loader gives the task's label an official train/validation/test
    split (OpenMIC-2018, Medley-solos-DB: :meth:`~repeval.datasets.mirdata_loader.MirdataSpec.fixed_split`); None
    otherwise, and for a label the loader lacks (its load names that)."""
    found = _mirdata_label(ds, task)
    if found is None:
        return None
    spec, label = found
    splits = spec.fixed_split(label)
    return (
        f"the {label!r} label of {ds.name} comes with its official split ({splits}) for every track" if splits else None
    )
