"""The grid of work a configuration implies, and how much of it is already done."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repeval.config import Config
from repeval.datasets.load import dataset_folds
from repeval.pipeline.stages import CLEAN
from repeval.plan_probes import _names, probe_lines


@dataclass
class Plan:
    experiments: int = 0
    partitions: int = 0
    partitions_done: int = 0
    #: store partitions the embedding stage would stop at: partition name → the error it would stop with
    conflicts: dict[str, str] = field(default_factory=dict)
    #: what the embedding stage would say of reused partitions computed from audio elsewhere (one note for them all)
    notes: list[str] = field(default_factory=list)
    trainings: int = 0
    trainings_done: int = 0
    #: probe trainings of the grids not done that an interrupted run finished, and the trials they are in (what the
    #: rerun's summary line counts): an upper bound — the rerun reuses them only while the embeddings and labels hold
    #: what they trained on, which it checks by their content (:func:`repeval.tuning.units.data_identity`, a read of
    #: every partition the grid trains and tests on: 0.6–2.5 s for a 20,000 × 512 one here, many times that with frames),
    #: and the plan reads only the store's records of them — equal unless a part file was rewritten in place
    trainings_reused: int = 0
    trials_reused: int = 0
    #: of the grids not done, the finished trials (and their trainings) of Tune experiments an earlier repeval marked
    #: without their groups: whether the rerun reuses them is not known here (:func:`_reused`)
    trainings_unknown: int = 0
    trials_unknown: int = 0
    #: probe grids (a k-fold dataset's: one per fold); done: the run leaves them alone
    grids: int = 0
    grids_done: int = 0
    #: finished grids whose deformation scenarios alone changed (:func:`repeval.retest.scenarios_only`): their
    #: probes are tested on the changed scenarios from their checkpoints, not trained (:func:`_retest`) — the
    #: trainings not redone and the tested probes scored again
    grids_retest: int = 0
    trainings_retest: int = 0
    probes_retested: int = 0
    #: those grids by what changed: its words → the grids and their selected probes scored again
    retests: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: grids whose deformation scenarios alone changed, trained again all the same: why
    retrained: list[str] = field(default_factory=list)
    test_cells: int = 0
    lines: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        head = [
            f"experiments:        {self.experiments}",
            f"probe trainings:    {self.trainings:,} ({self.trainings_done:,} done"
            + (
                f"; up to {self.trainings_reused:,} more finished by an interrupted run, reused in "
                f"{self.trials_reused:,} trial(s), not trained again while the embeddings hold what they trained on"
                if self.trainings_reused
                else ""
            )
            + (
                f"; reuse not known of up to {self.trainings_unknown:,} more in {self.trials_unknown:,} finished "
                "trial(s) of Tune experiments an earlier repeval wrote, whose markers do not say what they trained on"
                if self.trials_unknown
                else ""
            )
            + (
                f"; {self.trainings_retest:,} not trained again: their grids' deformation scenarios alone changed"
                if self.trainings_retest
                else ""
            )
            + ")",
            f"probe grids:        {self.grids:,} ({self.grids_done:,} done"
            + (f", {self.grids_retest:,} retest only" if self.grids_retest else "")
            + f", {self.grids - self.grids_done - self.grids_retest:,} to train)",
            f"test cells:         {self.test_cells:,} (training × clean + deformation scenarios)",
            f"store partitions:   {self.partitions:,} (dataset × model × scenario; {self.partitions_done:,} complete"
            + (f", {len(self.conflicts):,} conflicting" if self.conflicts else "")
            + ")",
        ]
        if self.resources:
            head.append("resources:")
            head += [f"  {k + ':':<18}{v}" for k, v in self.resources.items()]
        conflicts = [f"conflict: {msg}" for msg in self.conflicts.values()]
        notes = [f"note: {msg}" for msg in self.notes]
        retests = [_retest_line(what, grids) for what, grids in self.retests.items()]
        retrained = [f"train again: {why}" for why in self.retrained]
        return "\n".join([*head, "", *self.lines, *retests, *retrained, *conflicts, *notes])


def make_plan(
    cfg: Config,
    store: Any | None = None,
    run_dir: Path | None = None,
    gpus: float = 0.0,
    cluster: Mapping[str, float] | None = None,
    tune_storage: str | None = None,
    smoke_of: Config | None = None,
) -> Plan:
    """The plan; ``cluster`` (``ray.cluster_resources()``) turns the resource rules into exact requests.
    ``smoke_of``: the configuration ``cfg`` is the smoke test of (:func:`~repeval.run.context.smoke_test_config`),
    whose probe entries :func:`probe_lines` describes as the smoke test's probes' origin.

    With a ``store``, a partition counts as complete and a probe grid (with ``run_dir`` too) as done only when
    ``repeval run`` would leave it alone — the embedding and training stages' own checks, on the datasets' rows
    and the partitions' track ids (read here) — and a partition the run would stop at is listed as a conflict.
    Of the grids not done, the trainings an interrupted run finished that the rerun reuses are counted from the
    run's Tune experiments (``tune_storage``, default ``run_dir/tune``): their markers and checkpoint summaries."""
    p = Plan(experiments=len(cfg.experiments))
    ctx = states = None
    if store is not None:
        ctx, states = _progress(cfg, store, run_dir, p)
    seeds = cfg.run.seeds
    seen: set[tuple[str, str, str]] = set()
    pending: dict[str, dict[str, Any]] = {}  # probe grid not done, its partitions complete → its inputs now
    n_bf16 = n_configs = 0
    tune_storage = tune_storage or (str(run_dir / "tune") if run_dir is not None else None)
    from repeval.pipeline.partitions import raised_chunk_s
    from repeval.tuning.search import expand_all

    for ei, exp in enumerate(cfg.experiments):
        # presets and search grids expand to many configurations; a ``select: best`` spec (Jukemir, HEAR)
        # trains them all and tests only the one it selects
        specs = expand_all(exp.downstream_models, exp.task.effective_type)
        n_probes = sum(s.size for s in specs)
        n_tested = sum(s.size if s.select == "all" else 1 for s in specs)
        n_configs += n_probes
        n_bf16 += sum(s.size // len(s.points) * sum(pt.config.precision == "bf16" for pt in s.points) for s in specs)
        for ds in exp.datasets:
            scen = list(exp.scenarios_for(ds))
            folds = dataset_folds(ds) if ds.split_type == "all" else [None]
            for m in exp.embedding_models:
                raised_chunk_s(cfg, m)  # (said once, as a warning)
                for fold in folds:  # k folds: every fold is trained and tested
                    trainings = n_probes * seeds
                    p.trainings += trainings
                    p.grids += 1
                    p.test_cells += n_tested * seeds * (1 + len(scen))
                    done = False
                    if ctx is not None and states is not None and tune_storage is not None:
                        done, name, inputs = _trained(ctx, states, ei, ds, m.id, fold)
                        if not done and _retest(ctx, p, name, inputs, tune_storage, trainings, (ds.name, m.id)):
                            continue
                        if not done and inputs is not None and None not in inputs["partitions"].values():
                            pending[name] = inputs
                    p.trainings_done += trainings if done else 0
                    p.grids_done += done
                for sid in [CLEAN, *scen]:
                    if (ds.name, m.id, sid) in seen:
                        continue  # tasks on one dataset share its embeddings
                    seen.add((ds.name, m.id, sid))
                    p.partitions += 1
                    state, why = states.get((ds.name, m.id, sid), ("todo", "")) if states else ("todo", "")
                    p.partitions_done += state == "complete"
                    if state == "conflict":
                        p.conflicts[f"{ds.name}/{m.id}/{sid}"] = why
            pred = {
                "prediction": ", per-frame probes, mean prediction per track",
                "attention": ", attention pooling of each track's frames",
            }.get(exp.task.aggregation, "")
            p.lines.append(
                f"{exp.task.name} [{exp.task.effective_type}{pred}] on {ds.name}: {len(exp.embedding_models)} models × "
                f"{n_probes} probe configurations ({n_tested} tested) × {seeds} seed(s), scenarios: clean{', ' if scen else ''}{', '.join(scen)}; "
                f"metrics: {', '.join(exp.metric_names)}"
                + (f"; training rows augmented with {', '.join(exp.augment_for(ds))}" if exp.augment else "")
                + (
                    f"; × {ds.n_folds} folds (split_type all: validation = fold i, test = fold i+1)"
                    if ds.split_type == "all"
                    else ""
                )
            )
        p.lines += probe_lines(exp, specs, smoke_of.experiments[ei] if smoke_of is not None else None)
    if pending and tune_storage is not None:
        _reused(cfg, p, pending, tune_storage, cluster)
    # resources (issue 8): the rules, or the exact requests when the cluster's resources are known
    r = cfg.run.resources
    custom = "".join(f" + {k}={v:g}" for k, v in r.embed_resources.items())
    from repeval.models import resolve_model

    if cluster is None:
        from repeval.pipeline.resources import runs_in_decode_tasks

        classes = {m.id: resolve_model(m)[0].cls for e in cfg.experiments for m in e.embedding_models}
        fused = [i for i, c in classes.items() if runs_in_decode_tasks(c, r)]  # light models take no GPU
        pooled = [i for i in classes if i not in fused]
        if pooled:  # no actor when every model runs inside the decode tasks
            gpu = _gpu_note(r.use_gpu, r.embed_num_gpus, gpus, " for GPU models")
            p.resources["embed actor"] = f"{r.embed_num_cpus:g} CPU{custom}{gpu}"
        where = [f"{', '.join(fused)} inside the decode tasks"] if fused else []
        where += [f"{', '.join(pooled)} in actor pools"] if pooled else []
        p.resources["models run"] = f"{'; '.join(where)} (embed_in_decode: {r.embed_in_decode})"
    else:
        from repeval.pipeline.resources import plan_resources

        gpus = float(cluster.get("GPU", 0.0))
        for exp in cfg.experiments:
            for m in exp.embedding_models:
                fam, _ = resolve_model(m)
                try:
                    res = plan_resources(fam.cls, r, float(cluster.get("CPU", 1.0)), gpus, cluster)
                    p.resources[f"embed {m.id}"] = res.describe()
                except ValueError as exc:
                    p.resources[f"embed {m.id}"] = f"cannot be placed: {exc}"
    if cluster is None:
        # a model inside the decode tasks makes them tasks of embed_num_cpus (pipeline.resources._fused)
        at_once = (
            f"{r.decode_max_tasks} at once"
            if r.decode_max_tasks
            else "on one node one per CPU the actors leave free, on a cluster as many as fit"
            if pooled
            else "as many at once as fit"
        )
        sizes = [f"{r.decode_num_cpus:g} CPU"] if pooled else []
        sizes += (
            [f"{r.embed_num_cpus:g} CPU{' with a model inside' if pooled else ''} (embed_num_cpus)"] if fused else []
        )
        p.resources["decode task"] = f"{' or '.join(sizes)}, {at_once}"
    trial_gpu = _gpu_note(r.use_gpu, r.trial_num_gpus, gpus, "", known=cluster is not None)
    p.resources["probe trial"] = f"{r.trial_num_cpus:g} CPU{trial_gpu}"
    if n_bf16:
        from repeval.probes.model import native_bf16

        here = "native" if native_bf16() else "emulated, slower than fp32"
        p.resources["probe products"] = (
            f"bf16 in {n_bf16} of {n_configs} probe configurations (this machine's CPU: {here})"
        )
    if cluster is not None:
        shown = sorted((k, v) for k, v in cluster.items() if not k.startswith("node:"))
        # Ray counts memory in bytes: "memory=4.52837e+10" said nothing at a glance
        p.resources["cluster"] = ", ".join(
            f"{k}={v / 2**30:.3g} GiB" if k in ("memory", "object_store_memory") else f"{k}={v:g}" for k, v in shown
        )
    return p


def _progress(cfg: Config, store: Any, run_dir: Path | None, p: Plan) -> tuple[Any, Any]:
    """A read-only run context (the datasets' rows loaded, nothing written) and what the embedding stage would do
    with each partition: ``(dataset, model, scenario)`` → :func:`~repeval.pipeline.partitions.partition_state`
    (for a partition several experiments share, the one with the most to do). ``(None, None)`` when the rows
    cannot be loaded (the reason is added to the plan's lines)."""
    from repeval.pipeline.partitions import (
        CutReused,
        ModelSpec,
        changed_source,
        partition_state,
        plan_notes,
        plan_source_note,
        wanted_masks,
    )
    from repeval.runner import RunContext, audio_sources, deform_ids, load_rows

    ctx = RunContext(cfg, "plan", run_dir if run_dir is not None else Path("/nonexistent"), store)
    try:
        load_rows(ctx, save=False)
    except (ValueError, OSError) as exc:
        p.lines.append(f"done: not known — the datasets could not be loaded: {exc}")
        return None, None
    p.notes += _load_notes(ctx)
    rank = {"complete": 0, "todo": 1, "conflict": 2}
    states: dict[tuple[str, str, str], tuple[str, str]] = {}
    sources = audio_sources(ctx)
    moved: dict[str, dict[str, dict[str, tuple[Any, int]]]] = {}  # dataset → model → partitions from elsewhere
    cut = CutReused()  # the run's tracks whose reused rows were cut, which a run under truncated_audio: error warns of
    for ei, exp in enumerate(cfg.experiments):
        to_deform = deform_ids(ctx, ei)
        for ds in exp.datasets:
            rows = ctx.rows[(ei, ds.name)]
            ids = rows.column("track_id").combine_chunks()
            masks = wanted_masks(cfg, exp, ds, rows, to_deform)
            for m in exp.embedding_models:
                spec = ModelSpec.of(cfg, m)
                for sid, wanted in masks.items():
                    key = (ds.name, m.id, sid)
                    part = store.partition(*key)
                    state, what, done = partition_state(part, spec.partition(cfg, exp, ds, sid), ids, wanted)
                    if key not in states or rank[state] > rank[states[key][0]]:
                        states[key] = (state, what)
                    if done is not None and cfg.run.truncated_audio == "error":
                        cut.add(part, ids, wanted & done)
                    recorded = changed_source(part, sources[ds.name]) if done is not None else None
                    by_model = moved.setdefault(ds.name, {})
                    if recorded is not None and done is not None and sid not in by_model.get(m.id, {}):
                        reused = int((wanted & done).sum())
                        if reused:
                            by_model.setdefault(m.id, {})[sid] = (recorded, reused)
    said = plan_notes(store.uri, moved, sources)
    if said:  # one note, however many datasets and models: the plan says it on every call until a run records them
        p.notes.append(plan_source_note(said))
    if cut.tracks:
        from repeval.pipeline.summary import cut_reused_note

        p.notes.append(cut_reused_note(store.uri, cut.counts(), run=False))
    return (ctx if run_dir is not None else None), states


def _load_notes(ctx: Any) -> list[str]:
    """What loading each dataset found, as ``repeval run`` logs it: one note per dataset for the rows dropped
    (missing audio, duplicate ids, unusable labels or splits), saying how many ``run --strict`` fails on, then one
    per finding of its loader that drops no row (a key the data left unused, a likely ``label_separator``); a dataset
    that two tasks load is said once, naming the tasks only when their loads found other things
    (:func:`~repeval.run.rows.said_once`)."""
    from repeval.run.rows import said_once

    notes = []
    for name, ei, _, ds, found, kinds in said_once(ctx):
        lines = found.lines()
        dropped, noted = lines[: len(found.counts())], lines[len(found.counts()) :]  # a line per kind, then notes
        n = sum(found.count(k) for k in kinds)
        if dropped:
            strict = f" — {n:,} row(s) not evaluated, which `repeval run --strict` fails on" if n else ""
            notes.append(
                f"dataset {name} at load ({ctx.rows[(ei, ds.name)].num_rows:,} rows kept): {'; '.join(dropped)}"
                f"{strict} (`repeval data check CONFIG --out FILE` lists every missing or unreadable audio file)"
            )
        notes += [f"dataset {name}: {line}" for line in noted]
    return notes


def _trained(ctx: Any, states: dict[tuple[str, str, str], tuple[str, str]], ei: int, ds: Any, model: str,
             fold: int | None) -> tuple[bool, str, dict[str, Any] | None]:  # fmt: skip
    """Whether the training stage would skip this probe grid — trained on the inputs it would have now, and none
    of its partitions is left for the embedding stage (which would change those inputs) — its name, and those
    inputs: a partition the embedding stage computes (further) is ``None`` in them (its record is not known yet,
    only that it changes); ``None`` while one is a conflict (the run stops before training)."""
    from repeval.runner import group_inputs, group_name, group_trained

    exp = ctx.cfg.experiments[ei]
    scen = list(exp.scenarios_for(ds))
    name = group_name(exp, ds.name, model, fold)
    left = {sid for sid in [CLEAN, *scen] if states.get((ds.name, model, sid), ("todo", ""))[0] != "complete"}
    if any(states.get((ds.name, model, sid), ("todo", ""))[0] == "conflict" for sid in left):
        return False, name, None
    rows = ctx.folds[(ei, ds.name)][fold] if fold is not None else ctx.rows[(ei, ds.name)]
    inputs = group_inputs(ctx, ei, ds.name, model, scen, rows)
    if left:
        inputs["partitions"] = {sid: None if sid in left else v for sid, v in inputs["partitions"].items()}
        return False, name, inputs
    return bool(group_trained(ctx, name, inputs, ds.name, model)), name, inputs


def _retest(
    ctx: Any,
    p: Plan,
    name: str,
    inputs: dict[str, Any] | None,
    tune_storage: str,
    trainings: int,
    pair: tuple[str, str],
) -> bool:
    """Whether the training stage would test grid ``name`` (not done) on its changed deformation scenarios with the
    probes it selected before instead of training it — trained before, only its scenarios changed
    (:func:`repeval.retest.scenarios_only`, a partition still to be computed counted as changed) and its record of
    those probes and their checkpoints there (:func:`repeval.retest.retest_check`) — counted and described in ``p``.
    Whether the checkpoints' content is the one recorded, and testing on the embeddings succeeds, is known only when
    the run reads them (it trains the grid again otherwise): said. A grid whose scenarios alone changed but whose
    probes cannot be read back is said to be trained again, as the run's warning will."""
    from repeval.retest import retest_check, scenarios_only
    from repeval.run.groups import recorded_inputs

    groups = ctx.run_dir / "groups"
    if inputs is None or not (groups / f"{name}.parquet").exists():
        return False  # never trained, or the run stops before training
    # read as the run reads it: an earlier repeval's record of a partition re-embedded since counts as changed
    change = scenarios_only(recorded_inputs(ctx, name, *pair), inputs)
    if change is None:
        return False
    added, removed = change
    tested, why = retest_check(ctx.run_dir, tune_storage, name, added)
    if why is not None:
        p.retrained.append(f"{name}: only its deformation scenarios changed, but {why}")
        return False
    changed = [s for s in added if s in removed]
    new, gone = [s for s in added if s not in changed], [s for s in removed if s not in changed]
    said = [f"tested on the added scenario(s) {', '.join(new)}"] if new else []
    said += [f"tested again on the changed scenario(s) {', '.join(changed)}"] if changed else []
    said += [f"the results of the removed scenario(s) {', '.join(gone)} dropped"] if gone else []
    p.retests.setdefault("; ".join(said), []).append((name, len(tested) if added else 0))
    p.grids_retest += 1
    p.trainings_retest += trainings
    p.probes_retested += len(tested) if added else 0
    return True


def _retest_line(what: str, grids: list[tuple[str, int]]) -> str:
    n = sum(k for _, k in grids)
    how = (
        f"{n:,} selected probe(s) scored again from their Tune checkpoints, none trained (retest if the checkpoints "
        "are intact: one changed since, or testing that raises, trains its grid again)"
        if n
        else "nothing trained or tested"
    )
    return f"retest only: {_names([g for g, _ in grids])}: {what} — {how}"


def _reused(
    cfg: Config, p: Plan, pending: dict[str, dict[str, Any]], tune_storage: str, cluster: Mapping[str, float] | None
) -> None:
    """Count the trainings (and trials) of the ``pending`` grids that an interrupted run finished and the rerun
    reuses — at most: the rerun checks their data's content, which this does not read (:attr:`Plan.trainings_reused`)
    — :func:`repeval.tuning.tuner.finished_of_groups`, for the trial slots the rerun plans — set, or those of the
    cluster's CPUs, else of this machine's (a note says so when it matters) — and, apart, those of experiments whose
    markers do not record their groups (:func:`repeval.tuning.tuner.unrecorded_of_groups`: not known)."""
    from repeval.ray_utils import local_cpus
    from repeval.tuning.tuner import finished_of_groups, unrecorded_of_groups
    from repeval.tuning.units import trial_slots, unit_settings

    cpus = float(cluster.get("CPU", 1.0)) if cluster is not None else local_cpus()
    slots = trial_slots(cfg, cpus)
    for trials, trainings in finished_of_groups(tune_storage, pending, unit_settings(cfg, slots)).values():
        p.trials_reused += trials
        p.trainings_reused += trainings
    _, p.trials_unknown, p.trainings_unknown = unrecorded_of_groups(tune_storage, _experiment_of(list(pending)))
    if cluster is not None or cfg.run.resources.max_concurrent_trials:
        return
    # the slots of this machine's CPUs: a run sent to a cluster plans its units for the cluster's, and reuses only
    # the experiments planned for those (any slots: what the markers hold, however many slots they were planned for)
    anywhere = sum(n for _, n in finished_of_groups(tune_storage, pending, unit_settings(cfg)).values())
    if not anywhere:
        return
    said = (
        f"trainings an interrupted run finished are counted for this machine's {cpus:g} CPU(s) ({slots} trial "
        "slot(s)), as `repeval run` here plans them"
    )
    if anywhere > p.trainings_reused:
        said += (
            f"; {anywhere - p.trainings_reused:,} more are in Tune experiments planned for other trial slots (another "
            "machine or a cluster), reused only by a run with those"
        )
    p.notes.append(
        f"{said}. For a run on a cluster, give `repeval plan --address HOST:PORT` (or set RAY_ADDRESS) to count for "
        "its CPUs, or set run.resources.max_concurrent_trials"
    )


def _experiment_of(pending: list[str]) -> Callable[[str], bool]:
    """Whether a Tune experiment is one a rerun of the ``pending`` grids (in the training stage's order) may start:
    named after one of them (a probe trained one configuration per trial: after the grid and the probe), or after a batch of
    consecutive ones (:func:`repeval.tuning.grid.batch_name`)."""
    import re

    from repeval.tuning.grid import batch_name

    names = set(pending)

    def wanted(name: str) -> bool:
        if name in names or any(name.startswith(f"{g}__") for g in pending):
            return True
        m = re.fullmatch(r"groups-(\d+)-[0-9a-f]{12}", name)
        k = int(m[1]) if m else 0
        return k > 1 and any(batch_name(pending[i : i + k]) == name for i in range(len(pending) - k + 1))

    return wanted


def _gpu_note(mode: str, amount: float, gpus: float, what: str, known: bool = False) -> str:
    """The GPU part of a resource line under ``run.resources.use_gpu``."""
    if not amount or mode == "never":
        return ""
    if gpus > 0:
        return f" + {amount:g} GPU"
    if mode == "always":
        return f" + {amount:g} GPU{what} (none up yet: waits for the autoscaler to add GPU nodes)"
    return "" if known else f" (+ {amount:g} GPU{what} when Ray reports GPUs)"
