"""``augment``: deformed copies of the training tracks added to the probes' training data — an augmentation study.
Only the augmenting scenarios' training tracks are deformed (besides the test tracks every scenario deforms)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from repeval.config import ConfigError, parse_config
from repeval.plan import make_plan
from repeval.probes import train_probes

GAIN = [{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -12, "p": 1}}]
NOISE = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 10, "p": 1}}]


def _config(manifest, root, augment, **run) -> dict:
    return {
        "run": {"run_id": "aug", "store": str(root / "store"), "runs_dir": str(root / "runs"), **run},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": str(manifest),
                              "label_column": "instrument", "split_column": "split"}],
                "deformations": [{"name": "gain", "steps": GAIN}, {"name": "noise", "steps": NOISE}],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{"hidden_units": [], "standardize": True, "learning_rate": 0.01,
                                       "batch_size": 16, "epochs": 40}],
                "metrics": ["accuracy"],
                "augment": augment,
            }
        ],
    }  # fmt: skip


def test_augment_names_known_scenarios(rendered_notes, tmp_path):
    cfg = parse_config(_config(rendered_notes, tmp_path, "all"))
    exp = cfg.experiments[0]
    assert exp.augment_for(exp.datasets[0]) == ["gain", "noise"]
    assert parse_config(_config(rendered_notes, tmp_path, "noise")).experiments[0].augment == ("noise",)
    line = make_plan(parse_config(_config(rendered_notes, tmp_path, ["gain"]))).lines[0]
    assert line.endswith("; training rows augmented with gain")
    with pytest.raises(ConfigError, match=r"augment: no deformation scenario 'gian' .*its scenarios: gain, noise"):
        parse_config(_config(rendered_notes, tmp_path, ["gian"]))


def test_a_run_trains_on_clean_and_deformed_training_tracks(ray_session, rendered_notes, tmp_path):
    from repeval import runner
    from repeval.tuning.data import probe_data

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(rendered_notes, tmp_path, ["gain"], keep_frames=True)))
    ctx = runner.make_context(parse_config(yaml.safe_load(path.read_text())))
    summary = runner.stage_embed(ctx)
    rows = ctx.rows[(0, "notes")]
    splits = rows["split"].to_pylist()
    train_ids = sorted(t for t, s in zip(rows["track_id"].to_pylist(), splits, strict=True) if s == "train")
    # every track clean; the test tracks under each scenario, and the training tracks under the augmenting one only
    assert summary.errors == 0 and summary.computed == 48 + 2 * splits.count("test") + splits.count("train")
    assert summary.rows_by_scenario["gain"] == splits.count("train") + splits.count("test")
    plain = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", ["gain", "noise"])
    aug = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", ["gain", "noise"],
                     augment=["gain"])  # fmt: skip
    n = len(train_ids)
    assert len(plain.x_train) == n and len(aug.x_train) == 2 * n
    np.testing.assert_array_equal(aug.x_train[:n], plain.x_train)  # the clean rows first, unchanged
    ids, _, gain = ctx.store.partition("notes", "mfcc-stats", "gain").embeddings()
    by_id = dict(zip(ids, gain, strict=True))
    np.testing.assert_array_equal(aug.x_train[n:], np.stack([by_id[t] for t in train_ids]))
    np.testing.assert_array_equal(aug.y_train[n:], plain.y_train)  # each deformed copy keeps its track's label
    assert not np.allclose(aug.x_train[n:], plain.x_train)  # -12 dB moves the MFCCs' energy coefficient
    np.testing.assert_array_equal(aug.x_val, plain.x_val)  # validation and tests stay as they were
    for sid in ("clean", "gain", "noise"):
        np.testing.assert_array_equal(aug.tests[sid][0], plain.tests[sid][0])
    framed = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", [], "prediction",
                        augment=["gain"])  # fmt: skip
    assert (
        len(framed.x_train)
        == len(framed.y_train)
        == 2
        * len(probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", [], "prediction").x_train)
    )  # the 1.5-s notes have one frame per track under mfcc-stats' 1-s windows, deformed or not
    att = probe_data("multiclass_classification", rows, ctx.store, "notes", "mfcc-stats", [], "attention",
                     augment=["gain"])  # fmt: skip
    # attention: one label and one frame count per training track, the deformed copies' after the clean ones
    np.testing.assert_array_equal(att.y_train, aug.y_train)
    assert len(att.train_counts) == 2 * n and int(att.train_counts.sum()) == len(att.x_train) == len(framed.x_train)
    np.testing.assert_array_equal(att.x_train, framed.x_train)

    assert runner.stage_train(ctx)["trained"] == 1
    inputs = json.loads((ctx.run_dir / "groups" / "instrument__notes__mfcc-stats.inputs.json").read_text())
    assert inputs["augment"] == ["gain"]
    # the Tune trial trained on the augmented rows: its curve is the one train_probes draws on them
    hist = pd.read_parquet(ctx.run_dir / "history" / "instrument__notes__mfcc-stats.parquet")
    pcfg, seed = ctx.cfg.experiments[0].downstream_models[0], int(hist["seed"].iloc[0])
    curve = hist.sort_values("epoch")["train_loss"].tolist()
    assert curve == pytest.approx([h["train_loss"] for h in train_probes([(pcfg, seed)], aug)[0].history], rel=1e-6)
    assert curve != pytest.approx([h["train_loss"] for h in train_probes([(pcfg, seed)], plain)[0].history])
    results = runner.stage_evaluate(ctx).to_pandas()
    acc = results[results["label"].isna() & (results["metric"] == "accuracy")].set_index("scenario")["value"]
    assert set(acc.index) == {"clean", "gain", "noise"} and acc["clean"] > 0.5  # chance 0.25

    # augment given a scenario whose partition holds the test tracks only (embedded before augment listed it):
    # `repeval train` stopped when it came to that grid (after training the grids before it) with a ValueError,
    # "run `repeval embed` first" — typed, with no --store, another store. Now it is the step out of order, found
    # before anything trains, naming the command lines of this run, and the run's state is left as it was.
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.run.status import read_status

    other = tmp_path / "noise.yaml"
    raw = _config(rendered_notes, tmp_path, ["noise"], keep_frames=True)
    raw["run"].update(run_id=None, store=str(tmp_path / "elsewhere"))  # the store is given with --store
    other.write_text(yaml.safe_dump(raw))
    store = str(tmp_path / "store")
    res = CliRunner().invoke(app, ["train", str(other), "--run-id", "aug-noise", "--store", store])
    said = " ".join(res.output.split())
    assert res.exit_code == 1, said
    assert (
        "notes/mfcc-stats: augment lists 'noise', but store partition notes/mfcc-stats/noise in" in said
        and "holds none of the training tracks deformed; run "
        f"`repeval embed {other} --run-id aug-noise --store {store}` (or `repeval run {other} --run-id aug-noise "
        f"--store {store}`) with this configuration and store first"
        in said
        and "nothing was trained" in said
    ), said
    run = tmp_path / "runs" / "aug-noise"
    assert read_status(run) == {} and not list((run / "groups").glob("*.parquet"))


def test_the_shipped_augmentation_config_compares_clean_and_augmented_training(rendered_notes):
    from pathlib import Path

    d = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "augmentation.yaml").read_text())
    for exp in d["experiments"]:
        exp["datasets"][0]["manifest"] = str(rendered_notes)
    cfg = parse_config(d)
    clean, augmented = cfg.experiments
    assert clean.augment == () and augmented.augment == ("noise_10db",)
    assert cfg.run.deform_splits == ("test",)  # the augmenting scenario deforms the training tracks by itself
    plan = make_plan(cfg)
    assert (plan.trainings, plan.partitions) == (2 * 2 * 2 * 3, 2 * 4)  # tasks × models × probes × seeds; shared
    experiment_lines = [
        line for line in plan.lines if " on rendered_notes: " in line
    ]  # each followed by its probe lines
    assert len(experiment_lines) == 2 and not experiment_lines[0].endswith("training rows augmented with noise_10db")
    assert experiment_lines[1].endswith("training rows augmented with noise_10db")
