"""Fake run directories shared by the report tests (written once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from repeval.testing.configs import gain_steps, snr_steps
from repeval.testing.results import FakeRunSpec, make_run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return make_run_dir(
        tmp_path_factory.mktemp("runs"),
        FakeRunSpec(run_id="demo", probes=("M1", "M2", "M5"), scenarios=("clean", "D1", "D2"), n_resamples=50),
    )


@pytest.fixture(scope="session")
def second_run_dir(tmp_path_factory) -> Path:
    return make_run_dir(
        tmp_path_factory.mktemp("runs2"),
        FakeRunSpec(run_id="other", models=("msd-musicnn",), probes=("M1", "M3"), seeds=(0,), n_resamples=50, seed=3),
    )


@pytest.fixture(scope="session")
def report_html(run_dir, tmp_path_factory) -> Path:
    """The report of ``run_dir`` (written once: rendering the figures is the slow part)."""
    from repeval.report.html import write_report

    return write_report([run_dir], tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def series_run(run_dir, tmp_path_factory) -> Path:
    """The session's run (its D1 and D2 results, as the tuning stage writes them) with a ``config.yaml`` that says
    what they were: white noise at 20 and 5 dB SNR for the instruments, a gain of −6 and −18 dB for the tags (the
    robustness curves' tests)."""
    run = tmp_path_factory.mktemp("series") / "demo"
    shutil.copytree(run_dir, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    levels = {
        "instrument_recognition": [snr_steps(20), snr_steps(5)],
        "autotagging": [gain_steps(-6), gain_steps(-18)],
    }
    for exp in cfg["experiments"]:
        exp["deformations"] = levels[exp["task"]["name"]]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run
