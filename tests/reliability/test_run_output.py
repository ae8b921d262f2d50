"""What ``repeval run`` prints when it ends: the results table, then per task/dataset the best model on clean audio
and the one that survives deformation best."""

from __future__ import annotations

import math
import re

from repeval.report.results import load_run
from repeval.report.selection import combine_validation
from repeval.report.summary import headline
from repeval.report.tables import make_table


def test_run_ends_with_best_on_clean_and_most_robust_after_the_table(reference_run):
    out = reference_run.stdout
    lines = out.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("pitch — tones, accuracy: best on clean "))
    robust = lines[first + 1]
    assert robust.startswith("  most robust: ") and "over 1 scenario, worst D1 " in robust, out[-2000:]
    assert "│" in "".join(lines[:first]) and lines[first + 2].startswith("results: "), out[-2000:]
    # the models and numbers are those of the run's files: each model's probe chosen on validation, its Δ the
    # robustness table's cell
    run = load_run(reference_run.run_dir)
    h = headline(run.results, "pitch", "tones", combine_validation([run]))
    assert h is not None and h.best and h.robustness is not None
    names = " = ".join(f"{m} · {p}" for m, p in h.best) + (" (tied)" if len(h.best) > 1 else "")
    assert lines[first].startswith(f"pitch — tones, accuracy: best on clean {names} "), (lines[first], h.best)
    # the table above flags each column's best cell; the headline says why it may name another probe
    assert lines[first].endswith(f" (each model's probe {h.choice.rule(None)})"), lines[first]
    assert h.choice.rule(None).startswith("chosen on validation val_"), h.choice.rule(None)
    table = make_table(run.results, "robustness", metrics=["accuracy"]).to_frame()
    delta = {(r.model, r.probe): r.mean for r in table[table["column"] == "Δ D1"].itertuples()}
    chosen = {m: p for (m,), p in h.choice.probes.items()}
    assert set(chosen) == {"mfcc-fast", "mfcc-slow"}
    best = max(delta[(m, p)] for m, p in chosen.items())
    top = [f"{m} · {p}" for m, p in chosen.items() if abs(delta[(m, p)] - best) <= 1e-12]
    assert robust.startswith(f"  most robust: {' = '.join(top)}"), (robust, delta, chosen)
    said = re.search(r"\(mean Δ (\S+) over 1 scenario, worst D1 (\S+)\)", robust)
    assert said and said[1] == said[2], robust
    # the best Δ, signed: 0.000 only for zero (or floating-point noise about it), a change other than zero at its
    # first digits, however small (``+0.00042``, ``−3.0e−07``: not ``0.000`` as three decimals would round it)
    if abs(best) < 1e-12:
        assert said[1] == "0.000", (robust, best)
    else:
        value = float(said[1].replace("−", "-"))
        sign = "+" if best > 0 else "−"
        assert said[1][0] == sign and math.isclose(value, best, rel_tol=0.05, abs_tol=5e-4), (robust, best)
