"""A regression catalog exported where the decimal mark is a comma (``;`` between the columns, ``decimal: ','``), run
end to end; and a group of it whose results an earlier repeval wrote, naming its target ``dim0``, tested on a
scenario added later: its per-label rows keep naming the target one way."""

from __future__ import annotations

import csv
import logging

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from reliability_helpers import FAST_MODEL, experiment, make_catalog, write_config

from repeval import runner
from repeval.config import load_config


def _regression_catalog(root):
    """The tones of :func:`make_catalog`, 5 per pitch, with their frequency as a target in a ``;``-separated manifest
    whose decimal mark is a comma (``220,0``)."""
    with make_catalog(root, per_class=5, seconds=0.5).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    eu = root / "eu.csv"
    with eu.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["track_id", "audio_path", "hz", "split"])
        for r in rows:
            hz = (220.0 if r["label"] == "low" else 880.0) * (1 + 0.01 * int(r["track_id"][-3:]))
            w.writerow([r["track_id"], r["audio_path"], f"{hz:.2f}".replace(".", ","), r["split"]])
    return eu


def test_a_group_whose_results_named_its_target_dim0_keeps_the_name_when_a_scenario_is_added(
    ray_session, tmp_path, caplog
):
    """Trained (on the decimal commas read as numbers), its results rewritten as an earlier repeval wrote them, then a
    scenario added: the retest scores it with the probes selected before, naming the target ``dim0`` like the rest."""
    caplog.set_level(logging.INFO, logger="repeval.runner")
    manifest = _regression_catalog(tmp_path / "catalog")
    probe = {"name": "linear", "hidden_units": [], "learning_rate": 0.05, "batch_size": 4, "epochs": 3}
    one = experiment(manifest, [FAST_MODEL], [probe], label_column="hz", delimiter=";", decimal=",")
    one.update(task={"name": "pitch", "type": "regression"}, metrics=["r2", "mean_absolute_error"], deformations=[])
    two = {**one, "deformations": [[{"type": "Gain", "params": {"min_gain_db": -20, "max_gain_db": -18, "p": 1}}]]}
    name = f"pitch__tones__{FAST_MODEL['id']}"

    def run(exp):
        cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [exp], runs_dir=str(tmp_path / "runs")))
        ctx = runner.make_context(cfg)
        runner.stage_embed(ctx, progress=False)
        return ctx, runner.stage_train(ctx), runner.stage_evaluate(ctx)

    def per_label(table):
        """Each scenario's per-label names (the rows of r2, the one per-label metric asked for)."""
        table = table.filter(pc.is_valid(table.column("label")))
        return {
            (r["scenario"], r["metric"], r["label"]) for r in table.select(["scenario", "metric", "label"]).to_pylist()
        }

    ctx, t, first = run(one)
    # the decimal commas are read as numbers: the targets kept with a decimal point, the probes trained on them
    assert t["trained"] == 1 and "220.00" in pc.list_flatten(ctx.rows[(0, "tones")].column("label")).to_pylist()
    assert per_label(first) == {("clean", "r2", "hz")}  # named after the label column

    # the group's results as a repeval before targets took the column's name wrote them
    results = ctx.run_dir / "groups" / f"{name}.parquet"
    old = pq.read_table(results)
    label = pc.if_else(pc.equal(old.column("label"), "hz"), pa.scalar("dim0"), old.column("label"))
    pq.write_table(old.set_column(old.schema.get_field_index("label"), "label", label), results)

    caplog.clear()
    ctx, t, added = run(two)
    assert (t["trained"], t["retested"]) == (0, 1)
    assert f"{name}: tested on the added scenario D1 with the probes it selected before" in caplog.text
    # D1's row names the target as the group's other rows do (the retest named it 'hz' beside their 'dim0')
    assert per_label(added) == {("clean", "r2", "dim0"), ("D1", "r2", "dim0")}
    assert per_label(pq.read_table(results)) == per_label(added)
