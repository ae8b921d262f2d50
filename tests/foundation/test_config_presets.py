"""The plan's words on probe presets: their sources, criteria, departures and the points they train."""

from __future__ import annotations

from repeval.config import Config, parse_config
from repeval.plan import make_plan


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
