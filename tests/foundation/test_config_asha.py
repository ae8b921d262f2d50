"""run.max_epochs, ASHA schedulers and smoke tests: what `repeval validate` refuses and the plan says."""

from __future__ import annotations

import pytest
import yaml

from repeval.config import Config, ConfigError, load_config, parse_config
from repeval.plan import make_plan


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
