"""End to end on real recordings: Medley-solos-DB (small) through mirdata's own loader."""

from __future__ import annotations

import pytest

from repeval import runner
from repeval.config import parse_config


def test_medley_solos_db_through_mirdata(ray_session, shared_data, tmp_path):
    home = shared_data / "medley_solos_db_small"
    cfg = parse_config(
        {
            "run": {"run_id": "medley", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")},
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": "medley_solos_db",
                            "type": "mirdata",
                            "dir": str(home),
                            "index_path": str(home / "medley_solos_db_index_small.json"),
                        }
                    ],
                    "deformations": [
                        [{"type": "Mp3Compression", "params": {"min_bitrate": 32, "max_bitrate": 32, "p": 1}}]
                    ],
                    "embedding_models": ["logmel-stats"],
                    "downstream_models": [{"hidden_units": [], "standardize": True, "epochs": 30, "batch_size": 16}],
                    "metrics": ["accuracy", "f1_macro"],
                }
            ],
        }
    )
    ctx = runner.make_context(cfg)
    s = runner.stage_embed(ctx)
    assert s.errors == 0
    rows = ctx.rows[(0, "medley_solos_db")]
    splits = rows.column("split").to_pylist()
    # Medley-solos-DB's official subsets (training / validation / test) are kept
    assert splits.count("train") == 80 and splits.count("validation") == 9 and splits.count("test") == 8
    assert s.computed == 97 + 8  # every clip clean, the 8 test clips deformed
    runner.stage_train(ctx)
    res = runner.stage_evaluate(ctx).to_pandas()
    agg = res[res["label"].isna()]
    assert set(agg["scenario"]) == {"clean", "D1"}
    assert agg["value"].between(0, 1).all()
    assert len(agg) == 4


@pytest.mark.parametrize("name", ["tinysol"])
def test_tinysol_mini_rows(shared_data, name):
    from repeval.config import parse_config as pc
    from repeval.datasets import load_dataset

    home = shared_data / "tinysol_mini"
    exp = pc(
        {
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": name,
                            "type": "mirdata",
                            "dir": str(home),
                            "index_path": str(home / "tinysol_index_mini.json"),
                        }
                    ],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{}],
                }
            ]
        }
    ).experiments[0]
    rows, _ = load_dataset(exp.datasets[0], exp.task)
    assert rows.num_rows == 12
    assert all(len(lab) == 1 for lab in rows.column("label").to_pylist())
