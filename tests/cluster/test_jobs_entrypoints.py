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


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed: nothing listens there


def test_ray_address_where_nothing_listens_fails_at_once_naming_the_fix() -> None:
    """A stale ``RAY_ADDRESS`` (a cluster stopped since the export) made Ray 2.60's ``ray.init`` retry for minutes."""
    from repeval.ray_utils import RayUnreachable, check_ray_address

    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(RayUnreachable, match="unset RAY_ADDRESS to run an embedded Ray"):
            check_ray_address(address, timeout_s=5)
    with pytest.raises(ValueError, match="RAY_API_SERVER_ADDRESS"):  # what `ray job submit` is given
        check_ray_address("http://127.0.0.1:8265")
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_ray_address(f"127.0.0.1:{listening.getsockname()[1]}")  # a port that answers: left to Ray
    check_ray_address("auto")  # Ray's own lookup of the local cluster


@pytest.mark.parametrize(
    ("address", "given"),
    [("127.0.0.1:{port}", "RAY_ADDRESS"), ("http://127.0.0.1:8265", "RAY_ADDRESS"), ("127.0.0.1:{port}", "--address")],
    ids=["stopped", "dashboard", "option"],
)
def test_plan_with_a_bad_ray_address_is_one_line(address: str, given: str, tmp_path: Path) -> None:
    address = address.format(port=_closed_port())
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "COLUMNS": "200", "NO_COLOR": "1"}
    if given == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = address
    option = ["--address", address] if given == "--address" else []
    r = subprocess.run(
        [sys.executable, "-m", "repeval.cli", "plan", str(REPO / "configs" / "quickstart.yaml"), *option],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=90,  # Ray's own retries took minutes
        check=False,
    )
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr and f"{given}={address}" in r.stderr, r.stderr
