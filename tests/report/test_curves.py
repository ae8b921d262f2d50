"""Robustness curves: series found in the runs' configurations, the metric drawn against the level, in the report."""

from __future__ import annotations

import csv
import html as html_lib
import json
import re
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml

from repeval.report import plots
from repeval.report.comparable import scenario_definitions
from repeval.report.curves import (
    CURVES_CSV,
    curve_figure,
    curve_numbers,
    find_series,
    group_definitions,
    repeats_note,
)
from repeval.report.results import CLEAN, load_run
from repeval.testing.configs import gain_steps as _gain
from repeval.testing.configs import snr_steps as _snr

REPO = Path(__file__).parents[2]
TASK, DATASET = "instrument_recognition", "tinysol"
TAGS, TAGGED = "autotagging", "magnatagatune"


@pytest.fixture(scope="module")
def series_report(series_run, tmp_path_factory) -> Path:
    from repeval.report.html import write_report

    return write_report([series_run], tmp_path_factory.mktemp("series_report"))


def _series(deformations: list[object]) -> list:
    config = {"experiments": [{"task": {"name": "t"}, "datasets": [{"name": "d"}], "deformations": deformations}]}
    steps = {sid: d for (_, _, sid), d in scenario_definitions(config).items()}
    return find_series(steps, "t", "d")


def test_series_are_the_scenarios_that_differ_in_one_level():
    (snr,) = _series([_snr(20), _snr(30), {"name": "harsh", "steps": _snr(10)}])
    # the severity order, whatever the configuration's: the highest SNR first, the axis running from high to low
    assert snr.points == [("D2", 30.0), ("D1", 20.0), ("harsh", 10.0)]
    assert (snr.transform, snr.param, snr.unit, snr.none, snr.falling) == (
        "AddGaussianSNR", "min_snr_db = max_snr_db", "dB", None, True,
    )  # fmt: skip
    assert "falls left to right" in snr.axis and snr.axis.endswith("more severe →")
    # a gain below 0 dB: clean audio is its 0 dB end (the aliases read as their names), the axis from 0 down
    (gain,) = _series([_gain(-18), _gain(-6)])
    assert gain.points == [("D2", -6.0), ("D1", -18.0)] and gain.none == 0.0 and gain.falling and gain.ordered
    # gains either side of 0 dB: drawn in order, no direction claimed but away from 0
    (both,) = _series([_gain(6), _gain(-6)])
    assert both.points == [("D2", -6.0), ("D1", 6.0)] and not both.ordered and both.axis.endswith("away from 0")
    # a min/max pair that differs: its midpoint, said so; a bitrate in kbps
    mid = [{"type": "AddGaussianSNR", "params": {"min_snr_db": lo, "max_snr_db": lo + 10, "p": 1}} for lo in (5, 15)]
    (m,) = _series(mid)
    assert m.points == [("D2", 20.0), ("D1", 10.0)] and m.param.endswith("(midpoint)")
    mp3 = [[{"type": "Mp3Compression", "params": {"min_bitrate": b, "max_bitrate": b, "p": 1}}] for b in (32, 320, 64)]
    (b,) = _series(mp3)
    assert [x for _, x in b.points] == [320.0, 64.0, 32.0] and b.unit == "kbps"
    # a parameter with no one direction: in rising order, its unit read off its name, no claim of which way is harsher
    peak = [
        [{"type": "PeakingFilter", "params": {"min_center_freq": f, "max_center_freq": f, "p": 1}}] for f in (4e3, 1e3)
    ]
    (centre,) = _series(peak)
    assert centre.points == [("D2", 1000.0), ("D1", 4000.0)] and centre.unit == "Hz" and not centre.ordered
    assert centre.axis == "PeakingFilter min_center_freq = max_center_freq (Hz): no one direction of severity"
    # the level of a later step, the steps before it alike
    (chain,) = _series([_gain(-6) + _snr(20), _gain(-6) + _snr(10)])
    assert chain.step == 1 and chain.transform == "AddGaussianSNR" and chain.name.startswith("AddGaussianSNR (step 2)")


def test_scenarios_that_differ_otherwise_form_no_series():
    assert _series([_snr(20)]) == []  # one level
    assert _series([_snr(20), _gain(-6)]) == []  # another transform
    assert _series([_snr(20), _snr(10, p=0.5)]) == []  # the level and p: two things at once
    assert _series([_snr(20, p=1), _snr(20, p=0.5)]) == []  # p is never the level
    assert _series([_snr(20), {"name": "again", "steps": _snr(20)}]) == []  # two scenarios at one level, no other
    assert _series([_gain(-6) + _snr(20), _gain(-12) + _snr(10)]) == []  # two steps' levels at once
    # a range of SNRs beside fixed ones: its pair does not move with theirs (its midpoint is no level of theirs)
    ranged = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 5, "max_snr_db": 25, "p": 1}}]
    assert _series([_snr(20), ranged]) == []
    # a series among others: the others are left out of it
    (s,) = _series([_snr(20), _gain(-6), _snr(10, p=0.5), _snr(5)])
    assert [p for p, _ in s.points] == ["D1", "D4"]


def test_shipped_configs_have_series():
    def found(name: str) -> list:
        config = yaml.safe_load((REPO / "configs" / name).read_text())
        steps = {sid: d for (t, ds, sid), d in scenario_definitions(config).items() if t == "instrument_classification"}
        return find_series(steps, "instrument_classification", "x")

    snr, mp3 = found("robustness_curves.yaml")
    assert [x for _, x in snr.points] == [30.0, 20.0, 10.0, 5.0] and snr.transform == "AddGaussianSNR"
    assert [x for _, x in mp3.points] == [128.0, 64.0, 32.0] and mp3.transform == "Mp3Compression"
    # the thesis' D1 and D2 (15 and 0 dB white noise) are a series; its MP3 and gain scenarios, one level each, not
    (thesis,) = found("mir_ref_thesis.yaml")
    assert thesis.points == [("D1", 15.0), ("D2", 0.0)]


def _expected(df, task, dataset, metric, probes, scenario):
    """Per model, the mean and std over seeds of its chosen probe's results on ``scenario``."""
    rows = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna() & (df["metric"] == metric)]
    rows = rows[rows["scenario"] == scenario]
    out = {}
    for model, probe in probes.items():
        values = rows[(rows["model"] == model) & (rows["probe"] == probe)]["value"].to_numpy()
        out[model] = (values.mean(), values.std(ddof=1), len(values))
    return out


@pytest.mark.parametrize(("task", "dataset"), [(TASK, DATASET), (TAGS, TAGGED)])
def test_the_curve_plots_the_results_at_their_levels(series_run, task, dataset):
    run = load_run(series_run)
    df = run.results
    steps, definers = group_definitions([run], df, task, dataset)
    assert set(steps) == {"D1", "D2"} and definers == {"D1": {"demo"}, "D2": {"demo"}}
    (series,) = find_series(steps, task, dataset)
    metric = str(df[(df["task"] == task)]["metric"].iloc[0])  # the headline's: the group's first
    probes = plots.best_probes(df, task, dataset, metric)
    curve = curve_numbers(df[(df["task"] == task) & (df["dataset"] == dataset)], series, metric, probes)
    fig = curve_figure(curve)
    ax = fig.axes[0]
    assert ax.xaxis_inverted()  # severity rises left to right: the SNR falls, the gain goes down from 0 dB
    lines = [c.lines[0] for c in ax.containers]
    assert [x.get_text() for x in ax.get_legend().get_texts()] == [c.get_label() for c in ax.containers]
    assert [c.get_label() for c in ax.containers] == [f"{m} · {p}" for m, p in probes.items()]
    scenarios = [CLEAN, "D1", "D2"] if series.none is not None else ["D1", "D2"]
    want_x = [series.none if s == CLEAN else dict(series.points)[s] for s in scenarios]
    for line, model in zip(lines, probes, strict=True):
        np.testing.assert_allclose(line.get_xdata(), want_x)
        want_y = [_expected(df, task, dataset, metric, probes, s)[model][0] for s in scenarios]
        np.testing.assert_allclose(line.get_ydata(), want_y)
    clean = _expected(df, task, dataset, metric, probes, CLEAN)
    dashed = [line.get_ydata()[0] for line in ax.get_lines() if line not in lines and line.get_linestyle() == "--"]
    if series.none is None:  # no finite level of no noise: clean is each model's dashed line, not a point
        np.testing.assert_allclose(dashed, [clean[m][0] for m in probes])
        assert "dashed: clean" in ax.get_title()
    else:
        assert dashed == [] and "0 (clean)" in [t.get_text() for t in ax.get_xticklabels()]
    stats = _expected(df, task, dataset, metric, probes, "D2")
    np.testing.assert_allclose(curve.std[:, -1], [stats[m][1] for m in probes])
    assert ax.get_ylabel() == f"{metric} (mean ± std over seeds)" and "(dB)" in ax.get_xlabel()


def test_the_report_shows_each_series_figure_its_numbers_and_files(series_report, series_run, report_html):
    text = series_report.read_text()
    sections = re.split(r'<section class="rv-group"', text)
    for task, dataset in ((TASK, DATASET), (TAGS, TAGGED)):
        (section,) = [s for s in sections if f">{task} — {dataset} <" in s]
        block = section[section.index("<h3>Robustness curves</h3>") :]
        assert block.count('<figure class="rv-curve"><img src="data:image/png;base64,') == 1
        assert "severity rises left to right" in block
    # the numbers, exactly: the CSV next to the figures, each row's mean that of the results
    plots_dir = series_report.parent / "plots"
    names = sorted(p.name for p in plots_dir.iterdir())
    stems = {n.rsplit(".", 1)[0] for n in names if n != CURVES_CSV}
    assert len(stems) == 2 and all(f"{s}.png" in names and f"{s}.svg" in names for s in stems)
    img = mpimg.imread(plots_dir / f"{min(stems)}.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.01
    rows = list(csv.DictReader((plots_dir / CURVES_CSV).open()))
    run = load_run(series_run)
    df = run.results
    for task, dataset in ((TASK, DATASET), (TAGS, TAGGED)):  # each model at the probe the heat map stands it with
        metric = str(df[(df["task"] == task)]["metric"].iloc[0])
        chosen = plots.best_probes(df, task, dataset, metric, run.validation)
        assert {(r["model"], r["probe"]) for r in rows if r["task"] == task} == set(chosen.items())
    for r in rows:
        sel = df[(df["task"] == r["task"]) & (df["model"] == r["model"]) & (df["probe"] == r["probe"])
                 & (df["scenario"] == r["scenario"]) & (df["metric"] == r["metric"]) & df["label"].isna()]  # fmt: skip
        assert float(r["mean"]) == pytest.approx(sel["value"].mean()) and int(r["n"]) == len(sel) == 2
    snr = [r for r in rows if r["task"] == TASK]
    assert {r["level"] for r in snr} == {"", "20.0", "5.0"} and {r["unit"] for r in snr} == {"dB"}
    assert {r["level"] for r in rows if r["task"] == TAGS} == {"0.0", "-6.0", "-18.0"}
    # a run whose configuration says nothing of its scenarios' settings: no curve, no file
    assert "Robustness curves" not in report_html.read_text()
    assert not (report_html.parent / "plots").exists()


def test_the_curves_render_in_chromium(series_report, tmp_path):
    from test_browser import _chromium, _console_problems

    probe = """<script>window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure.rv-curve img'));
  var out = {n: imgs.length, decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 300; }).length,
    sections: imgs.map(function (i) { return i.closest('section').id; }),
    tables: document.querySelectorAll('table.rv-curve').length,
    // each table's box beside its figure: as wide as the table (a box of no width showed a 2-px sliver, no numbers)
    shown: Array.prototype.map.call(document.querySelectorAll('table.rv-curve'), function (t) {
      return Math.round(t.closest('.rv-scroll').clientWidth - t.getBoundingClientRect().width); })};
  var pre = document.createElement('pre'); pre.id = 'rv-selftest'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""
    page = tmp_path / "probed.html"
    page.write_text(series_report.read_text().replace("</body>", probe + "</body>"))
    proc = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    assert proc.returncode == 0 and not _console_problems(proc.stderr), proc.stderr[-2000:]
    seen = json.loads(html_lib.unescape(re.search(r'<pre id="rv-selftest">(.*?)</pre>', proc.stdout, re.S).group(1)))
    assert seen["n"] == seen["decoded"] == seen["tables"] == 2
    assert len(seen["shown"]) == 2 and min(seen["shown"]) >= 0, seen  # every curve's numbers readable, not scrolled
    assert [s.split("-")[1] for s in seen["sections"]] == ["instrument", "autotagging"]


def test_runs_that_define_a_level_differently_each_draw_their_own(series_run, second_run_dir, tmp_path):
    """Two runs, D2 at 5 dB in one and at 10 dB in the other (a column each), a third run whose config.yaml says
    nothing of its D1 and D2: the curve has the three levels, each run's models drawn at their own run's, the third
    run's at none."""
    from repeval.report.curves import defined_rows
    from repeval.report.results import combine_results, load_runs

    other = tmp_path / "other" / "demo"
    shutil.copytree(series_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["experiments"][0]["deformations"] = [_snr(20), _snr(10)]
    (other / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    runs = load_runs([series_run, other, second_run_dir])
    df = combine_results(runs)
    df = df.assign(model=df["run_id"] + "/" + df["model"])  # as the report's figures name them
    steps, definers = group_definitions(runs, df, TASK, DATASET)
    first, second = runs[0].run_id, runs[1].run_id
    assert definers == {"D1": {first, second}, f"D2 ({first})": {first}, f"D2 ({second})": {second}}
    (series,) = find_series(steps, TASK, DATASET)
    assert series.points == [("D1", 20.0), (f"D2 ({second})", 10.0), (f"D2 ({first})", 5.0)]
    rows = df[(df["task"] == TASK) & (df["dataset"] == DATASET)]
    probes = plots.best_probes(df, TASK, DATASET, "accuracy")
    curve = curve_numbers(rows[defined_rows(rows, series, definers)], series, "accuracy", probes)
    assert {m.split("/")[0] for m in curve.probes} == {first, second}  # the third run's models: no line
    drawn = {m: [s for s, n in zip(curve.scenarios, curve.n[i], strict=True) if n] for i, m in enumerate(curve.probes)}
    for model, scenarios in drawn.items():
        own = f"D2 ({model.split('/')[0]})"
        assert scenarios == [s for s in [CLEAN, "D1", f"D2 ({second})", f"D2 ({first})"] if s in (CLEAN, "D1", own)]
    ax = curve_figure(curve, True, [first, second]).axes[0]
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [2] * len(curve.probes)  # D1 and its own D2


def test_a_curve_either_side_of_no_deformation_runs_in_the_levels_order(series_run):
    """Gains of −6 and +6 dB: clean audio's 0 dB point lies between them, and the line runs −6, 0, +6 — it ran from
    clean's point first (0, −6, +6), back across the axis."""
    run = load_run(series_run)
    df = run.results
    (gain,) = _series([_gain(6), _gain(-6)])  # D1: +6 dB, D2: −6 dB, read off the tags' D1 and D2 results
    probes = plots.best_probes(df, TAGS, TAGGED, "roc_auc_macro")
    curve = curve_numbers(df[(df["task"] == TAGS) & (df["dataset"] == TAGGED)], gain, "roc_auc_macro", probes)
    assert curve.scenarios == [CLEAN, "D2", "D1"]  # the table's order: clean first
    ax = curve_figure(curve).axes[0]
    for container, model in zip(ax.containers, probes, strict=True):
        np.testing.assert_allclose(container.lines[0].get_xdata(), [-6, 0, 6])
        want = [_expected(df, TAGS, TAGGED, "roc_auc_macro", probes, s)[model][0] for s in ("D2", CLEAN, "D1")]
        np.testing.assert_allclose(container.lines[0].get_ydata(), want)


def test_a_curve_that_fails_to_draw_is_a_note_and_files_wait_for_the_report(series_run, tmp_path, monkeypatch):
    """A figure that fails to draw is a note with the curve's numbers, as the report's other figures are, not a failed
    report; building the curves writes nothing (a file it cannot write is no run's file it cannot read): the figures
    and numbers are written after it, replacing an earlier report's curve files and no other file."""
    from repeval.report import curve_files, curves

    run = load_run(series_run)
    drawn = curves.curve_figure

    def failing(curve, *args):
        if curve.series.transform == "Gain":
            raise ValueError("no room to draw")
        return drawn(curve, *args)

    monkeypatch.setattr(curves, "curve_figure", failing)
    folder = tmp_path / "plots"
    folder.mkdir()
    for name in ("robustness_curve__t__d__Gone-0-x.png", CURVES_CSV, "mine.png"):
        (folder / name).write_text("earlier")
    files = curve_files.CurveFiles(folder)
    snr = curves.curves_block([run], run.results, TASK, DATASET, run.validation, files)
    gain = curves.curves_block([run], run.results, TAGS, TAGGED, run.validation, files)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["robustness_curve__t__d__Gone-0-x.png", CURVES_CSV,
                                                               "mine.png"])  # fmt: skip
    assert snr.count('<figure class="rv-curve"><img') == 1 and "not available" not in snr
    assert '<figure class="rv-curve">' not in gain and "not available (no room to draw)" in gain
    assert gain.count('<table class="rv-table rv-curve">') == 1  # its numbers still shown
    curve_files.write_curve_files(files)
    (stem,) = {p.stem for p in folder.glob("robustness_curve__*")}
    assert "AddGaussianSNR" in stem and sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{stem}.png", f"{stem}.svg", CURVES_CSV, "mine.png"]
    )
    assert {r["task"] for r in csv.DictReader((folder / CURVES_CSV).open())} == {TASK, TAGS}  # the failed one's too


def test_a_report_without_curves_leaves_a_file_named_plots_alone(run_dir, tmp_path, monkeypatch):
    """A report with no series writes nothing into plots/ and clears nothing there: with a regular file of that name
    beside it, the report was not written (NotADirectoryError)."""
    from repeval.report import html as report_html
    from repeval.report.html import write_report

    monkeypatch.setattr(report_html, "build_report_html", lambda runs, **_: "<!doctype html>the report")
    (tmp_path / "plots").write_text("mine")
    assert write_report([run_dir], tmp_path / "report.html").read_text() == "<!doctype html>the report"
    assert (tmp_path / "plots").read_text() == "mine"


def test_an_error_curve_says_lower_is_better(series_run):
    """An error metric's curve rises with severity: its axis says lower is better, as the summary cards do."""
    df = load_run(series_run).results
    rows = df[(df["task"] == TASK) & (df["dataset"] == DATASET) & (df["metric"] == "accuracy")]
    rows = rows.assign(metric="mean_absolute_error", value=1 - rows["value"])  # an error of the same results
    (snr,) = _series([_snr(20), _snr(5)])
    probes = plots.best_probes(rows, TASK, DATASET, "mean_absolute_error")
    ax = curve_figure(curve_numbers(rows, snr, "mean_absolute_error", probes)).axes[0]
    assert ax.get_ylabel() == "mean_absolute_error, lower is better (mean ± std over seeds)"


def test_a_bitrate_curve_has_a_log_axis_ticked_at_its_levels(series_run):
    """320, 64 and 32 kbps: a log axis, so that 64 and 32 kbps are not crowded into a corner, ticked at the levels
    alone; an SNR's axis (in dB, already a log) stays linear."""
    df = load_run(series_run).results
    rows = df[(df["task"] == TASK) & (df["dataset"] == DATASET)]
    mp3 = [[{"type": "Mp3Compression", "params": {"min_bitrate": b, "max_bitrate": b, "p": 1}}] for b in (320, 32)]
    probes = plots.best_probes(df, TASK, DATASET, "accuracy")
    fig = curve_figure(curve_numbers(rows, _series(mp3)[0], "accuracy", probes))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted() and "(kbps, log scale)" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["320", "32"]
    assert [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()] == []
    snr = curve_figure(curve_numbers(rows, _series([_snr(20), _snr(5)])[0], "accuracy", probes)).axes[0]
    assert snr.get_xscale() == "linear"


def test_series_read_each_step_with_its_defaults():
    """A step's parameters at their default count as written: no ``p`` is ``p: 0.5`` (a series with a scenario that
    writes it), and ``min_bitrate`` alone is a range up to the default ``max_bitrate`` (64 kbps), not a level."""
    (snr,) = _series([_snr(20, p=0.5), [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 10}}]])
    assert [x for _, x in snr.points] == [20.0, 10.0]
    low = [[{"type": "Mp3Compression", "params": {"min_bitrate": b, "p": 1}}] for b in (32, 48)]
    assert _series(low) == []  # 32 to 64 and 48 to 64 kbps: two ranges, not two levels


def test_series_of_one_parameter_are_told_apart_by_their_other_settings():
    """White and pink noise (AddColorNoise's ``f_decay``), each at 20 and 10 dB: two series of one name wrote one file,
    the second figure over the first, and two sets of CSV rows with one series name; now each says its ``f_decay``."""

    def color(db: float, decay: float) -> list[dict[str, object]]:
        params = {"min_snr_db": db, "max_snr_db": db, "min_f_decay": decay, "max_f_decay": decay, "p": 1}
        return [{"type": "AddColorNoise", "params": params}]

    found = _series([color(20, 0), color(10, 0), color(20, -3.01), color(10, -3.01)])
    white, pink = [s for s in found if s.param.startswith("min_snr_db")]  # (and white against pink at each SNR)
    assert white.name == "AddColorNoise min_snr_db = max_snr_db [max_f_decay 0, min_f_decay 0]"
    assert pink.name.endswith("[max_f_decay -3.01, min_f_decay -3.01]") and white.stem != pink.stem
    (alone,) = _series([color(20, 0), color(10, 0)])
    assert alone.detail == "" and alone.name == "AddColorNoise min_snr_db = max_snr_db"


def test_the_note_claims_no_direction_of_severity_a_curve_has_not(series_run, tmp_path):
    """Gains of +6 and −6 dB get more severe away from 0 dB, not left to right: the note said severity rises left to
    right of every curve; it says so only when each curve's axis does."""
    from repeval.report.curves import curves_block

    run = tmp_path / "demo"
    shutil.copytree(series_run, run, ignore=shutil.ignore_patterns("plots", "report.html"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for exp in cfg["experiments"]:
        if exp["task"]["name"] == TAGS:
            exp["deformations"] = [_gain(6), _gain(-6)]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    both = load_run(run)
    sides = curves_block([both], both.results, TAGS, TAGGED, both.validation)
    assert "severity rises left to right" not in sides and "each axis says which way severity goes" in sides
    snr = curves_block([both], both.results, TASK, DATASET, both.validation)
    assert "severity rises left to right" in snr


def test_two_scenarios_at_one_level_keep_the_series_and_are_named():
    """Two scenarios at one level (the same deformation under two names) dropped the whole series, saying nothing; the
    curve draws the first of them now, and a note names the other."""
    (snr,) = _series([_snr(20), {"name": "again", "steps": _snr(20)}, _snr(10), _snr(10)])
    assert snr.points == [("D1", 20.0), ("D3", 10.0)] and snr.repeats == (("again", "D1"), ("D4", "D3"))
    assert repeats_note(snr) == (
        "again is at the same level as D1 (20 dB), the same deformation: the curve draws D1 there; D4 is at the same "
        "level as D3 (10 dB), the same deformation: the curve draws D3 there; the results of again and D4 are in the "
        "heat map"
    )
    assert repeats_note(_series([_snr(20), _snr(10)])[0]) == ""


def test_a_scenario_at_the_level_of_no_deformation_is_not_drawn_on_top_of_clean(series_run):
    """A gain of 0 dB is clean audio's level: its point lay on clean's, two ticks "0 (clean)" and "0" one over the
    other and the line running back and forth between them. Clean is a dashed line then, as where the transform has no
    level of none, and 0 dB the scenario's point alone."""
    df = load_run(series_run).results
    rows = df[(df["task"] == TAGS) & (df["dataset"] == TAGGED)]
    (gain,) = _series([_gain(0), _gain(-6)])  # D1: 0 dB, D2: −6 dB
    probes = plots.best_probes(df, TAGS, TAGGED, "roc_auc_macro")
    curve = curve_numbers(rows, gain, "roc_auc_macro", probes)
    assert curve.scenarios == [CLEAN, "D1", "D2"] and curve.levels == [0.0, 0.0, -6.0]  # the table's: both at 0 dB
    fig = curve_figure(curve)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["0", "-6"]
    for container in ax.containers:
        np.testing.assert_allclose(container.lines[0].get_xdata(), [0, -6])
    clean = _expected(df, TAGS, TAGGED, "roc_auc_macro", probes, CLEAN)
    dashed = sorted(line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--")
    np.testing.assert_allclose(dashed, sorted(v[0] for v in clean.values()))
    assert ax.get_title().endswith("; dashed: clean")


def test_each_waveform_transform_parameter_with_a_clear_direction_runs_from_mild_to_severe():
    """Severity's direction was known for SNR, bitrate, gain, semitones and rate alone: a low-pass cutoff, a bit
    depth, a clipping percentile or a reverberation time was drawn with no direction, its axis saying nothing. Each
    runs from mild to severe now (a low-pass filter's cutoff falling, a high-pass filter's rising), and a parameter
    with no one direction says so on its axis."""

    def one(transform: str, param: str, levels: list[float]) -> object:
        def step(v: float) -> list[dict[str, object]]:
            if param in ("a_max", "a_min", "top_db", "max_order"):  # a parameter of its own, not a min_/max_ pair
                return [{"type": transform, "params": {param: v, "p": 1}}]
            return [{"type": transform, "params": {f"min_{param}": v, f"max_{param}": v, "p": 1}}]

        (series,) = _series([step(v) for v in levels])
        return series

    for transform, param, levels, falling in (
        ("LowPassFilter", "cutoff_freq", [4000, 1000, 8000], True),
        ("HighPassFilter", "cutoff_freq", [4000, 1000], False),
        ("BandPassFilter", "bandwidth_fraction", [1.5, 0.5], True),
        ("BandStopFilter", "bandwidth_fraction", [0.5, 1.5], False),
        ("BitCrush", "bit_depth", [4, 8, 12], True),
        ("ClippingDistortion", "percentile_threshold", [10, 30], False),
        ("TanhDistortion", "distortion", [0.1, 0.5], False),
        ("RoomSimulator", "target_rt60", [0.3, 0.9], False),
        ("Limiter", "threshold_db", [-6, -20], True),
        ("Aliasing", "sample_rate", [16000, 8000], True),
        ("Clip", "a_max", [0.5, 0.1, 0.9], True),
        ("Clip", "a_min", [-0.5, -0.1], False),
        ("Trim", "top_db", [20, 40], True),
        ("RepeatPart", "part_duration", [0.5, 2.0], False),
        ("RoomSimulator", "max_order", [3, 1], False),  # (a max_ without a min_: the level of its own)
    ):
        s = one(transform, param, levels)
        assert (s.ordered, s.falling) == (True, falling), transform
        levels_in_order = [x for _, x in s.points]
        assert levels_in_order == sorted(levels, reverse=falling), transform
        assert s.axis.endswith("more severe →"), s.axis
    centre = one("PeakingFilter", "center_freq", [500, 2000])
    assert not centre.ordered and centre.axis.endswith("(Hz): no one direction of severity"), centre.axis
