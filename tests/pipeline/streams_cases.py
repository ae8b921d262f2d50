"""What the shared stream tests share: a fast model, tone catalogs, configurations over them, their embed and rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.testing.badaudio import write_good

MODEL = {
    "id": "mfcc-fast",
    "type": "mfcc-stats",
    "params": {"sample_rate_hz": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 20, "n_mfcc": 8},
}


GAIN = [{"type": "Gain", "params": {"min_gain_db": -9, "max_gain_db": -3, "p": 1}}]


NOISE = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 20, "p": 1}}]


def catalog(root: Path, base_hz: float) -> Path:
    """Six tones named t-000 … t-005 (the same ids in every catalog), two classes, splits 4/1/1."""
    (root / "audio").mkdir(parents=True)
    rows = []
    for i in range(6):
        tid = f"t-{i:03d}"
        write_good(root / "audio" / f"{tid}.wav", 1.0, base_hz * (1 + 0.05 * i), seed=i)
        split = "train" if i < 4 else "validation" if i == 4 else "test"
        rows.append({"track_id": tid, "audio_path": f"audio/{tid}.wav", "label": "ab"[i % 2], "split": split})
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


def dataset(name: str, manifest: Path, **extra) -> dict:
    return {"name": name, "type": "catalog", "manifest": str(manifest), "label_column": "label",
            "split_column": "split", **extra}  # fmt: skip


def experiment(task: str, datasets: list[dict], deformations: list) -> dict:
    return {
        "task": {"name": task, "type": "multiclass_classification"},
        "datasets": datasets,
        "deformations": deformations,
        "embedding_models": [MODEL],
        "downstream_models": [{"name": "linear", "hidden_units": [], "epochs": 2}],
        "metrics": ["accuracy"],
    }


def write_config(tmp: Path, name: str, experiments: list[dict], store: str | None = None) -> Path:
    path = tmp / f"{name}.yaml"
    run = {"run_id": name, "store": str(tmp / f"store-{store or name}"), "runs_dir": str(tmp / "runs"), "part_rows": 4}
    path.write_text(yaml.safe_dump({"run": run, "experiments": experiments}, sort_keys=False))
    return path


def embed(tmp: Path, name: str, experiments: list[dict], store: str | None = None):
    ctx = runner.make_context(load_config(write_config(tmp, name, experiments, store)))
    return ctx, runner.stage_embed(ctx, progress=False)


def rows(ctx, ds: str, sid: str) -> dict[str, tuple[np.ndarray, str | None, str]]:
    t = ctx.store.partition(ds, MODEL["id"], sid).read().to_pylist()
    ids = [r["track_id"] for r in t]
    assert len(ids) == len(set(ids)), f"{ds}/{sid}: a track stored twice"
    return {r["track_id"]: (np.asarray(r["embedding"]), r["deformation_params"], r["scenario"]) for r in t}
