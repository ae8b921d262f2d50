"""The grid of work a configuration implies, and how much of it is already done."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repeval.config import Config
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
            head.append("resources:          " + ", ".join(f"{k}={v}" for k, v in self.resources.items()))
        return "\n".join([*head, "", *self.lines])


def make_plan(cfg: Config, store: Any | None = None, run_dir: Path | None = None, gpus: float = 0.0) -> Plan:
    p = Plan(experiments=len(cfg.experiments))
    seeds = cfg.run.seeds
    seen: set[tuple[str, str, str]] = set()
    for exp in cfg.experiments:
        n_probes = len(exp.downstream_models)
        for ds in exp.datasets:
            scen = list(exp.scenarios_for(ds))
            for m in exp.embedding_models:
                trainings = n_probes * seeds
                p.trainings += trainings
                p.test_cells += trainings * (1 + len(scen))
                done = (
                    run_dir is not None
                    and (run_dir / "groups" / f"{exp.task.name}__{ds.name}__{m.id}.parquet").exists()
                )
                p.trainings_done += trainings if done else 0
                for sid in [CLEAN, *scen]:
                    if (ds.name, m.id, sid) in seen:
                        continue  # tasks on one dataset share its embeddings
                    seen.add((ds.name, m.id, sid))
                    p.partitions += 1
                    if store is not None and store.partition(ds.name, m.id, sid).complete:
                        p.partitions_done += 1
            p.lines.append(
                f"{exp.task.name} [{exp.task.effective_type}] on {ds.name}: {len(exp.embedding_models)} models × "
                f"{n_probes} probes × {seeds} seed(s), scenarios: clean{', ' if scen else ''}{', '.join(scen)}; "
                f"metrics: {', '.join(exp.metric_names)}"
            )
    r = cfg.run.resources
    p.resources = {
        "embed actor": f"{r.embed_num_cpus} CPU" + (f" + {r.embed_num_gpus} GPU" if gpus > 0 else ""),
        "decode task": f"{r.decode_num_cpus} CPU",
        "probe trial": f"{r.trial_num_cpus} CPU"
        + (f" + {r.trial_num_gpus} GPU" if gpus > 0 and r.trial_num_gpus else ""),
    }
    return p
