"""cluster/runtime_env.yaml: a runtime_env Ray accepts, that ships this checkout (and nothing
heavy) and installs what repeval imports. Uses Ray's own classes and packaging code; no cluster."""

from __future__ import annotations

import copy
import importlib.util
import pathlib
import tomllib
import zipfile
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.runtime_env import RuntimeEnv, RuntimeEnvConfig

REPO = pathlib.Path(__file__).resolve().parents[2]
TORCH_PIN = "torch==2.13.0"  # DESIGN.md: a bare `torch` pulls an unpinned CUDA build


def load_runtime_env() -> dict[str, Any]:
    with open(REPO / "cluster" / "runtime_env.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def runtime_env_problems(env: dict[str, Any]) -> list[str]:
    """What Ray would reject, plus the typos it silently accepts: RuntimeEnv takes unknown
    top-level keys as plugin names, and RuntimeEnvConfig drops unknown keys with a warning."""
    problems = []
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as exc:
        problems.append(f"RuntimeEnv: {exc}")
    unknown = set(env) - RuntimeEnv.known_fields
    if unknown:
        problems.append(f"unknown runtime_env keys {sorted(unknown)}")
    unknown_config = set(env.get("config", {})) - RuntimeEnvConfig.known_fields
    if unknown_config:
        problems.append(f"unknown runtime_env config keys {sorted(unknown_config)}")
    return problems


def test_runtime_env_is_valid():
    env = load_runtime_env()
    assert runtime_env_problems(env) == []
    built = RuntimeEnv(**env)
    assert built.working_dir() == "."
    assert TORCH_PIN in built.pip_config()["packages"]
    assert all(isinstance(v, str) for v in built.env_vars().values()) and built.env_vars()
    assert built.get("config")["setup_timeout_seconds"] > 600


def _rename(env: dict[str, Any], old: str, new: str, inside: str | None = None) -> dict[str, Any]:
    env = copy.deepcopy(env)
    node = env[inside] if inside else env
    node[new] = node.pop(old)
    return env


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda e: _rename(e, "env_vars", "env_var"), "env_var", id="env_var"),
        pytest.param(lambda e: _rename(e, "working_dir", "workdir"), "workdir", id="workdir"),
        pytest.param(lambda e: _rename(e, "packages", "packags", inside="pip"), "packags", id="pip packags"),
        pytest.param(
            lambda e: _rename(e, "setup_timeout_seconds", "setup_timeout", inside="config"),
            "setup_timeout",
            id="config setup_timeout",
        ),
        pytest.param(lambda e: {**e, "env_vars": {"OMP_NUM_THREADS": 4}}, "env_vars", id="non-string env var"),
        pytest.param(lambda e: {**e, "uv": ["numpy"]}, "cannot be specified at the same time", id="pip and uv"),
    ],
)
def test_broken_runtime_env_is_caught(mutate, expected):
    problems = runtime_env_problems(mutate(load_runtime_env()))
    assert any(expected in p for p in problems), problems


def _uploaded_files(excludes: list[str], include_gitignore: bool) -> list[pathlib.Path]:
    """The files `ray job submit --working-dir .` would zip, walked with Ray's own rules
    (`excludes`, plus .gitignore / .rayignore unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1)."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    files: list[pathlib.Path] = []
    _dir_travel(
        REPO,
        [_get_excludes(REPO, excludes)],
        lambda path: files.append(path) if path.is_file() else None,
        include_gitignore=include_gitignore,
    )
    return files


HEAVY = (".venv/", ".git/", "dist/", "store/", "runs/")


def _package_sources() -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in (REPO / "repeval").rglob("*.py") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("include_gitignore", [True, False], ids=["gitignore", "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"])
def test_working_dir_upload_skips_the_venv_and_keeps_the_package(include_gitignore):
    from ray._private.runtime_env.packaging import PACKAGE_SIZE_WARNING

    files = _uploaded_files(load_runtime_env()["excludes"], include_gitignore)
    relative = {path.relative_to(REPO).as_posix() for path in files}
    for heavy in HEAVY:
        assert not any(r.startswith(heavy) for r in relative), heavy
    assert not any("__pycache__" in r or ".egg-info/" in r for r in relative)
    package = _package_sources()
    assert package and package <= relative, sorted(package - relative)
    assert "configs/quickstart.yaml" in relative and "cluster/runtime_env.yaml" in relative
    assert sum(path.stat().st_size for path in files) < PACKAGE_SIZE_WARNING


def test_excludes_are_anchored_at_the_repo_root():
    """The top-level store/ and runs/ outputs go; the repeval.store package and a runs.py stay."""
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(REPO, load_runtime_env()["excludes"])
    assert excluded(REPO / "store" / "x.parquet") and excluded(REPO / "runs" / "r1" / "results.parquet")
    assert excluded(REPO / ".venv" / "bin" / "python") and excluded(REPO / "repeval" / "__pycache__" / "a.pyc")
    assert not excluded(REPO / "repeval" / "store" / "parquet.py")
    assert not excluded(REPO / "repeval" / "pipeline" / "runs.py")
    assert not excluded(REPO / "data" / "quickstart" / "manifest.csv")


def test_packaged_working_dir_zip_has_one_top_level_directory(tmp_path):
    """cluster/package_working_dir.py writes what a remote working_dir needs (RayJob)."""
    spec = importlib.util.spec_from_file_location("package_working_dir", REPO / "cluster" / "package_working_dir.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "repeval.zip"
    assert module.main([str(out)]) == 0
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {REPO.name}, tops
    inside = {name.split("/", 1)[1] for name in names if "/" in name}
    assert _package_sources() <= inside
    assert "configs/quickstart.yaml" in inside and "pyproject.toml" in inside
    for heavy in HEAVY:
        assert not any(name.startswith(heavy) for name in inside), heavy


def _names(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(r) for r in requirements]
    return {canonicalize_name(r.name): r for r in parsed}


def test_pip_list_is_the_project_dependencies():
    """Same names and pins as pyproject.toml (dependencies + the `torch` extra), minus ray."""
    pyproject = REPO / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml: nothing to compare cluster/runtime_env.yaml's pip list with")
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = _names(project.get("dependencies", []) + project.get("optional-dependencies", {}).get("torch", []))
    wanted.pop("ray", None)  # the cluster's own Ray
    shipped = _names(load_runtime_env()["pip"]["packages"])
    assert sorted(set(wanted) - set(shipped)) == [], "missing from cluster/runtime_env.yaml (and rayjob.yaml)"
    assert sorted(set(shipped) - set(wanted)) == [], "not a repeval dependency"
    pins = {name: (str(shipped[name].specifier), str(wanted[name].specifier)) for name in wanted}
    assert {name: pair for name, pair in pins.items() if pair[0] != pair[1]} == {}
