"""Configuration: the thesis schema, mir_ref aliases, and errors that name the key path and fix."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from repeval.config import Config, ConfigError, load_config, parse_config
from repeval.plan import make_plan

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


def test_thesis_config_validates_and_plans_300_trainings_1500_cells():
    cfg = load_config(REPO / "configs" / "mir_ref_thesis.yaml")
    assert len(cfg.experiments) == 6
    assert {e.task.name for e in cfg.experiments} == {
        "autotagging",
        "key_estimation",
        "instrument_classification",
        "pitch_class_classification",
        "singer_identification",
        "technique_identification",
    }
    for exp in cfg.experiments:
        assert len(exp.embedding_models) == 10
        assert exp.probe_names() == ["M1", "M2", "M3", "M4", "M5"]
        assert list(exp.scenarios_for(exp.datasets[0])) == ["D1", "D2", "D3", "D4"]
    plan = make_plan(cfg)
    assert not [n for n in plan.notes if "named by position" in n]  # named as the thesis names them
    assert plan.trainings == 300
    assert plan.test_cells == 1500
    # Appendix A's old audiomentations spellings map onto the current parameter names
    d2 = cfg.experiments[0].deformations[1].steps[0]
    assert d2.type == "AddGaussianSNR" and d2.params["min_snr_in_db"] == 0
    # key estimation is declared multiclass in the thesis and evaluated with the key score
    key = next(e for e in cfg.experiments if e.task.name == "key_estimation")
    assert key.task.effective_type == "key_estimation"
    assert key.metric_names == ("key_weighted_score_micro", "key_weighted_score_macro")


#: Appendix A's DOWNSTREAM_MODELS block as printed: its order, its batch 277, its "depending on task" values
APPENDIX_A_PROBES = [
    {
        "type": "classifier",
        "emb_dim_reduction": False,
        "emb_shape": "infer",
        "hidden_units": units,
        "output_activation": "softmax / sigmoid",
        "weight_decay": 1.0e-5,
        "optimizer": "adam",
        "learning_rate": 1.0e-3,
        "batch_size": batch,
        "epochs": 100,
        "patience": 10,
        "train_sampling": "random",
        "save_criterion": "val_categorical_accuracy / val_auc",
    }
    for units, batch in (([], 100), (["infer"], 100), (["infer", "infer"], 100), ([128], 277), ([256, 128], 100))
]


@pytest.mark.parametrize(
    ("task", "head", "criterion"),
    [
        ({"name": "autotagging", "type": "multilabel_classification"}, "sigmoid", "val_roc_auc_macro"),
        ({"name": "singer_identification", "type": "multiclass_classification"}, "softmax", "val_accuracy"),
        ({"name": "key_estimation", "type": "multiclass_classification"}, "softmax", "val_accuracy"),
    ],
)
def test_appendix_a_probes_as_printed_take_the_value_that_fits_the_task(task, head, criterion):
    """Appendix A writes `softmax / sigmoid` and `val_categorical_accuracy / val_auc` ("depending on task"): the
    block is accepted as printed, each pair read as the thesis ran it (sigmoid and AUC for tagging, else softmax and
    categorical accuracy), and the run's config.yaml holds the value chosen."""
    from repeval.run.context import config_yaml
    from repeval.tasks import resolve_criterion

    d = base()
    del d["experiments"][0]["downstream_models"]
    d["experiments"][0].update(task=task, probes=copy.deepcopy(APPENDIX_A_PROBES))  # mir_ref's `probes` too
    cfg = parse_config(d)
    ttype = cfg.experiments[0].task.effective_type
    for p in cfg.experiments[0].downstream_models:
        assert p.output_activation == head
        assert resolve_criterion(p.save_criterion, ttype) == (criterion, "max")
    assert [p.batch_size for p in cfg.experiments[0].downstream_models] == [100, 100, 100, 277, 100]
    written = yaml.safe_load(config_yaml(cfg))["experiments"][0]["downstream_models"][0]
    assert written["output_activation"] == head and "/" not in written["save_criterion"]
    assert _schema_errors(d) == []  # an editor accepts the block as printed too
    # unnamed, they are M1-M5 in Appendix A's order, not the thesis tables' (§3.1.5): the plan says which is which
    [note] = [n for n in make_plan(cfg).notes if "named by position" in n]
    assert (
        f"{task['name']}'s unnamed probes are named by position, not as the mir_ref thesis' tables name them "
        "(§3.1.5): M2 (hidden [infer]) is the thesis' M4; M3 (hidden [infer, infer]) is the thesis' M5; M4 (hidden "
        "[128]) is the thesis' M2; M5 (hidden [256, 128]) is the thesis' M3 — to compare with its tables, name each "
        "(`name: M4` on the [infer] probe, …) or use `preset: mir_ref_thesis`" == note
    )


def test_appendix_a_probes_partly_named_or_written_out_say_the_thesis_names_and_stopping():
    """Three of Appendix A's probes named as the thesis' tables name them and the other two pasted unnamed in its
    order were M4 = [infer, infer] and M5 = [infer], said by no note (only unnamed ones counted as the thesis' set);
    and its probes written out said `checkpoint by val_accuracy`, not that early stopping uses it too, where the
    thesis stopped on the validation loss."""
    named = [dict(APPENDIX_A_PROBES[i], name=f"M{k}") for k, i in ((1, 0), (2, 3), (3, 4))]
    d = base()
    d["experiments"][0]["downstream_models"] = [*named, APPENDIX_A_PROBES[2], APPENDIX_A_PROBES[1]]
    plan = make_plan(parse_config(d))
    [note] = [n for n in plan.notes if "named by position" in n]
    assert "(§3.1.5): M4 (hidden [infer, infer]) is the thesis' M5; M5 (hidden [infer]) is the thesis' M4 — " in note
    lines = [ln[4:] for ln in plan.text().splitlines() if ln.startswith("  - probe ")]
    assert lines[0] == (
        "probe M1 (hidden []): 1 configuration, tested, early stopping and checkpoint by val_accuracy (the thesis "
        "stopped early on the validation loss)"
    )
    # the shipped config's written-out probes say it too; its smoke test's 3 epochs leave patience 10 nothing to stop
    cfg = load_config(REPO / "configs" / "mir_ref_thesis.yaml")
    assert "early stopping and checkpoint by val_roc_auc_macro (the thesis stopped early" in make_plan(cfg).text()
    from repeval.runner import smoke_test_config

    smoke = make_plan(smoke_test_config(cfg), smoke_of=cfg).text()
    assert "tested, checkpoint by val_roc_auc_macro; the smoke test leaves out" in smoke and "early" not in smoke


@pytest.mark.parametrize(
    ("mutate", "said"),
    [
        (lambda e: e.update(taks=e.pop("task")), "experiments[0]: unknown key 'taks' — did you mean 'task'?"),
        (lambda e: e["task"].update(typ=e["task"].pop("type")), "experiments[0].task: unknown key 'typ'"),
        (lambda e: e["task"].update(type="multiclass_clasification"), "experiments[0].task.type: "),
    ],
)
def test_a_task_at_fault_is_said_alone_not_also_the_probes_depending_on_task_pair(mutate, said):
    """Appendix A's `softmax / sigmoid` waits for the task's type: a task misspelled or of an unknown type is one
    problem, not also 'got softmax / sigmoid' at every probe (the pair is right once the task is)."""
    d = base()
    d["experiments"][0]["downstream_models"] = copy.deepcopy(APPENDIX_A_PROBES[:2])
    mutate(d["experiments"][0])
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    assert len(info.value.problems) == 1, info.value.problems
    assert said in str(info.value)


def test_a_depending_on_task_value_that_fits_not_the_task_is_said_at_its_key_with_the_other_problems():
    """`softmax / sigmoid` on a regression task no longer hides the experiment's other problems: each is said, the
    pair at its own probe's key."""
    d = base()
    exp = d["experiments"][0]
    exp.update(task={"name": "valence", "type": "regression"}, metricz=["r2"])
    exp["downstream_models"] = [{"output_activation": "softmax / sigmoid"}, {"learning_rat": 0.1}]
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    assert info.value.problems == [
        "experiments[0]: unknown key 'metricz' — did you mean 'metrics'?",
        "experiments[0].downstream_models[0].output_activation: none of softmax / sigmoid fits a regression task, "
        "whose probes end in linear; set output_activation: linear or remove it",
        "experiments[0].downstream_models[1]: unknown key 'learning_rat' — did you mean 'learning_rate'?",
    ]


def test_depending_on_task_values_that_fit_no_task_name_what_to_write():
    def probes(task=None, **values):
        d = base()
        d["experiments"][0]["downstream_models"] = [{"type": "classifier", **values}]
        d["experiments"][0]["task"] = task or d["experiments"][0]["task"]
        return d

    regression = {"name": "valence", "type": "regression"}
    with pytest.raises(ConfigError, match=r"output_activation: none of softmax / sigmoid fits a regression task"):
        parse_config(probes(regression, output_activation="softmax / sigmoid"))
    with pytest.raises(ConfigError, match=r"'tanh' is not an activation"):
        parse_config(probes(output_activation="softmax / tanh"))
    # without the activation's pair to follow, two criteria that both apply to the task are a choice to make
    with pytest.raises(
        ConfigError, match=r"val_categorical_accuracy / val_auc leaves the choice to the task.*2 of them"
    ):
        parse_config(probes(save_criterion="val_categorical_accuracy / val_auc"))
    # … and one that applies is taken
    d = probes(
        {"name": "tags", "type": "multilabel_classification"}, save_criterion="val_categorical_accuracy / val_auc"
    )
    assert parse_config(d).experiments[0].downstream_models[0].save_criterion == "val_roc_auc_macro"


def test_quickstart_config_validates():
    cfg = load_config(REPO / "configs" / "quickstart.yaml")
    assert cfg.run.run_id == "quickstart"
    assert [m.id for m in cfg.experiments[0].embedding_models] == ["mfcc-stats", "logmel-stats"]


def test_medley_solos_db_config_plans_and_loads_the_shared_slice(shared_data, monkeypatch):
    """configs/medley_solos_db.yaml, from the repository root (its data path is ../shared/data, as in CI)."""
    from repeval.config.loader import check_data_paths
    from repeval.datasets import load_dataset

    monkeypatch.chdir(REPO)
    cfg = load_config(REPO / "configs" / "medley_solos_db.yaml")
    check_data_paths(cfg)  # the slice is where the file says
    exp = cfg.experiments[0]
    assert Path(exp.datasets[0].dir).resolve() == (shared_data / "medley_solos_db_small").resolve()
    plan = make_plan(cfg)
    assert (plan.trainings, plan.test_cells, plan.partitions) == (3 * 5, 3 * 5 * 5, 3 * 5)
    rows, report = load_dataset(exp.datasets[0], exp.task)
    assert rows.num_rows == 97 and not (report.missing_audio or report.unlabelled or report.other)
    splits = rows.column("split").to_pylist()
    assert (splits.count("train"), splits.count("validation"), splits.count("test")) == (80, 9, 8)


def test_mir_ref_repository_aliases():
    d = base()
    exp = d["experiments"][0]
    exp["features"] = exp.pop("embedding_models")
    exp["probes"] = exp.pop("downstream_models")
    exp["datasets"][0]["deformations"] = exp.pop("deformations")
    exp["task"]["aggregation"] = "embedding_mean"
    cfg = parse_config(d)
    e = cfg.experiments[0]
    assert [m.id for m in e.embedding_models] == ["mfcc-stats"]
    assert len(e.downstream_models) == 1
    assert list(e.scenarios_for(e.datasets[0])) == ["D1"]
    assert e.task.embedding_aggregation == "embedding_mean"
    # the repository's own configs (configs/example.yml, tests/test_cfg.yml) write the task's feature_aggregation,
    # which mir_ref's get_dataset reads: it was an unknown key
    del exp["task"]["aggregation"]
    exp["task"]["feature_aggregation"] = "mean"
    assert parse_config(d).experiments[0].task.aggregation == "mean"
    assert _schema_errors(d) == []
    exp["task"]["aggregation"] = "mean"
    with pytest.raises(ConfigError, match="'aggregation' and 'feature_aggregation' both given; keep one"):
        parse_config(d)


def test_inline_model_definition():
    d = base()
    d["experiments"][0]["embedding_models"] = [{"id": "mfcc40", "type": "mfcc-stats", "params": {"n_mfcc": 40}}]
    cfg = parse_config(d)
    assert cfg.experiments[0].embedding_models[0].params == {"n_mfcc": 40}


def _mutated(mutate) -> dict:
    d = copy.deepcopy(base())
    mutate(d)
    return d


def _error(mutate) -> str:
    d = _mutated(mutate)
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    return str(info.value)


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


def test_all_problems_reported_together(tmp_path):
    d = base()
    d["experiments"][0]["datasets"][0]["spli_type"] = "single"
    d["experiments"][0]["downstream_models"][0]["patience"] = -3
    with pytest.raises(ConfigError) as info:
        parse_config(d)
    assert len(info.value.problems) == 2


def test_yaml_errors_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("experiments: [\n  - task: {name: x\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(p)
    with pytest.raises(ConfigError, match="config file not found") as missing:
        load_config(tmp_path / "nope.yaml")
    # the path once ("error: configs/x.yml: config file not found: configs/x.yml — …" said it twice)
    assert str(missing.value) == f"{tmp_path / 'nope.yaml'}: config file not found — check the path", missing.value
    with pytest.raises(ConfigError) as near:  # quickstart.yml for quickstart.yaml: the file beside it is named
        load_config(tmp_path / "bad.yml")
    assert str(near.value) == f"{tmp_path / 'bad.yml'}: config file not found — did you mean {p}?", near.value


def test_a_data_path_written_from_the_config_file_or_with_a_variable_says_so(tmp_path, monkeypatch):
    """Relative data paths start from the current directory: one that exists beside the config file (the config run
    from another folder) is named with where it is — and with no way to write or fetch it (it said "or write the
    manifest first (`repeval data render DIR` …)" of a user's own catalog); one with ``$HOME`` is refused when the
    file is read, saying variables are not expanded (nothing to write or fetch there either)."""
    from repeval.config.loader import check_data_paths

    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "m.csv").write_text("track_id,audio_path,instrument\na,a.wav,x\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for value, said in [
        ("data/m.csv", f"not the config file's folder, where it is ({tmp_path / 'proj' / 'data' / 'm.csv'}): run "
                       f"repeval from {tmp_path / 'proj'}"),
        ("$PROJ/data/m.csv", "environment variables are not expanded in paths: write the path out in full"),
        ("nowhere/m.csv", f"fix the path (relative paths start from {tmp_path / 'elsewhere'})"),
    ]:  # fmt: skip
        d = base()
        d["experiments"][0]["datasets"][0]["manifest"] = value
        cfg = tmp_path / "proj" / "c.yaml"
        cfg.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError) as info:
            check_data_paths(load_config(cfg), str(cfg))
        assert said in str(info.value), str(info.value)
        assert ("repeval data render" in str(info.value)) == (value == "nowhere/m.csv"), str(info.value)
    monkeypatch.chdir(tmp_path / "proj")  # from the config's folder the same file is found
    d["experiments"][0]["datasets"][0]["manifest"] = "data/m.csv"
    cfg.write_text(yaml.safe_dump(d))
    check_data_paths(load_config(cfg), str(cfg))


def test_a_home_folder_in_a_path_is_expanded():
    """``~`` in a path passed the data check (which expanded it), but the loaders and the store took it as a folder
    named ``~`` (``run.store: ~/repeval-store`` made ``./~/repeval-store``): it is expanded when the file is read."""
    d = base()
    d["run"] = {"store": "~/repeval-store", "runs_dir": "~/runs"}
    d["experiments"][0]["datasets"][0].update(manifest="~/data/m.csv", dir="~/data")
    cfg = parse_config(d)
    assert (cfg.run.store, cfg.run.runs_dir) == (str(Path.home() / "repeval-store"), str(Path.home() / "runs"))
    ds = cfg.experiments[0].datasets[0]
    assert (ds.manifest, ds.dir) == (str(Path.home() / "data" / "m.csv"), str(Path.home() / "data"))
    d["run"]["store"] = "s3://bucket/~x"  # a URI as written
    assert parse_config(d).run.store == "s3://bucket/~x"


def test_a_missing_rendered_manifest_names_the_render_command_that_writes_it(tmp_path, monkeypatch):
    """A shipped config run before its data was rendered (``configs/aggregation.yaml``: ``data/mixtures/manifest.csv``)
    said "`repeval data render DIR` renders the quickstart's notes; `--kind mixtures` …" — the user worked out DIR
    and the kind. It now names the command for that folder and the task's type; a manifest the renderer does not
    write (another label column or file name) keeps the general hint."""
    from repeval.config.loader import check_data_paths

    monkeypatch.chdir(tmp_path)
    cases = [
        ("multilabel_classification", "instruments", "data/mixtures/manifest.csv",
         "write it first: `repeval data render data/mixtures --kind mixtures` renders instrument mixtures"),
        ("key_estimation", "key", "data/keys/manifest.parquet",
         "`repeval data render data/keys --kind keys --format parquet` renders chord progressions"),
        ("multiclass_classification", "instrument", "data/quickstart/manifest.csv",
         "`repeval data render data/quickstart` renders the quickstart's notes"),
        ("multiclass_classification", "genre", "data/mine/manifest.csv", "`repeval data render DIR` renders"),
        ("multiclass_classification", "instrument", "data/mine/tracks.csv", "`repeval data render DIR` renders"),
    ]  # fmt: skip
    for task_type, column, manifest, said in cases:
        d = base()
        d["experiments"][0]["task"]["type"] = task_type
        d["experiments"][0]["deformations"] = []
        d["experiments"][0]["datasets"][0].update(manifest=manifest, label_column=column)
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError) as info:
            check_data_paths(load_config(cfg), str(cfg))
        assert said in str(info.value), str(info.value)


def test_a_directory_given_as_config_says_so(tmp_path):
    """`repeval validate some_directory/` said "config file not found"; it now says the path is a directory and
    names the YAML files in it."""
    from typer.testing import CliRunner

    from repeval.cli import app

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty is a directory; give a YAML config file$"):
        load_config(tmp_path / "empty")
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("experiments: []\n")
    r = CliRunner().invoke(app, ["validate", f"{tmp_path}/"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    out = " ".join(r.output.split())
    assert f"{tmp_path} is a directory; give a YAML config file in it: a.yml, b.yaml" in out, out
    assert "not found" not in out


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("experiments: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_a_runs_config_yaml_reads_back_as_the_same_experiments(name):
    """A run's ``config.yaml`` (what `repeval report` parses, what a user reruns) held every key with its default: read
    back, a preset's values written next to it fixed its axes — catalog.yaml's 222 probe configurations became 2 (the
    Jukemir grid one), and a file with ``mir_ref_thesis`` was refused (``hidden_units`` set) — and a search's
    normalised ``space`` did not parse."""
    from repeval.runner import config_yaml
    from repeval.tuning.search import expand_all

    def expanded(c):
        return [
            [(s.name, s.select, s.space, s.num_samples, s.scheduler, [(p.name, p.config) for p in s.points]) for s in
             expand_all(e.downstream_models, e.task.effective_type)]
            for e in c.experiments
        ]  # fmt: skip

    cfg = load_config(REPO / "configs" / name)
    again = parse_config(yaml.safe_load(config_yaml(cfg)))
    assert again == cfg and expanded(again) == expanded(cfg)


def test_plan_counts_expanded_presets_and_tests_only_the_selected_configuration():
    """Jukemir (216 configurations, best by validation → 1 tested) + M1–M5 (5, all tested), 2 seeds, 1 model,
    clean + 2 scenarios: 221 × 2 trainings and (1 + 5) × 2 × 3 test cells."""
    cfg = parse_config(
        {
            "run": {"seeds": 2},
            "experiments": [
                {
                    "task": {"name": "inst", "type": "multiclass_classification"},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3}}]] * 2,
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"preset": "jukemir"}, {"preset": "mir_ref_thesis"}],
                }
            ],
        }
    )
    plan = make_plan(cfg)
    assert plan.trainings == 221 * 2
    assert plan.test_cells == 6 * 2 * 3
    assert "1 model × 221 probe configurations (6 tested) × 2 seeds" in plan.text()


def test_plan_names_each_probe_preset_its_source_criterion_and_departures():
    """A researcher reproducing a protocol learns from `repeval plan` which preset each entry is, the criterion it
    selects on for this task type, what they set next to it, and where the preset departs from its source."""
    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": "emotion", "type": "regression"},
                    "datasets": [{"name": "emo", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [
                        {"preset": "jukemir"},
                        {"preset": "mir_ref_thesis"},
                        {"preset": "marble", "patience": 20},
                        {"name": "mine", "hidden_units": [8]},
                    ],
                }
            ],
        }
    )
    lines = [line[4:] for line in make_plan(cfg).text().splitlines() if line.startswith("  - probe ")]
    assert len(lines) == 4
    juke, thesis, marble, mine = lines
    assert juke.startswith("probe jukemir: 216 configurations, the best by val_r2 (mean over seeds) tested once; ")
    assert "preset jukemir [Castellon et al. 2021, Jukemir; p-lambda/jukemir" in juke
    assert "differs from the source: validated once per epoch, patience 10 validations, at most 100 epochs" in juke
    assert thesis.startswith(  # each with its layers: a probe's name does not say which it is
        "probe M1 (hidden []), M2 (hidden [128]), M3 (hidden [256, 128]), M4 (hidden [infer]), M5 (hidden [infer, "
        "infer]): 5 configurations, each tested, early stopping and checkpoint by val_loss; "
    )
    assert "preset mir_ref_thesis [Plachouras 2023" in thesis and "set here" not in thesis
    assert marble.startswith("probe marble: 6 configurations, the best by val_r2") and "set here: patience=20" in marble
    # the departures say the patience set next to the preset, not the preset's 10
    assert "differs from the source: early stopping after 20 validations without improvement" in marble
    assert mine == "probe mine (hidden [8]): 1 configuration, tested, early stopping and checkpoint by val_loss"
    # probes chosen on R² beside probes kept on the loss: the report then picks each model's probe on clean test
    [differ] = [line for line in make_plan(cfg).text().splitlines() if "different validation criteria" in line]
    assert differ.startswith(
        "note: emotion's probes are chosen on different validation criteria (val_r2: jukemir, marble; val_loss: "
        "mir_ref_thesis, mine): "
    )
    assert "choose each model's probe on clean test, a test-set choice — set `save_criterion: val_r2` on " in differ

    # `repeval plan --smoke-test` printed the smoke test's one probe bare ("probe jukemir: 1 configuration, …"), no
    # preset, source or departures: it says which configuration of which entry it is, and the entry's preset
    from repeval.runner import smoke_test_config

    smoke = smoke_test_config(cfg)
    [line] = [line[4:] for line in make_plan(smoke, smoke_of=cfg).text().splitlines() if line.startswith("  - probe ")]
    assert line.startswith(
        "probe jukemir (hidden []): 1 configuration (jukemir-000, the first of the entry's 216: a smoke test trains one), "
        "tested, checkpoint by val_r2; preset jukemir [Castellon et al. 2021, Jukemir; p-lambda/jukemir"
    ), line
    # the smoke test's 3 epochs, not the entry's 100 (which it said as what is trained)
    assert "differs from the source: validated once per epoch, patience 10 validations, at most 3 epochs" in line
    assert line.endswith(
        "; the smoke test leaves out the other downstream_models entries (mir_ref_thesis, marble, mine)"
    )
    [bare] = [line for line in make_plan(smoke).text().splitlines() if line.startswith("  - probe ")]
    assert "preset" not in bare  # without what it is the smoke test of, the plan knows only the plain probe

    # epochs set next to a preset, or capped by run.max_epochs, are what its departures say is trained
    for run, most in (({}, 30), ({"max_epochs": 5}, 5)):
        d = cfg.model_dump(mode="json", exclude_unset=True)
        d["experiments"][0]["downstream_models"] = [{"preset": "jukemir", "epochs": 30}]
        [juke] = [ln for ln in make_plan(parse_config({**d, "run": run})).text().splitlines() if "- probe " in ln]
        assert (
            f"differs from the source: validated once per epoch, patience 10 validations, at most {most} epochs ("
            in juke
        )
    # a count of one is singular; `null` next to a preset turns its learning-rate decay or step budget off ("None")
    d = cfg.model_dump(mode="json", exclude_unset=True)
    d["experiments"][0]["downstream_models"] = [
        {"preset": "marble", "patience": 1, "lr_decay_patience": None},
        {"preset": "mule", "max_steps": None},
    ]
    marble, mule = [ln for ln in make_plan(parse_config(d)).text().splitlines() if "- probe " in ln]
    assert "early stopping after 1 validation without improvement and no learning-rate decay, for every " in marble
    assert "one length for every task, no step limit (MULE: " in mule and "None steps" not in mule
    # a grid over the epochs set next to it trains each of them (capped by run.max_epochs), not the preset's 100
    d["experiments"][0]["downstream_models"] = [{"preset": "jukemir", "search": {"grid": {"epochs": [5, 20]}}}]
    [juke] = [
        ln for ln in make_plan(parse_config({**d, "run": {"max_epochs": 10}})).text().splitlines() if "- pro" in ln
    ]
    assert "patience 10 validations, at most 5 or 10 epochs (Jukemir: " in juke


def test_preset_departures_say_what_training_does_with_the_keys_set_next_to_it():
    """Every sentence the plan and the report print of a preset entry is true of what it trains: the departures said
    the preset's own early stopping, learning-rate factor and length whatever was set next to it — `patience: 10` beside
    mule trains with early stopping (repeval/probes/train.py stops after `patience` validations without improvement),
    yet the plan said "no early stopping"; `lr_decay_factor: 0.3` beside marble was said as halving; mule's 30,000
    steps were said under a 3-epoch run.max_epochs or smoke test, which ends it first; a search space over patience
    or epochs was said as the preset's value; a search grid set next to a preset was not among the keys set here;
    marble's float32 and mule's dropout 0.5 and batch 100 were said whatever precision, dropout or batch_size was set."""
    from repeval.runner import smoke_test_config
    from repeval.tuning.presets import entry_words

    def config(*models: dict, run: dict | None = None) -> Config:
        d = {
            "experiments": [
                {
                    "task": {"name": "tags", "type": "multilabel_classification"},
                    "datasets": [{"name": "mtt", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": list(models),
                }
            ],
            "run": run or {},
        }
        return parse_config(d)

    def lines(cfg: Config, smoke_of: Config | None = None) -> list[str]:
        return [ln for ln in make_plan(cfg, smoke_of=smoke_of).text().splitlines() if ln.startswith("  - probe ")]

    # one plan for the entries (a name each), one under run.max_epochs, one smoke test
    mule, stopped, marble, sized, patience, epochs, grid = lines(
        config(
            {"preset": "mule"},
            {"preset": "mule", "name": "mule-p", "patience": 10},
            {"preset": "marble", "lr_decay_factor": 0.3, "precision": "bf16"},
            {"preset": "mule", "name": "mule-d", "dropout": 0.3, "batch_size": 256},
            {"preset": "jukemir", "search": {"space": {"patience": {"randint": [5, 20]}}}},
            {"preset": "jukemir", "name": "juke-e", "search": {"space": {"epochs": {"randint": [5, 20]}}}},
            {"preset": "marble", "name": "marble-g", "search": {"grid": {"patience": [5, 20]}}},
        )
    )
    assert "the best checkpoint kept, no early stopping (MULE's" in mule and "early stopping after" not in mule
    assert "best checkpoint kept, early stopping after 10 validations without improvement (MULE's" in stopped
    assert "no early stopping" not in stopped
    said = entry_words({"preset": "mule", "patience": 10})  # the report says it as the plan does
    assert said is not None and "early stopping after 10 validations without improvement (MULE's" in said

    assert "and the learning rate multiplied by 0.3 after 3, for every task" in marble and "halving" not in marble
    assert "; bfloat16 products (MARBLE: 16-bit mixed precision)" in marble and "float32" not in marble
    # not the preset's dropout 0.5 and repeval's batch of 100
    assert "dropout 0.3 everywhere; batch size is not published (here 256); " in sized

    assert "validated once per epoch, patience from the search space, at most 100 epochs (" in patience
    assert "patience 10 validations, at most the epochs from the search space (Jukemir" in epochs

    assert "], set here: search grid patience=[5, 20]; differs from the source: " in grid
    assert "early stopping after 5 or 20 validations without improvement and learning-rate halving after 3" in grid

    [capped] = lines(config({"preset": "mule"}, run={"max_epochs": 3}))
    assert "one length for every task, 30,000 steps or 3 epochs, whichever ends first (MULE: " in capped
    full = config({"preset": "mule"})
    smoke = smoke_test_config(full)
    [line] = lines(smoke, full)
    most = smoke.experiments[0].downstream_models[0].epochs
    assert f"30,000 steps or {most} epochs, whichever ends first" in line, line


def test_preset_departures_say_the_sampling_weight_decay_optimizer_and_search_set_next_to_it():
    """jukemir said "batches are epoch permutations" under `train_sampling: balanced` (repeval/probes/data.py draws
    class-balanced rows with replacement); mir_ref_thesis said "L2 1e-5" whatever weight_decay was set, and L2 under
    `optimizer: adamw` (decoupled); mule said "Adam ε 1e-8" under `optimizer: sgd`; `set here` left out
    search.num_samples, scheduler and select."""
    from repeval.tuning.presets import entry_words

    def said(entry: dict) -> str:
        words = entry_words(entry)
        assert words is not None
        return words

    balanced = said({"preset": "jukemir", "train_sampling": "balanced"})
    assert (
        "; batches are drawn class-balanced, with replacement (Jukemir" in balanced and "permutations" not in balanced
    )
    assert "; batches are epoch permutations (Jukemir" in said({"preset": "jukemir"})

    assert "; L2 1e-5 as PyTorch weight_decay (Keras'" in said({"preset": "mir_ref_thesis"})
    assert "; L2 2e-5 as PyTorch weight_decay (Keras'" in said({"preset": "mir_ref_thesis", "weight_decay": 2e-5})
    assert "; no L2 (Keras'" in said({"preset": "mir_ref_thesis", "weight_decay": 0.0})
    adamw = said({"preset": "mir_ref_thesis", "optimizer": "adamw"})
    assert "; AdamW's decoupled weight decay 1e-5 (Keras'" in adamw and "L2 1e-5" not in adamw

    sgd = said({"preset": "mule", "optimizer": "sgd"})
    assert "; SGD (MULE: Adam); softmax" in sgd and "Adam ε" not in sgd
    adamw = said({"preset": "mule", "optimizer": "adamw"})
    assert "; AdamW's decoupled weight decay, not L2, on biases too (Keras: kernels only); AdamW ε 1e-8 (" in adamw
    assert "; Adam ε 1e-8 (Keras 1e-7); softmax" in said({"preset": "mule"})

    search = {
        "space": {"dropout": {"uniform": [0.1, 0.5]}},
        "num_samples": 4,
        "scheduler": {"type": "asha", "grace_period": 5},
        "select": "best",
    }
    assert (
        ", set here: search space dropout=uniform[0.1, 0.5], search num_samples=4, "
        "search scheduler=asha(grace_period=5), search select='best'; differs from the source: "
    ) in said({"preset": "mule", "search": search})


def test_jukemir_says_frames_drawn_with_replacement_under_prediction_aggregation():
    """jukemir said "batches are epoch permutations" of a task with `embedding_aggregation: prediction`, whose frames
    on tracks of unequal numbers of them are drawn with replacement, each track weighing alike
    (repeval/probes/data.py training_weights): the plan now says it of such a task, and the mean-aggregated one's as
    before."""
    from repeval.tuning.presets import entry_words

    def line(aggregation: str, **probe: object) -> str:
        d = {
            "experiments": [
                {
                    "task": {
                        "name": "genre",
                        "type": "multiclass_classification",
                        "embedding_aggregation": aggregation,
                    },
                    "datasets": [{"name": "gtzan", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"preset": "jukemir", **probe}],
                }
            ]
        }
        [said] = [ln for ln in make_plan(parse_config(d)).text().splitlines() if ln.startswith("  - probe ")]
        return said

    frames = (
        "; batches are epoch permutations of the frames, or, where tracks have unequal numbers of frames, frames drawn "
        "with replacement, each track weighing alike (Jukemir draws each batch at random)"
    )
    assert frames in line("prediction")
    assert frames in (entry_words({"preset": "jukemir"}, 0, "multiclass_classification", None, "prediction") or "")
    balanced = line("prediction", train_sampling="balanced")
    assert (
        "; batches are drawn class-balanced, with replacement, each track's weight shared among its frames ("
        in balanced
    )
    mean = line("mean")
    assert "; batches are epoch permutations (Jukemir draws each batch at random)" in mean and "frames" not in mean


def test_preset_departures_say_the_values_its_grid_and_points_train():
    """A preset's grid and points were not read by what its departures say of training (preset_said.trained_with
    read the base alone): a grid over dropout and batch size was said as the probe's default dropout and batch; an
    entry's own value, set next to it (which fixes that axis), is said in its place."""
    from repeval.config.probe import ProbeConfig
    from repeval.tuning.presets import Preset, get_preset
    from repeval.tuning.search import expand_probe

    grid = Preset(
        name="g", doc="", base={"dropout": 0.1}, grid={"dropout": [0.25, 0.5], "batch_size": [64, 256]},
        select="best", differs="{dropout}; batch {batch_size}",
    )  # fmt: skip
    assert grid.departures(4) == "dropout 0.25 or 0.5; batch 64 or 256"
    assert grid.departures(2, "set next to it", values={"dropout": 0.3}) == "dropout 0.3; batch 64 or 256"
    points = Preset(
        name="p", doc="", base={"weight_decay": 1e-5}, points=(("A", {}), ("B", {"weight_decay": 0.0})),
        differs="{l2}",
    )  # fmt: skip
    assert points.departures(2) == "L2 1e-5 as PyTorch weight_decay or no L2"
    # what a registered preset's grid trains is what its words read
    juke = get_preset("jukemir")
    trained = expand_probe(ProbeConfig(preset="jukemir"), 0).points
    for key, values in juke.trained_grid().items():
        assert sorted({getattr(pt.config, key) for pt in trained}) == sorted(values)


def _capped_plan(probe: dict, max_epochs: int) -> tuple[Config, str]:
    """The config of one experiment training ``probe`` under ``run.max_epochs``, and its plan's line for the probe.
    ``repeval validate`` refuses such a file (:func:`_capped_refused`): the plan and the run see such a configuration
    only when given it from Python, with the cap set afterwards."""
    d = _capped(probe, max_epochs)
    cfg = parse_config({**d, "run": {}})
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"max_epochs": max_epochs})})
    *_, line = [line for line in make_plan(cfg).text().splitlines() if line.startswith("  - probe ")]
    return cfg, line


def _capped(probe: dict, max_epochs: int) -> dict:
    return {
        "run": {"max_epochs": max_epochs},
        "experiments": [
            {
                "task": {"name": "inst", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"name": "first"}, probe],
            }
        ],
    }


def _capped_refused(probe: dict, max_epochs: int) -> list[str]:
    """What ``repeval validate`` says of ``probe`` trained under ``run.max_epochs``."""
    with pytest.raises(ConfigError) as err:
        parse_config(_capped(probe, max_epochs))
    return err.value.problems


def test_plan_says_an_asha_scheduler_that_run_max_epochs_leaves_nothing_to_stop():
    """``run.max_epochs`` below a scheduler's grace_period ends training before ASHA's first rung: the plan said "the
    weaker ones stopped early by ASHA" of a grid that trains every configuration to the end — and validate, which
    checked the probe against its own epochs alone, let it pass (the stack halving of a grid, as here, and Tune's
    ASHA alike)."""
    asha = {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": {"type": "asha", "grace_period": 5}}
    why = (
        "scheduler.grace_period (5) is not below run.max_epochs (3): ASHA's first rung would come after training "
        "ends, so it would stop nothing — set grace_period below 3, raise run.max_epochs, or remove the scheduler"
    )
    _, line = _capped_plan({"name": "halved", "search": asha}, 3)
    assert line.endswith(f"tested once, but its ASHA scheduler stops none: {why}"), line
    assert _capped_refused({"name": "halved", "search": asha}, 3) == [
        f"experiments[0].downstream_models[1] (halved): {why}"
    ]
    assert parse_config(_capped({"name": "halved", "search": asha}, 6)).run.max_epochs == 6  # a rung at 5 judges


def test_every_entry_whose_asha_run_max_epochs_leaves_idle_is_said_at_once():
    """Each probe entry whose scheduler ``run.max_epochs`` leaves nothing to stop is said in one run of validate: only
    the first was, and the next came out only once it was fixed."""
    asha = {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": {"type": "asha", "grace_period": 5}}
    d = _capped({"name": "a", "search": asha}, 3)
    d["experiments"][0]["downstream_models"].append({"name": "b", "search": asha})
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert [p.split(":")[0] for p in err.value.problems] == [
        "experiments[0].downstream_models[1] (a)",
        "experiments[0].downstream_models[2] (b)",
    ]


def test_plan_and_run_apply_validates_val_every_rule_to_run_max_epochs():
    """``run.max_epochs`` (12) below the probes' epochs (30), validated every 3: ASHA's rung at 10 is judged only at
    the last validation (epoch 12). The plan said "the weaker ones stopped early by ASHA" (it compared grace_period
    with run.max_epochs alone) and the run made the scheduler; all three apply one rule (asha_idle), and validate
    refuses it."""
    from repeval.tuning.search import expand_probe
    from repeval.tuning.space_checks import asha_budget, asha_idle

    probe = {"name": "h", "epochs": 30, "val_every": 3, "search": {"space": {"dropout": {"uniform": [0.1, 0.5]}},
             "num_samples": 2, "scheduler": {"type": "asha", "grace_period": 10}}}  # fmt: skip
    cfg, line = _capped_plan(probe, 12)
    why = (
        "scheduler.grace_period (10): with val_every 3 no validation falls from epoch 10 to before the end of training "
        "(epoch 12, run.max_epochs), so ASHA would judge a trial only at its last validation and stop none early — "
        "set grace_period to 9 or less, raise run.max_epochs, or remove the scheduler"
    )
    assert line.endswith(f"but its ASHA scheduler stops none: {why}"), line
    assert _capped_refused(probe, 12) == [f"experiments[0].downstream_models[1] (h): {why}"]
    spec = expand_probe(cfg.experiments[0].downstream_models[1], 1)
    assert asha_idle(spec, 12) == tuple(why.split(" — ")) and asha_idle(spec) is None  # validate: 30 epochs is fine
    assert (asha_budget(spec, 12), asha_budget(spec, 15), asha_budget(spec)) == (12, 15, 30)
    assert asha_idle(spec, 15) is None  # validated at 12, before the end (15): the rung at 10 judges then


def test_a_grids_halving_that_trains_one_configuration_a_trial_is_refused():
    """``scheduler: asha`` on a grid ranks the configurations one trial trains together: ``run.vectorize`` below two
    configurations' seeds trains one a trial, and the halving stopped none, without a word."""
    grid = {"name": "g", "search": {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": "asha"}}
    d = _capped(grid, 100)
    d["run"] = {"vectorize": 3, "seeds": 2}
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.problems == [
        "experiments[0].downstream_models[1] (g): search.scheduler: on a grid, ASHA stops the configurations that rank "
        "below the others it trains with in one trial, and run.vectorize (3) with run.seeds (2) trains one "
        "configuration a trial, so it would stop nothing — raise run.vectorize to 4 or more, or remove the scheduler"
    ]
    d["run"]["vectorize"] = 4
    assert parse_config(d).run.vectorize == 4
    space = {
        "name": "s",
        "search": {"space": {"dropout": {"uniform": [0.1, 0.5]}}, "num_samples": 2, "scheduler": "asha"},
    }
    d = _capped(space, 100)
    d["run"] = {"vectorize": 1}
    assert parse_config(d).run.vectorize == 1  # Tune's ASHA: one configuration a trial, ranked across trials


def test_a_smoke_test_runs_where_a_full_run_would_leave_asha_nothing_to_stop(tmp_path):
    """``run.smoke_test: true`` trains each experiment's first configuration without its scheduler, yet a grid's ASHA
    that ``run.max_epochs`` (or ``run.vectorize``) left nothing to stop was refused at validate: the smoke test, which
    has no ASHA, never ran. It runs; ``repeval validate`` notes what a full run would refuse, which the same
    configuration without ``run.smoke_test`` still is."""
    from typer.testing import CliRunner

    from repeval.cli import app

    grid = {"name": "g", "search": {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": "asha"}}
    why = (
        "experiments[0].downstream_models[1] (g): scheduler.grace_period (10) is not below run.max_epochs (3): ASHA's "
        "first rung would come after training ends, so it would stop nothing — set grace_period below 3, raise "
        "run.max_epochs, or remove the scheduler"
    )
    assert _capped_refused(grid, 3) == [why]
    d = _capped(grid, 3)
    d["run"]["smoke_test"] = True
    assert parse_config(d).smoke_asha_notes() == [
        f"{why}; a full run (without run.smoke_test) is refused for it — the smoke test trains the entry's first "
        "configuration without the scheduler, so it runs"
    ]
    (path := tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", "--skip-model-check", str(path)])
    assert res.exit_code == 0 and f"\nnote: {why}; a full run" in res.output, res.output
    d["run"] = {"smoke_test": True, "vectorize": 1}  # a grid's halving on one configuration a trial: alike
    assert parse_config(d).smoke_asha_notes()[0].startswith("experiments[0].downstream_models[1] (g): search.scheduler")
    assert _capped_refused(grid, 3) == [why] and parse_config(_capped(grid, 100)).smoke_asha_notes() == []
    # `repeval run --smoke-test` (plan, embed, …) of the configuration without run.smoke_test: its smoke test alike
    (path := tmp_path / "full.yaml").write_text(yaml.safe_dump(_capped(grid, 3)))
    assert load_config(path, smoke_test=True).run.max_epochs == 3
    with pytest.raises(ConfigError, match="grace_period"):
        load_config(path)
    # `repeval validate --smoke-test` accepts what `run --smoke-test` runs (validate had no such flag: it refused it)
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", "--skip-model-check", "--smoke-test", str(path)])
    assert res.exit_code == 0 and f"\nnote: {why}; a full run" in res.output, res.output
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", "--skip-model-check", str(path)])
    assert res.exit_code == 2 and "grace_period" in res.output, res.output


def test_thesis_preset_says_the_auc_departure_of_multilabel_tasks_alone():
    """The mir_ref_thesis preset's departures spoke of mir_ref's multilabel val_auc for every task, key estimation
    and multiclass too: the plan and the report say it of a multilabel task alone."""
    from repeval.tuning.presets import entry_words

    def said(task: dict) -> str:
        exp = {
            "task": task,
            "datasets": [{"name": "d", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
            "embedding_models": ["mfcc-stats"],
            "downstream_models": [{"preset": "mir_ref_thesis"}],
        }
        [line] = [ln for ln in make_plan(parse_config({"experiments": [exp]})).text().splitlines() if "M1" in ln]
        return line

    auc = "mir_ref's val_auc is Keras' AUC over the flattened labels (micro), here val_roc_auc_macro"
    tags = said({"name": "tags", "type": "multilabel_classification"})
    assert f"[344, 178] in mir_ref); {auc}" in tags
    for task in (
        {"name": "inst", "type": "multiclass_classification"},
        {"name": "key_estimation", "type": "multiclass_classification"},
    ):
        line = said(task)
        assert "differs from the source: early stopping" in line and "val_auc" not in line, line
        assert "kept the best val_categorical_accuracy checkpoint" in line
    # a regression task: mir_ref trained none, and its probes stop and select on the validation loss (no accuracy)
    line = said({"name": "emotion", "type": "regression"})
    assert "checkpoint by val_loss" in line and "accuracy" not in line and "AUC" not in line, line
    assert "the thesis trained no regression task" in line and "the validation loss (mean squared error)" in line
    # the report: each task's departures; a task of a type not known, each with the type it is of
    assert auc in entry_words({"preset": "mir_ref_thesis"}, 0, "multilabel_classification")
    assert "val_auc" not in entry_words({"preset": "mir_ref_thesis"}, 0, "key_estimation")
    assert f"for multilabel classification tasks, {auc}" in entry_words({"preset": "mir_ref_thesis"})


def test_plan_says_how_many_points_of_a_preset_are_trained_after_the_keys_set_next_to_it():
    """`repeval plan` said "all 16 points are trained" of the hear preset even when a key set next to it cut the grid
    to 4 (or a smoke test trained one): its departures say what is trained."""
    from repeval.runner import smoke_test_config

    def said(*entries):
        cfg = parse_config(
            {
                "experiments": [
                    {
                        "task": {"name": "inst", "type": "multiclass_classification"},
                        "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                        "embedding_models": ["mfcc-stats"],
                        "downstream_models": list(entries),
                    }
                ],
            }
        )
        return cfg, [line[4:] for line in make_plan(cfg).text().splitlines() if line.startswith("  - probe ")]

    _, [full, lr, patience, searched] = said(
        {"preset": "hear"},
        {"preset": "hear", "name": "hear-lr", "learning_rate": 1e-3},
        {"preset": "hear", "name": "hear-patient", "patience": 40},
        {"preset": "hear", "name": "hear-init", "search": {"grid": {"init": ["xavier_uniform", "default"]}}},
    )
    assert (
        full.startswith("probe hear: 16 configurations")
        and "all 16 points are trained; hear-eval-kit trains 8 of" in full
    )
    assert lr.startswith("probe hear-lr: 4 configurations") and "all 16 points" not in lr
    assert (
        "differs from the source: 4 configurations are trained, not the preset's 16 points (the keys set next to it "
        "change its grid); hear-eval-kit trains 8 of its 16, drawn at random, by default" in lr
    )
    assert "all 16 points are trained" in patience  # a key that is not an axis of the grid leaves its 16 points
    # as many configurations, but not the preset's: one of its axes has other values
    assert searched.startswith("probe hear-init: 16 configurations") and "all 16 points" not in searched
    assert "16 configurations are trained, not the preset's 16 points (the keys set next to it" in searched
    cfg, _ = said({"preset": "hear"})
    smoke = smoke_test_config(cfg)
    [line] = [line for line in make_plan(smoke, smoke_of=cfg).text().splitlines() if line.startswith("  - probe ")]
    assert "1 configuration is trained, not the preset's 16 points (a smoke test trains one)" in line, line


def test_smoke_test_config_trains_one_configuration_of_a_preset_grid():
    from repeval.runner import smoke_test_config
    from repeval.tuning.search import expand_all

    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": "inst", "type": "multiclass_classification"},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{"preset": "jukemir"}, {"preset": "mir_ref_thesis"}],
                }
            ],
        }
    )
    small = smoke_test_config(cfg, max_tracks=10, epochs=2)
    specs = expand_all(small.experiments[0].downstream_models)
    assert [(s.name, s.size) for s in specs] == [("jukemir", 1)]
    assert specs[0].points[0].config.epochs == 2 and small.experiments[0].datasets[0].max_tracks == 10
    assert make_plan(small).trainings == 1


def test_smoke_test_config_reduces_a_pca_target_its_few_tracks_cannot_give():
    """A PCA to more dimensions than the training rows is an error; `--smoke-test` trains on a few tracks, so the
    full run's target (128 here) would stop every smoke test of a config that reduces its embeddings."""
    from repeval.config.probe import ProbeConfig
    from repeval.runner import SMOKE_PCA_DIM, smoke_test_config

    for probe in ({"emb_dim_reduction": "PCA", "emb_shape": 128}, {"pca_dim": 128}, {"pca_dim": 4}):
        cfg = parse_config(
            {
                "experiments": [
                    {
                        "task": {"name": "inst", "type": "multiclass_classification"},
                        "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                        "embedding_models": ["mfcc-stats"],
                        "downstream_models": [probe],
                    }
                ],
            }
        )
        got = smoke_test_config(cfg, max_tracks=20).experiments[0].downstream_models[0]
        assert got.effective_pca_dim == min(SMOKE_PCA_DIM, 128 if probe.get("pca_dim", 128) == 128 else 4)
        ProbeConfig.model_validate(got.model_dump(exclude_unset=True))  # pca_dim and emb_shape still agree


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


# ------------------------------------------------------------------ the JSON Schema for editors


@functools.cache  # building the schema from the config models takes ~0.3 s; the parametrized cases below share it
def _schema_validator():
    import jsonschema

    from repeval.config.jsonschema import config_json_schema

    return jsonschema.Draft202012Validator(config_json_schema())


def _schema_errors(data: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in _schema_validator().iter_errors(data)]


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


def test_prediction_aggregation_turns_frames_on_and_the_plan_says_how_tracks_are_scored():
    d = base()
    d["experiments"][0]["task"]["aggregation"] = "prediction"  # mir_ref's spelling
    cfg = parse_config(d)
    assert cfg.keeps_frames("notes", "mfcc-stats") and cfg.experiments[0].task.embedding_aggregation == "prediction"
    assert not cfg.run.keep_frames and not cfg.keeps_frames("other", "mfcc-stats")  # per partition, not run-wide
    assert "[multiclass_classification, per-frame probes, mean prediction per track]" in make_plan(cfg).lines[0]
    plain = parse_config(base())
    assert not plain.keeps_frames("notes", "mfcc-stats")
    assert "[multiclass_classification] on notes" in make_plan(plain).lines[0]
    assert parse_config({**base(), "run": {"keep_frames": True}}).keeps_frames("notes", "mfcc-stats")
    d = base()
    d["experiments"][0]["task"]["embedding_aggregation"] = "attention"
    cfg = parse_config(d)
    assert cfg.keeps_frames("notes", "mfcc-stats") and cfg.experiments[0].task.embedding_aggregation == "attention"
    assert "[multiclass_classification, attention pooling of each track's frames]" in make_plan(cfg).lines[0]


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


def test_validate_checks_that_a_k_fold_catalog_can_rotate_its_split_column(tmp_path, monkeypatch):
    """split_type: all with a split_column: every row filled is an error of `repeval validate` (the load would stop:
    the folds cannot rotate), some rows filled a warning, and a manifest not read (--skip-data-check) a warning that
    it depends on the column's cells."""
    from typer.testing import CliRunner

    from repeval.cli import app

    monkeypatch.chdir(tmp_path)
    d = base()
    d["experiments"][0]["datasets"][0].update(split_column="split", split_type="all", check_files=False)
    Path("c.yaml").write_text(yaml.safe_dump(d))
    rows = ["track_id,audio_path,instrument,split", "a,a.wav,x,train", "b,b.wav,y,test"]
    Path("m.csv").write_text("\n".join(rows) + "\n")
    validate = ["validate", "--skip-model-check", "c.yaml"]
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 2, res.output
    assert "datasets[0].split_column: split_type is all, but every row" in res.output
    assert "drop split_column" in res.output and "split_type: single" in res.output
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", *validate[1:]])
    assert res.exit_code == 0 and "warning:" in res.output
    assert "if every row of column 'split' has a split the run stops at the load" in res.output
    Path("m.csv").write_text("\n".join([*rows, "c,c.wav,x,", "d,d.wav,y, "]) + "\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 0, res.output
    assert "warning: experiments[0].datasets[0].split_column: 2 of 4 rows" in res.output
    Path("m.csv").write_text("\n".join([rows[0], "c,c.wav,x,", "d,d.wav,y,"]) + "\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    # a spreadsheet's empty rows after the last track (and a blank line) are no rows without a split
    Path("m.csv").write_text("\n".join(rows) + "\n\n,,,\n,,,\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 2 and "split_type is all, but every row" in res.output, res.output


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


def test_validate_warns_of_a_deformation_step_without_p(tmp_path, monkeypatch):
    """Every audiomentations transform defaults to p 0.5: ``{type: Mp3Compression, params: {min_bitrate: 32,
    max_bitrate: 32}}`` compressed about half of the test tracks and scored the others clean under the scenario's
    name, and nothing said so — a robustness table's Δ measured half a deformation. `repeval validate` warns of each
    such step once (a scenario the experiments share, through a YAML anchor, too), and says nothing of a step with p."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config.embed import default_p_warnings

    monkeypatch.chdir(tmp_path)
    d = base()
    mp3 = {"name": "mp3", "steps": [{"type": "Mp3Compression", "params": {"min_bitrate": 32, "max_bitrate": 32}}]}
    d["experiments"][0]["deformations"] = [[{"type": "Gain", "params": {"p": 1}}, {"type": "Clip"}], mp3]
    d["experiments"].append({**d["experiments"][0], "task": {"name": "other", "type": "multiclass_classification"}})
    # another data set's own 'D1', another step without p where the first D1 has Clip: said too, not taken for it
    other = {**d["experiments"][0]["datasets"][0], "name": "other"}
    d["experiments"].append({**d["experiments"][0], "datasets": [other], "deformations": [[{"type": "Gain"}] * 2]})
    Path("c.yaml").write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "--skip-data-check", "c.yaml"])
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if "no p" in line]
    assert warned == [
        "warning: experiments[0].deformations[0].steps[1]: scenario 'D1' gives Clip no p — audiomentations' default "
        "p 0.5 deforms only about 50% of the tracks, the others scored as they are under 'D1': write p: 1 to deform "
        "every track (or p: 0.5 to keep it so)",
        "warning: experiments[0].deformations[1].steps[0]: scenario 'mp3' gives Mp3Compression no p — "
        "audiomentations' default p 0.5 deforms only about 50% of the tracks, the others scored as they are under "
        "'mp3': write p: 1 to deform every track (or p: 0.5 to keep it so)",
        *(
            f"warning: experiments[2].deformations[0].steps[{i}]: scenario 'D1' gives Gain no p — audiomentations' "
            "default p 0.5 deforms only about 50% of the tracks, the others scored as they are under 'D1': write p: 1 "
            "to deform every track (or p: 0.5 to keep it so)"
            for i in (0, 1)
        ),
    ], res.output
    # the experiment's scenarios, which a data set's own deformations replace: not run, not warned of
    d["experiments"][2]["datasets"] = [{**other, "deformations": [[{"type": "Gain", "params": {"p": 1}}]]}]
    assert not [w for w in default_p_warnings(parse_config(d).experiments) if "experiments[2]" in w]


def test_plan_says_the_warnings_validate_says_once_each():
    """A step without p and ``run.deform_splits`` deforming tracks no probe reads were said by `repeval validate` and
    the embed stage alone: a user who planned the run saw the cost of ``deform_splits`` nowhere. The plan says them
    too, as validate does, each once."""
    from repeval.config.embed import default_p_warnings, deform_splits_warnings

    d = base()
    d["run"] = {"deform_splits": ["validation", "test"]}
    d["experiments"][0]["deformations"].append({"name": "mp3", "steps": [{"type": "Mp3Compression"}]})
    cfg = parse_config(d)
    said = default_p_warnings(cfg.experiments) + deform_splits_warnings(cfg)
    assert len(said) == 2 and "'mp3' gives Mp3Compression no p" in said[0] and "deform_splits" in said[1], said
    text = make_plan(cfg).text().splitlines()
    assert [line for line in text if line.startswith("warning: ")] == [f"warning: {w}" for w in said], text


def test_validate_warns_when_deform_splits_deforms_tracks_no_probe_reads(tmp_path, monkeypatch):
    """``run.deform_splits: [train, validation, test]`` embedded every split under every scenario — 8 times the rows
    of [test] on the Medley-solos-DB slice — and changed no result: probes train and are chosen on clean audio (plus
    the training tracks of the scenarios ``augment`` lists). Nothing said so; `repeval validate` now warns, naming
    what no probe reads."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config.embed import deform_splits_warnings

    monkeypatch.chdir(tmp_path)
    d = base()
    d["run"] = {"deform_splits": ["train", "validation", "test"]}
    Path("c.yaml").write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "--skip-data-check", "c.yaml"])
    assert res.exit_code == 0, res.output
    assert (
        "warning: run.deform_splits: ['train', 'validation', 'test'] deforms the validation tracks and the training "
        "tracks under D1 into the store, where no probe reads them"
    ) in res.output, res.output
    d["experiments"][0]["augment"] = ["D1"]  # its deformed training tracks are trained on: only validation is unread
    assert "deforms the validation tracks into the store" in deform_splits_warnings(parse_config(d))[0]
    d["run"]["deform_splits"] = ["train", "test"]
    assert deform_splits_warnings(parse_config(d)) == []
    d["run"]["deform_splits"] = ["test"]
    del d["experiments"][0]["augment"]
    assert deform_splits_warnings(parse_config(d)) == []
