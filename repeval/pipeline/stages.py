"""The pipeline's batch UDFs. They are plain callables, testable without Ray.

Batches are dicts of numpy arrays (Ray Data's ``numpy`` batch format).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from repeval.audio import DecodeError, decode
from repeval.deformations import Scenario, scenario_seed

log = logging.getLogger(__name__)

CLEAN = "clean"


class DecodeDeform:
    """Decode each track once and emit one row per scenario it needs (``clean`` and/or deformed)."""

    def __init__(
        self,
        sample_rate_hz: int,
        scenarios: dict[str, list[tuple[str, dict[str, Any]]]],
        run_seed: int,
        max_duration_s: float | None = None,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.scenario_steps = scenarios
        self.run_seed = run_seed
        self.max_duration_s = max_duration_s
        self._built: dict[str, Scenario] | None = None

    def _scenarios(self) -> dict[str, Scenario]:
        if self._built is None:
            self._built = {sid: Scenario(sid, steps) for sid, steps in self.scenario_steps.items()}
        return self._built

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {k: [] for k in ("track_id", "split", "scenario", "audio", "deformation_params", "error", "stage")}

        def emit(tid: str, split: str, sid: str, audio: np.ndarray | None, params: str, error: str, stage: str) -> None:
            out["track_id"].append(tid)
            out["split"].append(split)
            out["scenario"].append(sid)
            out["audio"].append(audio if audio is not None else np.zeros(0, np.float32))
            out["deformation_params"].append(params)
            out["error"].append(error)
            out["stage"].append(stage)

        scenarios = self._scenarios()
        for tid, path, split, wanted in zip(batch["track_id"], batch["audio_path"], batch["split"], batch["scenarios"], strict=True):
            tid, split = str(tid), str(split)
            wanted = [str(w) for w in wanted]
            try:
                audio = decode(str(path), self.sample_rate_hz, self.max_duration_s)
            except DecodeError as exc:
                for sid in wanted:
                    emit(tid, split, sid, None, "", str(exc), "decode")
                continue
            except Exception as exc:  # noqa: BLE001 - any per-file failure becomes an error row
                for sid in wanted:
                    emit(tid, split, sid, None, "", f"{type(exc).__name__}: {exc}", "decode")
                continue
            for sid in wanted:
                if sid == CLEAN:
                    emit(tid, split, sid, audio, "", "", "")
                    continue
                try:
                    deformed, params = scenarios[sid](audio, self.sample_rate_hz, scenario_seed(self.run_seed, tid, sid))
                    if not np.isfinite(deformed).all():
                        raise ValueError("deformation produced non-finite samples")
                    emit(tid, split, sid, deformed, json.dumps(params), "", "")
                except Exception as exc:  # noqa: BLE001
                    emit(tid, split, sid, None, "", f"{type(exc).__name__}: {exc}", "deform")
        result = {k: np.array(v, dtype=object) if k == "audio" else np.array(v) for k, v in out.items()}
        if len(out["audio"]):
            audio_arr = np.empty(len(out["audio"]), dtype=object)
            audio_arr[:] = out["audio"]
            result["audio"] = audio_arr
        return result


class Embed:
    """Actor UDF: builds the model once, embeds a batch, aggregates frames (mean over time)."""

    def __init__(self, model_cfg: Any, keep_frames: bool = False) -> None:
        from repeval.models import build_model

        t0 = time.perf_counter()
        self.model = build_model(model_cfg)
        self.model_id = model_cfg.id
        self.keep_frames = keep_frames
        log.info("loaded %s in %.1fs", self.model_id, time.perf_counter() - t0)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["track_id"])
        dim = self.model.embedding_dim
        emb = np.zeros((n, dim), np.float32)
        n_frames = np.zeros(n, np.int32)
        errors = [str(e) for e in batch["error"]]
        stages = [str(s) for s in batch["stage"]]
        seconds = np.zeros(n, np.float32)
        frames_out: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * n
        todo = [i for i in range(n) if not errors[i]]
        audios = [np.asarray(batch["audio"][i], dtype=np.float32) for i in todo]
        results: list[np.ndarray | Exception]
        try:
            results = list(self.model.embed_batch(audios))
        except Exception:  # noqa: BLE001 - fall back to one at a time to isolate the bad item
            results = []
            for a in audios:
                try:
                    results.append(self.model.embed(a))
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        for i, a, r in zip(todo, audios, results, strict=True):
            seconds[i] = len(a) / self.model.sample_rate_hz
            if isinstance(r, Exception):
                errors[i], stages[i] = f"{type(r).__name__}: {r}", "embed"
                continue
            r = np.asarray(r, dtype=np.float32)
            if r.ndim != 2 or r.shape[1] != dim or r.shape[0] == 0 or not np.isfinite(r).all():
                errors[i], stages[i] = f"model returned invalid frames of shape {r.shape} (finite={np.isfinite(r).all()})", "embed"
                continue
            emb[i] = r.mean(axis=0)
            n_frames[i] = r.shape[0]
            if self.keep_frames:
                frames_out[i] = r
        out = {
            "track_id": batch["track_id"],
            "split": batch["split"],
            "scenario": batch["scenario"],
            "deformation_params": batch["deformation_params"],
            "embedding": emb,
            "n_frames": n_frames,
            "audio_seconds": seconds,
            "error": np.array(errors),
            "stage": np.array(stages),
        }
        if self.keep_frames:
            arr = np.empty(n, dtype=object)
            arr[:] = frames_out
            out["frames"] = arr
        return out
