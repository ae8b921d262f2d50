"""The mend of ``deformation_params`` an earlier repeval wrote (:mod:`repeval.store.params`) is a tidy-up: a store it
cannot write to leaves the run to go on with the rows as they are, and the next run mends them."""

from __future__ import annotations

import json
import logging

import numpy as np
from store_helpers import DIM, PROV, _block

from repeval.pipeline.assemble import rows_table
from repeval.pipeline.todo import _mend_params
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.inspect import show_text
from repeval.store.layout import embedding_schema
from repeval.store.params import PARAMS_AS_APPLIED, earlier_rows

EARLIER = json.dumps([{"type": "Gain", "should_apply": False, "amplitude_ratio": 0.5}])


def test_a_mend_the_store_refuses_is_said_and_left_to_the_next_run(tmp_path, caplog):
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "D1")
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    schema = embedding_schema(DIM, keep_frames=True)
    block = _block(["a", "b"], keep_frames=True)
    block.deformation_params = np.array([EARLIER, '[{"type": "Gain", "should_apply": true}]'], dtype=object)
    w = PartitionWriter(part, schema, 2)
    w.add_table(rows_table(block, schema, PROV))
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": "D1"})
    (f,) = part.part_files()
    blocked = tmp_path / "s" / "ds" / "m" / "D1" / f".tmp-{f.rsplit('/', 1)[-1]}"
    blocked.mkdir()  # where the mend writes the file anew: a folder, so the write fails (as on a read-only store)

    caplog.set_level(logging.WARNING)
    _mend_params(part)  # the run goes on
    said = [r.getMessage() for r in caplog.records if "could not mend" in r.getMessage()]
    assert len(said) == 1 and "ds/m/D1" in said[0] and "writable" in said[0]
    assert earlier_rows(part) == 1 and not part.manifest().get(PARAMS_AS_APPLIED)  # as they were: tried again
    assert "1 row written by an earlier repeval holds in deformation_params" in show_text(part)  # `store show`

    blocked.rmdir()
    _mend_params(part)
    assert earlier_rows(part) == 0 and part.manifest()[PARAMS_AS_APPLIED] is True
    assert part.read().column("frames").equals(rows_table(block, schema, PROV).column("frames"))
