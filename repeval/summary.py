"""The compact results table printed at the end of a run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def summary_table(run_dir: Path) -> str:
    """One block per (task, dataset, metric): rows model × probe, columns clean and each scenario.

    Values are means over seeds (± std when there are several).
    """
    path = Path(run_dir) / "results.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `repeval evaluate` (or `repeval run`) first")
    df = pq.read_table(path).to_pandas()
    df = df[df["label"].isna()]
    out = []
    for (task, dataset, metric), g in df.groupby(["task", "dataset", "metric"], sort=True):
        agg = g.groupby(["model", "probe", "scenario"])["value"].agg(["mean", "std", "count"]).reset_index()
        scen = ["clean", *sorted(s for s in agg["scenario"].unique() if s != "clean")]
        out.append(f"\n{task} · {dataset} · {metric}")
        header = f"{'model':<24} {'probe':<6} " + " ".join(f"{s:>14}" for s in scen)
        out.append(header)
        out.append("-" * len(header))
        for (model, probe), r in agg.groupby(["model", "probe"], sort=True):
            cells = []
            for s in scen:
                v = r[r["scenario"] == s]
                if v.empty:
                    cells.append(f"{'—':>14}")
                    continue
                m, sd, n = v.iloc[0]["mean"], v.iloc[0]["std"], v.iloc[0]["count"]
                cells.append(f"{m:>8.3f}" + (f" ±{sd:.3f}" if n > 1 else " " * 7))
            out.append(f"{model:<24} {probe:<6} " + " ".join(cells))
    return "\n".join(out)
