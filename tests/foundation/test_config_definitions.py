"""Configuration: names that share a store folder or run file, one definition per task and dataset, and folds."""

from __future__ import annotations

import copy

import pytest
from config_cases import _error, base

from repeval.config import ConfigError, parse_config
from repeval.plan import make_plan


def _second_experiment(d: dict, task: str, dataset: str) -> None:
    exp = copy.deepcopy(d["experiments"][0])
    exp["task"]["name"] = task
    exp["datasets"][0]["name"] = dataset
    d["experiments"].append(exp)


def _two_datasets(d: dict, first: str, second: str) -> None:
    datasets = d["experiments"][0]["datasets"]
    datasets[:] = [{**datasets[0], "name": first}, {**datasets[0], "name": second}]


def _named_scenarios(d: dict, *names: str) -> None:
    step = d["experiments"][0]["deformations"][0]
    d["experiments"][0]["deformations"] = [{"name": n, "steps": step} for n in names]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _two_datasets(d, "my_notes", "my notes"),
            "experiments[0].datasets[1]: dataset 'my notes' and dataset 'my_notes' (experiments[0].datasets[0]) are "
            "both stored in the store's folder 'my_notes' — their embeddings would mix in one partition: rename one",
        ),
        (
            lambda d: d["experiments"][0].update(
                embedding_models=[{"id": "m 1", "type": "mfcc-stats"}, {"id": "m:1", "type": "mfcc-stats"}]
            ),
            "embedding model 'm:1' and embedding model 'm 1' (experiments[0].datasets[0]) are both stored in the "
            "store's folder 'm_1'",
        ),
        (
            lambda d: _named_scenarios(d, "noise 10", "noise?10"),
            "deformation scenario 'noise?10' and deformation scenario 'noise 10' (experiments[0].datasets[0]) are both "
            "stored in the store's folder 'noise_10'",
        ),
        (
            lambda d: _named_scenarios(d, "Clean"),
            "deformation scenario 'Clean' and deformation scenario 'clean' (experiments[0].datasets[0]) are both "
            "stored in the store's folders 'clean' and 'Clean', one folder on a case-insensitive filesystem",
        ),
        (
            lambda d: _second_experiment(d, "other_task", "Notes"),
            "experiments[1].datasets[0]: dataset 'Notes' and dataset 'notes' (experiments[0].datasets[0]) are both "
            "stored in the store's folders 'notes' and 'Notes'",
        ),
        (
            lambda d: (
                d["experiments"][0]["task"].update(name="a__b")
                or d["experiments"][0]["datasets"][0].update(name="c")
                or _second_experiment(d, "a", "b__c")
            ),
            "experiments[1].datasets[0]: task 'a', dataset 'b__c' and model 'mfcc-stats' name the run's file "
            "groups/a__b__c__mfcc-stats.parquet, as task 'a__b', dataset 'c' and model 'mfcc-stats' "
            "(experiments[0].datasets[0]) do",
        ),
    ],
)
def test_names_that_share_a_store_folder_or_run_file_are_refused(mutate, expected):
    """Accepted before: ``my notes`` and ``my_notes`` both wrote the store folder ``my_notes/`` and mixed their rows."""
    assert expected in _error(mutate)


def test_one_dataset_in_two_experiments_shares_its_partitions():
    d = base()
    _second_experiment(d, "other_task", "notes")
    assert len(parse_config(d).experiments) == 2


def _other_model(d: dict, task: str | None = None, **dataset: object) -> dict:
    """A second experiment: the first one's task (or ``task``) on its dataset (with ``dataset``'s keys changed), with
    another model."""
    exp = copy.deepcopy(d["experiments"][0])
    exp["embedding_models"] = ["logmel-stats"]
    exp["task"]["name"] = task or exp["task"]["name"]
    exp["datasets"][0].update(dataset)
    d["experiments"].append(exp)
    return exp


def _steps(d: dict) -> list:
    return d["experiments"][0]["deformations"][0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # accepted: the second experiment's splits replaced the first one's splits/<task>__<dataset>.parquet and its
        # load_report.json entry, and the table compared the two models on different test tracks
        (
            lambda d: _other_model(d, split_seed=1),
            "experiments[1].datasets[0]: task 'instrument_classification' on dataset 'notes' is defined differently "
            "in experiments[0].datasets[0] (split_seed: 0 there, 1 here) — a run keeps one set of splits, one load "
            "report and one results table per task and dataset",
        ),
        (
            lambda d: _other_model(d, max_tracks=10, split_ratios=[0.6, 0.2, 0.2]),
            "(split_ratios: [0.8, 0.1, 0.1] there, [0.6, 0.2, 0.2] here; max_tracks: null there, 10 here)",
        ),
        (
            lambda d: _other_model(d)["task"].update(label="instrument"),
            'is defined differently in experiments[0].datasets[0] (task.label: null there, "instrument" here)',
        ),
        (
            lambda d: _other_model(d, split_type="all", n_folds=3),
            '(split_type: "single" there, "all" here; n_folds: 5 there, 3 here)',
        ),
        # one scenario id, two deformations of one dataset: stopped at the embedding stage (other tasks, one
        # partition) or accepted (other models: the table's D1 column mixed two deformations)
        (
            lambda d: _other_model(d).update(deformations=[[{"type": "Gain", "params": {"min_gain_db": -3}}]]),
            "experiments[1].deformations[0]: scenario 'D1' of dataset 'notes' is not experiments[0].deformations[0]'s "
            "scenario 'D1' (other transforms or parameters) — the store keeps one partition per dataset, model and "
            "scenario",
        ),
        (
            lambda d: _other_model(d, "other_task", deformations=[{"name": "D1", "steps": _steps(d)}]),
            "experiments[1].datasets[0].deformations[0]: scenario 'D1' of dataset 'notes' is not "
            "experiments[0].deformations[0]'s scenario 'D1' (the same transforms, but one is named and the other is "
            "D1, D2, … by position)",
        ),
        # other models: task a__b on dataset c and task a on dataset b__c both wrote splits/a__b__c.parquet
        (
            lambda d: (
                d["experiments"][0]["task"].update(name="a__b")
                or d["experiments"][0]["datasets"][0].update(name="c")
                or _other_model(d, "a", name="b__c")
            ),
            "experiments[1].datasets[0]: task 'a' and dataset 'b__c' name the run's file splits/a__b__c.parquet, as "
            "task 'a__b' and dataset 'c' (experiments[0].datasets[0]) do",
        ),
    ],
)
def test_one_task_and_dataset_name_means_one_definition(mutate, expected):
    assert expected in _error(mutate)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"embedding_aggregation": "mean"}),  # the default written out
        ({"embedding_aggregation": "embedding_mean"}, {}),  # mir_ref's spelling of mean
        ({"aggregation": "embedding_mean"}, {"embedding_aggregation": "mean"}),
        ({"name": "key", "type": "key_estimation"}, {"name": "key", "type": "multiclass_classification"}),
    ],
)
def test_one_task_spelled_two_equivalent_ways_is_one_definition(first, second):
    """``embedding_mean`` is mir_ref's ``mean``, and a ``multiclass_classification`` named ``key`` is key estimation:
    two experiments that spell one task so (other models on its dataset) were refused as "defined differently"."""
    d = base()
    task = d["experiments"][0]["task"]
    _other_model(d)["task"] = {**task, **second}
    task.update(first)
    cfg = parse_config(d)
    assert cfg.experiments[0].task.canonical() == cfg.experiments[1].task.canonical()
    d["experiments"][1]["task"]["embedding_aggregation"] = "prediction"  # a real difference still is one
    with pytest.raises(ConfigError, match=r'task\.embedding_aggregation: "mean" there, "prediction" here'):
        parse_config(d)


def test_a_dataset_defined_differently_for_another_task_or_alike_for_another_model_is_accepted():
    """Other tasks may read one dataset with other splits, labels or caps (its partitions are shared: a track's
    embeddings do not depend on its split); another model's experiment of the same task needs the same definition."""
    d = base()
    _other_model(d)
    _other_model(d, "other_task", split_seed=3, max_tracks=5, label_column="family")
    cfg = parse_config(d)
    assert [e.task.name for e in cfg.experiments] == ["instrument_classification"] * 2 + ["other_task"]


def test_deform_splits_without_test_suit_k_folds_and_configs_without_scenarios():
    """Every track of a k-fold dataset is tested in some fold, so any deformed split covers the tests."""
    d = base()
    d["run"] = {"deform_splits": ["train"]}
    d["experiments"][0]["datasets"][0].update(split_type="all", n_folds=3)
    assert parse_config(d).run.deform_splits == ("train",)
    d = base()
    d["run"] = {"deform_splits": []}
    d["experiments"][0]["deformations"] = []
    assert parse_config(d).run.deform_splits == ()


def test_plan_counts_every_fold_of_a_split_type_all_dataset():
    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": "inst", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": "notes",
                            "type": "catalog",
                            "manifest": "m.csv",
                            "label_column": "x",
                            "split_type": "all",
                            "n_folds": 5,
                            "fold": 2,
                        }
                    ],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"name": "lin"}],
                }
            ],
        }
    )
    plan = make_plan(cfg)
    assert "× 5 folds (split_type all: validation = fold i, test = fold i+1)" in plan.text()
    assert (plan.trainings, plan.test_cells) == (5, 5)  # one probe, one seed, clean only — per fold


@pytest.mark.parametrize(
    ("name", "task", "label"),
    [
        ("openmic2018", "instrument_recognition", "multilabel_classification"),
        ("medley_solos_db", "instrument_classification", "multiclass_classification"),
    ],
)
def test_k_folds_on_a_label_with_a_fixed_official_split_are_a_config_error(name, task, label):
    """split_type: all on a mirdata label whose official split fixes every track's split (OpenMIC-2018's train/test,
    Medley-solos-DB's subsets) passed `repeval validate` and stopped every run at the load (the folds cannot rotate):
    now a configuration error naming the fix. Official folds (TinySOL's instrument) and labels without an official
    split (TinySOL's pitch class) still take k folds."""
    d = base()
    exp = d["experiments"][0]
    exp["task"] = {"name": task, "type": label}
    exp["datasets"] = [{"name": name, "type": "mirdata", "split_type": "all"}]
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.split_type: all, but the 'instrument' label of .* official "
                       r"split .*folds cannot rotate.*use split_type: single"):  # fmt: skip
        parse_config(d)
    exp["datasets"][0]["split_type"] = "single"
    parse_config(d)
    exp["task"] = {"name": "instrument_classification", "type": "multiclass_classification"}
    exp["datasets"] = [{"name": "tinysol", "type": "mirdata", "split_type": "all"}]
    parse_config(d)
    exp["task"] = {"name": "pitch_class_classification", "type": "multiclass_classification"}
    parse_config(d)


def test_a_fold_beyond_a_data_sets_official_folds_is_a_config_error():
    """fold 7 of TinySOL's 5 official folds (split_type: single), n_folds 6 over them (split_type: all), fold 5 of
    MTG-Jamendo's split-0..4 passed `repeval validate` and stopped the run at the load: configuration errors naming the
    range now. A label without official folds (TinySOL's pitch class) takes any n_folds."""
    d = base()
    exp = d["experiments"][0]
    exp["task"] = {"name": "instrument_classification", "type": "multiclass_classification"}
    exp["datasets"] = [{"name": "tinysol", "type": "mirdata", "fold": 7}]
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.fold: 7, but tinysol has 5 official folds \(0\.\.4\).*set "
                       r"fold to 0\.\.4"):  # fmt: skip
        parse_config(d)
    exp["datasets"] = [{"name": "tinysol", "type": "mirdata", "split_type": "all", "n_folds": 6}]
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.n_folds: 6, but tinysol has 5 official folds.*set n_folds "
                       r"to 5 \(or fewer\)"):  # fmt: skip
        parse_config(d)
    exp["task"] = {"name": "pitch_class_classification", "type": "multiclass_classification"}
    parse_config(d)
    exp["task"] = {"name": "autotagging", "type": "multilabel_classification"}
    exp["datasets"] = [{"name": "mtg_jamendo_autotagging_moodtheme", "type": "mirdata", "fold": 5}]
    with pytest.raises(ConfigError, match=r"fold: 5, but mtg_jamendo_autotagging_moodtheme has 5 official folds"):
        parse_config(d)
    exp["datasets"][0]["fold"] = 4
    parse_config(d)
    # its split-k files give each fold its own splits: not a rotation (it said "rotates over them")
    exp["datasets"] = [
        {"name": "mtg_jamendo_autotagging_moodtheme", "type": "mirdata", "split_type": "all", "n_folds": 6}
    ]
    with pytest.raises(ConfigError, match=r"n_folds: 6, but .* runs fold i on its official split i, so fold 5 has "):
        parse_config(d)
    # MTG-Jamendo's own loader (its split-0..4 files) checked its fold only at the load: a configuration error too
    for ds in ({"name": "mtg_jamendo", "type": "custom", "subset": "genre"}, {"name": "mtg_jamendo_genre"}):
        exp["datasets"] = [{**ds, "fold": 5}]
        with pytest.raises(ConfigError, match=rf"fold: 5, but {ds['name']} has 5 official folds \(0\.\.4\).*set fold "
                           r"to 0\.\.4"):  # fmt: skip
            parse_config(d)
        exp["datasets"] = [{**ds, "split_type": "all", "n_folds": 6}]
        with pytest.raises(ConfigError, match=r"n_folds: 6, but .* runs fold i on its official split i, so fold 5 has "
                           r"none: set n_folds to 5"):  # fmt: skip
            parse_config(d)
        exp["datasets"] = [{**ds, "fold": 4}]
        parse_config(d)
