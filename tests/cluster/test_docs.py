"""docs/cluster.md: the commands it gives exist, point at real files and agree with cluster/."""

from __future__ import annotations

import pathlib
import re

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cluster.md"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_walkthrough_gives_the_exact_commands():
    text = doc_text()
    for command in (
        "ray up cluster/aws.yaml",
        "ray up cluster/gcp.yaml",
        "ray dashboard cluster/aws.yaml",
        "ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/run.py "
        "configs/quickstart.yaml --store s3://bucket/store",
        "kubectl apply -f cluster/kuberay/raycluster.yaml",
        "kubectl apply -f cluster/kuberay/rayjob.yaml",
        "export RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token",
        "ray get-auth-token --generate",
        "rm -rf dist/cluster && pip wheel --no-deps -w dist/cluster .",
    ):
        assert command in text, command


def test_every_cluster_file_the_doc_names_exists():
    named = set(re.findall(r"(?<![\w/])cluster/[\w./-]+\.(?:yaml|md|py)", doc_text()))  # not tests/cluster/
    assert {"cluster/aws.yaml", "cluster/gcp.yaml", "cluster/runtime_env.yaml"} <= named
    missing = sorted(path for path in named if not (REPO / path).is_file())
    assert missing == []


def test_doc_and_configs_agree():
    text = doc_text()
    aws = yaml.safe_load((REPO / "cluster" / "aws.yaml").read_text(encoding="utf-8"))
    no_deps = next(c for c in aws["setup_commands"] if c.startswith("pip install --no-deps"))
    assert no_deps in text
    # the extras every node installs, and the musicnn conversion its setup runs
    install = next(c for c in aws["setup_commands"] if "--force-reinstall" in c)
    extras = re.search(r'"\$\{W\}\[([^\]]+)\]"', install)
    assert extras and f"`{extras.group(1)}` extras" in " ".join(text.split()), install
    convert = next(c for c in aws["setup_commands"] if "musicnn_onnx" in c)
    convert_all = "python -m repeval.models.musicnn_onnx --all"
    assert convert_all in convert and convert_all in text
    shim = next(c for c in aws["setup_commands"] if "repeval.cpu" in c)
    assert shim.startswith("python -m repeval.cpu build") and "python -m repeval.cpu build" in text
    assert 'LD_PRELOAD="$(python -m repeval.cpu preload)' in aws["head_start_ray_commands"][1] and (
        "python -m repeval.cpu preload" in text
    )
    assert "--dashboard-host=127.0.0.1" in text and "--dashboard-host=127.0.0.1" in aws["head_start_ray_commands"][1]
    assert f"idle_timeout_minutes: {aws['idle_timeout_minutes']}" in text
    job = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayjob.yaml").read_text(encoding="utf-8"))["spec"]
    assert " ".join(job["entrypoint"].split()) in " ".join(text.split())
    assert f"ttlSecondsAfterFinished: {job['ttlSecondsAfterFinished']}" in text


def _submit_commands() -> list[str]:
    """Every `ray job submit` command line in the doc's code blocks and the cluster files' comments."""
    lines = doc_text().splitlines()
    for path in sorted((REPO / "cluster").rglob("*.yaml")):  # the usage comments: `# ... ray job submit \` + more
        comment = "\n".join(line.lstrip("# ") for line in path.read_text(encoding="utf-8").splitlines())
        lines += comment.replace("\\\n", " ").splitlines()
    command = re.compile(r"^(?:[A-Z_]+=\S+ )*ray job submit --working-dir \. ")  # a command, not prose naming one
    return [" ".join(line.split()) for line in lines if command.match(" ".join(line.split()))]


def test_submitted_jobs_ship_the_checkout_without_the_venv_and_write_outside_the_upload():
    """The job runs in Ray's unpacked copy of the checkout: relative store/runs dirs would be written inside it
    (and be lost with it), and `--working-dir .` without cluster/runtime_env.yaml's excludes uploads .git."""
    commands = _submit_commands()
    assert len(commands) >= 5, commands
    for command in commands:
        assert "--runtime-env cluster/runtime_env.yaml" in command, command
        for flag in ("--store", "--runs-dir"):
            value = re.search(rf"{flag} (\S+)", command)
            assert value, (flag, command)
            where = value.group(1).strip("\"'")
            assert where.startswith(("s3://", "gs://", "/", "$PWD/")), (flag, where, command)


def test_ray_job_address_is_not_exported_as_ray_address():
    """RAY_ADDRESS is also what `repeval` commands attach to: a dashboard URL there breaks them in that shell."""
    files = [DOC, REPO / "README.md", *sorted((REPO / "cluster").rglob("*.yaml"))]
    found = [f"{p.name}: {m}" for p in files for m in re.findall(r"RAY_ADDRESS=https?://\S+", p.read_text("utf-8"))]
    assert found == []
    assert "export RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265" in doc_text()


def test_submit_commands_ship_the_data_their_config_reads_from_a_gitignored_folder():
    """A job runs in Ray's copy of the upload, which leaves out what .gitignore lists: a config whose data lies in such
    a folder (the quickstart's data/) finds it only when the command sets RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1. The
    launcher's and KubeRay's commands, copied as given, stopped at once ("manifest: no such file")."""
    gitignore = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    ignored = {line.strip().strip("/") for line in gitignore if line.startswith("/") and line.rstrip().endswith("/")}
    assert "data" in ignored
    checked = 0
    for command in _submit_commands():
        found = re.search(r" python jobs/\w+\.py (\S+)", command)
        assert found, command
        cfg = yaml.safe_load((REPO / found.group(1)).read_text(encoding="utf-8"))
        datasets = [d for exp in cfg["experiments"] for d in exp["datasets"]]
        paths = [str(d[key]) for d in datasets for key in ("manifest", "dir") if d.get(key)]
        if any(not p.startswith("/") and "://" not in p and p.split("/")[0] in ignored for p in paths):
            checked += 1
            assert "RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1" in command.partition("ray job submit ")[0].split(), command
    assert checked >= 5
