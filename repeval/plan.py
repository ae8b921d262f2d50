"""The grid of work a configuration implies, and how much of it is already done."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repeval.config import Config
from repeval.datasets.load import dataset_folds
from repeval.pipeline.stages import CLEAN
from repeval.plan_probes import _names, criteria_note, probe_lines, thesis_names_note
from repeval.plan_progress import _progress, _retest, _reused, _trained, _written
from repeval.words import counted, named


@dataclass
class Plan:
    experiments: int = 0
    partitions: int = 0
    partitions_done: int = 0
    #: store rows (track × model × scenario) the run's partitions want, and of those the rows no partition holds yet:
    #: what the embedding stage computes (known when the rows could be read; with no store yet: every row)
    rows: int = 0
    rows_to_embed: int = 0
    #: the embedding models `repeval run` would leave out again, not run (an earlier run stopped them: a note says
    #: why), and, of the rows no partition holds and the grids not done, theirs: not embedded, not trained
    left_out: set[str] = field(default_factory=set)
    rows_left_out: int = 0
    grids_left_out: int = 0
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
    #: without their groups: whether the rerun reuses them is not known here (:func:`~repeval.plan_progress._reused`)
    trainings_unknown: int = 0
    trials_unknown: int = 0
    #: probe grids (a k-fold dataset's: one per fold); done: the run leaves them alone
    grids: int = 0
    grids_done: int = 0
    #: finished grids whose deformation scenarios alone changed (:func:`repeval.retest.scenarios_only`): their
    #: probes are tested on the changed scenarios from their checkpoints, not trained
    #: (:func:`~repeval.plan_progress._retest`) — the trainings not redone and the tested probes scored again
    grids_retest: int = 0
    trainings_retest: int = 0
    probes_retested: int = 0
    #: those grids by what changed: its words → the grids and their selected probes scored again
    retests: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: grids whose deformation scenarios alone changed, trained again all the same: why
    retrained: list[str] = field(default_factory=list)
    #: partitions with error records: name → (the records, which ``--retry-errors`` deletes; the run's tracks they
    #: name, which it computes again); under ``retry_errors`` those partitions count as to do, as the run finds them
    retries: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the run's tracks those records name, ``(dataset, track id)``: a track that failed in several scenarios (each
    #: partition's count) is one track
    retry_tracks: set[tuple[str, str]] = field(default_factory=set)
    retry_errors: bool = False
    #: ``--retry-model``: the embedding models whose error records are retried (all under :attr:`retry_errors`), and
    #: each model's share of :attr:`retry_tracks`
    retry_models: frozenset[str] = frozenset()
    retry_tracks_of: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    test_cells: int = 0
    test_cells_done: int = 0
    lines: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    #: frame-level tasks' training frames in memory (:func:`~repeval.plan_memory.frame_memory`), and the warnings
    #: where they exceed a node's memory
    memory: list[str] = field(default_factory=list)
    memory_warnings: list[str] = field(default_factory=list)
    #: what the configuration asks that it may not mean: deformation steps without ``p``, ``run.deform_splits``
    #: deforming tracks no probe reads (as ``repeval validate`` warns of them)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = [
            f"experiments:        {self.experiments}",
            f"probe trainings:    {self.trainings:,} ({self.trainings_done:,} done"
            + (
                f"; up to {self.trainings_reused:,} more finished by an interrupted run, reused in "
                f"{counted(self.trials_reused, 'trial')}, not trained again while the embeddings hold what they "
                "trained on"
                if self.trainings_reused
                else ""
            )
            + (
                f"; reuse not known of up to {self.trainings_unknown:,} more in {counted(self.trials_unknown, 'finished trial')} "
                "of Tune experiments an earlier repeval wrote, "
                "whose markers do not say what they trained on"
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
            + f", {self.grids - self.grids_done - self.grids_retest - self.grids_left_out:,} to train"
            + (f", {self.grids_left_out:,} of {self._left_out()}" if self.grids_left_out else "")
            + ")",
            f"test cells:         {self.test_cells:,} ({self.test_cells_done:,} done; training × clean + deformation "
            "scenarios)",
            f"store partitions:   {self.partitions:,} (dataset × model × scenario; {self.partitions_done:,} complete"
            + (f", {len(self.conflicts):,} conflicting" if self.conflicts else "")
            + (f"; {self.rows_to_embed:,} of {counted(self.rows, 'row')} to embed" if self.rows else "")
            + (f", {self.rows_left_out:,} more of {self._left_out()}" if self.rows_left_out else "")
            + ")",
        ]
        if self.resources:
            head.append("resources:")
            head += [f"  {k + ':':<17} {v}" for k, v in self.resources.items()]  # a long model id: still a space
        conflicts = _conflict_lines(self.conflicts)
        notes = [f"note: {msg}" for msg in self.notes]
        retests = [_retest_line(what, grids) for what, grids in self.retests.items()]
        retrained = [f"train again: {why}" for why in self.retrained]
        retries = self._retry_lines()
        warned = [f"warning: {w}" for w in self.warnings + self.memory_warnings]
        body = [*self.lines, *self.memory, *warned, *retests, *retrained, *retries, *conflicts, *notes]
        return "\n".join([*head, "", *body])

    def _left_out(self) -> str:
        """The embedding models `repeval run` would leave out again, not run (:attr:`left_out`), in a few words."""
        models, one = ", ".join(sorted(self.left_out)), len(self.left_out) == 1
        return f"{models}, which `repeval run` leaves out ({'note' if one else 'notes'} below)"

    def _retry_lines(self) -> list[str]:
        """What ``--retry-errors`` would do with the partitions' error records (:attr:`retries`): said under it, else a
        note of the records a plain run leaves as they are."""
        if self.retry_errors:
            return self._retried(self.retries, len(self.retry_tracks), "--retry-errors")
        if self.retry_models:  # --retry-model: its models' partitions retried, the others' records left
            ours = {k: v for k, v in self.retries.items() if k.split("/")[1] in self.retry_models}
            tracks = set().union(*(self.retry_tracks_of.get(m, set()) for m in self.retry_models))
            flags = " ".join(f"--retry-model {shlex.quote(m)}" for m in sorted(self.retry_models))
            return self._retried(ours, len(tracks), flags) + self._plain_note(
                {k: v for k, v in self.retries.items() if k not in ours},
                set().union(*(t for m, t in self.retry_tracks_of.items() if m not in self.retry_models)),
            )
        return self._plain_note(self.retries, self.retry_tracks)

    def _retried(self, retries: dict[str, tuple[int, int]], tracks: int, flags: str) -> list[str]:
        """The ``retry errors:`` line of the partitions ``retries`` that ``flags`` retries, and their ``tracks``."""
        if not retries:
            of = named("embedding model", [repr(m) for m in sorted(self.retry_models)])  # --retry-model's
            return ["retry errors: none — no error records in this configuration's store partitions" + (
                "" if flags == "--retry-errors" else f" of {of} ({flags})"
            )]  # fmt: skip
        records, names = sum(v[0] for v in retries.values()), _names(list(retries))
        return [
            f"retry errors: {names}: {counted(records, 'error record')} deleted, {counted(tracks, 'track')} of "
            f"this run they name computed again ({flags}); these partitions and the probe grids trained on "
            "them count as to do — a grid is trained again unless every such track fails again"
        ]

    def _plain_note(self, retries: dict[str, tuple[int, int]], tracks_named: set[tuple[str, str]]) -> list[str]:
        """The note of the error records ``retries`` a plain run leaves as they are, and the run's tracks they name."""
        left = {k: v for k, v in retries.items() if v[1]}  # of this run's tracks: those a plain run leaves out
        if not left:
            return []
        records, tracks = sum(v[0] for v in left.values()), len(tracks_named)
        from repeval.pipeline.failing import partition_models, retry_alone

        one = len(partition_models(left)) == 1
        return [
            f"note: {counted(records, 'error record')} in {counted(len(left), 'partition')} ({_names(list(left))}), "
            f"{counted(tracks, 'track')} of this run: `repeval run` leaves them out of training and testing; once "
            f"their files (or the {'model' if one else 'models'} failing on them) are fixed, `repeval run "
            f"--retry-errors` computes them again{retry_alone(left)} (`repeval plan` with the same option says what it "
            "would do)"
        ]


def make_plan(
    cfg: Config,
    store: Any | None = None,
    run_dir: Path | None = None,
    gpus: float = 0.0,
    cluster: Mapping[str, float] | None = None,
    tune_storage: str | None = None,
    smoke_of: Config | None = None,
    retry_errors: bool = False,
    nodes: list[dict[str, float]] | None = None,
    retry_models: frozenset[str] = frozenset(),
) -> Plan:
    """The plan; ``cluster`` (``ray.cluster_resources()``) turns the resource rules into exact requests, which with
    ``nodes`` (each live node's resources) are checked as ``repeval run`` checks them before it embeds: a request no
    node holds, or an actor pool and its decode tasks that no node holds together, says "cannot be placed" and why.
    ``smoke_of``: the configuration ``cfg`` is the smoke test of (:func:`~repeval.run.context.smoke_test_config`),
    whose probe entries :func:`probe_lines` describes as the smoke test's probes' origin.

    With a ``store``, a partition counts as complete and a probe grid (with ``run_dir`` too) as done only when
    ``repeval run`` would leave it alone — the embedding and training stages' own checks, on the datasets' rows
    and the partitions' track ids (read here) — and a partition the run would stop at is listed as a conflict.
    Of the grids not done, the trainings an interrupted run finished that the rerun reuses are counted from the
    run's Tune experiments (``tune_storage``, default ``run_dir/tune``): their markers and checkpoint summaries.
    ``retry_errors``: plan ``repeval run --retry-errors`` — the partitions with error records are to do, their
    records' tracks computed again, and the grids trained on them are not done (:attr:`Plan.retries`); ``retry_models``:
    plan ``repeval run --retry-model MODEL`` — so for those models' partitions only."""
    from repeval.config.embed import default_p_warnings, deform_splits_warnings

    p = Plan(experiments=len(cfg.experiments))
    p.warnings = default_p_warnings(cfg.experiments) + deform_splits_warnings(cfg)  # as `repeval validate` says them
    ctx = states = None
    if store is not None:
        ctx, states = _progress(cfg, store, run_dir, p, retry_errors, retry_models)
        p.retry_errors = retry_errors and states is not None  # what it would do is known: said
        p.retry_models = retry_models if states is not None else frozenset()
    seeds = cfg.run.seeds
    seen: set[tuple[str, str, str]] = set()
    pending: dict[str, dict[str, Any]] = {}  # probe grid not done, its partitions complete → its inputs now
    trains_on: dict[str, tuple[str, str]] = {}  # such a grid → its dataset and model
    to_train: set[tuple[str, str, str]] = set()  # (task, dataset, model) of a grid the run trains (frame memory)
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
                    cells = n_tested * seeds  # per scenario
                    p.test_cells += cells * (1 + len(scen))
                    done = False
                    if ctx is not None and states is not None and tune_storage is not None:
                        done, name, inputs = _trained(ctx, states, ei, ds, m.id, fold)
                        again = (
                            None if done else _retest(ctx, p, name, inputs, tune_storage, trainings, (ds.name, m.id))
                        )
                        if again is not None:  # tested on its changed scenarios alone
                            p.test_cells_done += cells * (1 + len(scen) - len(again))
                            continue
                        if not done and inputs is not None and None not in inputs["partitions"].values():
                            pending[name] = inputs
                            trains_on[name] = (ds.name, m.id)
                    if not done and m.id in p.left_out:  # not trained: the run leaves the model out again
                        p.grids_left_out += 1
                    elif not done:
                        to_train.add((exp.task.name, ds.name, m.id))
                    p.trainings_done += trainings if done else 0
                    p.test_cells_done += cells * (1 + len(scen)) if done else 0
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
                f"{exp.task.name} [{exp.task.effective_type}{pred}] on {ds.name}: "
                f"{counted(len(exp.embedding_models), 'model')} × {counted(n_probes, 'probe configuration')} "
                f"({n_tested} tested) × {counted(seeds, 'seed')}, scenarios: clean{', ' if scen else ''}{', '.join(scen)}; "
                f"metrics: {', '.join(exp.metric_names)}"
                + (f"; training rows augmented with {', '.join(exp.augment_for(ds))}" if exp.augment else "")
                + (
                    f"; × {ds.n_folds} folds (split_type all: validation = fold i, test = fold i+1)"
                    if ds.split_type == "all"
                    else ""
                )
            )
        p.lines += probe_lines(
            exp, specs, smoke_of.experiments[ei] if smoke_of is not None else None, cfg.run.max_epochs
        )
        p.notes += [n for n in (criteria_note(exp, specs), thesis_names_note(exp)) if n is not None]
    from repeval.plan_memory import NODE_MEMORY, frame_memory

    p.memory, p.memory_warnings = frame_memory(cfg, store, cluster, to_train)  # not of the grids trained already
    if pending and tune_storage is not None:
        _reused(cfg, p, pending, tune_storage, cluster, _written(ctx, pending, trains_on))
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
        from repeval.pipeline.resources import pack_index, plan_resources, replanner, stream_misfit

        gpus, cpus = float(cluster.get("GPU", 0.0)), float(cluster.get("CPU", 1.0))
        for exp in cfg.experiments:
            for m in exp.embedding_models:
                fam, _ = resolve_model(m)
                try:
                    res = plan_resources(fam.cls, r, cpus, gpus, cluster)
                    replan = replanner(fam.cls, r, cpus, gpus, cluster)
                    misfit = stream_misfit(m.id, res, r.use_gpu, nodes, replan=replan) if nodes else None
                    said = res.describe()
                    if nodes and pack_index(res, r.use_gpu, nodes) is not None:  # as the run asks for it
                        said = said.replace(";", ", all on one node;", 1)
                    p.resources[f"embed {m.id}"] = f"cannot be placed: {misfit}" if misfit else said
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
    if nodes:  # as the run checks them before it embeds (the trials' GPU decided as their stage decides it)
        from repeval.ray_fit import trials_misfit
        from repeval.ray_utils import wants_gpu

        misfit = trials_misfit(r, wants_gpu(r.use_gpu, r.trial_num_gpus, gpus), nodes)
        p.resources["probe trial"] += f" — cannot be placed: {misfit}" if misfit else ""
    if n_bf16:
        from repeval.probes.model import native_bf16

        here = "native" if native_bf16() else "emulated, slower than fp32"
        p.resources["probe products"] = (
            f"bf16 in {n_bf16} of {n_configs} probe configurations (this machine's CPU: {here})"
        )
    if cluster is not None:
        shown = sorted((k, v) for k, v in cluster.items() if not k.startswith("node:") and k != NODE_MEMORY)
        # Ray counts memory in bytes: "memory=4.52837e+10" said nothing at a glance
        p.resources["cluster"] = ", ".join(
            f"{k}={v / 2**30:.3g} GiB" if k in ("memory", "object_store_memory") else f"{k}={v:g}" for k, v in shown
        )
    return p


def _retest_line(what: str, grids: list[tuple[str, int]]) -> str:
    n = sum(k for _, k in grids)
    how = (
        f"{counted(n, 'selected probe')} scored again from their Tune checkpoints, none trained (retest if the "
        "checkpoints are intact: one changed since, or testing that raises, trains its grid again)"
        if n
        else "nothing trained or tested"
    )
    return f"retest only: {_names([g for g, _ in grids])}: {what} — {how}"


def _gpu_note(mode: str, amount: float, gpus: float, what: str, known: bool = False) -> str:
    """The GPU part of a resource line under ``run.resources.use_gpu``."""
    if not amount or mode == "never":
        return ""
    if gpus > 0:
        return f" + {amount:g} GPU"
    if mode == "always":  # on a cluster it may add (RAY_ADDRESS); the embedded Ray gets none (ray_fit.no_gpu_misfit)
        return f" + {amount:g} GPU{what} (none up yet: waits for the autoscaler to add GPU nodes" + (
            ")" if known else "; without RAY_ADDRESS, on a machine with no GPU, the run stops before it embeds)"
        )
    return "" if known else f" (+ {amount:g} GPU{what} when Ray reports GPUs)"


def _conflict_lines(conflicts: dict[str, str]) -> list[str]:
    """One line per conflicting partition — but one per model whose every scenario differs alike (its parameters
    changed): the first scenario's, naming the others, not the same conflict and fix once per scenario."""
    from repeval.store.partition_stamp import MODEL_DIFFERS

    alike: dict[str, list[str]] = {}  # dataset/model → the scenarios of a changed model
    lines: dict[str, str] = {}
    for name, msg in conflicts.items():
        model, scenario = name.rsplit("/", 1)
        if MODEL_DIFFERS not in msg:
            lines[name] = f"conflict: {msg}"
        elif model not in alike:
            alike[model] = []
            lines[name] = f"conflict: {msg}"
        else:
            alike[model].append(scenario)
    for name in list(lines):
        others = alike.get(name.rsplit("/", 1)[0])
        if others and MODEL_DIFFERS in lines[name]:
            lines[name] += f" (the same at {named('scenario', others)})"
    return list(lines.values())
