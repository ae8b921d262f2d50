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
        "export RAY_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token",
        "ray get-auth-token --generate",
        "rm -rf dist/cluster && pip wheel --no-deps -w dist/cluster .",
    ):
        assert command in text, command


def test_every_cluster_file_the_doc_names_exists():
    named = set(re.findall(r"cluster/[\w./-]+\.(?:yaml|md|py)", doc_text()))
    assert {"cluster/aws.yaml", "cluster/gcp.yaml", "cluster/runtime_env.yaml"} <= named
    missing = sorted(path for path in named if not (REPO / path).is_file())
    assert missing == []


def test_doc_and_configs_agree():
    text = doc_text()
    aws = yaml.safe_load((REPO / "cluster" / "aws.yaml").read_text(encoding="utf-8"))
    no_deps = next(c for c in aws["setup_commands"] if c.startswith("pip install --no-deps"))
    assert no_deps in text
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
