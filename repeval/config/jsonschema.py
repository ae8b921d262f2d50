"""A JSON Schema of the configuration file, for editors (``repeval schema``; ``configs/repeval.schema.json``).

With the YAML language server (VS Code's YAML extension, and editors that embed it), a first line
``# yaml-language-server: $schema=repeval.schema.json`` gives completion, hover documentation and
inline errors for typos while a config is written. The schema is pydantic's schema of
:class:`~repeval.config.schema.Config` widened to every spelling the loader accepts — an embedding
model as a bare id or with ``name``/``type`` for ``id``, a deformation scenario as a list of
transforms or a single transform, mir_ref's key aliases (``features``, ``probes``, ``aggregation``),
top-level ``x-`` keys for YAML anchors — so it never flags a file that ``repeval validate`` accepts.
It checks shape and spelling, and a dataset key that its type's loader never reads (a manifest column on a
mirdata data set, ``index_path``, ``subset`` or ``unannotated`` where they do not apply; ``if``/``else`` on ``type`` and ``name``), and
a split key of the other ``split_type`` (``n_folds`` or ``fold`` on one split, ``split_ratios`` on k folds);
each key's ``#:`` comment in the models of :mod:`repeval.config` is its description, which editors show on hover;
the loader still has the last word (registered model, metric and
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


def field_docs(model: type) -> dict[str, str]:
    """Each field's ``#:`` comment (the lines right above it in the class body, Sphinx's convention), as plain text
    with ``code`` in single backticks: the one source of the schema's descriptions, which editors show on hover."""
    import ast
    import inspect
    import re
    import textwrap

    lines = textwrap.dedent(inspect.getsource(model)).splitlines()
    out: dict[str, str] = {}
    for node in ast.parse("\n".join(lines)).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            i = node.lineno - 2
            while i >= 0 and lines[i].lstrip().startswith("#:"):
                i -= 1
            text = " ".join(line.lstrip()[2:].strip() for line in lines[i + 1 : node.lineno - 1])
            if text:
                out[node.target.id] = re.sub(r"(?::[a-z]+:)?``?([^`]+)``?", r"`\1`", text)
    return out


def _describe_fields(out: dict[str, Any]) -> None:
    """Every field's ``#:`` comment as its property's description (hover documentation in editors)."""
    from repeval.config.base import Strict
    from repeval.config.schema import Config

    model: type[Strict]
    for model in Strict.__subclasses__():  # Config too
        d = out if model is Config else out["$defs"].get(model.__name__)
        if d is None:
            continue
        for key, text in field_docs(model).items():
            if key in model.model_fields:
                d["properties"][key]["description"] = text


#: what the editor says about a split key of the other split_type (``repeval validate`` says more)
SPLIT_KEYS = {
    "n_folds": "n_folds is the number of folds of split_type: all; split_type single (the default) ignores it: "
    "set split_type: all, or remove n_folds",
    "fold": "fold picks a fold of split_type: all (or an official fold, which this data set has not); split_type "
    "single (the default) ignores it: set split_type: all, or remove fold",
    "split_ratios": "split_ratios are the sizes of split_type: single's one split; split_type all makes n_folds "
    "equal folds and ignores them: remove split_ratios, or set split_type: single",
}


def _dataset_key_rules(model: Any) -> list[dict[str, Any]]:
    """``if``/``else`` rules for the dataset keys that apply to some types only (the loader's
    :func:`~repeval.datasets.cli_support.check_dataset_keys`): elsewhere such a key may only hold its default, which
    asks for nothing (a dumped config writes every key)."""
    from repeval.datasets.base import DATASETS
    from repeval.datasets.cli_support import CATALOG_KEYS, KEY_SCOPES, masked_loaders, mirdata_kind_loaders
    from repeval.datasets.load import official_fold_loaders

    def at_default(key: str, scope: str, why: str | None = None) -> dict[str, Any]:
        default = model.model_fields[key].default
        return {
            "const": list(default) if isinstance(default, tuple) else default,
            # the YAML language server shows errorMessage instead of "Value must be null."
            "errorMessage": why or f"'{key}' does not apply to this dataset's type — it {KEY_SCOPES[scope]}; remove it",
        }

    def is_type(type_: str) -> dict[str, Any]:  # `type` left out is the default, custom
        return {"properties": {"type": {"const": type_}}} | ({} if type_ == "custom" else {"required": ["type"]})

    def named(*names: str) -> dict[str, Any]:
        return {"properties": {"name": {"enum": list(names)}}, "required": ["name"]}

    # a data set with official folds that `fold` picks (has_official_folds): its loader is one of
    # official_fold_loaders, by name, or the generic mirdata loader's (type mirdata, a name no loader has)
    official = official_fold_loaders()
    official_folds: list[dict[str, Any]] = [{"allOf": [{"not": is_type("catalog")}, named(*official)]}]
    if "mirdata" in official:
        official_folds.append({"allOf": [is_type("mirdata"), {"not": named(*DATASETS.names())}]})
    return [
        {"if": is_type("catalog"), "else": {"properties": {k: at_default(k, "catalog") for k in CATALOG_KEYS}}},
        {
            "if": {"anyOf": [is_type("mirdata"), {"allOf": [is_type("custom"), named(*mirdata_kind_loaders())]}]},
            "else": {"properties": {"index_path": at_default("index_path", "index_path")}},
        },
        {
            "if": {"allOf": [is_type("custom"), named("mtg_jamendo")]},
            "else": {"properties": {"subset": at_default("subset", "subset")}},
        },
        {
            "if": {
                "anyOf": [
                    {"allOf": [{"not": is_type("catalog")}, named(*masked_loaders())]},
                    {
                        "allOf": [is_type("catalog"), {"properties": {"annotated_column": {"type": "string"}}}],
                        "required": ["annotated_column"],
                    },
                ]
            },
            "else": {"properties": {"unannotated": at_default("unannotated", "unannotated")}},
        },
        # the split keys of the other split_type (DatasetConfig._known_loader): `split_type` left out is single
        {
            "if": {"properties": {"split_type": {"const": "single"}}},
            "then": {"properties": {"n_folds": at_default("n_folds", "", why=SPLIT_KEYS["n_folds"])}},
        },
        {
            "if": {
                "properties": {"split_type": {"const": "single"}},
                "not": {"anyOf": official_folds},
            },
            "then": {"properties": {"fold": at_default("fold", "", why=SPLIT_KEYS["fold"])}},
        },
        {
            "if": {"properties": {"split_type": {"const": "all"}}, "required": ["split_type"]},
            "then": {"properties": {"split_ratios": at_default("split_ratios", "", why=SPLIT_KEYS["split_ratios"])}},
        },
    ]


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a repeval configuration file."""
    from repeval.config.data import DatasetConfig, TaskConfig
    from repeval.config.experiment import ExperimentConfig
    from repeval.config.run import RunConfig
    from repeval.config.schema import Config

    out = Config.model_json_schema()
    _describe_fields(out)
    defs = out["$defs"]
    # mir_ref's spellings of keys: the alias has the canonical key's schema, and either satisfies "required"
    for model in (TaskConfig, ExperimentConfig, DatasetConfig, RunConfig):
        d = defs.get(model.__name__)
        if d is None or not model.key_aliases:
            continue
        required = d.get("required", [])
        for alias, canonical in model.key_aliases.items():
            prop = d["properties"][canonical]
            d["properties"][alias] = {
                **prop,
                "description": f"mir_ref's spelling of {canonical}: {prop['description']}",
            }
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
    defs["ProbeConfig"]["properties"]["hidden_units"] = {
        "anyOf": [units, {"type": "null"}],
        "default": [],
        "description": units.pop("description"),
    }
    # Appendix A's "depending on task" activation, `softmax / sigmoid` (the loader picks the task's)
    act = defs["ProbeConfig"]["properties"]["output_activation"]
    act["anyOf"].insert(
        1, {"type": "string", "pattern": r"^\s*(softmax|sigmoid|linear)(\s*/\s*(softmax|sigmoid|linear))+\s*$"}
    )
    # augment: scenario ids, or one id / `all` written as a string
    aug = defs["ExperimentConfig"]["properties"]["augment"]
    defs["ExperimentConfig"]["properties"]["augment"] = {
        "anyOf": [aug, {"type": "string"}, {"type": "null"}],
        "default": [],
        "description": aug.pop("description"),
    }
    defs["DatasetConfig"].setdefault("allOf", []).extend(_dataset_key_rules(DatasetConfig))
    out["patternProperties"] = {"^x-": {"description": "ignored: a place for YAML anchors"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "repeval configuration",
        **{k: v for k, v in out.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(config_json_schema(), indent=1, sort_keys=True) + "\n"
