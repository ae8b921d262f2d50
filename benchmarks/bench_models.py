"""CPU throughput of every runnable embedding model: seconds of audio embedded per second.

Each model embeds the same ~30 s of music (a recording from ../shared/data when present, else
noise), resampled to its rate, after one warm-up call; the best of ``--repeats`` timings is
reported with the load time. Models of an isolated process group (``tf``, ``essentia``) are
timed in a fresh process with that group's environment, exactly as the pipeline runs them.
``--dummy-weights DIR`` also times CLMR, MULE, NeuralFP and MERT-v1-95M (as a base-size
HuBERT at 24 kHz) when their weights are absent, on randomly initialised weights of the same
architecture and size (same cost; the tiny transformers and trivial Essentia graphs used by
the tests are not timed, their cost says nothing). Ratios are measured in one run on one machine; compare
rows, not runs.

    python benchmarks/bench_models.py [--models crepe-tiny basic-pitch] [--dummy-weights /tmp/w]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench_models")
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "librosa_examples" / "audio"
CLIP_S = 30.0


def load_clip(rate: int) -> tuple[np.ndarray, str]:
    """~30 s of mono audio at ``rate``: a shared recording if available, else seeded noise."""
    import soxr

    for path in sorted(SHARED_AUDIO.glob("*.ogg")):
        try:
            import soundfile as sf

            audio, sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception:  # an undecodable file: try the next one
            continue
        if len(audio) >= CLIP_S * sr:
            mono = audio[: int(CLIP_S * sr)].mean(axis=1)
            return np.asarray(soxr.resample(mono, sr, rate), dtype=np.float32), path.name
    return (0.1 * np.random.default_rng(0).standard_normal(int(CLIP_S * rate))).astype(np.float32), "noise"


def time_model(model_id: str, params: dict[str, Any], repeats: int) -> dict[str, Any]:
    from repeval.config.schema import EmbeddingModelConfig
    from repeval.models import build_model

    row: dict[str, Any] = {"model": model_id}
    started = time.perf_counter()
    model = build_model(EmbeddingModelConfig(id=model_id, params=params))
    row["load_s"] = round(time.perf_counter() - started, 2)
    audio, source = load_clip(model.sample_rate_hz)
    model.embed(audio[: model.sample_rate_hz])  # warm-up: lazy kernels, thread pools
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model.embed(audio)
        best = min(best, time.perf_counter() - t0)
    row.update(
        audio=source,
        frames=int(out.shape[0]),
        dim=int(out.shape[1]),
        embed_s=round(best, 2),
        audio_s_per_s=round(len(audio) / model.sample_rate_hz / best, 1),
    )
    return row


def _in_group(
    model_ids: list[str], params: dict[str, dict[str, Any]], group: str, repeats: int
) -> list[dict[str, Any]]:
    from repeval.models._common import PROCESS_GROUP_ENV
    from repeval.models.validate import PROCESS_GROUP_VAR

    env = {**os.environ, **PROCESS_GROUP_ENV[group], PROCESS_GROUP_VAR: group}
    payload = json.dumps({"models": model_ids, "params": params, "repeats": repeats})
    proc = subprocess.run([sys.executable, __file__, "--worker", payload], env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 and not rows:
        log.error("'%s' worker failed: %s", group, proc.stderr[-1500:])
    return rows


def run(model_ids: list[str] | None, dummy_weights: Path | None, repeats: int) -> list[dict[str, Any]]:
    from repeval.models import MODELS
    from repeval.models.dummies import COST_DUMMIES

    rows: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    params: dict[str, dict[str, Any]] = {}
    for name in model_ids or MODELS.names():
        fam = MODELS.get(name)
        p = dict(fam.default_params)
        if dummy_weights is not None and name in COST_DUMMIES and fam.cls.availability(p):
            try:
                dummy_weights.mkdir(parents=True, exist_ok=True)
                p.update(COST_DUMMIES[name](dummy_weights))
            except Exception as exc:  # no stand-in possible here (e.g. tensorflow absent)
                log.warning("%s: no stand-in weights (%s)", name, exc)
        reason = fam.cls.availability(p)
        if reason:
            rows.append({"model": name, "skipped": reason})
            continue
        params[name] = p
        groups.setdefault(fam.cls.process_group, []).append(name)
    for group, names in groups.items():
        if group == "default":
            for name in names:
                try:
                    rows.append(time_model(name, params[name], repeats))
                except Exception as exc:
                    rows.append({"model": name, "error": repr(exc)[:200]})
        else:
            rows.extend(_in_group(names, {n: params[n] for n in names}, group, repeats))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="model ids (default: every registered family)")
    parser.add_argument("--dummy-weights", type=Path, help="directory for stand-in weights of weightless families")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.worker:  # inside an isolated process group
        data = json.loads(args.worker)
        for name in data["models"]:
            try:
                row = time_model(name, data["params"][name], data["repeats"])
            except Exception as exc:
                row = {"model": name, "error": repr(exc)[:200]}
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
        return 0
    rows = run(args.models, args.dummy_weights, args.repeats)
    if args.json:
        sys.stdout.write("\n".join(json.dumps(r) for r in rows) + "\n")
        return 0
    cols = ["model", "dim", "frames", "load_s", "embed_s", "audio_s_per_s", "audio"]
    lines = [" | ".join(cols)]
    for r in rows:
        if "skipped" in r or "error" in r:
            lines.append(f"{r['model']} | {'skipped: ' + r['skipped'] if 'skipped' in r else 'error: ' + r['error']}")
        else:
            lines.append(" | ".join(str(r.get(c, "")) for c in cols))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
