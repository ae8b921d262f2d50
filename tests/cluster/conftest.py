"""Loaders and offline validators for the files under cluster/ (no Ray cluster, no network).

- Launcher YAMLs: the JSON schema that ships in the ray wheel (`ray/autoscaler/ray-schema.json`),
  used as is. It already forbids unknown keys at the top level, in `docker`, `auth` and in each
  node type, but not inside `provider`, `node_config` or `file_mounts` (free-form objects).
- KubeRay manifests: `spec.versions[].schema.openAPIV3Schema` of KubeRay's CRDs, made strict the
  way `kubeconform -strict` does it: every object that lists `properties` and says nothing about
  `additionalProperties` gets `additionalProperties: false`. The CRDs live outside the repo
  (../shared/schemas/kuberay, or $REPEVAL_KUBERAY_SCHEMAS).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jsonschema
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_FILES = ("aws.yaml", "gcp.yaml")

# Keywords whose values are data (or lists of names), not sub-schemas: copied as they are.
_DATA_KEYWORDS = frozenset(
    {"default", "enum", "const", "example", "required", "x-kubernetes-list-map-keys", "x-kubernetes-validations"}
)
# Keywords whose values map names to sub-schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})


def load_yaml(path: pathlib.Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def error_report(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    """Every validation error as 'path/to/key: message', sorted by path."""
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return ["/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in errors]


def strict_crd_schema(node: Any) -> Any:
    """Turn a CRD's OpenAPI v3 structural schema into a JSON Schema that rejects unknown fields.

    - an object schema that lists `properties` and has no `additionalProperties` of its own gets
      `additionalProperties: false`, unless it carries `x-kubernetes-preserve-unknown-fields`;
    - `x-kubernetes-int-or-string` without an explicit `anyOf`/`type` becomes int-or-string
      (KubeRay's CRDs already spell out the `anyOf`; this covers CRDs that do not);
    - OpenAPI's `nullable: true` also admits null.
    """
    if isinstance(node, list):
        return [strict_crd_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strict_crd_schema(sub) for name, sub in value.items()}
        elif key in _DATA_KEYWORDS:
            out[key] = value
        else:
            out[key] = strict_crd_schema(value)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out and "type" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


class CrdValidator:
    """Strict validator for one served version of one KubeRay CRD."""

    def __init__(self, crd: dict[str, Any], version: str = "v1") -> None:
        self.group = crd["spec"]["group"]
        self.kind = crd["spec"]["names"]["kind"]
        self.version = version
        (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        self.schema = strict_crd_schema(entry["schema"]["openAPIV3Schema"])
        jsonschema.Draft7Validator.check_schema(self.schema)
        self.validator = jsonschema.Draft7Validator(self.schema)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def errors(self, doc: Any) -> list[str]:
        found = error_report(self.validator, doc)
        # The CRD leaves apiVersion, kind and metadata to the API server: check what it would.
        if not isinstance(doc, dict):
            return found or ["document is not a mapping"]
        if doc.get("apiVersion") != self.api_version:
            found.append(f"apiVersion: expected {self.api_version!r}, got {doc.get('apiVersion')!r}")
        if doc.get("kind") != self.kind:
            found.append(f"kind: expected {self.kind!r}, got {doc.get('kind')!r}")
        extra = set(doc.get("metadata", {})) - {"name", "namespace", "labels", "annotations"}
        if extra:
            found.append(f"metadata: unexpected keys {sorted(extra)}")
        if not doc.get("metadata", {}).get("name"):
            found.append("metadata.name: missing")
        return found


def _kuberay_schema_dir() -> pathlib.Path:
    candidates = [os.environ.get("REPEVAL_KUBERAY_SCHEMAS"), REPO.parent / "shared" / "schemas" / "kuberay"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "ray.io_rayclusters.yaml").is_file():
            return pathlib.Path(candidate)
    raise FileNotFoundError(
        "KubeRay CRDs not found: expected ray.io_rayclusters.yaml and ray.io_rayjobs.yaml in "
        f"{candidates[1]} — set REPEVAL_KUBERAY_SCHEMAS to the directory holding them"
    )


def _load_big_yaml(path: pathlib.Path) -> Any:
    # The CRDs are 1-2 MB: the libyaml safe loader parses them ~10x faster than the pure-Python one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)


@pytest.fixture(scope="session")
def raycluster_validator() -> CrdValidator:
    return CrdValidator(_load_big_yaml(_kuberay_schema_dir() / "ray.io_rayclusters.yaml"))


@pytest.fixture(scope="session")
def rayjob_validator() -> CrdValidator:
    return CrdValidator(_load_big_yaml(_kuberay_schema_dir() / "ray.io_rayjobs.yaml"))


@pytest.fixture(scope="session")
def ray_launcher_schema() -> dict[str, Any]:
    import ray.autoscaler

    path = pathlib.Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def launcher_validator(ray_launcher_schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    # The schema declares draft-07; use exactly that dialect, unmodified.
    assert ray_launcher_schema["$schema"].startswith("http://json-schema.org/draft-07/")
    return jsonschema.Draft7Validator(ray_launcher_schema)


@pytest.fixture(scope="session")
def strictify():
    """The CRD-schema strictifier, for tests of the validator itself."""
    return strict_crd_schema


@pytest.fixture(scope="session")
def schema_errors():
    """`error_report(validator, doc)`: validation errors as 'path: message' strings."""
    return error_report
