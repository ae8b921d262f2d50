"""Open the report in headless Chromium: no console errors, tables sort and filter, images decode.

Needs Debian's ``chromium`` at /usr/bin/chromium (CI installs it); skipped only when it is absent.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless browser test needs Debian's chromium: apt-get install -y chromium"
)

#: ends each probe below: what it saw, as JSON in <pre id="rv-selftest"> for --dump-dom
SELFTEST_END = """  var pre = document.createElement('pre');
  pre.id = 'rv-selftest';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""

# Injected into a copy of the report: records errors from the start, then exercises the page
# after load and writes what it saw into the DOM for --dump-dom.
PROBE_HEAD = """<script>window.__rvErrors=[];window.addEventListener('error',function(e){window.__rvErrors.push(String(e.message));});
document.addEventListener('securitypolicyviolation',function(e){window.__rvErrors.push('CSP '+e.blockedURI);});</script>"""
PROBE_BODY = (
    """<script>window.addEventListener('load', function () {
  var out = {errors: window.__rvErrors, ready: document.documentElement.getAttribute('data-rv-ready')};
  var imgs = Array.prototype.slice.call(document.images);
  out.images = imgs.length;
  out.decoded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; }).length;
  var t = document.querySelector('table[id^="t-all-deform-all-models"]');
  var th = t.querySelector('thead th[data-kind="num"]');
  var col = parseInt(th.getAttribute('data-col'), 10);
  th.click();
  out.sortedDesc = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[col].getAttribute('data-value')); });
  out.ariaFirst = th.getAttribute('aria-sort');
  th.click();
  out.sortedAsc = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[col].getAttribute('data-value')); });
  var f = document.querySelector('.rv-filter[data-target="' + t.id + '"]');
  f.value = 'musicnn M5';
  f.dispatchEvent(new Event('input'));
  out.filtered = Array.prototype.filter.call(t.tBodies[0].rows, function (r) { return !r.hidden; })
    .map(function (r) { return r.cells[0].textContent + ' ' + r.cells[1].textContent; });
  out.count = document.querySelector('.rv-count[data-target="' + t.id + '"]').textContent;
  var lt = document.querySelector('table[id^="labels-all-"]');
  var sel = document.querySelector('.rv-select[data-target="' + lt.id + '"][data-col="0"]');
  sel.value = 'M2';
  sel.dispatchEvent(new Event('change'));
  out.probeRows = Array.prototype.filter.call(lt.tBodies[0].rows, function (r) { return !r.hidden; })
    .map(function (r) { return r.cells[0].textContent; });
  // a per-label value cell has no data-value: the sorter reads its text, "0.812 ± 0.012"
  var vh = lt.querySelector('thead th[data-col="2"]');
  vh.click();
  out.textSorted = Array.prototype.map.call(lt.tBodies[0].rows, function (r) { return parseFloat(r.cells[2].textContent); });
  // …whose minus is a true one (U+2212): a negative value sorts as a number, first ascending, not as a missing one
  lt.tBodies[0].rows[0].cells[2].textContent = '\u2212' + '0.500 ± 0.010';
  vh.click();
  out.firstAscending = lt.tBodies[0].rows[0].cells[2].textContent;
  // the labels by model: the worst first as written (their mean ascending)
  var bm = document.querySelector('table[id^="labels-bymodel-"]');
  out.worstFirst = Array.prototype.map.call(bm.tBodies[0].rows, function (r) { return parseFloat(r.cells[1].getAttribute('data-value')); });
  out.tables = document.querySelectorAll('table.rv-table').length;
  // a figure's box as wide as its image: a long caption wraps (it widened the box, stacking charts that fit in a row)
  out.widestCaption = 0;
  out.overhang = Math.max.apply(null, imgs.map(function (i) {
    var cap = i.parentNode.querySelector('figcaption');
    out.widestCaption = Math.max(out.widestCaption, cap.scrollHeight > 20 ? 1 : 0);
    return i.parentNode.getBoundingClientRect().width - i.getBoundingClientRect().width;
  }));
"""
    + SELFTEST_END
)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report(report_html) -> Path:
    return report_html


def _console_problems(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ("CONSOLE" in line and re.search(r"Uncaught|Error|Refused|Failed", line)) or "Refused to" in line
    ]


def test_report_runs_in_chromium(report, tmp_path):
    probed = tmp_path / "probed.html"
    text = report.read_text()
    probed.write_text(text.replace("</title>", "</title>" + PROBE_HEAD, 1).replace("</body>", PROBE_BODY + "</body>"))
    proc = _chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not _console_problems(proc.stderr), _console_problems(proc.stderr)
    match = re.search(r'<pre id="rv-selftest">(.*?)</pre>', proc.stdout, re.S)
    assert match, "the page's load handler did not run:\n" + proc.stdout[-1500:]
    seen = json.loads(html_lib.unescape(match.group(1)))
    assert seen["errors"] == []
    assert seen["ready"] == "1"
    assert seen["images"] == text.count("<img ") and seen["images"] >= 8
    assert seen["decoded"] == seen["images"]  # every inlined figure decoded with a nonzero size
    assert seen["ariaFirst"] == "descending"
    assert seen["sortedDesc"] == sorted(seen["sortedDesc"], reverse=True)
    assert seen["sortedAsc"] == sorted(seen["sortedAsc"])
    assert seen["filtered"] == ["msd-musicnn M5"] and seen["count"] == "1 of 9 rows"
    assert seen["overhang"] <= 20 and seen["widestCaption"] == 1  # padding and border only; some caption wrapped
    assert seen["probeRows"] and set(seen["probeRows"]) == {"M2"}
    assert len(seen["textSorted"]) > 6 and seen["textSorted"] == sorted(seen["textSorted"], reverse=True)
    assert seen["firstAscending"] == "−0.500 ± 0.010"
    assert len(seen["worstFirst"]) > 1 and seen["worstFirst"] == sorted(seen["worstFirst"])
    assert seen["tables"] == text.count('<table class="rv-table') == 2 * 3 + 2 * 3 + 2 * 3  # presets, labels, all


def test_report_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, "--window-size=1400,2000", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert not _console_problems(proc.stderr), _console_problems(proc.stderr)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2000, 1400)
    assert img[..., :3].std() > 0.05  # rendered content, not a blank page
    keep = Path(__file__).resolve().parents[2] / ".pytest_cache" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)  # for a human to look at after the run


SORT_PROBE = (
    """<script>window.addEventListener('load', function () {
  var t = document.querySelector('table.rv-table'), out = {};
  Array.prototype.forEach.call(t.querySelectorAll('thead th[data-kind="num"]'), function (th) {
    var col = parseInt(th.getAttribute('data-col'), 10);
    th.click();
    out[col] = {aria: th.getAttribute('aria-sort'),
                values: Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[col].getAttribute('data-value')); })};
  });
"""
    + SELFTEST_END
)


def test_a_first_click_sorts_an_error_metric_and_its_change_best_first(tmp_path):
    """A click on a numeric header sorted it descending, whatever the metric: a mean squared error (and its Δ from
    clean, where a rise is a loss) came worst first. Columns whose lower values are better now sort ascending first."""
    import pandas as pd

    from repeval.report.html import _asset
    from repeval.report.render import render_html
    from repeval.report.results import RESULT_COLUMNS
    from repeval.report.tables import make_table

    cell = dict(run_id="r", task="tempo", task_type="regression", dataset="d", probe="M1", seed=0, label=None,
                ci_low=None, ci_high=None, n_test=10)  # fmt: skip
    values = {"a": (0.2, 0.9), "b": (0.6, 0.3), "c": (0.4, 0.5)}  # clean, deformed: b best clean, a changes least
    rows = [
        {**cell, "model": model, "scenario": scenario, "metric": metric, "value": v if metric == "r2" else 1 - v}
        for model, (clean, deformed) in values.items()
        for scenario, v in (("clean", clean), ("D1", clean - deformed * 0.1))
        for metric in ("r2", "mean_squared_error")
    ]
    table = make_table(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), "robustness")
    assert table.columns == [("r2", "clean"), ("r2", "Δ D1"), ("mean_squared_error", "clean"),
                                          ("mean_squared_error", "Δ D1")]  # fmt: skip
    page = tmp_path / "sort.html"
    page.write_text(f"<!doctype html><html><body>{render_html(table)}<script>{_asset('report.js')}</script>"
                    f"{SORT_PROBE}</body></html>")  # fmt: skip
    proc = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="rv-selftest">(.*?)</pre>', proc.stdout, re.S)
    assert match, proc.stdout[-1500:]
    seen = {int(k): v for k, v in json.loads(html_lib.unescape(match.group(1))).items()}
    for col, (metric, _) in enumerate(table.columns, start=2):
        first = seen[col]["values"]
        if metric == "r2":  # higher is better: descending
            assert seen[col]["aria"] == "descending" and first == sorted(first, reverse=True)
        else:  # an error and its change: lower is better, ascending
            assert seen[col]["aria"] == "ascending" and first == sorted(first)
        best = table.mean[table.best[:, col - 2], col - 2][0]
        assert first[0] == pytest.approx(best)  # the highlighted best value comes first


NARROW_PROBE = (
    """<script>window.addEventListener('load', function () {
  var width = document.documentElement.clientWidth;  // the screen less a scroll bar
  var out = {width: width, page: document.documentElement.scrollWidth, outside: [], captions: [],
             padding: getComputedStyle(document.querySelector('main')).paddingLeft};
  Array.prototype.forEach.call(document.body.querySelectorAll('*'), function (el) {
    // a wide table scrolls inside its box (and a config inside its <pre>): anything else must fit the screen
    if (el.closest('.rv-scroll') || el.closest('pre') || el.id === 'rv-selftest') return;
    var r = el.getBoundingClientRect();
    if (r.width && r.right > width + 0.5) out.outside.push(el.tagName + '.' + el.className);
  });
  Array.prototype.forEach.call(document.querySelectorAll('.rv-scroll caption'), function (c) {
    var box = c.closest('.rv-scroll').getBoundingClientRect(), r = c.getBoundingClientRect();
    out.captions.push([Math.round(r.left - box.left), Math.round(box.right - r.right)]);
  });
  var details = document.querySelectorAll('details');
  out.details = details.length;
  window.dispatchEvent(new Event('beforeprint'));
  out.openPrinted = document.querySelectorAll('details[open]').length;
  window.dispatchEvent(new Event('afterprint'));
  out.openAfter = document.querySelectorAll('details[open]').length;
"""
    + SELFTEST_END
)


def test_report_fits_a_phone_screen_and_prints_its_folded_sections(report, tmp_path):
    """On a phone the tables' captions ran as wide as their tables, inside the scrolled box: most of what a caption says
    was off screen. Now every table's caption stays within its box (wrapped), nothing but a table's or a config's
    box is wider than the screen; printing opens every folded section (per-label values, configs), and closes them
    again after."""
    probed = tmp_path / "narrow.html"
    probed.write_text(report.read_text().replace("</body>", NARROW_PROBE + "</body>"))
    proc = _chromium(tmp_path, "--window-size=390,2000", "--virtual-time-budget=15000", "--dump-dom", probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="rv-selftest">(.*?)</pre>', proc.stdout, re.S)
    assert match, proc.stdout[-1500:]
    seen = json.loads(html_lib.unescape(match.group(1)))
    # headless Chromium lays a page out at least 500 px wide: narrower than the report's 600 px layout for phones
    assert seen["width"] <= 500 and seen["padding"] == "12px", seen
    assert seen["page"] == seen["width"], seen  # no page-wide horizontal scroll
    assert seen["outside"] == []
    assert len(seen["captions"]) >= 6 and all(left >= 0 and right >= 0 for left, right in seen["captions"]), seen
    assert seen["details"] >= 3 and seen["openPrinted"] == seen["details"] and seen["openAfter"] == 0


PRINT_PROBE = (
    """<script>window.addEventListener('load', function () {
  var width = document.documentElement.clientWidth, out = {width: width, over: []};
  Array.prototype.forEach.call(document.querySelectorAll('table.rv-table'), function (t) {
    var r = t.getBoundingClientRect();
    if (r.right > width + 0.5) out.over.push(t.id + ' ' + Math.round(r.right));
  });
"""
    + SELFTEST_END
)


def test_printed_tables_fit_the_page_width(report, tmp_path):
    """Printed, a table of three metrics × three scenarios ran past the right edge of an A4 page (its cells never
    wrapped, so "0.812 ± 0.012" kept the width of a screen's table): the last columns were cut off the paper. Now a
    printed cell wraps, and every table fits the page (the print rules applied on a screen as wide as A4's text)."""
    text = report.read_text()
    assert text.count("@media print {") == 1
    probed = tmp_path / "printed.html"
    probed.write_text(text.replace("@media print {", "@media all {").replace("</body>", PRINT_PROBE + "</body>"))
    proc = _chromium(tmp_path, "--window-size=718,2000", "--virtual-time-budget=15000", "--dump-dom", probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="rv-selftest">(.*?)</pre>', proc.stdout, re.S)
    assert match, proc.stdout[-1500:]
    seen = json.loads(html_lib.unescape(match.group(1)))
    assert 600 < seen["width"] <= 718 and seen["over"] == [], seen
