"""cluster/kuberay/*.yaml: strict validation against KubeRay's CRDs (unknown fields are errors,
as with `kubeconform -strict`), proof that the validator bites, and what repeval needs from the
manifests (groups, GPUs, shared memory, storage, auth, the job)."""

from __future__ import annotations

import copy
import pathlib
import re
import shlex
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.runtime_env import RuntimeEnv

REPO = pathlib.Path(__file__).resolve().parents[2]
KUBERAY = REPO / "cluster" / "kuberay"
MANIFESTS = {"raycluster.yaml": "raycluster_validator", "rayjob.yaml": "rayjob_validator"}
CLOUD_SCHEMES = ("s3://", "gs://", "abfss://", "hdfs://")
_QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def load(name: str) -> dict[str, Any]:
    with open(KUBERAY / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def quantity(value: int | str) -> float:
    """A Kubernetes resource quantity ("16Gi", "8", 1) as a number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?|Ki)?", str(value))
    assert match, f"unsupported quantity {value!r}"
    return float(match.group(1)) * _QUANTITY[match.group(2) or ""]


def cluster_spec(name: str) -> dict[str, Any]:
    doc = load(name)
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def groups(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """head + worker groups by name."""
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


# ---------------------------------------------------------------------------- strict validation


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_validates_strictly_against_the_crd(name, request):
    validator = request.getfixturevalue(MANIFESTS[name])
    assert validator.errors(load(name)) == []


def _at(doc: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = doc
    for step in path.split(".") if path else []:
        node = node[int(step)] if step.isdigit() else node[step]
    return node


RAYCLUSTER_GROUP = "spec.workerGroupSpecs.1"
RAYJOB_CLUSTER = "spec.rayClusterSpec"
MISSPELLINGS = [
    ("raycluster.yaml", "spec.workerGroupSpecs.0", "replicas", "replica"),
    ("raycluster.yaml", "spec.headGroupSpec", "rayStartParams", "rayStartParam"),
    ("raycluster.yaml", "spec", "rayVersion", "rayversion"),
    ("raycluster.yaml", "spec", "enableInTreeAutoscaling", "enableInTreeAutoScaling"),
    ("raycluster.yaml", f"{RAYCLUSTER_GROUP}.template.spec.containers.0", "resources", "resource"),
    ("raycluster.yaml", f"{RAYCLUSTER_GROUP}.template.spec.containers.0.resources", "limits", "limit"),
    ("raycluster.yaml", f"{RAYCLUSTER_GROUP}.template.spec.volumes.0", "emptyDir", "emptydir"),
    ("raycluster.yaml", f"{RAYCLUSTER_GROUP}.template.spec.tolerations.0", "operator", "operater"),
    ("raycluster.yaml", f"{RAYCLUSTER_GROUP}.template.spec.containers.0.volumeMounts.0", "mountPath", "mountpath"),
    ("rayjob.yaml", "spec", "shutdownAfterJobFinishes", "shutdownAfterJobFinish"),
    ("rayjob.yaml", "spec", "ttlSecondsAfterFinished", "ttlSecondAfterFinished"),
    ("rayjob.yaml", "spec", "runtimeEnvYAML", "runtimeEnvYaml"),
    ("rayjob.yaml", f"{RAYJOB_CLUSTER}.headGroupSpec", "rayStartParams", "rayStartParam"),
    ("rayjob.yaml", f"{RAYJOB_CLUSTER}.workerGroupSpecs.0", "replicas", "replica"),
    ("rayjob.yaml", f"{RAYJOB_CLUSTER}.workerGroupSpecs.1.template.spec", "tolerations", "toleration"),
]


@pytest.mark.parametrize(
    ("name", "path", "old", "new"),
    MISSPELLINGS,
    ids=[f"{name.split('.')[0]}-{new}" for name, _, _, new in MISSPELLINGS],
)
def test_misspelt_field_fails_validation(name, path, old, new, request):
    doc = copy.deepcopy(load(name))
    parent = _at(doc, path)
    parent[new] = parent.pop(old)
    errors = request.getfixturevalue(MANIFESTS[name]).errors(doc)
    assert any(f"'{new}' was unexpected" in e for e in errors), errors


BAD_VALUES = [
    ("spec.headGroupSpec.template.spec.containers.0.resources.limits", "memory", "16GB", "does not match"),
    ("spec.workerGroupSpecs.0", "replicas", "1", "is not of type 'integer'"),
    ("spec.authOptions", "mode", "tokens", "is not one of"),
    ("spec.workerGroupSpecs.0.rayStartParams", "object-store-memory", 10**10, "is not of type 'string'"),
    ("spec.workerGroupSpecs.1.template.spec.containers.0.resources.limits", "nvidia.com/gpu", 0.5, "is not valid"),
]


@pytest.mark.parametrize(("path", "key", "value", "message"), BAD_VALUES, ids=[key for _, key, _, _ in BAD_VALUES])
def test_wrong_value_fails_validation(path, key, value, message, raycluster_validator):
    doc = copy.deepcopy(load("raycluster.yaml"))
    _at(doc, path)[key] = value
    errors = raycluster_validator.errors(doc)
    assert any(message in e for e in errors), errors


def test_apiversion_kind_and_metadata_are_checked(raycluster_validator, rayjob_validator):
    cluster = load("raycluster.yaml")
    assert any("kind" in e for e in rayjob_validator.errors(cluster))  # a RayCluster is no RayJob
    wrong = copy.deepcopy(cluster)
    wrong["apiVersion"] = "ray.io/v1alpha1"
    wrong["metadata"]["lables"] = {}
    errors = raycluster_validator.errors(wrong)
    assert any(e.startswith("apiVersion") for e in errors) and any("lables" in e for e in errors), errors


def _strict_validator(strictify, schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(strictify(schema))


def test_strictifier_closes_objects_and_keeps_maps_open(strictify):
    schema = {
        "type": "object",
        "properties": {
            # property names that are also JSON Schema keywords are still property schemas
            "default": {"type": "object", "properties": {"x": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    validator = _strict_validator(strictify, schema)
    assert validator.is_valid({"default": {"x": "a"}, "labels": {"any": "thing"}})
    assert not validator.is_valid({"defualt": {}})
    assert not validator.is_valid({"default": {"y": "a"}})
    assert not validator.is_valid({"labels": {"any": 1}})


def test_strictifier_handles_kubernetes_extensions(strictify):
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "quantity": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": r"^\d+(Gi|Mi)?$",
                "x-kubernetes-int-or-string": True,
            },
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
            "maybe": {"type": "string", "nullable": True},
        },
    }
    validator = _strict_validator(strictify, schema)
    assert validator.is_valid({"port": 8080, "quantity": 2, "free": {"a": 1, "anything": [1]}, "maybe": None})
    assert validator.is_valid({"port": "http", "quantity": "16Gi"})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"quantity": "16GB"})
    assert not validator.is_valid({"maybe": 3})


# ---------------------------------------------------------------------------- what repeval needs


@pytest.mark.parametrize("name", MANIFESTS)
def test_head_cpu_and_gpu_groups_autoscale(name):
    spec = cluster_spec(name)
    by_name = groups(spec)
    assert set(by_name) == {"head", "cpu", "gpu"}
    assert spec["enableInTreeAutoscaling"] is True
    assert by_name["head"]["rayStartParams"]["num-cpus"] == "0"
    for group_name in ("cpu", "gpu"):
        group = by_name[group_name]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] and group["maxReplicas"] > 0
    # repeval sizes its GPU actor pool from the GPUs present when the embed stage starts.
    assert by_name["gpu"]["minReplicas"] >= 1


@pytest.mark.parametrize("name", MANIFESTS)
def test_gpu_group_requests_gpus_and_tolerates_gpu_taints(name):
    by_name = groups(cluster_spec(name))
    gpu = by_name["gpu"]
    resources = ray_container(gpu)["resources"]
    assert quantity(resources["limits"]["nvidia.com/gpu"]) >= 1
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
    tolerations = gpu["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert gpu["resources"]["embed"] == "1"
    for other in ("head", "cpu"):
        assert "nvidia.com/gpu" not in ray_container(by_name[other])["resources"]["limits"]
        assert "embed" not in by_name[other].get("resources", {})


@pytest.mark.parametrize("name", MANIFESTS)
def test_images_match_ray_version(name):
    spec = cluster_spec(name)
    assert spec["rayVersion"] == ray.__version__
    for group_name, group in groups(spec).items():
        flavour = "gpu" if group_name == "gpu" else "cpu"
        assert ray_container(group)["image"] == f"rayproject/ray:{spec['rayVersion']}-py311-{flavour}"


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_pod_mounts_sized_shared_memory(name):
    for group_name, group in groups(cluster_spec(name)).items():
        pod = group["template"]["spec"]
        container = ray_container(group)
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory", group_name
        shm = quantity(volume["emptyDir"]["sizeLimit"])
        memory = quantity(container["resources"]["limits"]["memory"])
        assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]
        # tmpfs pages count against the memory limit: leave most of it to the workers' heaps.
        assert shm <= 0.5 * memory, group_name
        # Ray caps the object store at 95% of /dev/shm; ask for no more than fits.
        object_store = int(group["rayStartParams"]["object-store-memory"])
        assert 2**30 <= object_store <= 0.95 * shm, group_name


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_container_points_at_the_same_shared_storage(name):
    seen = set()
    for group in groups(cluster_spec(name)).values():
        env = env_of(ray_container(group))
        seen.add((env["REPEVAL_STORE"], env["REPEVAL_RUNS_DIR"]))
    ((store, runs_dir),) = seen
    assert store.startswith(CLOUD_SCHEMES) and runs_dir.startswith(CLOUD_SCHEMES)


@pytest.mark.parametrize("name", MANIFESTS)
def test_token_auth_and_no_public_service(name):
    spec = cluster_spec(name)
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"


def test_rayjob_runs_the_raycluster_spec():
    assert load("rayjob.yaml")["spec"]["rayClusterSpec"] == load("raycluster.yaml")["spec"]


def test_rayjob_entrypoint_runtime_env_and_lifecycle():
    job = load("rayjob.yaml")["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[:3] == ["python", "jobs/run.py", "configs/quickstart.yaml"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    env = env_of(ray_container(job["rayClusterSpec"]["headGroupSpec"]))
    assert flags == {"--store": env["REPEVAL_STORE"], "--runs-dir": env["REPEVAL_RUNS_DIR"]}

    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    assert job["submissionMode"] == "K8sJobMode"

    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert set(runtime_env) <= RuntimeEnv.known_fields
    RuntimeEnv(**runtime_env)
    # The submitter pod has no checkout: the code must come from a remote zip.
    assert runtime_env["working_dir"].startswith((*CLOUD_SCHEMES, "https://"))
    assert runtime_env["working_dir"].endswith(".zip")
    with open(REPO / "cluster" / "runtime_env.yaml", encoding="utf-8") as f:
        local = yaml.safe_load(f)
    for key in ("pip", "env_vars", "config"):
        assert runtime_env[key] == local[key], key
