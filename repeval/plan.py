"""The grid of work a configuration implies, and how much of it is already done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repeval.config import Config
from repeval.datasets.load import dataset_folds
from repeval.pipeline.stages import CLEAN


@dataclass
class Plan:
    experiments: int = 0
    partitions: int = 0
    partitions_done: int = 0
    trainings: int = 0
    trainings_done: int = 0
    test_cells: int = 0
    lines: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        head = [
            f"experiments:        {self.experiments}",
            f"probe trainings:    {self.trainings:,} ({self.trainings_done:,} done)",
            f"test cells:         {self.test_cells:,} (training × clean + deformation scenarios)",
            f"store partitions:   {self.partitions:,} (dataset × model × scenario; {self.partitions_done:,} complete)",
        ]
        if self.resources:
            head.append("resources:")
            head += [f"  {k + ':':<18}{v}" for k, v in self.resources.items()]
        return "\n".join([*head, "", *self.lines])


def make_plan(
    cfg: Config,
    store: Any | None = None,
    run_dir: Path | None = None,
    gpus: float = 0.0,
    cluster: Mapping[str, float] | None = None,
) -> Plan:
    """The plan; ``cluster`` (``ray.cluster_resources()``) turns the resource rules into exact requests."""
    p = Plan(experiments=len(cfg.experiments))
    seeds = cfg.run.seeds
    seen: set[tuple[str, str, str]] = set()
    n_bf16 = n_configs = 0
    from repeval.runner import group_name
    from repeval.tuning.search import expand_all

    for exp in cfg.experiments:
        # presets and search grids expand to many configurations; a ``select: best`` spec (Jukemir, HEAR)
        # trains them all and tests only the one it selects
        specs = expand_all(exp.downstream_models)
        n_probes = sum(s.size for s in specs)
        n_tested = sum(s.size if s.select == "all" else 1 for s in specs)
        n_configs += n_probes
        n_bf16 += sum(s.size // len(s.points) * sum(pt.config.precision == "bf16" for pt in s.points) for s in specs)
        for ds in exp.datasets:
            scen = list(exp.scenarios_for(ds))
            folds = dataset_folds(ds) if ds.split_type == "all" else [None]
            for m in exp.embedding_models:
                for fold in folds:  # k folds: every fold is trained and tested
                    trainings = n_probes * seeds
                    p.trainings += trainings
                    p.test_cells += n_tested * seeds * (1 + len(scen))
                    done = (
                        run_dir is not None
                        and (run_dir / "groups" / f"{group_name(exp, ds.name, m.id, fold)}.parquet").exists()
                    )
                    p.trainings_done += trainings if done else 0
                for sid in [CLEAN, *scen]:
                    if (ds.name, m.id, sid) in seen:
                        continue  # tasks on one dataset share its embeddings
                    seen.add((ds.name, m.id, sid))
                    p.partitions += 1
                    if store is not None and store.partition(ds.name, m.id, sid).complete:
                        p.partitions_done += 1
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
    # resources (issue 8): the rules, or the exact requests when the cluster's resources are known
    r = cfg.run.resources
    custom = "".join(f" + {k}={v:g}" for k, v in r.embed_resources.items())
    from repeval.models import resolve_model

    if cluster is None:
        from repeval.pipeline.resources import runs_in_decode_tasks

        gpu = _gpu_note(r.use_gpu, r.embed_num_gpus, gpus, " for GPU models")
        p.resources["embed actor"] = f"{r.embed_num_cpus:g} CPU{custom}{gpu}"
        classes = {m.id: resolve_model(m)[0].cls for e in cfg.experiments for m in e.embedding_models}
        fused = [i for i, c in classes.items() if runs_in_decode_tasks(c, r)]  # light models take no GPU
        pooled = [i for i in classes if i not in fused]
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
        at_once = (
            f"{r.decode_max_tasks} at once"
            if r.decode_max_tasks
            else "on one node one per CPU the actors leave free, on a cluster as many as fit"
        )
        p.resources["decode task"] = f"{r.decode_num_cpus:g} CPU, {at_once}"
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
        p.resources["cluster"] = ", ".join(f"{k}={v:g}" for k, v in shown)
    return p


def _gpu_note(mode: str, amount: float, gpus: float, what: str, known: bool = False) -> str:
    """The GPU part of a resource line under ``run.resources.use_gpu``."""
    if not amount or mode == "never":
        return ""
    if gpus > 0:
        return f" + {amount:g} GPU"
    if mode == "always":
        return f" + {amount:g} GPU{what} (none up yet: waits for the autoscaler to add GPU nodes)"
    return "" if known else f" (+ {amount:g} GPU{what} when Ray reports GPUs)"
