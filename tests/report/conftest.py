"""Fake run directories shared by the report tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
