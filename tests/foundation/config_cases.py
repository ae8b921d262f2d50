"""What the configuration tests share: the repository, a small valid config, its mutations' errors, the schema's."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest

from repeval.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]


def base() -> dict:
    return {
        "experiments": [
            {
                "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6, "p": 1}}]],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"type": "classifier", "hidden_units": []}],
            }
        ]
    }


def _mutated(mutate) -> dict:
    d = copy.deepcopy(base())
    mutate(d)
    return d


def _error(mutate) -> str:
    d = _mutated(mutate)
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    return str(info.value)


# ------------------------------------------------------------------ the JSON Schema for editors


@functools.cache  # building the schema from the config models takes ~0.3 s; the parametrized cases below share it
def _schema_validator():
    import jsonschema

    from repeval.config.jsonschema import config_json_schema

    return jsonschema.Draft202012Validator(config_json_schema())


def _schema_errors(data: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in _schema_validator().iter_errors(data)]
