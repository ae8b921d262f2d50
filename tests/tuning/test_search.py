"""Presets, grids and search spaces from YAML: expansion, overrides, and errors that name the key."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import pytest
import yaml

from repeval.config import ConfigError, load_config, parse_config
from repeval.config.probe import ProbeConfig
from repeval.probes import resolve_hidden_units
from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.presets import PRESETS
from repeval.tuning.search import expand_all, expand_probe, tune_space


def cfg_dict(*probes: dict) -> dict:
    return {
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": list(probes),
            }
        ]
    }


def test_presets_expand_to_the_published_protocols():
    thesis = expand_probe(ProbeConfig(preset="mir_ref_thesis"), 0)
    assert [p.name for p in thesis.points] == ["M1", "M2", "M3", "M4", "M5"]
    assert thesis.select == "all"
    assert [p.config.hidden_units for p in thesis.points] == [(), (128,), (256, 128), ("infer",), ("infer", "infer")]
    assert {
        (p.config.learning_rate, p.config.batch_size, p.config.epochs, p.config.patience) for p in thesis.points
    } == {(1e-3, 100, 100, 10)}
    juke = expand_probe(ProbeConfig(preset="jukemir"), 0)
    assert len(juke.points) == 216 and juke.select == "best" and juke.name == "jukemir"
    assert len({p.name for p in juke.points}) == 216
    assert all(p.config.dropout_input and p.config.effective_input_dropout == p.config.dropout for p in juke.points)
    assert {p.config.weight_decay for p in juke.points} == {0.0, 1e-4, 1e-3}
    hear = expand_probe(ProbeConfig(preset="hear"), 0)
    assert len(hear.points) == 16 and hear.select == "best"
    assert {p.config.init for p in hear.points} == {"xavier_uniform", "xavier_normal"}
    assert all(p.config.hidden_norm == "batchnorm" and p.config.val_every == 3 for p in hear.points)
    marble = expand_probe(ProbeConfig(preset="marble"), 0)
    assert marble.select == "best" and marble.name == "marble"
    assert {
        (p.config.hidden_units, p.config.dropout, p.config.batch_size, p.config.patience) for p in marble.points
    } == {((512,), 0.2, 64, 10)}
    assert set(PRESETS.names()) == {"hear", "jukemir", "marble", "mir_ref_thesis", "mule"}
    # M5's infer sizes are rounded up to even (DESIGN.md), where mir_ref truncates first: said as a departure
    m5 = next(p.config for p in thesis.points if p.name == "M5")
    assert resolve_hidden_units(m5.hidden_units, 512, 10) == [346, 178]  # mir_ref's probe_builder: [344, 178]
    assert "M5 on 512 dimensions and 10 classes is [346, 178] here, [344, 178] in mir_ref" in PRESETS.get(
        "mir_ref_thesis"
    ).departures(5)


def _grid(spec, keys):
    return sorted(tuple(repr(getattr(p.config, k)) for k in keys) for p in spec.points)


def test_preset_grids_are_their_sources_grids():
    """Every configuration of the source's grid and no other: Jukemir's _PAPER_GRID (p-lambda/jukemir
    jukemir/probe/__init__.py), hear-eval-kit's final PARAM_GRID (heareval/predictions/task_predictions.py), MARBLE's
    constrained-track learning rates (marble-bm.sheffield.ac.uk: 5e-5 … 1e-2; it searched none of them before)."""
    keys = ["standardize", "hidden_units", "batch_size", "learning_rate", "dropout", "weight_decay"]
    source = {"standardize": [False, True], "hidden_units": [(), (512,)], "batch_size": [64, 256],
              "learning_rate": [1e-5, 1e-4, 1e-3], "dropout": [0.25, 0.5, 0.75], "weight_decay": [0.0, 1e-4, 1e-3]}  # fmt: skip
    want = sorted(tuple(repr(v) for v in c) for c in itertools.product(*(source[k] for k in keys)))
    assert _grid(expand_probe(ProbeConfig(preset="jukemir"), 0), keys) == want
    keys = ["hidden_units", "learning_rate", "init"]
    source = {"hidden_units": [(1024,), (1024, 1024)], "learning_rate": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
              "init": ["xavier_uniform", "xavier_normal"]}  # fmt: skip
    want = sorted(tuple(repr(v) for v in c) for c in itertools.product(*(source[k] for k in keys)))
    assert _grid(expand_probe(ProbeConfig(preset="hear"), 0), keys) == want
    marble = expand_probe(ProbeConfig(preset="marble"), 0)
    assert sorted(p.config.learning_rate for p in marble.points) == [5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]
    # MARBLE's probers halve the learning rate on a plateau (ReduceLROnPlateau(factor=0.5), MTT's patience 3)
    assert {(p.config.lr_decay_patience, p.config.lr_decay_factor) for p in marble.points} == {(3, 0.5)}


def test_mule_preset_is_mules_released_probe_recipe():
    """MULE (PandoraMedia/music-audio-representations supporting_data/configs/models/probes/*/*.yml): ReLU MLPs with
    dropout 0.5 after each hidden layer, Adam under a 1,000-step linear warm-up from 0 then a cosine decay to 0 over a
    fixed number of steps; the grid spans the selections' architectures, L2 (Keras' l2(λ): weight_decay 2λ) and
    learning rates; the best configuration by validation is tested once."""
    mule = expand_probe(ProbeConfig(preset="mule"), 0)
    assert len(mule.points) == 80 and mule.select == "best" and mule.name == "mule"
    keys = ["hidden_units", "weight_decay", "learning_rate"]
    source = {"hidden_units": [(), (512,), (1024,), (1024, 1024)], "weight_decay": [2 * l2 for l2 in (0.0, 1e-6, 1e-5, 1e-4)],
              "learning_rate": [2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4]}  # fmt: skip
    want = sorted(tuple(repr(v) for v in c) for c in itertools.product(*(source[k] for k in keys)))
    assert _grid(mule, keys) == want
    assert {
        (c.optimizer, c.dropout, c.input_dropout, c.lr_schedule, c.warmup_steps, c.max_steps, c.lr_decay_patience)
        for c in (p.config for p in mule.points)
    } == {("adam", 0.5, 0.0, "cosine", 1000, 30000, None)}
    # a fixed schedule, trained to its end: neither the epoch limit nor patience stops it before max_steps
    assert all(p.config.epochs >= 30000 and p.config.patience >= p.config.epochs for p in mule.points)
    # a key next to the preset fixes its axis; a shorter budget is the cosine's too
    short = expand_probe(ProbeConfig(preset="mule", hidden_units=[512], max_steps=5000), 0)
    assert len(short.points) == 20 and {(p.config.hidden_units, p.config.max_steps) for p in short.points} == {
        ((512,), 5000)
    }
    with pytest.raises(ValueError, match="warmup_steps"):
        ProbeConfig(preset="mule", max_steps=500)  # shorter than MULE's warm-up: named, not trained


@pytest.mark.parametrize(
    "preset, task_type, criterion",
    [
        # Jukemir stops and selects on each dataset's primary metric: R² (Emomusic), the key weighted score
        # (GiantSteps); accuracy and ROC-AUC macro are repeval's defaults already
        ("jukemir", "regression", "val_r2"),
        ("jukemir", "key_estimation", "val_key_weighted_score_micro"),
        ("jukemir", "multiclass_classification", None),
        ("jukemir", "multilabel_classification", None),
        ("marble", "regression", "val_r2"),  # MARBLE's EMO monitors valid_r2
        ("marble", "key_estimation", "val_key_weighted_score_micro"),
        ("hear", "multilabel_classification", "val_pr_auc_macro"),  # HEAR's first score: mAP
        ("hear", "multiclass_classification", None),
        ("mir_ref_thesis", "regression", None),
        ("mule", "multilabel_classification", "val_pr_auc_macro"),  # MULE's tagging probes compile Keras' PR-AUC
        ("mule", "multiclass_classification", None),  # accuracy (GiantSteps' CategoricalAccuracy)
        ("mule", "regression", None),  # the mean squared error (Emomusic)
    ],
)
def test_presets_select_on_their_sources_criterion_for_the_task_type(preset, task_type, criterion):
    spec = expand_probe(ProbeConfig(preset=preset), 0, task_type)
    assert {p.config.save_criterion for p in spec.points} == {criterion}
    # written next to the preset, a criterion wins like any other key; without a task type nothing is added
    mine = expand_probe(ProbeConfig(preset=preset, save_criterion="val_loss"), 0, task_type)
    assert {p.config.save_criterion for p in mine.points} == {"val_loss"}
    assert {p.config.save_criterion for p in expand_probe(ProbeConfig(preset=preset), 0).points} == {None}


def test_overrides_fix_an_axis_and_search_grid_replaces_one():
    fixed = expand_probe(ProbeConfig(preset="jukemir", learning_rate=1e-3, epochs=7), 0)
    assert len(fixed.points) == 72
    assert {(p.config.learning_rate, p.config.epochs) for p in fixed.points} == {(1e-3, 7)}
    regrid = expand_probe(ProbeConfig(preset="jukemir", search={"grid": {"batch_size": [32]}}), 0)
    assert len(regrid.points) == 108 and {p.config.batch_size for p in regrid.points} == {32}
    named = expand_probe(ProbeConfig(preset="mir_ref_thesis", name="thesis", batch_size=50), 0)
    assert [p.name for p in named.points][:2] == ["thesis-M1", "thesis-M2"]
    assert {p.config.batch_size for p in named.points} == {50}


def test_free_grid_and_space_from_yaml_values():
    cfg = parse_config(
        cfg_dict(
            {"name": "plain", "hidden_units": [8]},
            {
                "name": "tuned",
                "search": {
                    "grid": {"hidden_units": [[], [64, 32]], "learning_rate": [1e-4, 1e-3]},
                    "space": {"dropout": {"uniform": [0.1, 0.5]}, "batch_size": {"choice": [32, 64]}},
                    "num_samples": 3,
                    "scheduler": {"type": "asha", "grace_period": 2},
                },
            },
        )
    )
    specs = expand_all(cfg.experiments[0].downstream_models)
    assert specs[0].name == "plain" and specs[0].select == "all" and not specs[0].tune_mode
    tuned = specs[1]
    assert tuned.select == "best" and tuned.tune_mode and len(tuned.points) == 4 and tuned.size == 12
    assert tuned.scheduler == {"type": "asha", "grace_period": 2, "reduction_factor": 3.0, "max_t": None, "brackets": 1}
    space = tune_space(tuned)
    assert set(space) == {"dropout", "batch_size"}
    assert 0.1 <= space["dropout"].sample() <= 0.5
    # YAML 1.1 (PyYAML) reads 1e-5, an exponent without a dot, as a string: a space refused it ("needs numbers"),
    # though learning_rate: 1e-5 is read as the number it is
    written = yaml.safe_load(
        "search: {grid: {weight_decay: [0, 1e-4]}, space: {learning_rate: {loguniform: [1e-5, 1e-2]}}}"
    )
    spec = expand_all(parse_config(cfg_dict(written)).experiments[0].downstream_models)[0]
    assert spec.space == {"learning_rate": {"type": "loguniform", "args": [1e-5, 1e-2]}}
    assert [p.params for p in spec.points] == [{"weight_decay": 0}, {"weight_decay": 1e-4}]
    # and in the scheduler too: grace_period: 1e1 was refused ("must be an integer ≥ 1 (epochs), got '1e1'")
    written = yaml.safe_load(
        "{epochs: 30, search: {space: {dropout: {uniform: [0.1, 0.5]}}, num_samples: 2, "
        "scheduler: {grace_period: 1e1, max_t: 2e1}}}"
    )
    spec = expand_all(parse_config(cfg_dict(written)).experiments[0].downstream_models)[0]
    assert spec.scheduler == {"type": "asha", "grace_period": 10, "reduction_factor": 3.0, "max_t": 20, "brackets": 1}


def test_asha_on_a_grid_halves_inside_stacks_unless_it_needs_tune():
    grid = {"grid": {"learning_rate": [1e-4, 1e-3, 1e-2]}}
    halved = expand_all(
        parse_config(
            cfg_dict({"name": "g", "search": {**grid, "scheduler": {"type": "asha", "grace_period": 3, "max_t": 9}}})
        )
        .experiments[0]
        .downstream_models
    )[0]
    assert not halved.tune_mode  # vectorised, with successive halving in each stack
    h = halved.halving(4, 2)
    assert (h.group, h.point, h.grace, h.eta, h.max_t) == (4, 2, 3, 3.0, 9)
    brackets = expand_all(
        parse_config(cfg_dict({"name": "b", "search": {**grid, "scheduler": {"type": "asha", "brackets": 2}}}))
        .experiments[0]
        .downstream_models
    )[0]
    assert brackets.tune_mode and brackets.halving(0, 0) is None  # several brackets: Tune's own scheduler
    plain = expand_all(parse_config(cfg_dict({"name": "p", "search": grid})).experiments[0].downstream_models)[0]
    assert not plain.tune_mode and plain.halving(0, 0) is None


@pytest.mark.parametrize(
    "probe, fragment",
    [
        ({"preset": "jukmir"}, "did you mean 'jukemir'"),
        ({"search": {"grids": {}}}, "search: unknown key 'grids' — did you mean 'grid'"),
        ({"search": {"grid": {"learning_rat": [1e-3]}}}, "search: grid: unknown key 'learning_rat'"),
        ({"search": {"grid": {"learning_rate": 1e-3}}}, "search: grid.learning_rate: must be a non-empty list"),
        ({"search": {"grid": {"batch_size": [64, 0]}}}, "batch_size"),
        ({"search": {"space": {"dropout": {"uniformm": [0, 1]}}}}, "search: space.dropout: unknown key 'uniformm'"),
        ({"search": {"space": {"learning_rate": {"loguniform": [0, 1]}}}}, "a log scale needs low > 0"),
        ({"search": {"scheduler": "hyperband"}}, "search: scheduler"),
        ({"search": {"select": "first"}}, "search: select"),
        ({"preset": "jukemir", "search": {"grid": {"dropout": [1.5]}}}, "dropout"),
        # M1–M5 differ by their layers alone: one value for all (or a search over them) made five copies of a probe
        # reported as M1 (linear), M2, …
        ({"preset": "mir_ref_thesis", "hidden_units": [64]}, "hidden_units is what tells preset mir_ref_thesis's"),
        ({"preset": "mir_ref_thesis", "search": {"grid": {"hidden_units": [[8], [16]]}}}, "probes apart (M1, M2,"),
        ({"dropout_input": True, "input_dropout": 0.2}, "dropout_input"),
        # a list where a mapping belongs raised AttributeError (a traceback, not a config error)
        ({"search": {"grid": [1e-4, 1e-3]}}, "search: grid: must be a mapping of probe keys, e.g. grid: {"),
        ({"search": {"space": ["dropout"]}}, "search: space: must be a mapping of probe keys"),
        # ASHA values that Tune or the halving would only reject (or misread) when training starts
        ({"search": {"scheduler": {"type": "asha", "max_t": -5}}}, "search: scheduler.max_t: must be an integer ≥ 1"),
        ({"search": {"scheduler": {"grace_period": "ten"}}}, "search: scheduler.grace_period: must be an integer"),
        ({"search": {"scheduler": {"brackets": 0}}}, "search: scheduler.brackets: must be an integer ≥ 1, got 0"),
        (
            {"search": {"scheduler": {"reduction_factor": 1}}},
            "search: scheduler.reduction_factor: must be a number > 1",
        ),
        ({"search": {"space": {"dropout": {"quniform": [0.1, 0.5, 0]}}}}, "space.dropout.quniform: the step q"),
        # spaces that passed validation, then failed every trial (a sampled batch size of 91.29) or stopped the train
        # stage (Ray Tune refuses quantised bounds off the step when the space is built)
        (
            {"search": {"space": {"batch_size": {"uniform": [16, 256]}}}},
            "space.batch_size.uniform: samples fractions such as 91.29, which batch_size does not take (batch_size: "
            "Input should be a valid integer, got a number with a fractional part): sample it with randint",
        ),
        # a flag sampled from fractions was told to sample it with randint
        (
            {"search": {"space": {"standardize": {"uniform": [0, 1]}}}},
            "space.standardize.uniform: samples fractions such as 0.3137, which standardize does not take "
            "(standardize: Input should be a valid boolean): sample it with choice: [true, false]",
        ),
        (
            {"search": {"space": {"dropout": {"quniform": [0.0, 0.95, 0.1]}}}},
            "space.dropout.quniform: the bounds must be multiples of the step q (0.1), as Ray Tune requires, but 0.95 "
            "is not: write [0, 0.9, 0.1]",
        ),
        # values valid alone, not together (one key with another, or with a grid point): each trial drawing them failed
        (
            {"search": {"space": {"max_steps": {"randint": [5, 50]}, "warmup_steps": {"randint": [10, 40]}}}},
            "space values max_steps=5, warmup_steps=10 make no probe: warmup_steps (10) must be fewer than max_steps",
        ),
        (
            {
                "search": {
                    "grid": {"lr_schedule": ["constant", "cosine"]},
                    "space": {"lr_decay_patience": {"randint": [1, 5]}},
                }
            },
            "space value lr_decay_patience=1 on grid point 'M1-1' makes no probe: lr_decay_patience lowers",
        ),
        # every value alone on every grid point: the joint checks (2,000 here, 432 per point) ended on the first five
        # points, all constant, and each trial of the five cosine points failed
        (
            {
                "search": {
                    "grid": {"lr_schedule": ["constant", "cosine"], "batch_size": [32, 64, 128, 256, 512]},
                    "space": {
                        "dropout": {"choice": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]},
                        "patience": {"choice": [3, 5, 8, 10, 15, 20]},
                        "max_steps": {"choice": [100, 200, 400, 800, 1600, 3200]},
                        "lr_decay_patience": {"randint": [1, 5]},
                    },
                }
            },
            "space value lr_decay_patience=1 on grid point 'M1-5' makes no probe: lr_decay_patience lowers",
        ),
        (
            {"search": {"space": {"hidden_units": {"randint": [64, 512]}}}},
            "space value hidden_units=64 makes no probe: hidden_units: Input should be a valid tuple",
        ),
        # Ray Tune truncates whole-number samplers' bounds: lograndint's 0 stopped the train stage building the space
        (
            {"search": {"space": {"patience": {"lograndint": [0.5, 4]}}}},
            "space.patience.lograndint: the bounds must be whole numbers (Ray Tune truncates them), got [0.5, 4]: "
            "write [1, 4]",
        ),
        # the bounds it suggested were [0.5, 0, 0.5], themselves refused
        (
            {"search": {"space": {"dropout": {"quniform": [0.1, 0.2, 0.5]}}}},
            "but 0.1 is not: no two multiples of 0.5 lie within [0.1, 0.2]: write a smaller q or wider bounds",
        ),
        # ASHA whose first rung lies past the training's end silently stopped nothing
        (
            {"epochs": 5, "search": {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": {"grace_period": 10}}},
            "scheduler.grace_period (10) is not below the probes' epochs (5): ASHA's first rung would come after "
            "training ends, so it would stop nothing — set grace_period below 5, raise epochs, or remove the scheduler",
        ),
        (
            {"search": {"space": {"dropout": {"uniform": [0.1, 0.5]}}, "scheduler": {"grace_period": 4, "max_t": 4}}},
            "scheduler.grace_period (4) is not below max_t (4)",
        ),
        # validated every 3 epochs, 12 epochs judged at rung 10 only at the last validation (epoch 12): nothing stopped
        # early, and Tune's ASHA stopping a trial there lost the checkpoint it had trained
        (
            {"preset": "hear", "epochs": 12, "search": {"scheduler": "asha"}},
            "scheduler.grace_period (10): with val_every 3 no validation falls from epoch 10 to before the end of "
            "training (epoch 12), so ASHA would judge a trial only at its last validation and stop none early — set "
            "grace_period to 9 or less, or remove the scheduler",
        ),
        # ASHA ranks configurations: on an entry of one (a trial alone, a grid of one point) it stopped nothing
        (
            {"epochs": 30, "search": {"space": {"dropout": {"uniform": [0.1, 0.5]}}, "scheduler": "asha"}},
            "search.scheduler: ASHA stops the configurations that rank below the others at its rungs, and this entry "
            "trains one, so it would stop nothing — give search.grid more values or search.num_samples more than 1, "
            "or remove the scheduler",
        ),
        ({"search": {"grid": {"learning_rate": [1e-3]}, "scheduler": "asha"}}, "and this entry trains one"),
        # a key set next to a search axis of the same key was silently replaced by the axis
        (
            {"learning_rate": 1e-2, "search": {"grid": {"learning_rate": [1e-4, 1e-3]}}},
            "learning_rate is set (0.01) and is also a search.grid axis, whose values replace it: keep one",
        ),
        (
            {"preset": "jukemir", "hidden_units": [], "search": {"space": {"hidden_units": {"choice": [[], [512]]}}}},
            "hidden_units is set ([]) and is also a search.space axis",
        ),
        # select: best (and ASHA) compared one configuration's validation loss with another's accuracy
        (
            {"search": {"grid": {"save_criterion": ["val_loss", "val_accuracy"]}}},
            "save_criterion is a search axis, but select: best picks",
        ),
        (
            {
                "search": {
                    "space": {"save_criterion": {"choice": ["val_loss", "val_f1_macro"]}},
                    "scheduler": "asha",
                    "num_samples": 2,
                    "select": "all",
                }
            },
            "save_criterion is a search axis, but the asha scheduler stops",
        ),
    ],
)
def test_errors_name_the_key(probe, fragment):
    with pytest.raises(ConfigError) as e:
        parse_config(cfg_dict(probe))
    assert "downstream_models[0]" in str(e.value)
    assert fragment in str(e.value)


def test_asha_on_a_grid_whose_every_point_trains_alone_is_refused():
    """The grid's halving ranks the configurations of a stack: a grid whose every point is a stack of its own (another
    batch size, other layer sizes) stopped nothing. Refused only where that is known without the data
    (:func:`group_key`): not stacks of several learning rates, nor ``infer`` layers the data may size as another's."""
    alone = {"batch_size": [32, 64], "hidden_units": [[], [16]]}
    with pytest.raises(ConfigError) as e:
        parse_config(cfg_dict({"search": {"grid": alone, "scheduler": "asha"}}))
    assert e.value.problems == [
        "experiments[0].downstream_models[0]: search.scheduler: on a grid, ASHA ranks the configurations trained "
        "together in one stack, and the 4 of this grid each train in a stack of their own (probes of another "
        "hidden_units or batch_size never share one), so it would stop nothing — add a search.grid axis they share "
        "(learning_rate, dropout, weight_decay, …), or remove the scheduler"
    ]
    for grid in ({"batch_size": [32, 64], "learning_rate": [1e-3, 1e-2]}, {"hidden_units": [["infer"], [16]]}):
        parse_config(cfg_dict({"search": {"grid": grid, "scheduler": "asha"}}))


def test_run_keys_are_validated():
    good = cfg_dict({"preset": "marble"})
    good["run"] = {"max_epochs": 20, "vectorize": 16, "reuse_actors": False, "bootstrap_resamples": 0, "ci_alpha": 0.1}
    run = parse_config(good).run
    assert (run.max_epochs, run.vectorize, run.reuse_actors, run.bootstrap_resamples) == (20, 16, False, 0)
    for key, value in (("vectorize", 0), ("max_epochs", 0), ("ci_alpha", 1.5), ("bootstrap_resamples", -1)):
        bad = copy.deepcopy(good)
        bad["run"][key] = value
        with pytest.raises(ConfigError, match=f"run.{key}"):
            parse_config(bad)


def test_duplicate_or_unsafe_probe_names_are_rejected_at_validation():
    """They were accepted by `repeval validate` and failed only when training started, after the embedding stage."""
    with pytest.raises(ConfigError) as e:
        parse_config(cfg_dict({"name": "a"}, {"name": "a"}))
    assert "experiments[0]: probe names are used twice: ['a'] ('a': downstream_models[0] and downstream_models[1])" in (
        str(e.value)
    )
    with pytest.raises(ConfigError, match=r"used twice: \['M2'\]"):  # the thesis preset's M2 and a probe named M2
        parse_config(cfg_dict({"preset": "mir_ref_thesis"}, {"name": "M2"}))
    with pytest.raises(ConfigError, match="may not contain"):
        parse_config(cfg_dict({"name": "a__b"}))


def test_a_grids_halving_that_run_max_epochs_leaves_nothing_to_stop_is_said_and_not_made(caplog):
    """``scheduler: asha`` on a grid halves inside its stacks; under a ``run.max_epochs`` (3) that ends training
    before its first rung (5) it stops nothing. A Tune-mode spec's scheduler was left unmade and said so; the grid's
    halving was made all the same, without a word."""
    from repeval.tuning.group import GroupInput, _Group
    from repeval.warn import SaidByTrials

    grid = {"grid": {"learning_rate": [1e-3, 1e-2]}, "scheduler": {"type": "asha", "grace_period": 5}}
    cfg = parse_config(cfg_dict({"name": "halved", "epochs": 8, "search": grid}))
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)

    def halvings(max_epochs: int | None) -> list[object]:
        capped = cfg.model_copy(update={"run": cfg.run.model_copy(update={"max_epochs": max_epochs})})
        g = _Group(capped, GroupInput(capped.experiments[0], "notes", "m", data, name="g"), 1, SaidByTrials())
        return [m.halving for u in g.grid_units for m in u.members]

    assert all(h is not None for h in halvings(6))  # a rung at 5, below the end (6): it halves
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        assert halvings(3) == [None, None]
    assert (
        "g: halved's ASHA scheduler stops none, so none is made: scheduler.grace_period (5) is not below "
        "run.max_epochs (3): ASHA's first rung would come after training ends, so it would stop nothing"
    ) in caplog.text


def test_jukemir_grid_config_validates():
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "jukemir_grid.yaml")
    specs = expand_all(cfg.experiments[0].downstream_models)
    assert [(s.name, s.select, s.size) for s in specs] == [
        ("jukemir", "best", 216),
        ("jukemir_asha", "best", 216),
        ("mir_ref_thesis", "all", 5),
        ("tuned", "best", 24),
    ]
    assert cfg.run.seeds == 3 and specs[3].scheduler["type"] == "asha" and specs[3].tune_mode
    assert not specs[1].tune_mode and specs[1].halving(1, 0).grace == 10


def test_save_criterion_may_be_a_grid_axis_when_every_configuration_is_reported():
    """``select: all`` reports each configuration under its own name (each stopped on its own criterion): allowed."""
    cfg = parse_config(
        cfg_dict({"search": {"grid": {"save_criterion": ["val_loss", "val_accuracy"]}, "select": "all"}})
    )
    spec = expand_all(cfg.experiments[0].downstream_models, "multiclass_classification")[0]
    assert spec.select == "all" and [p.config.save_criterion for p in spec.points] == ["val_loss", "val_accuracy"]
