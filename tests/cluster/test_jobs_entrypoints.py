"""jobs/: the ``ray job submit`` entry points (issue 8) — one per stage, thin wrappers of the CLI."""

from __future__ import annotations

import json
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
    # the usage line is the line that runs it: it read `jobs/run.py run [OPTIONS]`, and that `run` was then taken
    # for the config ("Got unexpected extra argument")
    assert f"Usage: jobs/{stage}.py [OPTIONS] " in r.stdout and f"{stage}.py {stage}" not in r.stdout, r.stdout


def test_a_jobs_usage_line_runs_and_its_errors_name_it(tmp_path: Path) -> None:
    """What the usage line of ``python jobs/run.py`` shows is what it takes; repeval's own options go anywhere."""
    from typer.testing import CliRunner

    from repeval.cli import hoist_global_options, script_command

    def job(*argv: str) -> tuple[int, str]:
        """What ``python jobs/run.py *argv`` does (jobs/_common.main, without its Ray note): exit status, output."""
        with CliRunner().isolation() as (_, _, output):
            try:
                script_command("run", "jobs/run.py")(hoist_global_options(["jobs/run.py", *argv]), prog_name="")
            except SystemExit as exc:
                return int(exc.code or 0), " ".join(output.getvalue().decode().split())
        raise AssertionError("a command line ends with SystemExit")

    missing = str(tmp_path / "missing.yaml")
    code, said = job(missing, "--bogus")
    assert code == 2 and "Usage: jobs/run.py [OPTIONS] " in said, said
    assert "Try 'jobs/run.py --help' for help." in said and "No such option: --bogus" in said, said
    code, said = job("run", missing)  # the extra word the old usage line showed
    assert code == 2 and "unexpected extra argument" in said, said
    code, said = job(missing, "--run-id", "r", "-v")  # the command runs: it looks for the config
    assert code == 2 and "missing.yaml" in said and "Usage:" not in said, said
    code, said = job(missing, "--version")
    assert code == 0 and said.startswith("repeval "), said


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


def _job_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``ray job submit`` driver whose runtime env has a working_dir, as Ray 2.60 sets it."""
    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}, "metadata": {}}
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job), "PYTHONPATH": str(REPO), "COLUMNS": "300"}


def _job_config(tmp_path: Path, manifest: str, **run: str) -> Path:
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    cfg["run"].update(run)
    cfg["experiments"][0]["datasets"][0]["manifest"] = manifest
    path = tmp_path / "configs" / "job.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repeval.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_job_with_a_relative_store_or_runs_dir_is_refused_naming_the_fix(tmp_path: Path) -> None:
    """Under ``ray job submit`` the job runs in Ray's copy of the uploaded directory: the quickstart's ``store`` and
    ``runs`` (relative) were written there, on the head's temp dir, and the run succeeded, printing a results path
    under Ray's session directory — lost with it, and started afresh whenever the code changed."""
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("track_id,audio_path,instrument,split\nt1,t1.wav,piano,train\n")
    config = _job_config(tmp_path, str(manifest))  # the quickstart's run block: store: store, runs_dir: runs
    r = _cli(["run", str(config)], tmp_path, _job_env(tmp_path))
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: run.store 'store' and run.runs_dir 'runs' are relative paths"), line
    assert str(tmp_path) in line and '--store "$PWD/store" --runs-dir "$PWD/runs"' in line, line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists()
    # --store given absolute: only the runs directory is named
    r = _cli(["run", str(config), "--store", str(tmp_path / "abs")], tmp_path, _job_env(tmp_path))
    assert r.returncode == 1 and "error: run.runs_dir 'runs' is a relative path" in r.stderr, r.stderr[-3000:]
    assert "run.store" not in r.stderr
    # outside a job (no working_dir copy) relative paths are the user's: left alone
    from repeval.ray_cluster import check_job_output_paths

    check_job_output_paths("store", "runs", env={})


def test_data_left_out_of_a_job_upload_names_the_gitignore_fix(tmp_path: Path) -> None:
    """``ray job submit --working-dir .`` leaves out what .gitignore lists (data/): the job's error said only to
    render the data, which the submitter had done."""
    config = _job_config(tmp_path, "data/quickstart/manifest.csv", store=str(tmp_path / "s"), runs_dir=str(tmp_path))
    r = _cli(["run", "configs/job.yaml"], tmp_path, _job_env(tmp_path))
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "manifest: no such file" in r.stderr and "RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1" in r.stderr, r.stderr
    outside = {k: v for k, v in _job_env(tmp_path).items() if k != "RAY_JOB_CONFIG_JSON_ENV_VAR"}
    r = _cli(["run", str(config)], tmp_path, outside)
    assert "manifest: no such file" in r.stderr and "RAY_RUNTIME_ENV_IGNORE_GITIGNORE" not in r.stderr, r.stderr


def test_a_cluster_refusing_the_token_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attaching without the cluster's token: Ray 2.60 raised "Failed to connect to Ray cluster" whose cause's first
    line was "Last connection error: Traceback (most recent call last):" — the one-line error said nothing of the
    token. The exception chain is the one Ray raised against a real token-authenticated cluster.

    `repeval plan --address` attaches from a process without a Ray; a process attached already (a test session's Ray
    started before this test) is asked nothing of the token: it does not attach, and reads the Ray it has."""
    import socket

    import ray

    from repeval.plan_memory import NODE_MEMORY
    from repeval.ray_cluster import RayAuthRefused
    from repeval.ray_utils import cluster_resources

    def refuse(*args: object, **kwargs: object) -> None:
        inner = (
            "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
            '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
            "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing or "
            "incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token')."
        )
        try:
            raise RuntimeError(inner)
        except RuntimeError as exc:
            raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:1") from exc

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in `repeval plan`, whatever ran before here
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with socket.socket() as listening:  # a port that answers, as the cluster's GCS does
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        with pytest.raises(RayAuthRefused, match="export RAY_AUTH_MODE=token") as refused:
            cluster_resources(address, given="--address")
    assert f"--address={address}" in str(refused.value) and "RAY_AUTH_MODE is unset" in str(refused.value)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # attached already: no ray.init, its own resources
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 3.0, "memory": 2.0**30}}])
    assert cluster_resources(address, given="--address") == {"CPU": 3.0, NODE_MEMORY: 2.0**30}  # its largest node's


def test_the_recorded_resubmission_runs_the_code_the_job_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``status.json``'s ``job.submit``: a job whose working directory was uploaded (``--working-dir .``: Ray's
    ``gcs://_ray_pkg_…`` copy) is submitted again from the checkout as docs/cluster.md does; one that ran a zip from a
    bucket (the KubeRay RayJob's ``working_dir: s3://…/repeval.zip``) was also told ``--working-dir .`` — another
    code, uploaded from wherever it was pasted; it names that zip (which ``--working-dir`` takes, over the runtime
    env's). A job without a working directory is submitted without one."""
    import json

    import yaml

    from repeval.ray_cluster import job_submission

    (tmp_path / "cluster").mkdir()  # the job's working directory (no .gitignore'd folder in it)
    shutil.copy(REPO / "cluster" / "runtime_env.yaml", tmp_path / "cluster")
    monkeypatch.chdir(tmp_path)
    shipped = yaml.safe_load((tmp_path / "cluster" / "runtime_env.yaml").read_text())  # as the RayJob's too
    resume = "repeval run configs/q.yaml --store s3://b/store --runs-dir s3://b/runs"

    def submit(runtime_env: dict) -> str:
        env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": runtime_env, "metadata": {}})}
        return job_submission(resume, "jobs/run.py", env)["submit"]

    entry = "-- python jobs/run.py configs/q.yaml --store s3://b/store --runs-dir s3://b/runs"
    uploaded = submit({**shipped, "working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"})
    assert uploaded == f"ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml {entry}"
    zipped = submit({**shipped, "working_dir": "s3://repeval-bucket/code/repeval.zip"})
    assert zipped == (
        f"ray job submit --working-dir s3://repeval-bucket/code/repeval.zip --runtime-env cluster/runtime_env.yaml "
        f"{entry}"
    )
    assert submit({}) == f"ray job submit {entry}"


def test_a_job_run_with_its_own_runtime_env_is_not_told_to_resubmit_with_the_repos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job submitted with a copy of ``cluster/runtime_env.yaml`` that adds ``py_modules`` (docs/cluster.md, for a
    plugin package outside the checkout) or bucket credentials in ``env_vars`` was told to resubmit with
    ``--runtime-env cluster/runtime_env.yaml``: without them, where its plugin or its bucket is out of reach. The
    resubmission names the job's own file then, and which keys of it differ; a job run with the repo's file, or with
    ``--working-dir .`` alone, is resubmitted as it was."""
    import yaml
    from ray.runtime_env import RuntimeEnv

    from repeval.ray_cluster import job_submission, resume_hint

    (tmp_path / "cluster").mkdir()
    shutil.copy(REPO / "cluster" / "runtime_env.yaml", tmp_path / "cluster")  # the job's copy of the upload
    monkeypatch.chdir(tmp_path)
    shipped = yaml.safe_load((tmp_path / "cluster" / "runtime_env.yaml").read_text())
    resume = "repeval run c.yaml --store s3://b/store --runs-dir s3://b/runs"

    def job(**changes: object) -> dict[str, str]:
        # what Ray hands the driver: the file as `ray job submit` normalizes it, the upload's URI in its working_dir
        runtime_env = RuntimeEnv(**{k: v for k, v in {**shipped, **changes}.items() if k != "working_dir"}).to_dict()
        runtime_env["working_dir"] = "gcs://_ray_pkg_0123456789abcdef.zip"
        env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": runtime_env, "metadata": {}})}
        return job_submission(resume, "jobs/run.py", env)

    assert "--runtime-env cluster/runtime_env.yaml --" in job()["submit"]
    own = job(env_vars={**shipped["env_vars"], "AWS_ACCESS_KEY_ID": "x"}, py_modules=["gcs://_ray_pkg_1.zip"])
    assert "--runtime-env YOUR_RUNTIME_ENV.yaml --" in own["submit"] and "cluster/runtime_env.yaml" not in own["submit"]
    assert own["runtime_env"] == "env_vars, py_modules"
    assert "YOUR_RUNTIME_ENV.yaml: the runtime env file the job was submitted with — its env_vars, py_modules" in (
        resume_hint(resume, own)
    )
    env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_2.zip"}})}
    assert job_submission(resume, "jobs/run.py", env)["submit"].startswith("ray job submit --working-dir . -- python")


def test_a_job_outside_a_checkout_or_without_a_working_dir_keeps_its_runtime_env_on_resubmission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job whose working directory has no ``cluster/runtime_env.yaml`` (a folder of configs, repeval installed on
    the cluster) was told to resubmit with ``--runtime-env cluster/runtime_env.yaml``, a file it does not have, even
    when submitted with ``--working-dir .`` alone; one submitted with ``--runtime-env-json '{"env_vars": …}'`` and no
    working directory was told to resubmit without it, its bucket's credentials dropped. The runtime envs are as Ray
    hands them to the driver (a real `ray start` node's); no value of ``env_vars`` is recorded."""
    from repeval.ray_cluster import job_submission, resume_hint

    monkeypatch.chdir(tmp_path)  # no cluster/runtime_env.yaml here
    resume = "repeval run c.yaml --store s3://b/store --runs-dir s3://b/runs"

    def job(runtime_env: dict[str, object]) -> dict[str, str]:
        env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": runtime_env, "metadata": {}})}
        return job_submission(resume, None, env)

    upload = "gcs://_ray_pkg_a7f7964052841ba4.zip"
    assert job({"working_dir": upload, "env_vars": {}})["submit"] == f"ray job submit --working-dir . -- {resume}"
    secret = {"AWS_SECRET_ACCESS_KEY": "SUPERSECRET"}
    for runtime_env, options in (
        ({"working_dir": upload, "env_vars": secret}, "--working-dir . --runtime-env YOUR_RUNTIME_ENV.yaml"),
        ({"env_vars": secret}, "--runtime-env YOUR_RUNTIME_ENV.yaml"),
    ):
        own = job(runtime_env)
        assert own == {"submit": f"ray job submit {options} -- {resume}", "runtime_env": "env_vars"}, own
        assert "its env_vars are not cluster/runtime_env.yaml's" in resume_hint(resume, own)
    assert job({})["submit"] == f"ray job submit -- {resume}"
