"""The configuration's JSON Schema for editors: current, documented, and agreeing with the loader."""

from __future__ import annotations

import copy

import pytest
import yaml
from config_cases import REPO, _schema_errors, base

from repeval.config import ConfigError, load_config, parse_config


def test_shipped_schema_is_current_and_accepts_every_shipped_config():
    import jsonschema

    from repeval.config.jsonschema import config_json_schema, schema_text

    shipped = REPO / "configs" / "repeval.schema.json"
    assert shipped.read_text() == schema_text(), "regenerate it: repeval schema --out configs/repeval.schema.json"
    jsonschema.Draft202012Validator.check_schema(config_json_schema())
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        assert path.read_text().startswith("# yaml-language-server: $schema=repeval.schema.json\n"), path.name
        assert _schema_errors(yaml.safe_load(path.read_text())) == [], path.name
        load_config(path)


def test_every_config_key_has_hover_documentation_from_its_comment():
    """An editor shows each key's description on hover: every field of every model carries its ``#:`` comment."""
    from repeval.config.base import Strict
    from repeval.config.jsonschema import config_json_schema, field_docs
    from repeval.config.schema import Config

    schema = config_json_schema()
    for model in Strict.__subclasses__():  # Config too
        assert set(field_docs(model)) == set(model.model_fields), f"{model.__name__}: a field without a #: comment"
        d = schema if model is Config else schema["$defs"][model.__name__]
        for key in model.model_fields:
            assert d["properties"][key].get("description"), f"{model.__name__}.{key}"
    group = schema["$defs"]["DatasetConfig"]["properties"]["group_column"]["description"]
    assert (
        group == "group column for leakage-free splits (artist, singer, album); for mirdata data sets a track attribute"
    )
    units = schema["$defs"]["ProbeConfig"]["properties"]["hidden_units"]["description"]  # ``code`` → `code`
    assert "`infer`" in units and "``" not in units
    aggregation = schema["$defs"]["TaskConfig"]["properties"]["aggregation"]["description"]
    assert aggregation.startswith("mir_ref's spelling of embedding_aggregation: `mean`")


def _variant(change) -> dict:
    d = copy.deepcopy(base())
    change(d)
    return d


#: the catalog and mtg_jamendo keys as a dumped mirdata dataset entry writes them
OTHER_TYPES_KEYS_AT_DEFAULTS = {
    "manifest": None,
    "delimiter": None,
    "decimal": ".",
    "track_id_column": "track_id",
    "audio_column": "audio_path",
    "label_column": None,
    "label_separator": ",",
    "subset": None,
}


SPELLINGS_THE_LOADER_ACCEPTS = {
    "model_as_id": lambda d: None,
    "model_with_name": lambda d: d["experiments"][0].update(embedding_models=[{"name": "mfcc-stats"}]),
    "model_with_type_and_params": lambda d: d["experiments"][0].update(
        embedding_models=[{"type": "mfcc-stats", "params": {"n_mfcc": 20}, "batch_size": 8}]
    ),
    "scenario_single_transform": lambda d: d["experiments"][0].update(
        deformations=[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6}}]
    ),
    "scenario_named": lambda d: d["experiments"][0].update(
        deformations=[{"name": "quiet", "steps": [{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6}}]}]
    ),
    "deformations_under_dataset": lambda d: d["experiments"][0]["datasets"][0].update(
        deformations=d["experiments"][0].pop("deformations")
    ),
    "features_and_probes": lambda d: d["experiments"][0].update(
        features=d["experiments"][0].pop("embedding_models"), probes=d["experiments"][0].pop("downstream_models")
    ),
    "aggregation_alias": lambda d: d["experiments"][0]["task"].update(aggregation="mean"),
    "anchor_block": lambda d: d.update({"x-shared": [1, 2]}),
    "empty_hidden_units": lambda d: d["experiments"][0]["downstream_models"][0].update(hidden_units=None),
    "preset_with_override": lambda d: d["experiments"][0].update(
        downstream_models=[{"preset": "mir_ref_thesis", "standardize": True}]
    ),
    "run_block": lambda d: d.update(run={"run_id": "r1", "seeds": 3, "deform_splits": ["test", "validation"]}),
    "augment_all_as_a_string": lambda d: d["experiments"][0].update(augment="all"),
    "augment_a_list": lambda d: d["experiments"][0].update(augment=["D1"]),
    # the keys of each dataset type where they apply: a wired mirdata loader under type custom reads index_path too
    "mirdata_index_path": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "type": "mirdata", "dir": "t", "index_path": "i.json"}]
    ),
    "custom_wired_mirdata_index_path": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "type": "custom", "index_path": "i.json"}]
    ),
    # a semicolon-separated catalog (a spreadsheet's export), and tabs spelled as YAML reads an unquoted \t
    "catalog_delimiter": lambda d: d["experiments"][0]["datasets"][0].update(delimiter=";"),
    "catalog_delimiter_tab": lambda d: d["experiments"][0]["datasets"][0].update(delimiter="\\t"),
    "mtg_jamendo_subset": lambda d: d["experiments"][0].update(
        datasets=[{"name": "mtg_jamendo", "type": "custom", "dir": "j", "subset": "genre"}]
    ),
    # elsewhere such a key at its default asks for nothing (a dumped config writes every key)
    "keys_of_other_types_at_their_defaults": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "type": "mirdata", "dir": "t", **OTHER_TYPES_KEYS_AT_DEFAULTS}]
    ),
    "custom_by_default_wired_mirdata_index_path": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "index_path": "i.json"}]
    ),
    # the split keys of each split_type, and those of the other one at their defaults (a dumped config)
    "folds_of_split_type_all": lambda d: d["experiments"][0]["datasets"][0].update(
        split_type="all", n_folds=4, fold=3, split_ratios=[0.8, 0.1, 0.1]
    ),
    "single_split_with_fold_keys_at_defaults": lambda d: d["experiments"][0]["datasets"][0].update(
        split_ratios=[0.7, 0.2, 0.1], n_folds=5, fold=0
    ),
    "official_fold_of_mtg_jamendo": lambda d: d["experiments"][0].update(
        datasets=[{"name": "mtg_jamendo", "dir": "j", "subset": "genre", "fold": 3}]
    ),
    "official_fold_of_mirdata": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "type": "mirdata", "dir": "t", "fold": 1}]
    ),
}


MISTAKES_BOTH_REJECT = {
    "typo_in_dataset": lambda d: d["experiments"][0]["datasets"][0].update(spli_type="single"),
    "typo_at_top": lambda d: d.update(experiment=d.pop("experiments")),
    "typo_in_run": lambda d: d.update(run={"runid": "r1"}),
    "typo_in_probe": lambda d: d["experiments"][0]["downstream_models"][0].update(hiden_units=[8]),
    "typo_in_model": lambda d: d["experiments"][0].update(embedding_models=[{"id": "mfcc-stats", "param": {}}]),
    "wrong_type": lambda d: d["experiments"][0]["downstream_models"][0].update(batch_size="large"),
    "two_character_delimiter": lambda d: d["experiments"][0]["datasets"][0].update(delimiter=";;"),
    "transform_without_type": lambda d: d["experiments"][0].update(deformations=[[{"params": {}}]]),
    "bad_hidden_unit": lambda d: d["experiments"][0]["downstream_models"][0].update(hidden_units=["wide"]),
    # a dataset key its type's loader never reads (check_dataset_keys)
    "catalog_column_on_mirdata": lambda d: d["experiments"][0].update(
        datasets=[{"name": "tinysol", "type": "mirdata", "dir": "t", "split_column": "split"}]
    ),
    "manifest_on_custom_by_default": lambda d: d["experiments"][0].update(
        datasets=[{"name": "vocalset", "dir": "v", "manifest": "m.csv"}]
    ),
    "index_path_on_catalog": lambda d: d["experiments"][0]["datasets"][0].update(index_path="index.json"),
    "index_path_on_custom_not_through_mirdata": lambda d: d["experiments"][0].update(
        datasets=[{"name": "vocalset", "type": "custom", "index_path": "i.json"}]
    ),
    "subset_on_catalog": lambda d: d["experiments"][0]["datasets"][0].update(subset="genre"),
    "subset_on_mirdata": lambda d: d["experiments"][0].update(
        datasets=[{"name": "mtg_jamendo_autotagging_moodtheme", "type": "mirdata", "subset": "genre"}]
    ),
    # a split key of the other split_type (DatasetConfig._known_loader)
    "n_folds_on_single_split": lambda d: d["experiments"][0]["datasets"][0].update(n_folds=10),
    "n_folds_on_split_type_single": lambda d: d["experiments"][0]["datasets"][0].update(split_type="single", n_folds=3),
    "fold_on_single_split_without_official_folds": lambda d: d["experiments"][0]["datasets"][0].update(fold=2),
    "fold_on_custom_loader_without_official_folds": lambda d: d["experiments"][0].update(
        datasets=[{"name": "vocalset", "dir": "v", "fold": 1}]
    ),
    "split_ratios_on_split_type_all": lambda d: d["experiments"][0]["datasets"][0].update(
        split_type="all", split_ratios=[0.6, 0.2, 0.2]
    ),
}


@pytest.mark.parametrize("case", sorted(SPELLINGS_THE_LOADER_ACCEPTS))
def test_schema_accepts_what_the_loader_accepts(case):
    data = _variant(SPELLINGS_THE_LOADER_ACCEPTS[case])
    parse_config(data)  # the loader accepts it…
    assert _schema_errors(data) == []  # …so an editor must not flag it


@pytest.mark.parametrize("case", sorted(MISTAKES_BOTH_REJECT))
def test_schema_flags_what_the_loader_rejects(case):
    data = _variant(MISTAKES_BOTH_REJECT[case])
    with pytest.raises(ConfigError):
        parse_config(data)
    assert _schema_errors(data), "the editor would not flag it"


def test_fold_on_one_split_is_accepted_by_the_configuration_and_the_schema_where_the_loader_has_official_folds():
    """``fold`` on ``split_type: single`` picks an official fold, where the data set has them. The rule was written
    three times and disagreed: the configuration accepted it for every ``type: mirdata`` data set and every loader read
    through mirdata (Beatport, GTZAN, Medley-solos-DB, …, whose loaders ignored it), the JSON Schema likewise by a name
    pattern. Both now derive from ``has_official_folds`` (the loaders' declared split keys, which
    tests/datasets/test_datasets_mirdata.py checks against what each loader reads): for every registered loader under
    every type it is valid as, and a mirdata data set without a wired loader, the three agree."""
    import jsonschema
    from pydantic import ValidationError

    from repeval.config.data import DatasetConfig
    from repeval.config.jsonschema import config_json_schema
    from repeval.datasets.base import DATASETS
    from repeval.datasets.load import has_official_folds

    validator = jsonschema.Draft202012Validator(config_json_schema())
    seen: dict[bool, set[tuple[str, str]]] = {True: set(), False: set()}
    for name, type_ in [(n, t) for n in DATASETS.names() for t in ("mirdata", "custom", "catalog")] + [
        ("guitarset", "mirdata")
    ]:
        entry = {"name": name, "type": type_, "dir": "d"}
        entry |= {"manifest": "m.csv"} if type_ == "catalog" else {"subset": "genre"} if name == "mtg_jamendo" else {}
        try:
            official = has_official_folds(DatasetConfig(**entry))
        except ValidationError:
            continue  # no such data set of this type
        data = _variant(lambda d, entry=entry: d["experiments"][0].update(datasets=[{**entry, "fold": 1}]))
        try:
            parse_config(data)
            accepted = True
        except ConfigError as exc:
            assert "fold picks a fold of split_type: all" in str(exc)
            accepted = False
        assert accepted == official == (not list(validator.iter_errors(data))), (name, type_, official)
        seen[official].add((name, type_))
    assert {("tinysol", "mirdata"), ("tinysol", "custom"), ("mtg_jamendo", "custom"), ("guitarset", "mirdata")} <= seen[
        True
    ]
    assert {("beatport_key", "mirdata"), ("medley_solos_db", "custom"), ("vocalset", "custom")} <= seen[False]
