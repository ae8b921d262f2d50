"""Configuration: the shipped configs, Appendix A's probes as printed, and mir_ref's aliases."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from config_cases import REPO, _schema_errors, base

from repeval.config import ConfigError, load_config, parse_config
from repeval.plan import make_plan


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
