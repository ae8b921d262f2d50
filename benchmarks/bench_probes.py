"""Probe-grid benchmarks (issue 6), one run each, ratios printed.

1. The Jukemir 216-configuration grid on one 2,000 × 512 table (10 classes; class-conditional
   Gaussians, 70/15/15 split): repeval (Ray Tune, vectorised stacks) vs the same configurations
   trained one after another in this process with a plain PyTorch loop (``nn.Sequential``,
   ``nn.Dropout``, ``torch.optim.Adam``, same early stopping and selection). Target ≥ 5× and the
   selected configuration's test accuracy within 0.01. Then repeval again with ``precision: bf16``
   (bfloat16 layer products: not the loop's arithmetic, so no target) and, with ``--bf16-loop``, the
   loop under ``torch.autocast(bfloat16)`` for a like-for-like ratio.
2. The thesis probes M1–M5 on the same table: repeval vs mir_ref's training in Keras (Dense +
   ReLU, L2 1e-5 on kernels and biases, Adam 1e-3, batch 100, 100 epochs, EarlyStopping on
   val_loss with patience 10, best val_accuracy model kept), run in a subprocess when TensorFlow
   imports; otherwise the same loop in PyTorch, labelled so. Target ≥ 10× at equal or better test
   accuracy. ``--repeat N``: N pairs, alternating which side goes first, each side a fresh process
   (repeval's with its own Ray); every pair's ratio and the median are printed (a 4–6 s timing moves
   ±15% between minutes).
   Then the same grid with ``scheduler: asha`` (successive halving inside each vectorised stack):
   less work than the loop, so no target; printed with its test accuracy difference.
3. Tune overhead: each repeval grid's wall time vs the sum of its trials' own training time.
4. Several groups (``--only groups``): six tables (like the thesis' six tasks) × M1–M5, trained as
   one Tune experiment per group (``run.train_batch_mb: 0``, the engine before batching) vs as one
   batch (trial actors reused across groups); the results must be identical. No target.
5. Huge pages (``--only pages``): the Jukemir grid on a 2,000 × 1,728 table (MULE's width; ≤ 10
   epochs), its trials' large tensors on 4 KiB pages (``THP_MEM_ALLOC_ENABLE=0``) vs on transparent
   huge pages (``=1``, what ``repeval`` sets, :func:`repeval.cpu.use_huge_pages`), each on a fresh
   embedded Ray. Results must be identical (the pages change no arithmetic). No target.

Usage::

    RAY_AUTH_MODE=disabled python benchmarks/bench_probes.py            # everything
    RAY_AUTH_MODE=disabled python benchmarks/bench_probes.py --epochs 30 --only 1
    RAY_AUTH_MODE=disabled python benchmarks/bench_probes.py --only 2 --repeat 5
    RAY_AUTH_MODE=disabled python benchmarks/bench_probes.py --only groups
    RAY_AUTH_MODE=disabled python benchmarks/bench_probes.py --only pages

Times exclude ``ray.init`` and the start of its prestarted workers (printed separately: a run pays
them once for all groups; see ``warm.py``).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

# as the `repeval` command does before torch is imported (repeval.cpu.use_huge_pages): both sides alike
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
import torch
from torch import nn
from warm import wait_for_ray_workers

from repeval.config import parse_config
from repeval.probes import ProbeData, resolve_hidden_units
from repeval.probes.inputs import Preprocess
from repeval.probes.model import native_bf16
from repeval.probes.synthetic import gaussian_probe_data
from repeval.ray_utils import init_ray
from repeval.tuning.search import expand_all

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def table(dim: int = 512, seed: int = 0) -> ProbeData:
    """The benchmarks' table: 2,000 × ``dim`` embeddings, 10 classes (class-conditional Gaussians, 70/15/15)."""
    return gaussian_probe_data(
        n=2000, d=dim, c=10, splits=(0.7, 0.15, 0.15), noise=1.0, separation=0.16, seed=seed, scenarios=False
    )


def experiment(probes: list[dict], seeds: int = 1) -> tuple:
    cfg = parse_config(
        {
            "run": {"seeds": seeds},
            "experiments": [
                {
                    "task": {"name": "bench", "type": "multiclass_classification"},
                    "datasets": [{"name": "table", "type": "catalog", "manifest": "m.csv", "label_column": "y"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": probes,
                    "metrics": ["accuracy"],
                }
            ],
        }
    )
    return cfg, cfg.experiments[0]


# ------------------------------------------------------------------- memory sampling


class PeakRSS:
    """Peak resident memory of this process plus every process under the Ray it started."""

    def __init__(self) -> None:
        self.peak_driver = 0
        self.peak_ray = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ray_root(self) -> int | None:
        try:
            import ray._private.worker as w

            node = w._global_node
            return int(node.all_processes["raylet"][0].process.pid) if node is not None else None
        except Exception:
            return None

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            self.peak_driver = max(self.peak_driver, me.memory_info().rss)
            root = self._ray_root()
            if root is None:
                continue
            try:
                procs = psutil.Process(root).children(recursive=True)
                total = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                continue
            self.peak_ray = max(self.peak_ray, total)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------- the plain baseline


def plain_train(cfg, data: ProbeData, seed: int, precision: str = "fp32") -> tuple[float, float, int]:
    """A plain PyTorch loop for one configuration: (best val accuracy, its test accuracy, epochs). With
    ``precision="bf16"`` the forward passes run under ``torch.autocast`` (bfloat16 products)."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    prep = Preprocess(data.x_train, cfg.standardize, None)
    xt, xv = torch.from_numpy(prep(data.x_train)), torch.from_numpy(prep(data.x_val))
    x_test, y_test = data.tests["clean"][0], data.tests["clean"][1]
    xs = torch.from_numpy(prep(x_test))
    yt, yv = torch.from_numpy(data.y_train.astype(np.int64)), torch.from_numpy(data.y_val.astype(np.int64))
    n_out = len(data.classes)
    layers: list[nn.Module] = [nn.Dropout(cfg.effective_input_dropout)] if cfg.effective_input_dropout else []
    prev = xt.shape[1]
    for h in resolve_hidden_units(cfg.hidden_units, prev, n_out):
        layers += [nn.Linear(prev, h), nn.ReLU()] + ([nn.Dropout(cfg.dropout)] if cfg.dropout else [])
        prev = h
    model = nn.Sequential(*layers, nn.Linear(prev, n_out))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    best, best_state, since, epochs = -1.0, None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        epochs = epoch
        model.train()
        perm = torch.randperm(len(xt), generator=order)
        for s in range(0, len(xt), cfg.batch_size):
            i = perm[s : s + cfg.batch_size]
            opt.zero_grad()
            with autocast:
                logits = model(xt[i])
            nn.functional.cross_entropy(logits.float(), yt[i]).backward()
            opt.step()
        model.eval()
        with torch.no_grad(), autocast:
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        if acc > best:
            best, since = acc, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
        if since >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad(), autocast:
        test_acc = float((model(xs).argmax(1).numpy() == y_test).mean())
    return best, test_acc, epochs


def sequential(
    points, data: ProbeData, seed: int = 0, precision: str = "fp32"
) -> tuple[float, list[tuple[str, float, float, int]]]:
    t0 = time.perf_counter()
    out = []
    for i, p in enumerate(points, 1):
        best, test_acc, epochs = plain_train(p.config, data, seed, precision)
        out.append((p.name, best, test_acc, epochs))
        if i % 24 == 0:
            print(f"    … {i}/{len(points)} configurations, {time.perf_counter() - t0:.0f} s", flush=True)
    return time.perf_counter() - t0, out


# ------------------------------------------------------------------------ repeval runs


def run_repeval(probes: list[dict], data: ProbeData, storage: str):
    from repeval.tuning.grid import run_group

    cfg, exp = experiment(probes)
    t0 = time.perf_counter()
    g = run_group(cfg, exp, "table", "synthetic", data, tempfile.mkdtemp(dir=storage))  # one experiment dir each
    return time.perf_counter() - t0, g


def bench_groups(storage: str, n_groups: int) -> tuple[float, object]:
    """``n_groups`` tables × M1–M5: one Tune experiment per group vs one batch for all."""
    from repeval.tuning.grid import GroupInput, run_group, run_groups

    cfg, exp = experiment([{"preset": "mir_ref_thesis"}])
    datas = [table(seed=s) for s in range(n_groups)]
    print(f"[4] {n_groups} groups (2,000 × 512 tables, 10 classes) × M1–M5")
    t0 = time.perf_counter()
    apart = [run_group(cfg, exp, f"t{i}", "synthetic", d, tempfile.mkdtemp(dir=storage)) for i, d in enumerate(datas)]
    t_apart = time.perf_counter() - t0
    t0 = time.perf_counter()
    inputs = [GroupInput(exp, f"t{i}", "synthetic", d) for i, d in enumerate(datas)]
    together = run_groups(cfg, inputs, tempfile.mkdtemp(dir=storage))
    t_together = time.perf_counter() - t0

    def values(g) -> dict:
        return {(r["probe"], r["scenario"], r["metric"], r["label"]): r["value"] for r in g.rows}

    same = all(values(a) == values(b) for a, b in zip(apart, together, strict=True))
    busy = sum(g.trial_seconds for g in together)
    print(
        f"  one Tune experiment per group: {t_apart:7.1f} s ({n_groups} experiments, {sum(g.trials for g in apart)} trials)"
    )
    print(f"  one batch (actors reused):     {t_together:7.1f} s (1 experiment, Σ trial training {busy:.1f} s)")
    print(f"  speed-up {t_apart / t_together:.2f}×; results identical: {same}\n")
    assert same
    return t_together, SimpleNamespace(trial_seconds=busy, trials=sum(g.trials for g in together))


def fresh_ray_ab(env_var: str, values: tuple[str, str], data: ProbeData, spec: dict, status: str) -> None:
    """The same grid on a fresh embedded Ray per value of ``env_var`` (its workers inherit the driver's
    environment); the trials' own status line (``status``: a field of the group's result) is printed, and
    every configuration's result is compared between the two."""
    import ray
    import ray.tune  # outside the timings, as in the other benchmarks

    runs = {}
    for value in values:
        os.environ[env_var] = value  # the embedded Ray's workers inherit it (init_ray keeps a value that is set)
        init_ray(object_store_memory=400 * 1024**2)
        wait_for_ray_workers()
        storage = tempfile.mkdtemp(prefix="bench_ab_")
        try:
            with PeakRSS() as mem:
                wall, g = run_repeval([spec], data, storage)
        finally:
            ray.shutdown()
            shutil.rmtree(storage, True)
        sel, acc = selected(g)
        runs[value] = (wall, g, sel, acc)
        print(f"  {env_var}={value}: {wall:6.1f} s, Σ trial training {g.trial_seconds:6.1f} s over {g.trials} trials; "
              f"selected {sel['probe']} test acc {acc:.4f}; {sum(p.get('epochs') or 0 for p in g.probes)} epochs; "
              f"trials: {'; '.join(sorted(getattr(g, status)))}; peak RSS of Ray's processes "
              f"{mem.peak_ray / 2**20:.0f} MiB")  # fmt: skip
    (w0, g0, s0, a0), (w1, g1, s1, a1) = runs[values[0]], runs[values[1]]

    def per_probe(g) -> list[tuple]:
        return sorted((p["probe"], p.get("best_criterion"), p.get("best_epoch"), p.get("epochs")) for p in g.probes)

    # every configuration's best validation score, best epoch and epochs trained, not only the selected one's
    same = s0["probe"] == s1["probe"] and a0 == a1 and per_probe(g0) == per_probe(g1)
    print(f"  {env_var}={values[1]}: {w0 / w1:.2f}× the wall time with {values[0]} ({g0.trial_seconds / g1.trial_seconds:.2f}× "
          f"the trials' training time); results identical: {'yes' if same else 'NO'}")  # fmt: skip


def bench_pages(dim: int, epochs: int) -> None:
    """[5] The Jukemir grid with the trials' large tensors on 4 KiB pages vs on huge pages (fresh Ray each)."""
    from repeval.cpu import THP_ENV, kernel_thp

    print(f"[5] Jukemir grid on a 2,000 × {dim} table, ≤{epochs} epochs: trial workers on 4 KiB vs huge pages "
          f"(kernel THP: {kernel_thp()}; {os.cpu_count()} CPUs)")  # fmt: skip
    fresh_ray_ab(THP_ENV, ("0", "1"), table(dim), {"preset": "jukemir", "epochs": epochs, "patience": 10}, "pages")


def bench_freed(epochs: int, patience: int) -> None:
    """[6] The Jukemir grid with glibc's default allocator in the trials vs freed blocks kept (fresh Ray each)."""
    from repeval.cpu import KEEP_FREED_ENV

    print(f"[6] Jukemir grid on the 2,000 × 512 table, ≤{epochs} epochs, patience {patience}: trial workers with "
          f"glibc's default allocator ({KEEP_FREED_ENV}=0) vs freed blocks kept (=1, what repeval does)")  # fmt: skip
    spec = {"preset": "jukemir", "epochs": epochs, "patience": patience}
    fresh_ray_ab(KEEP_FREED_ENV, ("0", "1"), table(), spec, "allocator")


def test_accuracy(g, probe: str) -> float:
    vals = [r["value"] for r in g.rows if r["probe"] == probe and r["metric"] == "accuracy" and r["label"] is None]
    return float(np.mean(vals))


def selected(g, probe: str = "jukemir") -> tuple[dict, float]:
    """The configuration a ``select: best`` grid picked, and its test accuracy."""
    return next(p for p in g.probes if p["selected"]), test_accuracy(g, probe)


# --------------------------------------------------------------------- mir_ref in Keras

KERAS_SCRIPT = r"""
import json, os, sys, time, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow import keras
d = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
xtr, ytr, xva, yva, xte, yte = (d[k] for k in ("xtr", "ytr", "xva", "yva", "xte", "yte"))
out = {}
t_all = time.perf_counter()
for name, hidden in spec["probes"]:
    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    reg = lambda: keras.regularizers.l2(1e-5)
    layers = [keras.Input((xtr.shape[1],))]
    layers += [keras.layers.Dense(h, activation="relu", kernel_regularizer=reg(), bias_regularizer=reg()) for h in hidden]
    layers += [keras.layers.Dense(spec["classes"], activation="softmax", kernel_regularizer=reg(), bias_regularizer=reg())]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    path = os.path.join(tempfile.mkdtemp(), "best.keras")
    cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=10),
           keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy", mode="max", save_best_only=True)]
    h = model.fit(xtr, ytr, batch_size=100, epochs=100, validation_data=(xva, yva), callbacks=cbs, verbose=0)
    best = keras.models.load_model(path)
    acc = float((best.predict(xte, verbose=0).argmax(1) == yte).mean())
    out[name] = [acc, len(h.history["loss"]), time.perf_counter() - t0]
out["_total"] = time.perf_counter() - t_all
print("RESULT " + json.dumps(out))
"""


def keras_available() -> bool:
    r = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True)
    return r.returncode == 0


def mir_ref_keras(data: ProbeData, probes: list[tuple[str, list[int]]]) -> tuple[dict, int]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "table.npz"
        x_te, y_te = data.tests["clean"][0], data.tests["clean"][1]
        np.savez(path, xtr=data.x_train, ytr=data.y_train, xva=data.x_val, yva=data.y_val, xte=x_te, yte=y_te)
        spec = json.dumps({"probes": probes, "classes": len(data.classes)})
        r = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(path), spec], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return json.loads(line.removeprefix("RESULT ")), peak


def mir_ref_torch(data: ProbeData, probes: list[tuple[str, list[int]]]) -> dict:
    """mir_ref's loop in PyTorch: stop on val_loss (patience 10), keep the best val_accuracy model."""
    out = {}
    t_all = time.perf_counter()
    xt, xv = torch.from_numpy(data.x_train), torch.from_numpy(data.x_val)
    yt, yv = torch.from_numpy(data.y_train.astype(np.int64)), torch.from_numpy(data.y_val.astype(np.int64))
    xs, ys = torch.from_numpy(data.tests["clean"][0]), data.tests["clean"][1]
    for name, hidden in probes:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        dims = [xt.shape[1], *hidden, len(data.classes)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-5)  # Keras l2(1e-5): gradient 2e-5·w
        best_loss, best_acc, wait, best_state, epochs = np.inf, -1.0, 0, None, 0
        for epoch in range(1, 101):
            epochs = epoch
            model.train()
            perm = torch.randperm(len(xt))
            for s in range(0, len(xt), 100):
                i = perm[s : s + 100]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                out_v = model(xv)
                vloss = float(nn.functional.cross_entropy(out_v, yv))
                vacc = float((out_v.argmax(1) == yv).float().mean())
            if vacc > best_acc:
                best_acc, best_state = vacc, copy.deepcopy(model.state_dict())
            if vloss < best_loss:
                best_loss, wait = vloss, 0
            else:
                wait += 1
                if wait >= 10:
                    break
        model.load_state_dict(best_state)
        with torch.no_grad():
            acc = float((model(xs).argmax(1).numpy() == ys).mean())
        out[name] = [acc, epochs, time.perf_counter() - t0]
    out["_total"] = time.perf_counter() - t_all
    return out


# ------------------------------------------------------------------------------- main


THESIS = [{"preset": "mir_ref_thesis"}]


def probe_scores(g) -> dict[str, tuple[float, int]]:
    """Each probe of a grid's result: (mean test accuracy, epochs trained)."""
    return {p["probe"]: (test_accuracy(g, p["probe"]), p["epochs"]) for p in g.probes}


def thesis_child(out: str) -> None:
    """``--thesis-child OUT``: one repeval M1–M5 run exactly as a first run in :func:`main` starts it (a fresh
    process and Ray, ``ray.tune`` imported and Ray's prestarted workers up before the clock); results to OUT."""
    import ray

    data = table()
    init_ray(object_store_memory=400 * 1024**2)
    import ray.tune  # outside the timing, as in main

    wait_for_ray_workers()
    storage = tempfile.mkdtemp(prefix="bench_probes_")
    try:
        wall, g = run_repeval(THESIS, data, storage)
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    scores = probe_scores(g)
    Path(out).write_text(
        json.dumps({"wall": wall, "trial_seconds": g.trial_seconds, "trials": g.trials, "scores": scores})
    )


def repeval_in_child() -> tuple[float, SimpleNamespace]:
    """:func:`thesis_child` in a fresh process: its wall time, and what :func:`overhead_line` and the accuracy
    table read of its result (``trial_seconds``, ``trials``, ``scores`` as :func:`probe_scores` gives them)."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "thesis.json"
        r = subprocess.run([sys.executable, __file__, "--thesis-child", str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
        res = json.loads(out.read_text())
    return res.pop("wall"), SimpleNamespace(**res)


def bench_thesis(data: ProbeData, storage: str, repeat: int) -> list[tuple[str, float, object]]:
    """[2] M1–M5, repeval vs mir_ref's training. ``repeat`` > 1 runs that many pairs, alternating which side goes
    first, and prints every pair's ratio and the median (a 4–6 s timing moves ±15% from one minute to the next).
    Every repeval run is then a first run in a fresh process and Ray (:func:`thesis_child`), as every Keras run
    is a fresh subprocess: later runs in one process measured 0.3–1 s faster (the driver's first Tune fit imports
    its loggers), which a user's ``repeval train``, always a fresh process, never sees."""
    import ray

    data_dim, n_out = data.x_train.shape[1], len(data.classes)
    thesis = expand_all([experiment(THESIS)[1].downstream_models[0]])[0].points
    probes = [(p.name, resolve_hidden_units(p.config.hidden_units, data_dim, n_out)) for p in thesis]
    print(f"[2] thesis probes M1–M5 {[h for _, h in probes]}")
    keras = keras_available()
    label = (
        "mir_ref in Keras (TensorFlow subprocess)" if keras else "mir_ref loop in PyTorch (TensorFlow not importable)"
    )

    def reference() -> tuple[dict, int]:
        return mir_ref_keras(data, probes) if keras else (mir_ref_torch(data, probes), 0)

    def ours() -> tuple[float, object, dict[str, tuple[float, int]]]:
        wall, g = repeval_in_child() if repeat > 1 else run_repeval(THESIS, data, storage)
        return wall, g, (g.scores if repeat > 1 else probe_scores(g))

    if repeat > 1:
        ray.shutdown()  # one Ray at a time on the machine: each child starts its own
    pairs: list[tuple[float, float]] = []
    first: tuple[dict, dict, int] | None = None
    overheads = []
    for i in range(repeat):
        if i % 2:  # odd pairs: the reference first
            ref, peak = reference()
            wall_r, g, scores = ours()
        else:
            wall_r, g, scores = ours()
            ref, peak = reference()
        pairs.append((ref["_total"], wall_r))
        overheads.append(("M1–M5" if repeat == 1 else f"M1–M5 #{i + 1}", wall_r, g))
        if first is None:
            first = (scores, ref, peak)
        if repeat > 1:
            print(f"  pair {i + 1}/{repeat} ({'reference' if i % 2 else 'repeval'} first): {label.split(' (')[0]} "
                  f"{ref['_total']:.1f} s, repeval {wall_r:.1f} s → {ref['_total'] / wall_r:.1f}×", flush=True)  # fmt: skip
    if repeat > 1:  # the caller's later benchmarks and its shutdown expect its Ray
        init_ray(object_store_memory=400 * 1024**2)
    scores, ref, peak = first  # type: ignore[misc]
    print(f"  {'probe':<5} {'repeval acc':>11} {'epochs':>6} | {'mir_ref acc':>11} {'epochs':>6} {'seconds':>8}")
    for name, _ in probes:
        acc, ep = scores[name]
        print(f"  {name:<5} {acc:11.4f} {ep:6d} | {ref[name][0]:11.4f} {ref[name][1]:6d} {ref[name][2]:8.1f}")
    if repeat == 1:
        print(f"  {label}: {ref['_total']:.1f} s (training only, TensorFlow import excluded)")
        print(f"  repeval: {pairs[0][1]:.1f} s → speed-up {pairs[0][0] / pairs[0][1]:.1f}× (target ≥ 10×)")
    else:
        ratios = sorted(r / w for r, w in pairs)
        print(f"  {label}: median {np.median([r for r, _ in pairs]):.1f} s over {repeat} runs (training only, "
              f"TensorFlow import excluded); repeval median {np.median([w for _, w in pairs]):.1f} s, each a fresh "
              f"process")  # fmt: skip
        print(f"  speed-up per pair {ratios[0]:.1f}–{ratios[-1]:.1f}×, median {np.median(ratios):.1f}× "
              f"(target ≥ 10×)")  # fmt: skip
    mean_r = np.mean([scores[n][0] for n, _ in probes])
    mean_k = np.mean([ref[n][0] for n, _ in probes])
    print(f"  mean test accuracy (first pair): repeval {mean_r:.4f}, mir_ref {mean_k:.4f}")
    if peak:
        print(f"  peak RSS of the Keras subprocess: {peak / 2**20:.0f} MiB\n")
    return overheads


def overhead_line(name: str, wall: float, g, slots: int) -> str:
    busy = g.trial_seconds
    idle = max(0.0, wall * slots - busy)
    return (
        f"  {name:<12} wall {wall:7.1f} s | Σ trial training {busy:7.1f} s over {g.trials} trials on {slots} slots | "
        f"overhead {idle / (wall * slots):5.1%} of slot time, wall/(Σ/slots) = {wall / max(busy / slots, 1e-9):.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100, help="Jukemir grid: most epochs per configuration")
    ap.add_argument("--patience", type=int, default=10, help="Jukemir grid: patience (validations)")
    ap.add_argument("--sample", type=int, default=0, help="train only every N-th Jukemir configuration (quick look)")
    ap.add_argument("--only", choices=["1", "2", "groups", "pages", "freed"], help="run one benchmark")
    ap.add_argument("--pages-dim", type=int, default=1728, help="--only pages: embedding width of the table")
    ap.add_argument("--pages-epochs", type=int, default=10, help="--only pages: most epochs per configuration")
    ap.add_argument("--asha-grace", type=int, default=10, help="Jukemir grid with ASHA: grace period (epochs)")
    ap.add_argument("--groups", type=int, default=6, help="--only groups: number of groups")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="M1–M5: run this many (reference, repeval) pairs, alternating which goes first, each side a fresh "
        "process, and print the median ratio",
    )
    ap.add_argument("--thesis-child", metavar="OUT", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help="Jukemir grid: run precision: bf16 even where it is emulated")
    ap.add_argument(
        "--bf16-loop",
        action="store_true",
        help="Jukemir grid: also time the sequential loop under torch.autocast(bfloat16), for a like-for-like "
        "ratio with repeval's precision: bf16 (about 6 more minutes)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the plain loops (default 1: on a busy 2-core machine two intra-op threads "
        "made small-matrix loops ~10× slower, which would flatter repeval)",
    )
    args = ap.parse_args()
    from repeval.cpu import huge_pages_status, mkl_status, reexec_with_mkl_shim

    reexec_with_mkl_shim()  # like the `repeval` command: both sides on the same MKL code path
    torch.set_num_threads(args.threads)
    if args.thesis_child:
        thesis_child(args.thesis_child)
        return

    import ray

    if args.only == "pages":
        bench_pages(args.pages_dim, args.pages_epochs)
        return
    if args.only == "freed":
        bench_freed(args.epochs, args.patience)
        return
    torch_threads = torch.get_num_threads()
    data = table()
    print(f"table: train {data.x_train.shape}, val {data.x_val.shape}, test {data.tests['clean'][0].shape}, "
          f"{len(data.classes)} classes; {os.cpu_count()} CPUs; torch threads (plain loops) {torch_threads}")  # fmt: skip
    print(f"MKL (both sides): {mkl_status()}")
    print(f"large tensors (both sides): {huge_pages_status()}")
    t0 = time.perf_counter()
    # Ray as repeval starts it (`repeval train`): with Ray's default worker soft limit, the raylet killed an idle
    # prestarted worker as the first trial actor took the other in about half the runs, and the second trial
    # actor then waited for a new worker process (~1 s) inside the timing
    init_ray(object_store_memory=400 * 1024**2)
    slots = int(ray.cluster_resources().get("CPU", 1))
    print(f"ray.init: {time.perf_counter() - t0:.1f} s ({slots} CPU slots, 1 CPU per trial)")
    t0 = time.perf_counter()
    import ray.tune  # framework imports are outside the timings, like TensorFlow's and torch's

    print(f"import ray.tune: {time.perf_counter() - t0:.1f} s (not timed, like the TensorFlow import)")
    print(f"Ray's prestarted workers up after {wait_for_ray_workers():.1f} s more (not timed: Ray's start-up)\n")
    storage = tempfile.mkdtemp(prefix="bench_probes_")
    atexit.register(shutil.rmtree, storage, True)  # Tune experiment directories, not reused
    overheads = []
    with PeakRSS() as mem:
        if args.only in (None, "1"):
            spec = {"preset": "jukemir", "epochs": args.epochs, "patience": args.patience}
            points = expand_all([experiment([spec])[1].downstream_models[0]])[0].points
            if args.sample:
                points = points[:: args.sample]
            print(f"[1] Jukemir grid: {len(points)} configurations, ≤{args.epochs} epochs, patience {args.patience}")
            if args.sample:
                wall_r, g = None, None
                print("  (--sample: repeval side skipped; use it to time the baseline only)")
            else:
                wall_r, g = run_repeval([spec], data, storage)
                overheads.append(("jukemir", wall_r, g))
            wall_s, seq = sequential(points, data)
            best = max(seq, key=lambda r: r[1])
            print(
                f"  sequential plain PyTorch: {wall_s:8.1f} s; selected {best[0]} (val {best[1]:.4f}) test acc {best[2]:.4f}"
            )
            if g is not None:
                sel, acc = selected(g)
                print(f"  repeval (Ray Tune):       {wall_r:8.1f} s; selected {sel['probe']} (val {sel['best_criterion']:.4f}) test acc {acc:.4f}")  # fmt: skip
                print(f"  speed-up {wall_s / wall_r:.1f}× (target ≥ 5×); test accuracy difference {abs(acc - best[2]):.4f} (target ≤ 0.01)")  # fmt: skip
                epochs_seq = sum(r[3] for r in seq)
                epochs_rep = sum(p.get("epochs") or 0 for p in g.probes)
                print(f"  epochs trained: sequential {epochs_seq}, repeval {epochs_rep}")
                # bf16 products (precision: bf16): not the loop's arithmetic, so no target — how much a CPU with
                # bf16 units gives, and how far the selected probe's test accuracy moves. Emulated bf16 (no
                # AVX512-BF16/AMX) is ~50× slower than fp32 per product: skipped unless asked for
                run_bf16 = native_bf16() or args.bf16
                if not run_bf16:
                    print("  repeval, precision: bf16: skipped — this CPU emulates bf16 (pass --bf16 to run it anyway)")
                else:
                    wall_b, gb = run_repeval([{**spec, "precision": "bf16"}], data, storage)
                    overheads.append(("jukemir bf16", wall_b, gb))
                    sel_b, acc_b = selected(gb)
                    print(f"  repeval, precision: bf16 ({'native' if native_bf16() else 'EMULATED'} bf16 on this CPU): "
                          f"{wall_b:.1f} s; selected {sel_b['probe']} (val {sel_b['best_criterion']:.4f}) test acc "
                          f"{acc_b:.4f}; {sum(p.get('epochs') or 0 for p in gb.probes)} epochs")  # fmt: skip
                    print(f"    {wall_r / wall_b:.2f}× repeval fp32; {wall_s / wall_b:.1f}× the fp32 sequential loop "
                          f"(not the same arithmetic: no target); test accuracy difference {abs(acc_b - best[2]):.4f}")  # fmt: skip
                    if args.bf16_loop:
                        wall_sb, seq_b = sequential(points, data, precision="bf16")
                        best_b = max(seq_b, key=lambda r: r[1])
                        print(f"  sequential plain PyTorch, autocast bf16: {wall_sb:.1f} s; selected {best_b[0]} test acc "
                              f"{best_b[2]:.4f} → repeval bf16 {wall_sb / wall_b:.1f}× (like for like); test accuracy "
                              f"difference {abs(acc_b - best_b[2]):.4f}")  # fmt: skip
                # the optional scheduler: less work than the sequential loop, so no target — how much
                # faster a user gets a selected probe, and how far its test accuracy moves
                asha = {"type": "asha", "grace_period": args.asha_grace, "reduction_factor": 3}
                wall_a, ga = run_repeval([{**spec, "search": {"scheduler": asha}}], data, storage)
                sel_a, acc_a = selected(ga)
                stopped = sum(1 for p in ga.probes if str(p["status"]).startswith("stopped by ASHA"))
                print(f"  repeval, ASHA inside the stacks (grace {args.asha_grace}, factor 3): {wall_a:.1f} s; selected "
                      f"{sel_a['probe']} (val {sel_a['best_criterion']:.4f}) test acc {acc_a:.4f}; {stopped} of "
                      f"{len(ga.probes)} configurations stopped early, {sum(p.get('epochs') or 0 for p in ga.probes)} "
                      f"epochs")  # fmt: skip
                print(f"    {wall_s / wall_a:.1f}× the sequential loop (less work: no target); test accuracy "
                      f"difference {abs(acc_a - best[2]):.4f}\n")  # fmt: skip
        if args.only in (None, "2"):
            overheads += bench_thesis(data, storage, args.repeat)
        if args.only in (None, "groups"):
            wall_b, gb = bench_groups(storage, args.groups)
            overheads.append((f"{args.groups}×M1–M5", wall_b, gb))
    print("[3] Tune overhead (wall time vs the trials' own training time)")
    for name, wall, g in overheads:
        print(overhead_line(name, wall, g, slots))
    print(f"\npeak RSS: driver {mem.peak_driver / 2**20:.0f} MiB, Ray processes (sum) {mem.peak_ray / 2**20:.0f} MiB")
    ray.shutdown()


if __name__ == "__main__":
    main()
