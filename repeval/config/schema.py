"""Typed configuration models.

The schema is the mir_ref thesis' (Appendix A): ``experiments:`` is a list of
``task``, ``datasets``, ``deformations``, ``embedding_models``, ``downstream_models`` and
``metrics``. The public mir_ref repository's spellings are accepted as aliases
(``features`` → ``embedding_models``, ``probes`` → ``downstream_models``, ``deformations``
nested under a dataset). repeval's own extensions live in a top-level ``run:`` block and in
clearly named optional keys.

Unknown keys are errors that name the key and suggest the closest valid one.

This module holds the whole file's model, :class:`Config`, and the rules across its experiments; the parts live
beside it: :mod:`~repeval.config.base` (the frozen base model, names that become file names),
:mod:`~repeval.config.data` (task, datasets), :mod:`~repeval.config.embed` (deformations, embedding models),
:mod:`~repeval.config.probe` (probes), :mod:`~repeval.config.experiment` (an experiment) and
:mod:`~repeval.config.run` (run settings, resources).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from repeval.config.base import Fault, Strict, raise_faults
from repeval.config.data import DatasetConfig, TaskConfig
from repeval.config.embed import DeformationScenario, EmbeddingModelConfig
from repeval.config.experiment import ExperimentConfig
from repeval.config.run import RunConfig
from repeval.registry import closest


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

    other_keys: ClassVar[str] = "; a key starting with x- is ignored, a place for YAML anchors"

    #: modules that register embedding models of your own (README, "Your own model"): each a module name
    #: (``my_team.models``: an installed package, or one under the current directory) or the path of a ``.py`` file
    #: (a relative path starts from the current directory); imported before the rest of the file is checked, and
    #: by every Ray worker that builds a model
    plugins: tuple[str, ...] = ()
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

    @model_validator(mode="before")
    @classmethod
    def _load_plugins(cls, data: Any) -> Any:
        """Import the plugins before the experiments are checked: their models' names must resolve. Those of a
        misspelled ``plugins:`` (``plugin:``, said as an unknown key) too, so their models are not also said to be
        unknown; a fault of theirs is said at ``plugins[i]`` once the key is spelled right."""
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("plugins"), list | tuple):
            from repeval.models.plugins import load_config_plugins

            load_config_plugins(data["plugins"])
            return data
        for key, value in data.items():
            if (
                isinstance(key, str)
                and key not in cls.model_fields
                and isinstance(value, list | tuple)
                and closest(key, sorted(cls.model_fields)) == "plugins"
            ):
                from repeval.models.plugins import PluginError, load_config_plugins

                try:
                    load_config_plugins(value)
                except PluginError:
                    pass
        return data

    @field_validator("plugins")
    @classmethod
    def _plugin_specs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, spec in enumerate(v):
            if not spec.strip():
                raise ValueError(f"plugins[{i}] is empty: give a module name or the path of a .py file")
        return v

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
        from repeval.store.layout import stored_name

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
        """One name, one meaning. A run keeps one set of splits, one load (said in ``load_report.json``) and one
        results table per task and dataset (``splits/<task>__<dataset>.parquet``): every experiment that lists a
        dataset for a task (with other models) must define the task and the dataset alike, or the models would be
        compared on different data and the second experiment's splits would replace the first one's. And the store
        keeps one partition per dataset, model and scenario: a scenario id names one deformation of a dataset
        throughout the file.

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
                # the run's per-(task, dataset) files: splits/<task>__<dataset>.parquet
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
    def _one_model_per_partition(self) -> Config:
        """The store keeps one partition per dataset, model and scenario: experiments that list one dataset with one
        embedding model id must compute it alike (its ``type`` and ``params`` as the partition's fingerprint records
        them), or the run would refuse it as it plans the partitions, after loading the data — said here, in the
        run's words (:func:`~repeval.pipeline.partition_conflicts.computed_twice_problem`)."""
        seen: dict[tuple[str, str], tuple[str, ExperimentConfig, DatasetConfig, EmbeddingModelConfig]] = {}
        for ei, exp in enumerate(self.experiments):
            for ds in exp.datasets:
                for mi, m in enumerate(exp.embedding_models):
                    here = (f"experiments[{ei}].embedding_models[{mi}]", exp, ds, m)
                    first = seen.setdefault((ds.name, m.id), here)
                    if first[3].model_copy(update={"batch_size": None}) == m.model_copy(update={"batch_size": None}):
                        continue
                    from repeval.pipeline.partition_conflicts import computed_twice_problem

                    problem = computed_twice_problem(self, first, here)
                    if problem:
                        raise ValueError(problem)
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

    @model_validator(mode="after")
    def _asha_stops_some(self, info: ValidationInfo) -> Config:
        """An ASHA scheduler (``search.scheduler``: Tune's, or the halving of a grid's stacks) that the run settings
        leave nothing to stop is refused (:meth:`asha_idle_problems`) — unless ``run.smoke_test`` (or the command's
        ``--smoke-test``: the validation context's ``smoke_test``): the smoke test trains an entry's first
        configuration without its scheduler, so it runs (``repeval validate`` notes what a full run would refuse:
        :meth:`smoke_asha_notes`)."""
        smoke = self.run.smoke_test or bool((info.context or {}).get("smoke_test"))
        if not smoke and (faults := self.asha_idle_problems()):
            raise_faults(type(self).__name__, [Fault("asha_idle", text) for text in faults])
        return self

    def asha_idle_problems(self) -> list[str]:
        """Each entry whose ASHA scheduler the run settings leave nothing to stop: ``run.max_epochs`` capping training
        at or before its first rung, or its rung judged only at the last validation, by the rule the plan and the
        run apply (:func:`~repeval.tuning.space_checks.asha_idle`; a probe entry, read alone, is checked against its
        own epochs); and a grid's halving when ``run.vectorize`` over ``run.seeds`` trains one configuration a trial
        (the halving ranks those a trial trains) — where, why and the fix."""
        from repeval.tuning.search import expand_probe
        from repeval.tuning.space_checks import asha_idle

        run = self.run
        faults = []  # every entry at fault, said together
        for ei, exp in enumerate(self.experiments):
            for pi, p in enumerate(exp.downstream_models):
                if not (p.search or {}).get("scheduler") or (run.max_epochs is None and run.vectorize >= 2 * run.seeds):
                    continue
                spec = expand_probe(p, pi, exp.task.effective_type)
                idle = asha_idle(spec, run.max_epochs)
                if idle is None and not spec.tune_mode and run.vectorize < 2 * run.seeds:
                    idle = (
                        f"search.scheduler: on a grid, ASHA stops the configurations that rank below the others it "
                        f"trains with in one trial, and run.vectorize ({run.vectorize}) with run.seeds ({run.seeds}) "
                        "trains one configuration a trial, so it would stop nothing",
                        f"raise run.vectorize to {2 * run.seeds} or more, or remove the scheduler",
                    )
                if idle is not None:
                    faults.append(f"experiments[{ei}].downstream_models[{pi}] ({spec.name}): {idle[0]} — {idle[1]}")
        return faults

    def smoke_asha_notes(self, smoke_test: bool = False) -> list[str]:
        """Under ``run.smoke_test`` (or ``smoke_test``: ``--smoke-test``), what a full run of this configuration would
        refuse of its ASHA schedulers (:meth:`asha_idle_problems`), each said as a note: the smoke test runs without
        them."""
        if not (self.run.smoke_test or smoke_test):
            return []
        return [
            f"{problem}; a full run (without run.smoke_test) is refused for it — the smoke test trains the entry's "
            "first configuration without the scheduler, so it runs"
            for problem in self.asha_idle_problems()
        ]

    def embedding_model_ids(self) -> tuple[str, ...]:
        """The ids of the embedding models the experiments list, each once, in the order first listed."""
        return tuple(dict.fromkeys(m.id for exp in self.experiments for m in exp.embedding_models))

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
