"""A JSON Schema of the configuration file, for editors (``repeval schema``; ``configs/repeval.schema.json``).

With the YAML language server (VS Code's YAML extension, and editors that embed it), a first line
``# yaml-language-server: $schema=repeval.schema.json`` gives completion, hover documentation and
inline errors for typos while a config is written. The schema is pydantic's schema of
:class:`~repeval.config.schema.Config` widened to every spelling the loader accepts — an embedding
model as a bare id or with ``name``/``type`` for ``id``, a deformation scenario as a list of
transforms or a single transform, mir_ref's key aliases (``features``, ``probes``, ``aggregation``),
top-level ``x-`` keys for YAML anchors — so it never flags a file that ``repeval validate`` accepts.
It checks shape and spelling; the loader still has the last word (registered model, metric and
dataset names, value ranges, cross-field rules), with errors that name the fix.
"""

from __future__ import annotations

import json
from typing import Any


def _replace_refs(node: Any, old: str, new: str, skip: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == skip:
                continue
            if key == "$ref" and value == old:
                node[key] = new
            else:
                _replace_refs(value, old, new, skip)
    elif isinstance(node, list):
        for item in node:
            _replace_refs(item, old, new, skip)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a repeval configuration file."""
    from repeval.config import schema as cs

    out = cs.Config.model_json_schema()
    defs = out["$defs"]
    # mir_ref's spellings of keys: the alias has the canonical key's schema, and either satisfies "required"
    for model in (cs.TaskConfig, cs.ExperimentConfig, cs.DatasetConfig, cs.RunConfig):
        d = defs.get(model.__name__)
        if d is None or not model.key_aliases:
            continue
        required = d.get("required", [])
        for alias, canonical in model.key_aliases.items():
            d["properties"][alias] = {**d["properties"][canonical], "description": f"mir_ref's spelling of {canonical}"}
            if canonical in required:
                required.remove(canonical)
                d.setdefault("allOf", []).append({"anyOf": [{"required": [canonical]}, {"required": [alias]}]})
        if "required" in d and not required:
            del d["required"]
    # an embedding model: a bare id, or an object whose id may be written as name or type
    emb = defs["EmbeddingModelConfig"]
    emb["properties"]["name"] = {"type": "string", "description": "the model id (an alternative to id)"}
    emb.pop("required", None)
    defs["EmbeddingModel"] = {
        "anyOf": [
            {"type": "string", "description": "a registered model id (`repeval models`)"},
            {"$ref": "#/$defs/EmbeddingModelConfig"},
        ]
    }
    _replace_refs(out, "#/$defs/EmbeddingModelConfig", "#/$defs/EmbeddingModel", skip="EmbeddingModel")
    # a deformation scenario: {name, steps}, a list of transforms, or one transform
    defs["Scenario"] = {
        "anyOf": [
            {"$ref": "#/$defs/DeformationScenario"},
            {"type": "array", "items": {"$ref": "#/$defs/DeformationStep"}, "minItems": 1},
            {"$ref": "#/$defs/DeformationStep"},
        ]
    }
    _replace_refs(out, "#/$defs/DeformationScenario", "#/$defs/Scenario", skip="Scenario")
    # an empty `hidden_units:` is a linear probe
    units = defs["ProbeConfig"]["properties"]["hidden_units"]
    defs["ProbeConfig"]["properties"]["hidden_units"] = {"anyOf": [units, {"type": "null"}], "default": []}
    # augment: scenario ids, or one id / `all` written as a string
    aug = defs["ExperimentConfig"]["properties"]["augment"]
    defs["ExperimentConfig"]["properties"]["augment"] = {
        "anyOf": [aug, {"type": "string"}, {"type": "null"}],
        "default": [],
        "description": "deformation scenarios (ids, or all) whose training tracks augment the probes' training data",
    }
    out["patternProperties"] = {"^x-": {"description": "ignored: a place for YAML anchors"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "repeval configuration",
        **{k: v for k, v in out.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(config_json_schema(), indent=1, sort_keys=True) + "\n"
