"""A stream stopped from its watch's thread for its cluster's GCS gone (:func:`~repeval.pipeline.stream.halt_stream`
with ``wake``): the loop over its batches raises at once, though Ray Data's scheduling thread waits in a request of
the dead GCS (its look at the draining nodes: an execution callback's step that waits stands in for it); and Ray
Data's record of the stream's usage, which the shutdown makes by creating an actor — a request of the GCS that waited
until Ray ended the process, a minute later, in the watch's thread and then in the stream's —, is turned off."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ray.data._internal.execution.execution_callback import ExecutionCallback

from repeval.pipeline.stream import halt_stream

STUCK, RELEASE = threading.Event(), threading.Event()


class WaitsLikeADeadGcs(ExecutionCallback):
    """The scheduling loop's step waits for ``RELEASE`` once ``STUCK``."""

    def on_execution_step(self, executor: Any) -> None:
        if STUCK.is_set():
            RELEASE.wait(60)


def test_a_stream_halted_for_its_gcs_gone_raises_at_once_and_records_no_usage(ray_session, monkeypatch) -> None:
    from ray.data._internal.usage.collector import usage_collection_disabled

    monkeypatch.setenv("RAY_DATA_USAGE_DISABLED", "0")  # (as it was after the test: the halt sets it)
    ds = ray_session.data.range(80, override_num_blocks=40).map_batches(
        lambda batch: time.sleep(0.05) or batch, batch_size=None
    )
    gone, raised = RuntimeError("the Ray cluster's GCS is gone"), []
    batches = iter(ds.iter_batches(batch_size=None))

    def rest() -> None:
        try:
            for _ in batches:
                pass
        except Exception as exc:
            raised.append(exc)

    STUCK.clear(), RELEASE.clear()
    next(batches)  # the stream runs
    ds._current_executor._callbacks.append(WaitsLikeADeadGcs())  # (the driver's: a class the workers cannot import)
    STUCK.set()  # its scheduling loop now waits, as in a request of a dead GCS
    halting = threading.Thread(target=lambda: halt_stream(ds, gone, wake=True), daemon=True)
    consumer = threading.Thread(target=rest, daemon=True)
    try:
        halting.start()
        consumer.start()
        consumer.join(timeout=20)
        woken = not consumer.is_alive()
    finally:
        RELEASE.set()
        halting.join(timeout=30)
        consumer.join(timeout=30)
    assert woken and raised == [gone], raised
    assert os.environ.get("RAY_DATA_USAGE_DISABLED") == "1" and usage_collection_disabled()
