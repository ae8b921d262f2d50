"""jobs/: the ``ray job submit`` entry points (issue 8) — one per stage, thin wrappers of the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = ("run", "deform", "embed", "train", "evaluate")


def test_one_entry_point_per_stage() -> None:
    assert {p.stem for p in (REPO / "jobs").glob("*.py")} == {*STAGES, "_common"}
    for stage in STAGES:
        text = (REPO / "jobs" / f"{stage}.py").read_text()
        assert f'main("{stage}")' in text and "--smoke-test" in text


@pytest.mark.parametrize("stage", STAGES)
def test_entry_point_options(stage: str, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    r = subprocess.run(
        [sys.executable, str(REPO / "jobs" / f"{stage}.py"), "--help"],
        cwd=tmp_path,  # not the repo: the job's own directory puts the package on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    for option in ("--smoke-test", "--store", "--runs-dir", "--run-id"):
        assert option in r.stdout, (option, r.stdout)


def test_jobs_import_the_shipped_package_first(tmp_path: Path) -> None:
    """The uploaded working dir's ``repeval`` wins over an installed one (the job runs the code it was sent)."""
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    shutil.copytree(REPO / "repeval", tmp_path / "repeval", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import sys; sys.path.insert(0, 'jobs'); import _common, repeval; print(repeval.__file__)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve() == (tmp_path / "repeval" / "__init__.py").resolve()
