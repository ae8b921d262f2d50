"""How a search's configurations become trials: stacked in chunks that mix the grid's values, balanced over the
slots; and what a search's results hold: seed summaries and run tables of fixed types."""

from __future__ import annotations

import numpy as np
import pytest

from repeval.config.probe import ProbeConfig
from repeval.probes import group_key
from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.results import results_table, seed_summary
from repeval.tuning.search import expand_all
from repeval.tuning.units import _cost, plan_units


def test_plan_units_chunks_stackable_configurations():
    data = gaussian_probe_data(d=32, c=10)
    specs = expand_all([ProbeConfig(preset="jukemir"), ProbeConfig(preset="mir_ref_thesis")])
    grid_units, tune_units = plan_units(specs, data, seeds=[0, 1], vectorize=64)
    assert not tune_units
    members = [(m.spec, m.point, m.seed) for u in grid_units for m in u.members]
    assert len(members) == len(set(members)) == (216 + 5) * 2
    for u in grid_units:
        keys = [group_key(m.config, data) for m in u.members]
        assert all(keys.count(k) <= 64 for k in set(keys))  # no stack beyond run.vectorize
        assert len({m.spec for m in u.members}) == 1
        points = {m.point for m in u.members}
        assert all(sum(1 for m in u.members if m.point == p) == 2 for p in points)  # all seeds together
    # a small table: M1..M5 (five shapes, tested in their trial) are packed into one unit rather than five
    # trials; Jukemir (tested after selection) is never packed with them
    assert sum(1 for u in grid_units if u.evaluate) == 1
    assert all(u.members[0].name.startswith("jukemir") for u in grid_units if not u.evaluate)


def test_plan_units_balances_big_work_over_the_slots():
    """Work worth many trials is split to four units per slot, heaviest first; tiny work gets one unit per slot."""
    big = gaussian_probe_data(n=2000, d=512, c=10)
    specs = expand_all([ProbeConfig(preset="jukemir")])
    units, _ = plan_units(specs, big, seeds=[0], vectorize=64, slots=2)
    assert len(units) == 8
    costs = [_cost(u, big) for u in units]
    assert costs == sorted(costs, reverse=True)
    small = gaussian_probe_data(n=200, d=16, c=4)
    specs = expand_all([ProbeConfig(preset="mir_ref_thesis")])
    units, _ = plan_units(specs, small, seeds=[0], vectorize=64, slots=2)
    assert len(units) == 2 and sorted(len(u.members) for u in units) in ([2, 3], [1, 4])
    assert sorted(m.name for u in units for m in u.members) == ["M1", "M2", "M3", "M4", "M5"]
    # on the big table each thesis probe is worth a trial of its own: Tune balances them over the slots
    units, _ = plan_units(specs, big, seeds=[0], vectorize=64, slots=2)
    assert sorted(m.name for u in units for m in u.members) == ["M1", "M2", "M3", "M4", "M5"] and len(units) == 5


def test_a_grid_that_halves_is_not_split_over_the_slots():
    """Work worth many trials is split over the slots, configuration by configuration: a 4-point grid with
    ``scheduler: asha`` on 4 slots became 4 trials of one configuration each, and the halving, which ranks the
    configurations that train together, stopped none of them."""
    big = gaussian_probe_data(n=2000, d=512, c=10)
    grid = {"grid": {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3]}}
    halving = ProbeConfig(name="h", epochs=20, search={**grid, "scheduler": {"type": "asha", "grace_period": 2}})
    units, _ = plan_units(expand_all([halving]), big, seeds=[0, 1], vectorize=64, slots=4)
    assert [sorted({m.point for m in u.members}) for u in units] == [[0, 1, 2, 3]]
    units, _ = plan_units(expand_all([ProbeConfig(name="g", epochs=20, search=grid)]), big, [0, 1], 64, slots=4)
    assert len(units) == 4  # a grid that does not halve is still spread over the slots


def test_plan_units_chunks_mix_the_grid_values():
    """A stack split into chunks deals its configurations out in turn: each chunk of Jukemir's 54 stackable
    512-unit, batch-256 configurations holds both standardisations and every learning rate, dropout and weight
    decay (a contiguous split put all standardised inputs in one chunk, which trained 1.6× longer)."""
    big = gaussian_probe_data(n=2000, d=512, c=10)
    specs = expand_all([ProbeConfig(preset="jukemir")])
    units, _ = plan_units(specs, big, seeds=[0], vectorize=64, slots=2)
    chunks = [
        u for u in units if tuple(u.members[0].config.hidden_units) == (512,) and u.members[0].config.batch_size == 256
    ]
    assert len(chunks) == 2 and sorted(len(u.members) for u in chunks) == [27, 27]
    for u in chunks:
        cfgs = [m.config for m in u.members]
        assert {c.standardize for c in cfgs} == {False, True}
        assert {c.learning_rate for c in cfgs} == {1e-5, 1e-4, 1e-3}
        assert {c.dropout for c in cfgs} == {0.25, 0.5, 0.75}
        assert {c.weight_decay for c in cfgs} == {0.0, 1e-4, 1e-3}


def test_seed_summary_mean_and_std():
    rows = [
        {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": "m", "probe": "p",
         "seed": s, "scenario": "clean", "metric": "accuracy", "label": lab, "value": v, "ci_low": v - 0.1,
         "ci_high": v + 0.1, "n_test": 10}
        for s, v in ((0, 0.5), (1, 0.7), (2, 0.9))
        for lab in (None, "c0")
    ]  # fmt: skip
    out = seed_summary(results_table("r", rows)).to_pylist()
    assert len(out) == 2
    agg = next(r for r in out if r["label"] is None)
    assert agg["mean"] == pytest.approx(0.7) and agg["std"] == pytest.approx(0.2) and agg["n_seeds"] == 3
    assert agg["ci_low"] == pytest.approx(0.6)


def test_seed_summary_counts_only_the_seeds_in_the_mean():
    """A seed whose metric is undefined (null) is left out of the mean and std, and so of ``n_seeds``: "mean ± std
    (n)" states the n it was computed from; a cell with no defined value has no seeds."""
    nan = float("nan")
    rows = [
        {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": "m", "probe": "p",
         "seed": s, "scenario": "clean", "metric": metric, "label": None, "value": v, "ci_low": v - 0.1,
         "ci_high": v + 0.1, "n_test": 10}
        for metric, values in (("accuracy", (0.5, nan, 0.9)), ("f1_macro", (nan, nan, nan)))
        for s, v in zip((0, 1, 2), values, strict=True)
    ]  # fmt: skip
    out = {r["metric"]: r for r in seed_summary(results_table("r", rows)).to_pylist()}
    acc = out["accuracy"]
    assert acc["mean"] == pytest.approx(0.7) and acc["std"] == pytest.approx(np.std([0.5, 0.9], ddof=1))
    assert (acc["n_seeds"], acc["n_folds"]) == (2, 1)
    assert acc["ci_low"] == pytest.approx(0.6) and acc["ci_high"] == pytest.approx(0.8)
    none = out["f1_macro"]
    assert none["mean"] is None and none["std"] is None and (none["n_seeds"], none["n_folds"]) == (0, 0)


def test_run_tables_keep_their_types_and_refuse_unknown_columns():
    """history/probes/failed files: ``fold`` is int64 even when every row's is null (a single-split dataset), so
    they concatenate with a k-fold run's; a column the schema lacks is an error, not silently dropped."""
    import pyarrow as pa

    from repeval.tuning.results import FAILED_SCHEMA, typed_table

    base = {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": "m", "probe": "p"}
    single = typed_table([{**base, "seed": 0, "reason": "non-finite loss at epoch 3", "fold": None}], FAILED_SCHEMA)
    kfold = typed_table([{**base, "seed": 1, "reason": "ValueError: x", "fold": 2}], FAILED_SCHEMA)
    assert single.schema.field("fold").type == pa.int64() and single.schema == kfold.schema
    assert pa.concat_tables([single, kfold]).column("fold").to_pylist() == [None, 2]
    with pytest.raises(ValueError, match="'bogus'"):
        typed_table([{**base, "seed": 0, "reason": "r", "fold": None, "bogus": 1}], FAILED_SCHEMA)
