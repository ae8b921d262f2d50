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

# Injected into a copy of the report: records errors from the start, then exercises the page
# after load and writes what it saw into the DOM for --dump-dom.
PROBE_HEAD = """<script>window.__rvErrors=[];window.addEventListener('error',function(e){window.__rvErrors.push(String(e.message));});
document.addEventListener('securitypolicyviolation',function(e){window.__rvErrors.push('CSP '+e.blockedURI);});</script>"""
PROBE_BODY = """<script>window.addEventListener('load', function () {
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
  var lt = document.querySelector('table[id^="labels-"]');
  var sel = document.querySelector('.rv-select[data-target="' + lt.id + '"][data-col="2"]');
  sel.value = 'D1';
  sel.dispatchEvent(new Event('change'));
  out.scenarioRows = Array.prototype.filter.call(lt.tBodies[0].rows, function (r) { return !r.hidden; })
    .map(function (r) { return r.cells[2].getAttribute('data-value'); });
  out.tables = document.querySelectorAll('table.rv-table').length;
  var pre = document.createElement('pre');
  pre.id = 'rv-selftest';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


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
    assert seen["scenarioRows"] and set(seen["scenarioRows"]) == {"D1"}
    assert seen["tables"] == 8


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
