"""Configuration errors: each names the key path and the fix, and every problem of a file is said at once."""

from __future__ import annotations

import copy

import pytest
from config_cases import _error, _mutated, base

from repeval.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["experiments"][0]["datasets"][0].update(spli_type="single"),
            "experiments[0].datasets[0]: unknown key 'spli_type' — did you mean 'split_type'?",
        ),
        (lambda d: d["experiments"][0].update(embeding_models=["x"]), "did you mean 'embedding_models'?"),
        (lambda d: d["experiments"][0]["task"].update(type="multiclass"), "experiments[0].task.type"),
        (lambda d: d["experiments"][0].update(embedding_models=["mfcc-stat"]), "did you mean 'mfcc-stats'?"),
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="AddGausianSNR"),
            "did you mean 'AddGaussianSNR'?",
        ),
        (
            lambda d: d["experiments"][0]["deformations"][0][0]["params"].update(min_gain=1),
            "Gain has no parameter 'min_gain'",
        ),
        # a bare assert of audiomentations on a value out of range was said as "its check `0 <= p <= 1` failed
        # (transforms_interface.py:41)", a file of a library's, not the parameter, its value and the fix
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(
                type="Mp3Compression", params={"min_bitrate": 32, "max_bitrate": 32, "p": 2}
            ),
            "deformations[0].steps[0].params.p: Mp3Compression.p is 2: it must pass `0 <= p <= 1` — give p a value "
            "that passes it (e.g. p: 0.5, its default)",
        ),
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(
                type="ClippingDistortion", params={"min_percentile_threshold": 50, "max_percentile_threshold": 10}
            ),
            "params.min_percentile_threshold: ClippingDistortion.min_percentile_threshold is 50, max_percentile_threshold "
            "10: it must pass `min_percentile_threshold <= max_percentile_threshold` — change them so they pass it",
        ),
        # Lambda was "unknown deformation 'Lambda'", though audiomentations has it: it is refused, and why
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="Lambda", params={"p": 1}),
            "Lambda cannot be a deformation step: the function it calls cannot be written in a configuration file",
        ),
        # a parameter a transform cannot do without: Python's "__init__() missing 1 required positional argument" or,
        # for AdjustDuration's length, a bare assert, naming neither what it is nor how to write it
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="AddBackgroundNoise", params={"p": 1}),
            "deformations[0].steps[0].params.sounds_path: AddBackgroundNoise needs sounds_path: the sounds to mix in: "
            "a folder of audio files, one file or a list of them (e.g. sounds_path: data/noise/)",
        ),
        # a list naming no files: audiomentations' bare assert (`len(self.sound_file_paths) > 0` failed)
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(
                type="AddShortNoises", params={"sounds_path": [], "p": 1}
            ),
            "AddShortNoises.sounds_path: [] names no files — give the sounds to mix in: a folder of audio files, one "
            "file or a list of them (e.g. sounds_path: data/noise/)",
        ),
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="ApplyImpulseResponse", params={}),
            "params.ir_path: ApplyImpulseResponse needs ir_path: the impulse responses to convolve with",
        ),
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="AdjustDuration", params={"p": 1}),
            "params.duration_seconds: AdjustDuration needs the length to set: duration_seconds (e.g. "
            "duration_seconds: 10.0) or duration_samples",
        ),
        (lambda d: d["experiments"][0].update(metrics=["r2"]), "does not apply to a multiclass_classification task"),
        (lambda d: d["experiments"][0].update(metrics=["f1_makro"]), "did you mean 'f1_macro'?"),
        # a name in the wrong case suggested the nearest by letters ('AddGaussianNoise'), not the name itself
        (
            lambda d: d["experiments"][0]["deformations"][0][0].update(type="addgaussiansnr", params={}),
            "unknown deformation 'addgaussiansnr' — did you mean 'AddGaussianSNR'?",
        ),
        (
            lambda d: d["experiments"][0]["downstream_models"][0].update(patience=-1),
            "experiments[0].downstream_models[0].patience",
        ),
        (lambda d: d["experiments"][0]["downstream_models"][0].update(hidden_units=[0]), "positive integers"),
        (lambda d: d["experiments"][0].update(downstream_models=[]), "must list at least one entry"),
        (
            lambda d: d["experiments"][0]["downstream_models"][0].update(save_criterion="val_r2"),
            "downstream_models[0].save_criterion",
        ),
        (lambda d: d["experiments"][0]["datasets"][0].pop("manifest"), "needs 'manifest'"),
        (lambda d: d.update(run={"seeds": 0}), "run.seeds"),
        (lambda d: d.update(run={"run_id": "../etc"}), "run.run_id"),
        (lambda d: d.update(experiments=[]), "experiments is empty"),
        # accepted, then failed mid-run: numpy refuses a negative seed when the first probe is tested
        (lambda d: d.update(run={"seed": -1}), "run.seed: Input should be greater than or equal to 0"),
        # a delimiter of more than one character (pyarrow's is one byte), or on a Parquet manifest (never read)
        (
            lambda d: d["experiments"][0]["datasets"][0].update(delimiter=";;"),
            "datasets[0].delimiter: delimiter ';;' is not the one character between a CSV manifest's "
            "columns — set it to that character, e.g. ';', '|' or tab",
        ),
        (
            lambda d: d["experiments"][0]["datasets"][0].update(delimiter=";", manifest="data/m.parquet"),
            "delimiter is for CSV manifests, but data/m.parquet is Parquet, whose columns are named in it — remove "
            "delimiter",
        ),
        (
            lambda d: d["experiments"][0].update(datasets=[{"name": "tinysol", "type": "mirdata", "delimiter": ";"}]),
            "experiments[0].datasets[0]: key 'delimiter' does not apply to mirdata dataset 'tinysol'",
        ),
        # decimal commas: the mark of a regression task's targets (quoted between commas, or with another delimiter)
        (
            lambda d: d["experiments"][0]["datasets"][0].update(decimal=";"),
            "experiments[0].datasets[0].decimal: got ';'; expected '.' or ','",
        ),
        (
            lambda d: d["experiments"][0]["datasets"][0].update(decimal=",", delimiter=";"),
            "experiments[0]: datasets[0].decimal: ',' is the decimal mark of regression targets, which only a "
            "regression task reads (this task is multiclass_classification, whose labels are read as written): "
            "remove decimal",
        ),
        (
            lambda d: d["experiments"][0].update(datasets=[{"name": "tinysol", "type": "mirdata", "decimal": ","}]),
            "experiments[0].datasets[0]: key 'decimal' does not apply to mirdata dataset 'tinysol'",
        ),
        # accepted, then pyarrow's "Empty separator" when the manifest was read
        (lambda d: d["experiments"][0]["datasets"][0].update(label_separator=""), "datasets[0].label_separator:"),
        # accepted, then the train stage found the deformed test partitions empty ("run `repeval embed` first")
        (
            lambda d: d.update(run={"deform_splits": ["train"]}),
            "run.deform_splits: ['train'] leaves the test tracks undeformed, but experiments[0].datasets[0] ('notes') "
            "is tested under deformation scenarios (D1): include test",
        ),
        # accepted, then the second experiment's probes and results replaced the first one's
        (
            lambda d: d["experiments"].append(copy.deepcopy(d["experiments"][0])),
            "experiments[1].datasets[0]: task 'instrument_classification' on dataset 'notes' with model 'mfcc-stats' "
            "is already experiments[0].datasets[0]'s",
        ),
        (
            lambda d: d["experiments"][0]["datasets"].append(d["experiments"][0]["datasets"][0]),
            "experiments[0].datasets[1]: task 'instrument_classification' on dataset 'notes'",
        ),
        # accepted, then `plan` and `run` stopped at "could not convert string to float: 'abc'"
        (
            lambda d: d["experiments"][0].update(embedding_models=[{"id": "mfcc-stats", "params": {"chunk_s": "abc"}}]),
            "embedding_models[0].params.chunk_s: expected a number of seconds (null or 0: the whole file)",
        ),
        # a list item written without its '-' (or an emptied key) printed the whole block twice, or "e.g. [None]"
        (
            lambda d: d.update(experiments=d["experiments"][0]),
            "experiments: expected a list, got a mapping (keys: task, datasets, deformations, embedding_models, …) — "
            "make it a list item: start its first key with '- '",
        ),
        (
            lambda d: d["experiments"][0].update(deformations=None),
            "experiments[0].deformations: expected a list, got no value (the key is empty)",
        ),
        # accepted, then silently ignored: the loader of the dataset's type never reads the key
        (
            lambda d: d["experiments"][0]["datasets"][0].update(index_path="index.json"),
            "experiments[0].datasets[0]: key 'index_path' does not apply to catalog dataset 'notes' — it is mirdata's "
            "index file, for data sets read through mirdata (type: mirdata); remove it",
        ),
        (
            lambda d: d["experiments"][0]["datasets"][0].update(subset="genre"),
            "experiments[0].datasets[0]: key 'subset' does not apply to catalog dataset 'notes' — it is for the "
            "'mtg_jamendo' loader (type: custom)",
        ),
        (
            lambda d: d["experiments"][0].update(
                datasets=[{"name": "tinysol", "type": "mirdata", "split_column": "split", "label_separator": "|"}]
            ),
            "experiments[0].datasets[0]: key 'split_column' does not apply to mirdata dataset 'tinysol' — it is for "
            "'catalog' datasets (a manifest and its columns); remove it (also: label_separator)",
        ),
        # accepted, then the catalog read the column and a multiclass task ignored it
        (
            lambda d: d["experiments"][0]["datasets"][0].update(annotated_column="rated"),
            "experiments[0]: datasets[0].annotated_column: 'rated' names the labels each track annotates, which only "
            "a multilabel_classification task reads (this task is multiclass_classification): remove annotated_column",
        ),
        (
            lambda d: d["experiments"][0].update(datasets=[{"name": "vocalset", "type": "custom", "index_path": "i"}]),
            "key 'index_path' does not apply to custom dataset 'vocalset'",
        ),
        # accepted, then silently trained an MLP with those hidden layers under "linear"
        (
            lambda d: d["experiments"][0]["downstream_models"][0].update(type="linear", hidden_units=[128]),
            "experiments[0].downstream_models[0]: type: linear is a probe without hidden layers, but hidden_units is "
            "[128]",
        ),
        (
            lambda d: d["experiments"][0].update(downstream_models=[{"type": "linear", "preset": "jukemir"}]),
            "experiments[0].downstream_models[0]: probe 'jukemir-054': type: linear is a probe without hidden layers, "
            "but hidden_units is [512]",
        ),
        # accepted, then silently ignored: the split keys of the other split_type
        (
            lambda d: d["experiments"][0]["datasets"][0].update(n_folds=10),
            "experiments[0].datasets[0]: n_folds is the number of folds of split_type: all, but split_type is single",
        ),
        (
            lambda d: d["experiments"][0]["datasets"][0].update(fold=2),
            "experiments[0].datasets[0]: fold picks a fold of split_type: all (or an official fold of a data set that "
            "has them, which catalog dataset 'notes' has not)",
        ),
        (
            lambda d: d["experiments"][0]["datasets"][0].update(split_type="all", split_ratios=[0.6, 0.2, 0.2]),
            "experiments[0].datasets[0]: split_ratios are the sizes of split_type: single's one split",
        ),
        # accepted, then the catalog read label_column and task.label was silently ignored
        (
            lambda d: d["experiments"][0]["task"].update(label="family"),
            "experiments[0]: datasets[0].label_column: 'instrument', but task.label is 'family'",
        ),
        # several values for a probe's setting said only "Input should be a valid number": they are a grid axis
        (
            lambda d: d["experiments"][0]["downstream_models"][0].update(learning_rate=[1e-3, 1e-4]),
            "downstream_models[0].learning_rate: Input should be a valid number — got a list (0.001, 0.0001): a "
            "probe's learning_rate takes one value; to train one configuration per value, write it as a grid axis, "
            "search: {grid: {learning_rate: [0.001, 0.0001]}}",
        ),
        (
            lambda d: d["experiments"][0]["downstream_models"].__setitem__(0, {"preset": "marble", "batch_size": [32]}),
            "a probe's batch_size takes one value; to train one configuration per value, write it as a grid axis, "
            "search: {grid: {batch_size: [32]}}",
        ),
        # a top-level key close to no valid one: the x- prefix that makes a key ignored is named with them
        (
            lambda d: d.update({"anchors": {"a": 1}}),
            "(top level): unknown key 'anchors' (valid keys: experiments, plugins, run; a key starting with x- is ignored, a "
            "place for YAML anchors)",
        ),
        # YAML reads 1e3 (no dot) as text: an integer key said only "unable to parse string as an integer"
        (
            lambda d: d["experiments"][0]["downstream_models"][0].update(epochs="1e3"),
            "downstream_models[0].epochs: Input should be a valid integer, unable to parse string as an integer — got "
            "the text '1e3' (YAML reads an exponent without a dot as text): write 1000",
        ),
    ],
)
def test_bad_configs_name_the_key_and_the_fix(mutate, expected):
    assert expected in _error(mutate)


def _every_fault(d: dict) -> None:
    exp = d["experiments"][0]
    exp["task"]["nme"] = exp["task"].pop("name")  # a required key misspelled: not also "required key is missing"
    exp["datasets"][0].update(label_colum="instrument", n_folds="five")
    exp["deformations"][0][0]["params"].update(max_gain="3", min_gain_db="-6dB")
    exp["embedding_models"] = [{"id": "mfcc-stats", "params": {"n_mfcc": "big", "n_mel": 32}}]
    exp["downstream_models"][0].update(learning_rat=0.1, epochs="many")
    exp["metrics"] = ["f1_mikro", "accuracy", "acuracy"]  # each name at fault (the first alone was said)


def test_every_problem_of_a_config_is_said_at_once():
    """An unknown key no longer hides the problems of the keys beside it, nor one parameter the others'."""
    problems = _error(_every_fault).splitlines()[1:]
    assert [p.removeprefix("  - ").split(":")[0] for p in problems] == [
        "experiments[0].task",
        "experiments[0].datasets[0]",
        "experiments[0].datasets[0].n_folds",
        "experiments[0].deformations[0].steps[0].params.max_gain",
        "experiments[0].deformations[0].steps[0].params.min_gain_db",
        "experiments[0].embedding_models[0].params.n_mfcc",
        "experiments[0].embedding_models[0].params.n_mel",
        "experiments[0].downstream_models[0]",
        "experiments[0].downstream_models[0].epochs",
        "experiments[0].metrics[0]",
        "experiments[0].metrics[2]",
    ]
    said = "\n".join(problems)
    for part in (
        "unknown key 'nme' — did you mean 'name'?",
        "unknown key 'label_colum' — did you mean 'label_column'?",
        "Gain has no parameter 'max_gain' — did you mean 'max_gain_db'?",
        "Gain.min_gain_db is the text '-6dB', not a number",
        "n_mfcc: expected an integer, got 'big'",
        "mfcc-stats has no parameter 'n_mel' — did you mean 'n_mels'?",
        "unknown key 'learning_rat' — did you mean 'learning_rate'?",
        "unknown metric 'f1_mikro' — did you mean 'f1_micro'?",
        "unknown metric 'acuracy' — did you mean 'accuracy'?",
    ):
        assert part in said


def test_a_key_given_in_two_spellings_is_said_with_the_other_problems_of_its_entry():
    """mir_ref's `features` next to `embedding_models` no longer hides a misspelled key beside it (nor one elsewhere)."""

    def mutate(d: dict) -> None:
        exp = d["experiments"][0]
        exp.update(features=["mfcc-stats"], downstream_modles=exp.pop("downstream_models"))
        exp["task"].update(aggregation="mean", feature_aggregation="mean", labl="x")

    with pytest.raises(ConfigError) as info:
        parse_config(_mutated(mutate))
    assert info.value.problems == [
        "experiments[0]: 'features' and 'embedding_models' both given; keep one",
        "experiments[0]: unknown key 'downstream_modles' — did you mean 'downstream_models'?",
        "experiments[0].task: 'feature_aggregation' and 'aggregation' both given; keep one",
        "experiments[0].task: unknown key 'labl' — did you mean 'label'?",
    ]


def test_all_problems_reported_together(tmp_path):
    d = base()
    d["experiments"][0]["datasets"][0]["spli_type"] = "single"
    d["experiments"][0]["downstream_models"][0]["patience"] = -3
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    assert len(info.value.problems) == 2
