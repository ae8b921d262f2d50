"""The bad configurations test_bad_configs puts through the real CLI: each a change of one good configuration (or a
YAML text of its own) and the fragments its one-line error must say."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

GAIN = {"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 1}}
NOISE = {"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 20, "p": 1}}


def _base(root: Path) -> dict[str, Any]:
    return {
        "run": {"run_id": "bad", "store": str(root / "store"), "runs_dir": str(root / "runs")},
        "experiments": [
            {
                "task": {"name": "pitch", "type": "multiclass_classification"},
                "datasets": [
                    {
                        "name": "tones",
                        "type": "catalog",
                        "manifest": str(root / "manifest.csv"),
                        "label_column": "label",
                    }
                ],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 1}}]],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }


def _exp(d: dict) -> dict:
    return d["experiments"][0]


def _probe(d: dict) -> dict:
    return _exp(d)["downstream_models"][0]


def _ds(d: dict) -> dict:
    return _exp(d)["datasets"][0]


def _edited(d: dict, old: str, new: str) -> str:
    """The config as YAML text with ``old`` replaced by ``new``: a slip of the text that a mapping cannot hold (a key
    YAML reads as a boolean, a key given twice, a tab)."""
    text = yaml.safe_dump(d, sort_keys=False)
    assert old in text, text
    return text.replace(old, new, 1)


def _second_experiment(d: dict) -> None:
    """A second experiment sharing the first one's deformations (as a YAML anchor would), for another task."""
    d["experiments"].append({**copy.deepcopy(_exp(d)), "task": {"name": "pitch2", "type": "multiclass_classification"}})


#: name → (mutation of the base config, or raw YAML text; fragments the one-line error must contain)
CASES: dict[str, tuple[Any, list[str]]] = {
    "top_level_typo": (
        lambda d: d.update(experiment=d.pop("experiments")),
        ["(top level): unknown key 'experiment'", "did you mean 'experiments'?"],
    ),
    "dataset_key_typo": (
        lambda d: _ds(d).update(spli_type="single"),
        ["experiments[0].datasets[0]: unknown key 'spli_type'", "did you mean 'split_type'?"],
    ),
    "run_key_typo": (lambda d: d["run"].update(seeed=1), ["run: unknown key 'seeed'", "did you mean 'seed'?"]),
    "probe_key_typo": (
        lambda d: _probe(d).update(learning_rat=0.1),
        ["experiments[0].downstream_models[0]: unknown key 'learning_rat'", "did you mean 'learning_rate'?"],
    ),
    "resources_key_typo": (
        lambda d: d["run"].update(resources={"embed_num_cpu": 1}),
        ["run.resources: unknown key 'embed_num_cpu'", "did you mean 'embed_num_cpus'?"],
    ),
    "wrong_type_integer": (lambda d: d["run"].update(seeds="three"), ["run.seeds:", "valid integer"]),
    "wrong_type_list": (
        lambda d: _exp(d).update(embedding_models="mfcc-stats"),
        ["experiments[0].embedding_models:", "expected a list"],
    ),
    "wrong_type_epochs": (lambda d: _probe(d).update(epochs=[10]), ["downstream_models[0].epochs:", "valid integer"]),
    "unknown_model": (
        lambda d: _exp(d).update(embedding_models=["mfcc-stat"]),
        ["experiments[0].embedding_models[0]", "did you mean 'mfcc-stats'?"],
    ),
    "model_param_typo": (
        lambda d: _exp(d).update(embedding_models=[{"id": "mfcc-stats", "params": {"n_mfc": 30}}]),
        ["embedding_models[0].params.n_mfc: mfcc-stats has no parameter 'n_mfc'", "did you mean 'n_mfcc'?", "chunk_s"],
    ),
    "model_param_wrong_kind": (
        lambda d: _exp(d).update(embedding_models=[{"id": "mfcc-stats", "params": {"n_mfcc": "abc"}}]),
        ["embedding_models[0].params.n_mfcc: expected an integer, got 'abc'"],
    ),
    "model_param_impossible": (
        lambda d: _exp(d).update(embedding_models=[{"id": "mfcc-stats", "params": {"n_mfcc": -4}}]),
        ["mfcc-stats with params {'n_mfcc': -4} does not work on half a second of noise", "check its params"],
    ),
    "unknown_dataset": (
        lambda d: _ds(d).update(name="gtzann", type="custom"),
        ["experiments[0].datasets[0]:", "unknown dataset 'gtzann'", "did you mean 'gtzan_genre'?"],
    ),
    "unknown_transform": (
        lambda d: _exp(d)["deformations"][0][0].update(type="AddGausianSNR"),
        ["experiments[0].deformations[0]", "did you mean 'AddGaussianSNR'?"],
    ),
    "unknown_transform_param": (
        lambda d: _exp(d)["deformations"][0][0]["params"].update(min_gain=1),
        ["experiments[0].deformations[0]", "Gain has no parameter 'min_gain'"],
    ),
    "unknown_metric": (
        lambda d: _exp(d).update(metrics=["f1_makro"]),
        ["experiments[0].metrics", "did you mean 'f1_macro'?"],
    ),
    "task_metric_mismatch": (
        lambda d: _exp(d).update(metrics=["r2"]),
        ["experiments[0]", "does not apply to a multiclass_classification task"],
    ),
    "unknown_precision": (
        lambda d: _probe(d).update(precision="fp16"),
        ["experiments[0].downstream_models[0].precision: got 'fp16'", "expected 'fp32' or 'bf16'"],
    ),
    "criterion_metric_mismatch": (
        lambda d: _probe(d).update(save_criterion="val_r2"),
        ["downstream_models[0].save_criterion", "multiclass_classification"],
    ),
    "balanced_sampling_of_regression_targets": (
        lambda d: (
            _exp(d)["task"].update(type="regression"),
            _exp(d).update(metrics=["r2"]),
            _probe(d).update(train_sampling="balanced"),
        ),
        ["downstream_models[0].train_sampling: balanced sampling", "regression target", "remove train_sampling"],
    ),
    "impossible_hidden_size": (
        lambda d: _probe(d).update(hidden_units=[0]),
        ["downstream_models[0].hidden_units:", "positive integers, 'infer' or 'power_infer'"],
    ),
    "impossible_pca_size": (
        lambda d: _probe(d).update(emb_dim_reduction="PCA", emb_shape=-3),
        ["downstream_models[0]", "emb_shape must be a positive integer"],
    ),
    "negative_patience": (
        lambda d: _probe(d).update(patience=-1),
        ["experiments[0].downstream_models[0].patience:", "greater than or equal to 0"],
    ),
    "empty_probe_grid": (
        lambda d: _exp(d).update(downstream_models=[]),
        ["experiments[0].downstream_models: must list at least one entry"],
    ),
    "empty_model_list": (
        lambda d: _exp(d).update(embedding_models=[]),
        ["experiments[0].embedding_models: must list at least one entry"],
    ),
    "scenario_named_twice": (
        lambda d: _exp(d).update(deformations=[{"name": "n", "steps": [GAIN]}, {"name": "n", "steps": [NOISE]}]),
        ["experiments[0]", "deformations[1]: scenario id 'n' is already deformations[0]'s (its name)", "another name"],
    ),
    "scenario_named_as_another_by_position": (
        lambda d: _ds(d).update(deformations=[[GAIN], {"name": "D1", "steps": [NOISE]}]),
        ["datasets[0].deformations[1]: scenario id 'D1' is already datasets[0].deformations[0]'s", "D1, D2"],
    ),
    "scenario_named_clean": (
        lambda d: _exp(d).update(deformations=[{"name": "clean", "steps": [GAIN]}]),
        ["deformations[0].name: 'clean' names the undeformed audio"],
    ),
    "transform_probability_out_of_range": (
        lambda d: _exp(d)["deformations"][0][0]["params"].update(p=5),
        ["experiments[0].deformations[0].steps[0].params.p: Gain.p is 5: it must pass `0 <= p <= 1` — give p a value"],
    ),
    "deformation_param_not_a_number": (  # was Python's "'>' not supported between instances of 'str' and 'int'"
        lambda d: _exp(d)["deformations"][0][0]["params"].update(min_gain_db="-6dB"),
        [
            "experiments[0].deformations[0].steps[0].params.min_gain_db: Gain.min_gain_db is the text '-6dB', not a number",
            "without quotes",
        ],
    ),
    "transform_file_missing": (
        lambda d: _exp(d).update(
            deformations=[[{"type": "AddBackgroundNoise", "params": {"sounds_path": "no/noise"}}]]
        ),
        ["AddBackgroundNoise.sounds_path: 'no/noise' does not exist", "point it at an existing audio file"],
    ),
    "transform_file_uri": (  # was audiomentations' bare `len(self.sound_file_paths) > 0` assert
        lambda d: _exp(d).update(
            deformations=[[{"type": "AddBackgroundNoise", "params": {"sounds_path": "s3://bucket/noise/", "p": 1}}]]
        ),
        [
            "AddBackgroundNoise.sounds_path: 's3://bucket/noise/' is a URI, but audiomentations reads local files only",
            "copy the files to a local folder on each node (or a shared filesystem path",
        ],
    ),
    "transform_fails_when_applied": (
        lambda d: _exp(d).update(
            deformations=[[{"type": "Resample", "params": {"min_sample_rate": 0, "max_sample_rate": 0}}]]
        ),
        ["Resample(", "fails on half a second of noise", "Sample rate should be over 0"],
    ),
    "empty_deformation_scenario": (
        lambda d: _exp(d).update(deformations=[[]]),
        ["experiments[0].deformations[0]", "needs at least one transform"],
    ),
    "wrong_task_type": (
        lambda d: _exp(d)["task"].update(type="multiclass"),
        ["experiments[0].task.type: got 'multiclass'; expected 'multiclass_classification'"],
    ),
    "missing_manifest": (
        lambda d: _ds(d).update(manifest="no/such/manifest.csv"),
        ["experiments[0].datasets[0].manifest: no such file", "fix the path"],
    ),
    "manifest_column_typo": (
        lambda d: _ds(d).update(label_column="lable"),
        [
            "datasets[0].label_column: the manifest has no column 'lable' — did you mean 'label'?",
            "track_id, audio_path",
        ],
    ),
    "manifest_without_rows": (
        lambda d: _ds(d).update(manifest=_ds(d)["manifest"].replace("manifest.csv", "empty.csv")),
        ["experiments[0].datasets[0].manifest:", "empty.csv has a header but no rows"],
    ),
    # a manifest of 0 bytes (a spreadsheet export that failed): pyarrow's "Empty CSV file" was a traceback
    "manifest_of_zero_bytes": (
        lambda d: _ds(d).update(manifest=_ds(d)["manifest"].replace("manifest.csv", "zero.csv")),
        ["experiments[0].datasets[0].manifest:", "zero.csv is empty (0 bytes)", "write its header"],
    ),
    # accepted by validate, then the plan's (and the run's) load dropped every row: "no usable rows"
    "regression_target_of_text": (
        lambda d: (_exp(d)["task"].update(type="regression"), _exp(d).update(metrics=["r2"])),
        [
            "experiments[0].datasets[0].label_column: no row of 'label' holds a regression target, it has cells such "
            "as 'x' (row 2) — check that label_column 'label' holds numbers, or name=value pairs for a regression task"
        ],
    ),
    # a spreadsheet's export with ';' between columns: refused, with no key to read it
    "semicolon_manifest": (
        lambda d: _ds(d).update(manifest=_ds(d)["manifest"].replace("manifest.csv", "semicolon.csv")),
        ["experiments[0].datasets[0].manifest:", "separated by semicolons (';'), not commas — set delimiter: ';'"],
    ),
    "missing_data_dir": (
        lambda d: _ds(d).update(dir="no_such_audio_dir"),
        [
            "experiments[0].datasets[0].dir: no such directory",
            "fix the path",
            # a catalog's dir is its audio root: the hint said to write the manifest
            "or point it at the folder the manifest's relative audio paths start from, or remove it",
        ],
    ),
    "prediction_without_frames": (
        lambda d: (_exp(d)["task"].update(embedding_aggregation="prediction"), d["run"].update(keep_frames=False)),
        ["(top level)", "embedding_aggregation: prediction", "remove run.keep_frames: false"],
    ),
    "attention_without_frames": (
        lambda d: (_exp(d)["task"].update(embedding_aggregation="attention"), d["run"].update(keep_frames=False)),
        [
            "(top level)",
            "embedding_aggregation: attention",
            "pool each track's frames",
            "remove run.keep_frames: false",
        ],
    ),
    "heads_without_attention": (
        lambda d: _probe(d).update(attention_heads=4),
        [
            "downstream_models[0].attention_heads",
            "only a task with embedding_aggregation: attention",
            "(this one: mean)",
        ],
    ),
    "heads_searched_without_attention": (
        lambda d: _probe(d).update(search={"grid": {"attention_heads": [1, 4]}}),
        ["downstream_models[0].attention_heads", "set embedding_aggregation: attention or remove attention_heads"],
    ),
    "head_mismatch": (
        lambda d: _probe(d).update(output_activation="sigmoid"),
        [
            "experiments[0]",
            "downstream_models[0].output_activation: sigmoid does not fit",
            "set output_activation: softmax",
        ],
    ),
    "regressor_on_classification": (
        lambda d: _probe(d).update(type="regressor"),
        ["experiments[0]", "downstream_models[0].type: a regressor does not fit", "use type: classifier"],
    ),
    "augment_unknown_scenario": (
        lambda d: _exp(d).update(augment=["D2"]),
        ["experiments[0]", "augment: no deformation scenario 'D2' for dataset 'tones' (its scenarios: D1)"],
    ),
    "unsafe_run_id": (lambda d: d["run"].update(run_id="../etc"), ["run.run_id:", "letters, digits"]),
    "yaml_syntax": ("experiments: [\n  - task: {name: x\n", ["not valid YAML at line"]),
    # YAML 1.1 reads an unquoted on / yes as a boolean and 1 as a number: "run: keys must be strings, got True"
    "key_read_as_a_boolean": (
        lambda d: _edited(d, "  run_id: bad\n", "  run_id: bad\n  on: 1\n"),
        [
            "run: key on (line 3) is read by YAML as the boolean true, not a name; quoted, 'on' is no key here either",
            "(valid keys: bootstrap_resamples",
        ],
    ),
    "key_read_as_a_number_in_params": (
        lambda d: _edited(d, "max_gain_db: -3\n", "max_gain_db: -3\n        1: 1\n"),
        [
            "experiments[0].deformations[0].steps[0].params.1: key 1 (line",
            "is read by YAML as the number 1, not a name — quote it ('1': …)",
        ],
    ),
    # YAML keeps the last of a key given twice, silently: the file was valid
    "key_given_twice": (
        lambda d: _edited(d, "    name: pitch\n", "    name: pitch\n    name: pitch_class\n"),
        ["experiments[0].task: key 'name' is given twice (lines 7 and 8) — YAML keeps the last: keep one"],
    ),
    "tab_indentation": (
        lambda d: _edited(d, "  run_id: bad\n", "\trun_id: bad\n"),
        [
            "not valid YAML at line 2",
            "(line 2: '→run_id: bad', → is the tab)",
            "YAML does not allow tabs in indentation: indent with spaces",
        ],
    ),
    "key_indented_too_far": (  # was "task: unknown key 'datasets'" and "datasets: required key is missing"
        lambda d: _exp(d)["task"].update(datasets=_exp(d).pop("datasets")),
        ["experiments[0].task: 'datasets' is indented under task, but it is a key beside it: line it up with task"],
    ),
    "key_not_indented_enough": (  # was "unknown key 'seeds' (valid keys: experiments, plugins, run; …)"
        lambda d: d.update(seeds=3),
        ["(top level): unknown key 'seeds' here — it is a key of 'run': indent it under it"],
    ),
    "search_key_on_the_entry": (  # was "unknown key 'space' — did you mean 'patience'?"
        lambda d: _probe(d).update(space={"dropout": {"uniform": [0.1, 0.5]}}),
        [
            "experiments[0].downstream_models[0]: unknown key 'space' here — it is a key of 'search': write it under "
            "search, as search.space"
        ],
    ),
    "scheduler_key_on_the_entry": (
        lambda d: _probe(d).update(grace_period=3),
        [
            "unknown key 'grace_period' here — it is a key of 'search.scheduler': write it under search, as "
            "search.scheduler.grace_period"
        ],
    ),
    "mapping_written_as_a_list": (  # was "Input should be a valid dictionary or instance of TaskConfig"
        lambda d: _exp(d).update(task=[{"name": "pitch"}, {"type": "multiclass_classification"}]),
        [
            "experiments[0].task: expected a mapping (key: value lines), got a list of 2 — remove the '- ' before its keys"
        ],
    ),
    # a resource named without its stage: the first stage by spelling was suggested (cpu → decode_num_cpus)
    "resources_key_without_its_stage": (
        lambda d: d["run"].update(resources={"cpu": 2}),
        ["run.resources: unknown key 'cpu' — did you mean 'decode_num_cpus', 'embed_num_cpus' or 'trial_num_cpus'?"],
    ),
    "resources_key_by_its_words": (
        lambda d: d["run"].update(resources={"num_workers": 2}),
        ["run.resources: unknown key 'num_workers' — did you mean 'embed_actors'?"],
    ),
    "environment_variable_in_a_path": (  # accepted: the run made a folder named $HOME
        lambda d: d["run"].update(store="$HOME/repeval-store"),
        [
            "run.store: '$HOME/repeval-store': environment variables are not expanded in paths: write the path out in "
            f"full ({Path.home()}/repeval-store here)"
        ],
    ),
    "negative_epochs": (
        lambda d: _probe(d).update(epochs=-5),
        ["experiments[0].downstream_models[0].epochs: Input should be greater than or equal to 1, got -5"],
    ),
    "hidden_size_in_words": (  # was two lines: "not a valid integer" and "expected 'infer' or 'power_infer'"
        lambda d: _probe(d).update(hidden_units=["512 units"]),
        [
            "downstream_models[0].hidden_units: hidden unit sizes must be positive integers, 'infer' or 'power_infer'; "
            "got '512 units'"
        ],
    ),
    "two_split_ratios": (  # was "split_ratios[2]: required key is missing"
        lambda d: _ds(d).update(split_ratios=[0.9, 0.1]),
        [
            "datasets[0].split_ratios: split_ratios takes three fractions — train, validation and test — summing to 1, "
            "got 2: [0.9, 0.1]"
        ],
    ),
    "a_problem_of_a_shared_deformation_said_once": (  # was one line per experiment sharing it
        lambda d: (_exp(d)["deformations"][0][0]["params"].update(p=5), _second_experiment(d)),
        [
            "experiments[0].deformations[0].steps[0].params.p: Gain.p is 5: it must pass `0 <= p <= 1`",
            "(the same at experiments[1])",
        ],
    ),
    # every problem of the file in one run, a key YAML misreads with them
    "every_problem_in_one_run": (
        lambda d: _edited(d, "  run_id: bad\n", "  run_id: bad\n  yes: 1\n  seeds: 0\n  resources: {gpu: 1}\n").replace(
            "name: linear\n", "name: linear\n    epochs: -5\n"
        ),
        [
            "4 problems:",
            "run: key yes (line 3) is read by YAML as the boolean true",
            "run.resources: unknown key 'gpu' — did you mean 'embed_num_gpus', 'trial_num_gpus' or 'use_gpu'?",
            "run.seeds: Input should be greater than or equal to 1, got 0",
            "experiments[0].downstream_models[0].epochs: Input should be greater than or equal to 1, got -5",
        ],
    ),
}
