"""How long a finished `repeval run` takes to give the prompt back: repeval's exit against the default one.

At exit CPython clears every module and then runs one full garbage collection over what that left unreachable,
and Ray's shutdown waits a second for its autoscaler monitor before killing it. ``repeval`` skips the collection
(``repeval.cpu.skip_exit_collection``: ``gc.freeze()`` as the last exit handler), kills the embedded Ray's
monitor first and then shuts Ray down itself, without the 0.5 s Ray's own exit handler sleeps
(``repeval.ray_utils.stop_monitor_first_at_exit``). This runs the same small ``repeval run``
(synthesised clips, mfcc-stats, a linear probe; a fresh store and run directory each time) ``--repeats`` times
each way, alternating, and prints the seconds from the command's return (results written, table printed) to the
process' end — Ray's shutdown plus the interpreter's finalization — with repeval's exit and with the default one
(both functions replaced by no-ops), their ratio, and the driver's peak RSS.

    RAY_AUTH_MODE=disabled python benchmarks/bench_exit.py [--clips 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_embed import synth_clips, write_config

# the `repeval` console script; with EXIT_MODE=default, CPython's and Ray's own exit
DRIVER = """
import os, resource, sys, time
import repeval.cpu, repeval.ray_utils
if os.environ["EXIT_MODE"] == "default":
    repeval.cpu.skip_exit_collection = lambda: None
    repeval.ray_utils.stop_monitor_first_at_exit = lambda: None
from repeval.cli import entrypoint
try:
    entrypoint()
finally:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RETURNED {time.time():.6f} {rss:.0f}", flush=True)
"""


def one(root: Path, manifest: Path, mode: str, i: int) -> tuple[float, float, float]:
    """(seconds from the command's return to the process' end, whole wall, driver peak RSS MiB)."""
    store = root / f"store-{mode}-{i}"
    config = write_config(root, manifest, [], str(store), "mfcc-stats")
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "EXIT_MODE": mode}
    t0 = time.time()
    p = subprocess.run(
        [sys.executable, str(driver), "run", str(config)], capture_output=True, text=True, env=env, timeout=900
    )
    end = time.time()
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RETURNED "))
    returned, rss = (float(v) for v in line.split()[1:])
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(root / "runs", ignore_errors=True)  # every run embeds and trains everything again
    return end - returned, end - t0, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_exit_"))
    try:
        manifest = synth_clips(root / "clips", args.clips, 2.0)
        got: dict[str, list[tuple[float, float, float]]] = {"repeval": [], "default": []}
        for i in range(args.repeats):
            for mode in ("repeval", "default"):
                got[mode].append(r := one(root, manifest, mode, i))
                print(f"  {mode:8s} run {i + 1}: exit {r[0]:5.2f} s of {r[1]:5.1f} s; driver peak RSS {r[2]:.0f} MiB")
        med = {m: statistics.median(x[0] for x in v) for m, v in got.items()}
        print(
            f"exit after the command returned (median of {args.repeats}): default {med['default']:.2f} s, "
            f"repeval {med['repeval']:.2f} s → {med['default'] / med['repeval']:.2f}×, "
            f"{med['default'] - med['repeval']:.2f} s sooner; whole run (median) default "
            f"{statistics.median(x[1] for x in got['default']):.1f} s, repeval "
            f"{statistics.median(x[1] for x in got['repeval']):.1f} s; driver peak RSS "
            f"{max(x[2] for x in got['repeval']):.0f} / {max(x[2] for x in got['default']):.0f} MiB"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
