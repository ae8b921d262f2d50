"""Rows an earlier repeval wrote whose ``deformation_params`` held, for a step its ``p`` skipped, the values drawn for
another track: `repeval store show` counts them, and the next run mends them in place, once, leaving the embeddings and
part files' names as they were."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
from reliability_helpers import FAST_MODEL, experiment, make_catalog, write_config

from repeval import runner
from repeval.config import load_config
from repeval.store.inspect import show_text
from repeval.store.params import PARAMS_AS_APPLIED

#: what an earlier repeval left in a skipped step: the values audiomentations drew for the track deformed before
STALE = {"Gain": {"amplitude_ratio": 0.5}, "AddGaussianNoise": {"amplitude": 0.01}}


def _as_earlier(text: str) -> str:
    steps = json.loads(text)
    return json.dumps([{**s, **STALE[s["type"]]} if s["should_apply"] is False else s for s in steps])


def test_params_of_skipped_steps_an_earlier_repeval_wrote_are_mended_once(ray_session, tmp_path, caplog):
    manifest = make_catalog(tmp_path / "catalog", per_class=10, seconds=0.5)
    exp = experiment(manifest, [FAST_MODEL])
    exp["deformations"] = [
        [
            {"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 0.5}},
            {"type": "AddGaussianNoise", "params": {"p": 0.5}},
        ]
    ]
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [exp]))
    runner.stage_embed(runner.make_context(cfg), progress=False)
    part = runner.make_context(cfg).store.partition("tones", FAST_MODEL["id"], "D1")
    assert part.complete and part.manifest()[PARAMS_AS_APPLIED] is True
    written = part.read()
    params = written.column("deformation_params").to_pylist()
    assert any(s["should_apply"] is False for p in params for s in json.loads(p))  # a step skipped somewhere

    # the partition as an earlier repeval wrote it: skipped steps with another track's values, no PARAMS_AS_APPLIED
    files = part.part_files()
    for f in files:
        t = pq.read_table(f)
        at = t.schema.get_field_index("deformation_params")
        earlier = pa.array([_as_earlier(p) for p in t.column(at).to_pylist()], pa.string())
        pq.write_table(t.set_column(at, "deformation_params", earlier), f)
    for name in ("_stamp.json", "_manifest.json"):
        path = tmp_path / "store" / "tones" / FAST_MODEL["id"] / "D1" / name
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != PARAMS_AS_APPLIED}))
    assert part.read().column("deformation_params").to_pylist() != params
    n = sum(any(s["should_apply"] is False for s in json.loads(p)) for p in params)
    rows = f"{n} row" if n == 1 else f"{n} rows"
    hold = "holds" if n == 1 else "hold"
    assert f"{rows} written by an earlier repeval {hold} in deformation_params" in show_text(part)  # `store show`

    caplog.set_level(logging.INFO, logger="repeval.pipeline.embed")
    summary = runner.stage_embed(runner.make_context(cfg), progress=False)
    assert summary.computed == 0
    mended = part.read()
    assert mended.column("deformation_params").to_pylist() == params  # what a run writes now
    assert mended.column("embedding").equals(written.column("embedding")) and part.part_files() == files
    assert part.manifest()[PARAMS_AS_APPLIED] is True and "written by an earlier repeval" not in show_text(part)
    said = [r.getMessage() for r in caplog.records if "written by an earlier repeval" in r.getMessage()]
    assert len(said) == 1 and f"tones/{FAST_MODEL['id']}/D1: the deformation_params of {rows} written" in said[0]
    caplog.clear()
    runner.stage_embed(runner.make_context(cfg), progress=False)  # mended once: not read again, nothing said
    assert not [r for r in caplog.records if "written by an earlier repeval" in r.getMessage()]
